//! A carrier's reassigned-number check, sent as `phone_reassigned` events through the real
//! services: governance pseudonymises the number, modeling records it with identity in log
//! order, and a recycled number's new subscriber — who shows nothing but the number and a new
//! app account — is stored as a person of their own, while the same events without the record
//! join the two. A record without a phone, or one that comes after the number's holder used it
//! past its date, is set aside with its reason, and the rest flows on.

use touchline_e2e::{Modeling, person_of, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{Event, Identifier};
use touchline_proto::modeling::v1::ListDeadLettersRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_testkit::{TestApp, token};

const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "quarantine:read",
];
const DAY_MS: i64 = 86_400_000;
const NUMBER: &str = "+86 139 1234 5678";
const OTHER_NUMBER: &str = "+86 139 1111 2222";

fn id(id_type: &str, value: &str) -> Identifier {
    Identifier {
        r#type: id_type.to_owned(),
        value: value.to_owned(),
        scope: String::new(),
    }
}

/// An event named `name` at `ms` carrying exactly `identifiers`.
fn event(message_id: &str, name: &str, ms: i64, identifiers: Vec<Identifier>) -> Event {
    let mut event = sample_event(message_id, 0, name, ms);
    event.anonymous_id.clear();
    event.identifiers = identifiers;
    event
}

/// The stream of one tenant: the first holder, then (when `recorded`) the carrier's check
/// saying the number changed hands on day 60, then the new subscriber on day 95, then the
/// first holder again on day 100 with their own number.
fn stream(start: i64, recorded: bool) -> Vec<Event> {
    let day = |d: i64| start + d * DAY_MS;
    let mut events = vec![
        event(
            "first-login",
            "login",
            day(0),
            vec![id("wechat_unionid", "u-a"), id("phone", NUMBER)],
        ),
        event(
            "first-view",
            "page_view",
            day(20),
            vec![id("phone", NUMBER)],
        ),
    ];
    if recorded {
        events.push(event(
            "carrier-check",
            "phone_reassigned",
            day(60),
            vec![id("phone", NUMBER)],
        ));
        // A record naming no number: set aside, never retried.
        events.push(event(
            "carrier-bad",
            "phone_reassigned",
            day(61),
            vec![id("device_id", "carrier-terminal")],
        ));
        // A record that comes after its number's holder used it past the date it gives:
        // identity keeps the number with them, and the record is set aside, visibly.
        events.extend([
            event(
                "late-holder",
                "login",
                day(0),
                vec![id("wechat_unionid", "u-x"), id("phone", OTHER_NUMBER)],
            ),
            event(
                "late-use",
                "page_view",
                day(70),
                vec![id("phone", OTHER_NUMBER)],
            ),
            event(
                "carrier-late",
                "phone_reassigned",
                day(60),
                vec![id("phone", OTHER_NUMBER)],
            ),
        ]);
    }
    events.extend([
        event(
            "second-login",
            "login",
            day(95),
            vec![id("phone", NUMBER), id("user_id", "app-2")],
        ),
        event(
            "second-view",
            "page_view",
            day(96),
            vec![id("user_id", "app-2")],
        ),
        event(
            "first-again",
            "login",
            day(100),
            vec![
                id("wechat_unionid", "u-a"),
                id("phone", "+86 139 8765 0000"),
            ],
        ),
    ]);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carriers_record_keeps_a_recycled_numbers_new_subscriber_apart() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let start = chrono::Utc::now().timestamp_millis() - 120 * DAY_MS;
    let mut persons = Vec::new();
    for (tenant, recorded) in [("carrier-checked", true), ("unchecked", false)] {
        let token = token(tenant, SCOPES);
        touchline_e2e::publish_retail_dictionary(app.channel(&token)?, "").await?;
        let mut collection = CollectionServiceClient::new(app.channel(&token)?);
        let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
        let stored = touchline_e2e::ingest_and_store(
            &mut collection,
            &mut modeling,
            stream(start, recorded),
        )
        .await?;
        let person = |message: &str| person_of(&stored, message);
        persons.push((
            person("first-login"),
            person("first-view"),
            person("second-login"),
            person("second-view"),
            person("first-again"),
        ));
        if recorded {
            // The record is stored, on nobody; the bad one is set aside with its reason.
            assert!(
                stored.iter().any(|e| e.message_id == "carrier-check"),
                "the record is stored"
            );
            assert_eq!(person("carrier-check"), "", "a record names nobody");
            let dead = modeling
                .list_dead_letters(ListDeadLettersRequest::default())
                .await?
                .into_inner()
                .dead_letters;
            let reasons: Vec<(&str, &str)> = dead
                .iter()
                .map(|d| (d.message_id.as_str(), d.reason.as_str()))
                .collect();
            assert_eq!(
                reasons,
                [
                    ("carrier-bad", "NO_PHONE_NUMBER"),
                    ("carrier-late", "NUMBER_USED_SINCE")
                ]
            );
            assert_eq!(person("late-use"), person("late-holder"));
        }
    }
    let (first, first_view, second, second_view, again) = &persons[0];
    assert!(!first.is_empty() && !second.is_empty());
    assert_eq!(first_view, first, "a use before the date keeps its holder");
    assert_ne!(second, first, "the new subscriber is someone else");
    assert_eq!(second_view, second, "their account went with them");
    assert_eq!(again, first);
    // Without the carrier's record nothing tells them apart: one person.
    let (first, _, second, second_view, again) = &persons[1];
    assert_eq!(second, first);
    assert_eq!(second_view, first);
    assert_eq!(again, first);
    app.stop().await;
    Ok(())
}
