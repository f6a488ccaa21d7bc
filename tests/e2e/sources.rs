//! The source registry: create, read, list, update with revisions and
//! etags, idempotent retries, field violations, and what a source's state
//! and revision mean for ingest.

use sqlx::Connection as _;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{
    CreateSourceRequest, DataFormat, GetSourceRequest, IngestEventsRequest, IngestStatus,
    ListSourcesRequest, Source, SourceKind, SourceState, UpdateSourceRequest,
};
use touchline_proto::prost_types::FieldMask;
use touchline_testkit::{TestApp, TestDatabase, token};

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

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_keep_every_revision_and_guard_concurrent_edits() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("acme", &["sources:write", "sources:read", "events:write"]);
    let mut client = CollectionServiceClient::new(app.channel(&token)?);

    // Invalid input names every bad field.
    let mut bad = app_source();
    bad.time_zone = "Mars/Olympus".to_owned();
    bad.channel = "App".to_owned();
    let status = client
        .create_source(CreateSourceRequest {
            source_id: "sdk-app".to_owned(),
            source: Some(bad),
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // The field violations travel in the status details.
    let details = String::from_utf8_lossy(status.details()).into_owned();
    assert!(details.contains("time_zone"), "{details}");
    assert!(details.contains("INVALID_CHANNEL"), "{details}");

    // validate_only stores nothing.
    let checked = client
        .create_source(CreateSourceRequest {
            source_id: "sdk-app".to_owned(),
            source: Some(app_source()),
            validate_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(checked.source.map(|s| s.revision), Some(1));
    let missing = client
        .get_source(GetSourceRequest {
            name: "tenants/acme/sources/sdk-app".to_owned(),
            revision: 0,
        })
        .await
        .expect_err("validate_only created nothing");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // Create, and a retry with the same request id returns the same source.
    let create = CreateSourceRequest {
        parent: "tenants/acme".to_owned(),
        source_id: "sdk-app".to_owned(),
        source: Some(app_source()),
        request_id: "5b0e4a2e-1f7c-4d52-9a55-0d7c1b7d1a01".to_owned(),
        validate_only: false,
    };
    let created = client
        .create_source(create.clone())
        .await?
        .into_inner()
        .source
        .unwrap_or_default();
    assert_eq!(created.name, "tenants/acme/sources/sdk-app");
    assert_eq!(created.revision, 1);
    assert_eq!(created.state, SourceState::Active as i32);
    let retried = client
        .create_source(create.clone())
        .await?
        .into_inner()
        .source
        .unwrap_or_default();
    assert_eq!(retried, created);
    let taken = client
        .create_source(CreateSourceRequest {
            request_id: String::new(),
            ..create
        })
        .await
        .expect_err("id taken");
    assert_eq!(taken.code(), tonic::Code::AlreadyExists);

    // Another tenant cannot see it.
    let other = token_for_other(&app)?;
    let hidden = CollectionServiceClient::new(other)
        .get_source(GetSourceRequest {
            name: "tenants/acme/sources/sdk-app".to_owned(),
            revision: 0,
        })
        .await
        .expect_err("other tenant");
    assert_eq!(hidden.code(), tonic::Code::PermissionDenied);

    // Update: new revision and etag; a stale etag is ABORTED; immutable
    // fields are refused.
    let updated = client
        .update_source(UpdateSourceRequest {
            source: Some(Source {
                name: created.name.clone(),
                time_zone: "Europe/Paris".to_owned(),
                channel: "ignored".to_owned(),
                etag: created.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["time_zone"]),
            ..Default::default()
        })
        .await?
        .into_inner()
        .source
        .unwrap_or_default();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.time_zone, "Europe/Paris");
    assert_eq!(updated.channel, "app");
    assert_ne!(updated.etag, created.etag);
    let stale = client
        .update_source(UpdateSourceRequest {
            source: Some(Source {
                name: created.name.clone(),
                display_name: "late".to_owned(),
                etag: created.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), tonic::Code::Aborted);
    let immutable = client
        .update_source(UpdateSourceRequest {
            source: Some(Source {
                name: created.name.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["kind"]),
            ..Default::default()
        })
        .await
        .expect_err("immutable");
    assert_eq!(immutable.code(), tonic::Code::InvalidArgument);

    // Past revisions stay readable exactly as they were.
    let first = client
        .get_source(GetSourceRequest {
            name: created.name.clone(),
            revision: 1,
        })
        .await?
        .into_inner()
        .source
        .unwrap_or_default();
    assert_eq!(first, created);
    let current = client
        .get_source(GetSourceRequest {
            name: created.name.clone(),
            revision: 0,
        })
        .await?
        .into_inner()
        .source
        .unwrap_or_default();
    assert_eq!(current, updated);

    // Events are stamped with the revision current when they arrive.
    let response = client
        .ingest_events(IngestEventsRequest {
            events: vec![
                sample_event("r-1", 1, "view", 1_795_507_200_000),
                Default::default(),
            ],
        })
        .await?
        .into_inner();
    assert_eq!(response.accepted_count, 1);
    assert_eq!(response.rejected_count, 1);
    let mut db = sqlx::PgConnection::connect(&app.db.url).await?;
    let revision: i64 = sqlx::query_scalar(
        "SELECT source_revision FROM collection.raw_events WHERE tenant_id = 'acme' AND message_id = 'r-1'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(revision, 2);

    // A disabled source's events are rejected one by one.
    client
        .update_source(UpdateSourceRequest {
            source: Some(Source {
                name: created.name.clone(),
                state: SourceState::Disabled as i32,
                ..Default::default()
            }),
            update_mask: mask(&["state"]),
            ..Default::default()
        })
        .await?;
    let mut other_source = sample_event("r-3", 1, "view", 1_795_507_200_000);
    other_source.source = "unregistered".to_owned();
    let response = client
        .ingest_events(IngestEventsRequest {
            events: vec![
                sample_event("r-2", 1, "view", 1_795_507_200_000),
                other_source,
            ],
        })
        .await?
        .into_inner();
    assert_eq!(response.results[0].status(), IngestStatus::Rejected);
    assert_eq!(response.results[0].violations[0].reason, "SOURCE_DISABLED");
    assert_eq!(response.results[1].status(), IngestStatus::Accepted);

    // Listing hides disabled sources unless asked, and pages.
    for id in ["pos-a", "pos-b", "pos-c"] {
        client
            .create_source(CreateSourceRequest {
                source_id: id.to_owned(),
                source: Some(app_source()),
                ..Default::default()
            })
            .await?;
    }
    let page = client
        .list_sources(ListSourcesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await?
        .into_inner();
    let ids: Vec<&str> = page.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        ids,
        ["tenants/acme/sources/pos-a", "tenants/acme/sources/pos-b"]
    );
    let rest = client
        .list_sources(ListSourcesRequest {
            page_size: 2,
            page_token: page.next_page_token,
            show_disabled: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let ids: Vec<&str> = rest.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        ids,
        ["tenants/acme/sources/pos-c", "tenants/acme/sources/sdk-app"]
    );
    assert!(rest.next_page_token.is_empty());
    app.stop().await;
    Ok(())
}

fn token_for_other(
    app: &TestApp,
) -> anyhow::Result<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
> {
    app.channel(&token("globex", &["sources:read"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_sources_are_refused_when_registration_is_required() -> anyhow::Result<()> {
    crate::init();
    let db = TestDatabase::create().await?;
    let app = TestApp::spawn_with(db, |config| {
        config.collection.require_registered_sources = true;
    })
    .await?;
    let token = token("acme", &["events:write"]);
    let mut client = CollectionServiceClient::new(app.channel(&token)?);
    let response = client
        .ingest_events(IngestEventsRequest {
            events: vec![sample_event("u-1", 1, "view", 1_795_507_200_000)],
        })
        .await?
        .into_inner();
    assert_eq!(response.results[0].status(), IngestStatus::Rejected);
    assert_eq!(
        response.results[0].violations[0].reason,
        "SOURCE_NOT_REGISTERED"
    );
    app.stop().await;
    Ok(())
}
