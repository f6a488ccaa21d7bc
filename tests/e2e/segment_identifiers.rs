//! Identifiers in segments, through the real services: a rule selects persons by the
//! identifiers identity holds for them (linked by events or by LinkIdentifiers, with no event),
//! and a segment that names identifier types publishes an IDENTIFIERS_UPDATED change (and a
//! SEGMENT_MEMBER_UPDATED trigger) when a member's identifiers of those types change — and
//! only then.

use std::time::{Duration, Instant};

use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1::LinkIdentifiersRequest;
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CreateSegmentRequest, GetSegmentRequest, IdentifierCondition, ListSegmentChangesRequest,
    Segment, SegmentChange, SegmentChangeKind, SegmentChangeReason, SegmentRule, SegmentState,
    SubscribeTriggersRequest, TriggerType, segment_rule,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "segment-identifiers";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "segments:read",
    "segments:write",
    "identity:write",
];

fn card(value: &str, scope: &str) -> Identifier {
    Identifier {
        r#type: "member_card".to_owned(),
        value: value.to_owned(),
        scope: scope.to_owned(),
    }
}

fn device(person: u64) -> Identifier {
    Identifier {
        r#type: "device_id".to_owned(),
        value: format!("device-{person}"),
        scope: String::new(),
    }
}

fn holds(id_type: &str, scope: &str) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::Identifier(IdentifierCondition {
            r#type: id_type.to_owned(),
            scope: scope.to_owned(),
        })),
    }
}

fn segment(id: &str, rule: SegmentRule, update_types: &[&str]) -> CreateSegmentRequest {
    CreateSegmentRequest {
        segment_id: id.to_owned(),
        segment: Some(Segment {
            display_name: id.to_owned(),
            rule: Some(rule),
            identifier_update_types: update_types.iter().map(|t| (*t).to_owned()).collect(),
            ..Segment::default()
        }),
        ..CreateSegmentRequest::default()
    }
}

fn name(id: &str) -> String {
    format!("tenants/{TENANT}/segments/{id}")
}

