//! Identity changes applied to the event store: a merge moves history and redirects late
//! events, a split moves the split-off identifiers' events back, an erasure removes every row
//! and queues its confirmation.

use chrono::{TimeZone as _, Utc};
use prost::Message as _;
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::split::events_to_move;
use touchline_modeling::store::{NewStoredEvent, changes, commit_batch};
use touchline_proto::common::v1::Identifier;
use touchline_proto::governance::v1::CleanEvent;
use uuid::Uuid;

fn id(value: &str) -> Identifier {
    Identifier {
        r#type: "device_id".to_owned(),
        value: value.to_owned(),
        scope: String::new(),
    }
}

fn event(sequence: i64, person: Uuid, device: &str) -> NewStoredEvent {
    let clean = CleanEvent {
        sequence,
        message_id: format!("m{sequence}"),
        identifiers: vec![id(device)],
        ..Default::default()
    };
    NewStoredEvent {
        sequence,
        message_id: clean.message_id.clone(),
        person_id: Some(person),
        event_name: "view".to_owned(),
        channel: "app".to_owned(),
        event_time: Utc
            .timestamp_opt(1_780_000_000, 0)
            .single()
            .unwrap_or_default(),
        payload: clean.encode_to_vec(),
    }
}

async fn persons(pool: &PgPool) -> anyhow::Result<Vec<(i64, Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT sequence, person_id FROM modeling.events WHERE tenant_id = 't' ORDER BY sequence",
    )
    .fetch_all(pool)
    .await?)
}

#[tokio::test]
async fn merge_split_and_erasure_reshape_the_history() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    commit_batch(&pool, "t", &[event(1, a, "d1"), event(2, b, "d2")], "c", 2).await?;

    // b merged into a: b's history moves, and an event resolved to b before the merge but
    // stored after it lands on a.
    let mut tx = pool.begin().await?;
    changes::lock_tenant(&mut tx, "t").await?;
    assert_eq!(changes::apply_merge(&mut tx, "t", a, &[b]).await?, 1);
    tx.commit().await?;
    commit_batch(&pool, "t", &[event(3, b, "d2")], "c", 3).await?;
    assert_eq!(persons(&pool).await?, vec![(1, a), (2, a), (3, a)]);

    // The merge was wrong: d2 splits off to a new person, taking its events.
    let c = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let stored = changes::events_of(&mut tx, "t", a).await?;
    let decoded: Vec<(i64, Vec<Identifier>)> = stored
        .iter()
        .map(|(s, p)| Ok((*s, CleanEvent::decode(p.as_slice())?.identifiers)))
        .collect::<Result<_, prost::DecodeError>>()?;
    let to_move = events_to_move(decoded.iter().map(|(s, i)| (*s, i.as_slice())), &[id("d2")]);
    assert_eq!(changes::move_events(&mut tx, "t", &to_move, c).await?, 2);
    tx.commit().await?;
    assert_eq!(persons(&pool).await?, vec![(1, a), (2, c), (3, c)]);

    // Erasing c removes its rows and queues one confirmation.
    let mut tx = pool.begin().await?;
    changes::set_opt_out(&mut tx, "t", c, true).await?;
    let removed = changes::erase(&mut tx, "t", &[c], "tenants/t/erasures/e1").await?;
    tx.commit().await?;
    assert_eq!(removed, 3, "two events and the attribute row");
    assert_eq!(persons(&pool).await?, vec![(1, a)]);
    let mut conn = pool.acquire().await?;
    let pending = changes::pending_confirmations(&mut conn).await?;
    assert_eq!(
        pending,
        vec![("t".to_owned(), "tenants/t/erasures/e1".to_owned(), 3)]
    );
    changes::confirmation_sent(&mut conn, "t", "tenants/t/erasures/e1").await?;
    assert!(changes::pending_confirmations(&mut conn).await?.is_empty());
    drop(conn);
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn a_detach_takes_the_person_off_events_made_only_of_shared_identifiers() -> anyhow::Result<()>
{
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let owner = Uuid::now_v7();
    let mut logged_in = event(2, owner, "ipad");
    let mut clean = CleanEvent::decode(logged_in.payload.as_slice())?;
    clean.identifiers.push(Identifier {
        r#type: "user_id".to_owned(),
        value: "u-1".to_owned(),
        scope: String::new(),
    });
    logged_in.payload = clean.encode_to_vec();
    commit_batch(&pool, "t", &[event(1, owner, "ipad"), logged_in], "c", 2).await?;

    let mut tx = pool.begin().await?;
    let stored = changes::events_of(&mut tx, "t", owner).await?;
    let decoded: Vec<(i64, Vec<Identifier>)> = stored
        .iter()
        .map(|(s, p)| Ok((*s, CleanEvent::decode(p.as_slice())?.identifiers)))
        .collect::<Result<_, prost::DecodeError>>()?;
    let shared = events_to_move(
        decoded.iter().map(|(s, i)| (*s, i.as_slice())),
        &[id("ipad")],
    );
    assert_eq!(changes::detach_events(&mut tx, "t", &shared).await?, 1);
    changes::record_detached(&mut tx, "t", owner, &[id("ipad")]).await?;
    tx.commit().await?;
    // Resolved to the owner before the detach, stored after it: it names nobody either.
    commit_batch(&pool, "t", &[event(3, owner, "ipad")], "c", 3).await?;
    let rows: Vec<(i64, Option<Uuid>)> = sqlx::query_as(
        "SELECT sequence, person_id FROM modeling.events WHERE tenant_id = 't' ORDER BY sequence",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(rows, vec![(1, None), (2, Some(owner)), (3, None)]);
    pool.close().await;
    Ok(())
}
