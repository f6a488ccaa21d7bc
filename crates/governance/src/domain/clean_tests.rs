//! Tests of the cleaning function, including property-based fuzzing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use touchline_proto::common::v1::{Event, Identifier};
use touchline_proto::governance::v1::QuarantineReason;

use super::*;
use crate::domain::dictionary::templates;
use crate::domain::source::SourceSpec;
use crate::domain::value::to_struct;

fn key() -> TenantKey {
    TenantKey {
        version: 1,
        secret: vec![7; 32],
    }
}

fn retail() -> Dictionary {
    let mut events = BTreeMap::new();
    for t in templates().into_iter().filter(|t| t.id == "retail") {
        for e in t.events {
            events.insert(e.event_name.clone(), e);
        }
    }
    Dictionary { version: 3, events }
}

fn received() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:01:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn sdk_event() -> Event {
    Event {
        message_id: "m1".into(),
        event: "SubmitOrder".into(),
        anonymous_id: " anon-1 ".into(),
        original_timestamp: "1795507200000".into(),
        channel: "App".into(),
        properties: Some(to_struct(
            &json!({"order_id": "O-1", "revenue": "¥129.00"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )),
        identifiers: vec![Identifier {
            r#type: "phone".into(),
            value: "138 1234 5678".into(),
            scope: String::new(),
        }],
        ..Default::default()
    }
}

fn run(
    event: &Event,
    source: &SourceSpec,
    dictionary: Option<&Dictionary>,
) -> Result<Cleaned, Quarantine> {
    clean(Inputs {
        event,
        received_at: received(),
        source,
        dictionary,
        privacy: &PrivacySettings::default(),
        key: &key(),
    })
}

#[test]
fn canonicalises_coerces_and_pseudonymises() {
    let source = SourceSpec::generic("app");
    let dict = retail();
    let c = run(&sdk_event(), &source, Some(&dict)).expect("clean");
    let e = &c.event;
    assert_eq!(e.event_name, "submit_order");
    assert_eq!(e.source_event_name, "SubmitOrder");
    assert_eq!(e.channel, "app");
    assert!(e.conversion);
    assert!((e.value - 129.0).abs() < 1e-9);
    assert_eq!(e.dictionary_version, 3);
    assert_eq!(e.touchpoint_type, 1);
    let phone = e
        .identifiers
        .iter()
        .find(|i| i.r#type == "phone")
        .expect("phone");
    assert!(phone.value.starts_with("k1:"), "stored pseudonymised");
    assert_eq!(e.masked_identifiers[0].masked, "138****5678");
    let original = e
        .original_values
        .as_ref()
        .map(|s| s.fields.contains_key("properties.revenue"));
    assert_eq!(original, Some(true));
    assert!(c.identified);
    assert_eq!(e.timestamp_rule, "epoch_millis");
}

#[test]
fn pass_through_without_a_dictionary() {
    let c = run(&sdk_event(), &SourceSpec::generic("app"), None).expect("clean");
    assert_eq!(c.event.event_name, "SubmitOrder");
    assert_eq!(c.event.dictionary_version, 0);
}

#[test]
fn unknown_names_and_bad_times_quarantine_with_every_problem() {
    let mut e = sdk_event();
    e.event = "mystery".into();
    e.original_timestamp = "Invalid Date".into();
    let q = run(&e, &SourceSpec::generic("app"), Some(&retail())).expect_err("quarantined");
    assert_eq!(q.reason(), QuarantineReason::UnknownEvent);
    assert_eq!(q.violations.len(), 2);
    assert_eq!(q.violations[1].reason, QuarantineReason::InvalidTimestamp);
}

#[test]
fn placeholders_are_removed_and_counted() {
    let mut e = sdk_event();
    e.anonymous_id = "00000000-0000-0000-0000-000000000000".into();
    e.identifiers[0].value = "13800000000".into();
    let q = run(&e, &SourceSpec::generic("app"), None).expect_err("nothing identifies");
    assert_eq!(q.reason(), QuarantineReason::NoIdentifier);
    e.user_id = "u-9".into();
    let c = run(&e, &SourceSpec::generic("app"), None).expect("clean");
    assert_eq!(c.event.blocked_identifiers, 2);
    assert_eq!(c.event.identifiers.len(), 1);
}

#[test]
fn a_nul_character_quarantines_instead_of_being_stripped() {
    let mut e = sdk_event();
    e.properties = Some(to_struct(
        &json!({"order_id": "O-1", "page": "home\u{0}page"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    ));
    let q = run(&e, &SourceSpec::generic("app"), None).expect_err("quarantined");
    assert_eq!(q.reason(), QuarantineReason::InvalidPropertyValue);
    assert_eq!(q.violations[0].field, "properties.page");
}

#[test]
fn a_top_level_id_repeated_in_the_identifiers_counts_once() {
    let mut e = sdk_event();
    e.anonymous_id = "unknown".into();
    e.user_id = "U-1".into();
    e.identifiers = vec![
        Identifier {
            r#type: "anonymous_id".into(),
            value: "unknown".into(),
            scope: "brand".into(),
        },
        Identifier {
            r#type: "user_id".into(),
            value: "U-1".into(),
            scope: "app".into(),
        },
    ];
    let c = run(&e, &SourceSpec::generic("app"), None).expect("clean");
    assert_eq!(c.event.blocked_identifiers, 1);
    assert_eq!(c.event.identifiers.len(), 1);
    assert_eq!(c.event.identifiers[0].scope, "app");
}

#[test]
fn anonymous_business_records_stay_clean_where_the_dictionary_allows() {
    let mut source = SourceSpec::generic("pos");
    source.sdk = false;
    let e = Event {
        message_id: "walk-in".into(),
        event: "pos_order".into(),
        original_timestamp: "2026-11-24T08:00:00Z".into(),
        properties: Some(to_struct(
            &json!({"order_id": "R-1", "amount": 55})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )),
        ..Default::default()
    };
    let dict = retail();
    let c = run(&e, &source, Some(&dict)).expect("a sale without a member is still a sale");
    assert_eq!(c.event.event_name, "purchase");
    assert!(c.event.identifiers.is_empty());
    assert!(!c.identified);
    let mut click = e.clone();
    click.event = "ad_click".into();
    let q = run(&click, &source, Some(&dict)).expect_err("a click needs a person");
    assert_eq!(q.reason(), QuarantineReason::NoIdentifier);
}

#[test]
fn an_import_corrects_skew_against_the_collector_receipt() {
    let mut e = sdk_event();
    // Collected at 08:00:10 from a device 30 minutes behind, imported at
    // `received()` a minute later.
    e.original_timestamp = "2026-11-24T07:30:00Z".into();
    e.sent_at = "2026-11-24T07:30:05Z".into();
    e.received_at = "1795507210000".into();
    let c = run(&e, &SourceSpec::generic("app"), None).expect("clean");
    assert_eq!(
        c.event_time,
        DateTime::parse_from_rfc3339("2026-11-24T08:00:05Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid")
    );
    assert!(c.event.timestamp_corrected);
}

#[test]
fn an_ad_click_id_without_utm_tags_names_the_platform_as_source() {
    let dict = retail();
    let with = |props: serde_json::Value| {
        let mut e = sdk_event();
        e.properties = Some(to_struct(&props.as_object().cloned().unwrap_or_default()));
        let c = run(&e, &SourceSpec::generic("app"), Some(&dict)).expect("clean");
        from_struct(c.event.properties.as_ref())
    };
    let auto_tagged = with(json!({"order_id": "O-1", "revenue": 129, "gdt_vid": "wx0a1b"}));
    assert_eq!(auto_tagged.get("utm_source"), Some(&json!("tencent_ads")));
    assert_eq!(auto_tagged.get("utm_medium"), Some(&json!("cpc")));
    assert_eq!(
        auto_tagged.get("gdt_vid"),
        Some(&json!("wx0a1b")),
        "kept as sent"
    );
    let tagged = with(json!({"order_id": "O-1", "gclid": "Cj0", "utm_source": "newsletter"}));
    assert_eq!(tagged.get("utm_source"), Some(&json!("newsletter")));
    assert!(!tagged.contains_key("utm_medium"), "{tagged:?}");
}

#[test]
fn masked_and_null_contact_fields_stay_as_delivered() {
    let mut e = sdk_event();
    e.properties = Some(to_struct(
        &json!({"phone": "135****8305", "email": null, "mobile": "1381234567x"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    ));
    let c = run(&e, &SourceSpec::generic("app"), None).expect("clean");
    let props = from_struct(c.event.properties.as_ref());
    assert_eq!(props.get("phone"), Some(&json!("135****8305")));
    assert_eq!(props.get("email"), Some(&Value::Null));
    assert!(!props.contains_key("mobile"), "clear but invalid: removed");
}

#[test]
fn invalid_phones_are_dropped_unless_nothing_else_identifies() {
    let mut e = sdk_event();
    e.identifiers[0].value = "13812O45678".into();
    let c = run(&e, &SourceSpec::generic("app"), None).expect("anonymous id remains");
    assert_eq!(c.event.invalid_identifiers_dropped, 1);
    e.anonymous_id.clear();
    let q = run(&e, &SourceSpec::generic("app"), None).expect_err("quarantined");
    assert_eq!(q.reason(), QuarantineReason::InvalidIdentifier);
    assert_eq!(q.violations[0].field, "identifiers[0]");
}

#[test]
fn business_rows_use_the_source_zone_and_natural_key() {
    let mut source = SourceSpec::generic("bloomkids-pos-cn_stores");
    source.sdk = false;
    source.time_zone = chrono_tz::Asia::Shanghai;
    source.natural_key_fields = vec!["order_id".into()];
    let e = Event {
        message_id: "row-1".into(),
        event: "pos_order".into(),
        original_timestamp: "2026-11-24 16:00:00".into(),
        // A daily export: sent long after; must not be skew-corrected.
        sent_at: "1795564800000".into(),
        properties: Some(to_struct(
            &json!({"order_id": "SH001-1", "amount": "¥129.00", "phone": "13812345678"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )),
        identifiers: vec![Identifier {
            r#type: "member_card".into(),
            value: "MC1".into(),
            scope: "bloomkids".into(),
        }],
        ..Default::default()
    };
    let c = run(&e, &source, Some(&retail())).expect("clean");
    assert_eq!(c.event.event_name, "purchase");
    assert_eq!(
        c.event_time,
        DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    );
    assert!(!c.event.timestamp_corrected);
    assert_eq!(c.natural_key.as_deref(), Some("purchase|order_id=SH001-1"));
    let props = c
        .event
        .properties
        .as_ref()
        .map(|p| p.fields.clone())
        .unwrap_or_default();
    let phone = props.get("phone").and_then(|v| match &v.kind {
        Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    });
    assert!(
        phone.is_some_and(|p| p.starts_with("k1:")),
        "no phone in clear"
    );
}

#[test]
fn ambiguous_dates_quarantine() {
    let mut source = SourceSpec::generic("crm");
    source.sdk = false;
    let mut e = sdk_event();
    e.original_timestamp = "05/11/2026 16:00:00".into();
    let q = run(&e, &source, None).expect_err("ambiguous");
    assert_eq!(q.reason(), QuarantineReason::InvalidTimestamp);
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("¥12.30"),
            Just("13800000000"),
            Just("unknown"),
            Just("2026-03-08 02:30:00")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(10, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[0-9]{0,20}",
        Just("2026-11-24T16:00:00+08:00".to_owned()),
        Just("05/11/2026 16:00:00".to_owned()),
        Just("SubmitOrder".to_owned()),
        Just("pos_order".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn cleaning_never_panics(
        name in arb_text(),
        kind in -2i32..8,
        ts in arb_text(),
        sent in arb_text(),
        anon in arb_text(),
        id_type in prop_oneof![Just("phone".to_owned()), Just("email".to_owned()), "[a-z_]{0,8}"],
        id_value in arb_text(),
        props in prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..6),
        with_dictionary in any::<bool>(),
        sdk in any::<bool>(),
        offset_s in -4_000_000_000i64..4_000_000_000,
    ) {
        let event = Event {
            message_id: "m".into(),
            r#type: kind,
            event: name,
            anonymous_id: anon,
            original_timestamp: ts,
            sent_at: sent,
            properties: Some(to_struct(&props.into_iter().collect())),
            identifiers: vec![Identifier { r#type: id_type, value: id_value, scope: String::new() }],
            ..Default::default()
        };
        let mut source = SourceSpec::generic("s");
        source.sdk = sdk;
        source.natural_key_fields = vec!["order_id".into()];
        let dict = retail();
        let received = DateTime::from_timestamp(1_795_507_200 + offset_s / 1000, 0).unwrap_or_default();
        let outcome = clean(Inputs {
            event: &event,
            received_at: received,
            source: &source,
            dictionary: with_dictionary.then_some(&dict),
            privacy: &PrivacySettings::default(),
            key: &key(),
        });
        match outcome {
            Ok(c) => prop_assert!(!c.event.identifiers.is_empty()),
            Err(q) => prop_assert!(q.reason() != QuarantineReason::Unspecified),
        }
    }
}