async fn settled(modeling: &mut Modeling, id: &str, count: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = modeling
            .get_segment(GetSegmentRequest { name: name(id) })
            .await?
            .into_inner()
            .segment
            .unwrap_or_default();
        if s.state == SegmentState::Active as i32 && s.member_count == count {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{id} did not settle at {count}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tenant's whole change log, every segment, with the identifiers of `types`.
async fn log(modeling: &mut Modeling, types: &[&str]) -> anyhow::Result<Vec<SegmentChange>> {
    Ok(modeling
        .list_segment_changes(ListSegmentChangesRequest {
            parent: format!("tenants/{TENANT}/segments/-"),
            identifier_types: types.iter().map(|t| (*t).to_owned()).collect(),
            page_size: 1_000,
            ..ListSegmentChangesRequest::default()
        })
        .await?
        .into_inner()
        .changes)
}

/// Waits until `wanted` holds of the log.
async fn log_until(
    modeling: &mut Modeling,
    types: &[&str],
    what: &str,
    wanted: impl Fn(&[SegmentChange]) -> bool,
) -> anyhow::Result<Vec<SegmentChange>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let changes = log(modeling, types).await?;
        if wanted(&changes) {
            return Ok(changes);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: {changes:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn updates<'a>(changes: &'a [SegmentChange], id: &str) -> Vec<&'a SegmentChange> {
    changes
        .iter()
        .filter(|c| c.segment == name(id) && c.kind == SegmentChangeKind::IdentifiersUpdated as i32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifier_conditions_and_updates_follow_what_identity_links() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let mut identity = IdentityServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();

    // Four buyers: 1 and 2 show an ACME member card, 4 a card of another programme.
    let batch: Vec<_> = (1..=4u64)
        .map(|person| {
            let mut event = sample_event(&format!("b{person}"), person, "purchase", now - 60_000);
            match person {
                1 | 2 => event.identifiers.push(card(&format!("A-{person}"), "acme")),
                4 => event.identifiers.push(card("O-4", "other")),
                _ => {}
            }
            event
        })
        .collect();
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let person = |n: u64| touchline_e2e::person_of(&stored, &format!("b{n}"));

    modeling
        .create_segment(segment("acme", holds("member_card", "acme"), &["crm_id"]))
        .await?;
    modeling
        .create_segment(segment("any-card", holds("member_card", ""), &[]))
        .await?;
    modeling
        .create_segment(segment("crm", holds("crm_id", ""), &[]))
        .await?;
    settled(&mut modeling, "acme", 2).await?;
    settled(&mut modeling, "any-card", 3).await?;
    settled(&mut modeling, "crm", 0).await?;

    // The CRM links an ACME card to buyer 3 and its own id to buyer 1, with no event: 3
    // enters both card segments and 1 the CRM one, by the rule; 1 stays in "acme", whose
    // export types name crm_id, so an update is published for 1 there.
    for (n, other) in [
        (3, card("A-3", "acme")),
        (
            1,
            Identifier {
                r#type: "crm_id".to_owned(),
                value: "CRM-1".to_owned(),
                scope: String::new(),
            },
        ),
    ] {
        identity
            .link_identifiers(LinkIdentifiersRequest {
                identifiers: vec![device(n), other],
                reason: "CRM record".to_owned(),
                source: "crm".to_owned(),
                ..LinkIdentifiersRequest::default()
            })
            .await?;
    }
    settled(&mut modeling, "acme", 3).await?;
    settled(&mut modeling, "any-card", 4).await?;
    settled(&mut modeling, "crm", 1).await?;
    let types = ["crm_id", "member_card"];
    let changes = log_until(&mut modeling, &types, "the update of buyer 1", |c| {
        !updates(c, "acme").is_empty()
    })
    .await?;
    let entered = |id: &str| -> Vec<(String, i32)> {
        changes
            .iter()
            .filter(|c| c.segment == name(id) && c.kind == SegmentChangeKind::Entered as i32)
            .map(|c| (c.person_id.clone(), c.reason))
            .collect()
    };
    let evaluated = SegmentChangeReason::RuleEvaluated as i32;
    assert!(entered("acme").contains(&(person(3), evaluated)));
    assert_eq!(entered("crm"), vec![(person(1), evaluated)]);
    let update = updates(&changes, "acme");
    assert_eq!(update.len(), 1, "{update:?}");
    assert_eq!(update[0].person_id, person(1));
    assert_eq!(
        update[0].reason,
        SegmentChangeReason::IdentifiersChanged as i32
    );
    assert!(
        update[0]
            .identifiers
            .iter()
            .any(|i| i.r#type == "crm_id" && i.value == "CRM-1"),
        "the update carries the new identifier: {:?}",
        update[0].identifiers
    );
    // Segments that name no types publish no update.
    assert!(updates(&changes, "any-card").is_empty());
    assert!(updates(&changes, "crm").is_empty());

    // An identifier of a type the segment does not export changes nothing: a new device of
    // buyer 2, by an event.
    let mut again = sample_event("b2-new-device", 2, "view", now - 1_000);
    again.identifiers.push(Identifier {
        r#type: "device_id".to_owned(),
        value: "device-2-tablet".to_owned(),
        scope: String::new(),
    });
    again.identifiers.push(card("A-2", "acme"));
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, vec![again]).await?;
    // And a CRM id for buyer 2 does: the update after it proves the device's link was seen
    // (the log is in order) and published nothing.
    identity
        .link_identifiers(LinkIdentifiersRequest {
            identifiers: vec![
                device(2),
                Identifier {
                    r#type: "crm_id".to_owned(),
                    value: "CRM-2".to_owned(),
                    scope: String::new(),
                },
            ],
            reason: "CRM record".to_owned(),
            source: "crm".to_owned(),
            ..LinkIdentifiersRequest::default()
        })
        .await?;
    let changes = log_until(&mut modeling, &types, "the update of buyer 2", |c| {
        updates(c, "acme").len() == 2
    })
    .await?;
    let people: Vec<String> = updates(&changes, "acme")
        .iter()
        .map(|c| c.person_id.clone())
        .collect();
    assert_eq!(people, vec![person(1), person(2)]);

    // Triggers carry the updates as SEGMENT_MEMBER_UPDATED.
    let activation = token_for_triggers();
    let mut triggers = ModelingServiceClient::new(app.channel(&activation)?)
        .subscribe_triggers(SubscribeTriggersRequest {
            types: vec![TriggerType::SegmentMemberUpdated as i32],
            identifier_types: vec!["crm_id".to_owned()],
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let batch = triggers
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the trigger stream ended"))?;
    let got: Vec<(String, String)> = batch
        .triggers
        .iter()
        .map(|t| {
            (
                t.person_id.clone(),
                t.identifiers
                    .first()
                    .map(|i| i.value.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (person(1), "CRM-1".to_owned()),
            (person(2), "CRM-2".to_owned())
        ]
    );
    assert!(
        batch.triggers.iter().all(|t| t.segment == name("acme")),
        "{batch:?}"
    );
    app.stop().await;
    Ok(())
}

fn token_for_triggers() -> String {
    token(TENANT, &["activation:read"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_identifier_conditions_and_update_types_are_named() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let mut request = segment(
        "bad",
        SegmentRule {
            rule: Some(segment_rule::Rule::AllOf(
                touchline_proto::modeling::v1::SegmentRuleGroup {
                    rules: vec![holds(" ", ""), holds("phone", &"x".repeat(300))],
                },
            )),
        },
        &["crm_id", ""],
    );
    if let Some(s) = request.segment.as_mut() {
        s.identifier_update_types
            .extend((0..10).map(|i| format!("t{i}")));
    }
    let status = modeling.create_segment(request).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut found = touchline_e2e::field_violations(&status);
    found.sort();
    assert_eq!(
        found,
        vec![
            (
                "segment.identifier_update_types".to_owned(),
                "TOO_MANY".to_owned()
            ),
            (
                "segment.identifier_update_types[1]".to_owned(),
                "INVALID_IDENTIFIER_TYPE".to_owned()
            ),
            (
                "segment.rule.all_of.rules[0].identifier.type".to_owned(),
                "REQUIRED".to_owned()
            ),
            (
                "segment.rule.all_of.rules[1].identifier.scope".to_owned(),
                "INVALID_SCOPE".to_owned()
            ),
        ]
    );
    app.stop().await;
    Ok(())
}
