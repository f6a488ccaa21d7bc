//! Events no test of ours used to send: each is acknowledged by collection, and none may stop
//! the pipeline, for its own tenant or another. Every one ends clean (in the event store),
//! quarantined with a typed reason, or set aside; a canary of another tenant and a sentinel of
//! the same tenant sent after them both reach modeling.

use std::collections::BTreeSet;
use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{Event, Identifier};
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{ListQuarantinedRequest, QuarantineReason};
use touchline_proto::modeling::v1::ListEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::prost_types::{Struct, Value, value::Kind};
use touchline_testkit::{TestApp, eventually, token};

const SCOPES: &[&str] = &["events:write", "models:read", "quarantine:read"];
const T0: i64 = 1_795_507_200_000;

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn with_properties(mut event: Event, entries: &[(&str, Value)]) -> Event {
    event.properties = Some(Struct {
        fields: entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    });
    event
}

fn id(kind: &str, value: &str, scope: &str) -> Identifier {
    Identifier {
        r#type: kind.to_owned(),
        value: value.to_owned(),
        scope: scope.to_owned(),
    }
}

/// The poison events an independent client found, with what each must become.
fn poison() -> Vec<(Event, Option<QuarantineReason>)> {
    let nul_key_and_value = with_properties(
        sample_event("p-nul-kv", 1, "view", T0),
        &[("k\u{0}", text("v\u{0}"))],
    );
    let nul_key_only = with_properties(
        sample_event("p-nul-k", 2, "view", T0),
        &[("k\u{0}", text("v"))],
    );
    let mut nul_type = sample_event("p-nul-type", 3, "view", T0);
    nul_type.identifiers.push(id("dev\u{0}ice", "x", ""));
    let mut nul_scope = sample_event("p-nul-scope", 4, "view", T0);
    nul_scope
        .identifiers
        .push(id("wechat_openid", "o-1", "wx\u{0}"));
    let mut nul_type_alone = sample_event("p-nul-type-alone", 5, "view", T0);
    nul_type_alone.anonymous_id.clear();
    nul_type_alone.identifiers = vec![id("dev\u{0}ice", "x", "")];
    let mut long_anonymous = sample_event("p-long-anon", 6, "view", T0);
    long_anonymous.anonymous_id = "a".repeat(6_000);
    long_anonymous.identifiers.clear();
    let mut many_ids = sample_event("p-many-ids", 7, "view", T0);
    many_ids.identifiers = (0..1_500)
        .map(|i| id("device_id", &format!("d-{i}"), ""))
        .collect();
    let mut openid_without_app = sample_event("p-openid", 8, "view", T0);
    openid_without_app.anonymous_id.clear();
    openid_without_app.identifiers = vec![id("wechat_openid", "o-2", "")];
    vec![
        (
            nul_key_and_value,
            Some(QuarantineReason::InvalidPropertyValue),
        ),
        (nul_key_only, Some(QuarantineReason::InvalidPropertyValue)),
        // The unusable identifier is dropped and counted; the others identify the person.
        (nul_type, None),
        (nul_scope, None),
        (nul_type_alone, Some(QuarantineReason::InvalidIdentifier)),
        (long_anonymous, Some(QuarantineReason::InvalidIdentifier)),
        (many_ids, Some(QuarantineReason::InvalidIdentifier)),
        (
            openid_without_app,
            Some(QuarantineReason::InvalidIdentifier),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_are_set_aside_and_stop_no_tenant() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let acme = token("acme", SCOPES);
    let globex = token("globex", SCOPES);
    let cases = poison();
    let mut collection = CollectionServiceClient::new(app.channel(&acme)?);
    for (event, _) in &cases {
        let ack = collection
            .ingest_events(IngestEventsRequest {
                events: vec![event.clone()],
            })
            .await?
            .into_inner();
        assert_eq!(
            ack.accepted_count, 1,
            "{} is acknowledged",
            event.message_id
        );
    }
    collection
        .ingest_events(IngestEventsRequest {
            events: vec![sample_event("sentinel", 9, "view", T0 + 1_000)],
        })
        .await?;
    CollectionServiceClient::new(app.channel(&globex)?)
        .ingest_events(IngestEventsRequest {
            events: vec![sample_event("canary", 1, "view", T0 + 2_000)],
        })
        .await?;

    let canary = stored_ids(&app, &globex, |ids| ids.contains("canary")).await?;
    assert_eq!(canary, BTreeSet::from(["canary".to_owned()]));
    let stored = stored_ids(&app, &acme, |ids| ids.contains("sentinel")).await?;

    let mut governance = GovernanceServiceClient::new(app.channel(&acme)?);
    let quarantined = governance
        .list_quarantined(ListQuarantinedRequest {
            page_size: 100,
            ..Default::default()
        })
        .await?
        .into_inner()
        .quarantined_events;
    for (event, expected) in &cases {
        let id = &event.message_id;
        let verdict = quarantined
            .iter()
            .find(|q| q.event.as_ref().is_some_and(|e| &e.message_id == id))
            .map(|q| q.reason());
        match expected {
            Some(reason) => assert_eq!(verdict, Some(*reason), "{id} is quarantined"),
            None => {
                assert_eq!(verdict, None, "{id} is not quarantined");
                assert!(stored.contains(id), "{id} is in the event store");
            }
        }
    }
    app.stop().await;
    Ok(())
}

/// The message ids in `tenant`'s event store once `done` holds for them.
async fn stored_ids(
    app: &TestApp,
    token: &str,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> anyhow::Result<BTreeSet<String>> {
    let modeling = ModelingServiceClient::new(app.channel(token)?);
    eventually(Duration::from_secs(30), || {
        let mut modeling = modeling.clone();
        let done = &done;
        async move {
            let page = modeling
                .list_events(ListEventsRequest {
                    page_size: 1_000,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let ids: BTreeSet<String> = page.events.into_iter().map(|e| e.message_id).collect();
            Ok(done(&ids).then_some(ids))
        }
    })
    .await
}

/// Personal data and contracts an independent client found leaking or unenforced: identifier
/// fields at nested paths stayed readable, a phone or an email sent as `user_id` was stored in
/// clear by identity, an unknown source id ended clean, and NaN became null without a trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_contacts_unknown_sources_and_nan_are_handled_as_the_contract_says()
-> anyhow::Result<()> {
    use touchline_proto::collection::v1::{
        CreateSourceRequest, DataFormat, IdentifierField, Source, SourceKind,
    };
    let spans = crate::init();
    let prefix = format!("touchline-canary-{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(touchline_testkit::TestDatabase::create().await?, |config| {
        config.identity.key_prefix = prefix.clone();
    })
    .await?;
    let mut scopes = SCOPES.to_vec();
    scopes.push("sources:write");
    let acme = token("acme", &scopes);
    let mut collection = CollectionServiceClient::new(app.channel(&acme)?);
    let field = |path: &str, kind: &str| IdentifierField {
        source_field: path.to_owned(),
        identifier_type: kind.to_owned(),
        ..Default::default()
    };
    collection
        .create_source(CreateSourceRequest {
            source_id: "crm-export".to_owned(),
            source: Some(Source {
                display_name: "CRM export".to_owned(),
                kind: SourceKind::AppSdk as i32,
                format: DataFormat::Events as i32,
                channel: "app".to_owned(),
                time_zone: "Asia/Shanghai".to_owned(),
                identifier_fields: vec![
                    field("contact.mobile_no", "phone"),
                    field("contact.mail", "email"),
                ],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let contact = Value {
        kind: Some(Kind::StructValue(Struct {
            fields: [
                ("mobile_no".to_owned(), text("139 8765 4321")),
                ("mail".to_owned(), text("Wang.Fang@Example.cn")),
            ]
            .into_iter()
            .collect(),
        })),
    };
    let mut nested = with_properties(
        sample_event("pii-nested", 1, "view", T0),
        &[("contact", contact), ("note", text("13712345678"))],
    );
    nested.source = "crm-export".to_owned();
    let mut email_as_user = sample_event("pii-user-id", 2, "view", T0);
    email_as_user.source = "crm-export".to_owned();
    email_as_user.user_id = "li.lei@example.cn".to_owned();
    let mut typo = sample_event("unknown-source", 3, "view", T0);
    typo.source = "crm-exprot".to_owned();
    let mut nan = with_properties(
        sample_event("nan-price", 4, "view", T0),
        &[(
            "price",
            Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
        )],
    );
    nan.source = "crm-export".to_owned();
    let ack = collection
        .ingest_events(IngestEventsRequest {
            events: vec![nested, email_as_user, typo, nan],
        })
        .await?
        .into_inner();
    assert_eq!(ack.accepted_count, 4);

    let stored = stored_ids(&app, &acme, |ids| {
        ids.contains("pii-nested") && ids.contains("pii-user-id")
    })
    .await?;
    assert!(!stored.contains("unknown-source") && !stored.contains("nan-price"));
    let quarantined = GovernanceServiceClient::new(app.channel(&acme)?)
        .list_quarantined(ListQuarantinedRequest::default())
        .await?
        .into_inner()
        .quarantined_events;
    let reason_of = |id: &str| {
        quarantined
            .iter()
            .find(|q| q.event.as_ref().is_some_and(|e| e.message_id == id))
            .map(|q| q.reason())
    };
    assert_eq!(
        reason_of("unknown-source"),
        Some(QuarantineReason::UnknownSource)
    );
    assert_eq!(
        reason_of("nan-price"),
        Some(QuarantineReason::InvalidPropertyValue)
    );

    // No clear value in any reply of the event store, in any table of identity or modeling or
    // in governance's clean log, in a Redis key or value, in a span or in a log line.
    let page = ModelingServiceClient::new(app.channel(&acme)?)
        .list_events(ListEventsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await?
        .into_inner();
    // The phone's middle and last groups together, with and without the space: a four-digit
    // fragment alone also turns up by chance in random ids and times of a reply.
    let clear = [
        "8765 4321",
        "87654321",
        "wang.fang",
        "Wang.Fang",
        "li.lei",
        "12345678",
    ];
    let reply = format!("{page:?}");
    for value in clear {
        if let Some(at) = reply.find(value) {
            let from = at.saturating_sub(120);
            panic!(
                "{value} in a modeling reply: …{}…",
                reply.get(from..at + 40).unwrap_or_default()
            );
        }
    }
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await?;
    let canary = ["wang.fang", "li.lei@", "13987654321", "8613712345678"];
    for schema in ["identity", "modeling", "governance"] {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
        )
        .bind(schema)
        .fetch_all(&mut db)
        .await?;
        for table in tables {
            // Quarantined events are kept as received, to be fixed and replayed; the clean log
            // and everything after it hold only pseudonymised or masked values.
            if schema == "governance" && table != "clean_events" {
                continue;
            }
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM {schema}.{table} t"))
                    .fetch_all(&mut db)
                    .await?;
            // Rows print bytea columns (stored payloads) as hex, so each value is looked for
            // both as text and as hex.
            for row in rows {
                for value in canary {
                    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
                    assert!(
                        !row.contains(value) && !row.contains(&hex),
                        "{value} in {schema}.{table}"
                    );
                }
            }
        }
    }
    let mut redis = redis::Client::open(touchline_testkit::redis_url())?
        .get_multiplexed_async_connection()
        .await?;
    // SCAN in steps, not KEYS: a long-lived Redis shared by many test runs holds millions of
    // keys, and one KEYS over them outlasts the client's response timeout.
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut redis)
            .await?;
        keys.extend(found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(!keys.is_empty(), "identity cached something under {prefix}");
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut redis).await?;
        let mut read = match kind.as_str() {
            "string" => redis::cmd("GET"),
            "hash" => redis::cmd("HGETALL"),
            "set" => redis::cmd("SMEMBERS"),
            other => anyhow::bail!("identity keeps a Redis {other}; the canary must read it"),
        };
        let parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![read.arg(&key).query_async(&mut redis).await?],
            _ => read.arg(&key).query_async(&mut redis).await?,
        };
        let value: String = parts.iter().map(|p| String::from_utf8_lossy(p)).collect();
        let key = String::from_utf8_lossy(&key);
        for clear in canary {
            assert!(!key.contains(clear), "{clear} in a Redis key");
            assert!(!value.contains(clear), "{clear} in a Redis value");
        }
    }
    app.stop().await;
    let traces = format!("{:?}", spans.get_finished_spans()?);
    let (logs, _) = touchline_telemetry::testing::captured_logs();
    assert!(!logs.is_empty(), "the log capture works");
    for clear in canary.into_iter().chain(["Wang.Fang", "139 8765 4321"]) {
        assert!(!traces.contains(clear), "{clear} in a span");
        assert!(!logs.contains(clear), "{clear} in a log line");
    }
    Ok(())
}
