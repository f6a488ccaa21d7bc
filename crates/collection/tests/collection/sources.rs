//! The source registry against a real database: writes keyed by a request
//! id act once, however their retries race.

use touchline_collection::sources::{self, Update};
use touchline_proto::collection::v1::{DataFormat, Source, SourceKind};

fn app_source() -> Source {
    Source {
        display_name: "Shop app".to_owned(),
        kind: SourceKind::AppSdk as i32,
        format: DataFormat::Events as i32,
        channel: "app".to_owned(),
        time_zone: "Asia/Shanghai".to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_of_a_keyed_update_make_one_revision() -> anyhow::Result<()> {
    let (_db, pool) = crate::helpers::fresh_pool().await?;
    sources::create(&pool, "acme", "sdk-app", app_source(), "", false).await?;

    // No etag: only the request id keeps the retries from each making a
    // revision of their own.
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let pool = pool.clone();
        retries.spawn(async move {
            sources::update(
                &pool,
                "acme",
                Update {
                    source_id: "sdk-app",
                    patch: Source {
                        display_name: "Shop app (iOS and Android)".to_owned(),
                        ..Default::default()
                    },
                    paths: vec!["display_name".to_owned()],
                    validate_only: false,
                    request_id: "0b7e5d4c-3a2f-4e1d-8c9b-7a6f5e4d3c2b",
                },
            )
            .await
        });
    }
    let replies = retries
        .join_all()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    assert!(
        replies.iter().all(|reply| *reply == replies[0]),
        "every retry gets the first reply"
    );
    assert_eq!(replies[0].revision, 2);
    let current = sources::get(&pool, "acme", "sdk-app", 0).await?;
    assert_eq!(current.revision, 2, "one update, however many retries");

    // A keyed create that lost the race to its twin answers as the twin did.
    let mut creates = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let pool = pool.clone();
        creates.spawn(async move {
            sources::create(
                &pool,
                "acme",
                "sdk-app-beta",
                app_source(),
                "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                false,
            )
            .await
        });
    }
    let created = creates
        .join_all()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    assert!(created.iter().all(|reply| *reply == created[0]));
    Ok(())
}
