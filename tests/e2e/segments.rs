//! Segments through the real services: definitions, previews, the first build, membership
//! kept current as events arrive and as time passes, the change log read by cursor, by
//! stream and as bootstrap + feed, opt-out, rule changes, deletion, and bad input.
//!
//! Four persons, purchases valued by `amount`, days before now:
//!
//! | person | purchases (days ago, amount) | views     |
//! |--------|------------------------------|-----------|
//! | p1     | 2 (100), 5 (100), 9 (100)    |           |
//! | p2     | 4 (150)                      |           |
//! | p3     | 40 (80)                      |           |
//! | p4     |                              | 1 day ago |
//!
//! - `repeat`: at least 2 purchases in the last 30 days → p1.
//! - `spenders`: purchase value summed over 30 days ≥ 150 → p1 (300), p2 (150).
//! - `lapsed`: no purchase in 30 days but one in the last year → p3.
//! - `vip`: a member of `spenders` and not of `lapsed` → p1, p2.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{FilterOperator, TimeRange};
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{SetConsentRequest, set_consent_request};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributedChannelCondition, AttributionModel, AttributionModelType,
    CreateSegmentRequest, DeleteSegmentRequest, EventAggregateCondition, EventAggregation,
    EventMatcher, FunnelDefinition, FunnelDropOffCondition, FunnelStep, GetPersonLifecycleRequest,
    GetSegmentRequest, LifecycleStage, LifecycleStageCondition, ListFunnelDropOffsRequest,
    ListSegmentChangesRequest, ListSegmentMembersRequest, NumberComparison, RfmSegment,
    RfmSegmentCondition, RunRfmRequest, Segment, SegmentChange, SegmentChangeKind,
    SegmentChangeReason, SegmentMembershipCondition, SegmentRule, SegmentRuleGroup, SegmentState,
    StreamSegmentChangesRequest, TraitCondition, UpdateSegmentRequest, event_aggregate_condition,
    segment_rule,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "segments";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "segments:read",
    "segments:write",
    "identity:write",
];
const DAY_MS: i64 = 86_400_000;

fn purchase(id: &str, person: u64, at_ms: i64, amount: f64) -> touchline_proto::common::v1::Event {
    let mut event = sample_event(id, person, "purchase", at_ms);
    event.properties = Some(touchline_e2e::properties([(
        "amount",
        prost_types::value::Kind::NumberValue(amount),
    )]));
    event
}

fn days(n: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: n * 86_400,
        nanos: 0,
    }
}

fn compare(operator: FilterOperator, value: f64) -> Option<NumberComparison> {
    Some(NumberComparison {
        operator: operator as i32,
        value,
        upper_value: 0.0,
    })
}

fn events(
    name: &str,
    aggregation: EventAggregation,
    field: &str,
    operator: FilterOperator,
    value: f64,
    within: prost_types::Duration,
) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::EventAggregate(
            EventAggregateCondition {
                event: Some(EventMatcher {
                    event_name: name.to_owned(),
                    filters: Vec::new(),
                }),
                aggregation: aggregation as i32,
                field: field.to_owned(),
                comparison: compare(operator, value),
                window: Some(event_aggregate_condition::Window::WithinLast(within)),
            },
        )),
    }
}

fn all_of(rules: Vec<SegmentRule>) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::AllOf(SegmentRuleGroup { rules })),
    }
}

fn not(rule: SegmentRule) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::Negation(Box::new(rule))),
    }
}

fn member_of(segment: &str) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::SegmentMembership(
            SegmentMembershipCondition {
                segment: format!("tenants/{TENANT}/segments/{segment}"),
            },
        )),
    }
}

fn repeat_rule(at_least: f64) -> SegmentRule {
    events(
        "purchase",
        EventAggregation::Count,
        "",
        FilterOperator::GreaterThanOrEqual,
        at_least,
        days(30),
    )
}

/// Persons who dropped at `step` of an ordered funnel over `names` (7-day conversion window)
/// among attempts starting `within` before now.
fn drop_off_rule(names: &[&str], step: i32, within: prost_types::Duration) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::FunnelDropOff(FunnelDropOffCondition {
            funnel: Some(FunnelDefinition {
                steps: names
                    .iter()
                    .map(|name| FunnelStep {
                        label: String::new(),
                        event: Some(EventMatcher {
                            event_name: (*name).to_owned(),
                            filters: Vec::new(),
                        }),
                    })
                    .collect(),
                conversion_window: Some(days(7)),
                ..FunnelDefinition::default()
            }),
            step,
            within_last: Some(within),
            idle_for: None,
        })),
    }
}

fn create(id: &str, rule: SegmentRule, validate_only: bool) -> CreateSegmentRequest {
    CreateSegmentRequest {
        segment_id: id.to_owned(),
        segment: Some(Segment {
            display_name: format!("{id} / 测试分群"),
            rule: Some(rule),
            ..Segment::default()
        }),
        validate_only,
        request_id: if validate_only {
            String::new()
        } else {
            uuid::Uuid::new_v4().to_string()
        },
        ..CreateSegmentRequest::default()
    }
}

fn segment_name(id: &str) -> String {
    format!("tenants/{TENANT}/segments/{id}")
}

/// Every change after `after` of `parent`, page by page.
async fn changes_after(
    modeling: &mut Modeling,
    parent: &str,
    after: i64,
) -> anyhow::Result<Vec<SegmentChange>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_segment_changes(ListSegmentChangesRequest {
                parent: parent.to_owned(),
                after_sequence: after,
                page_size: 2,
                page_token,
                ..ListSegmentChangesRequest::default()
            })
            .await?
            .into_inner();
        out.extend(page.changes);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Every member of `id` (one per page, to cross pages), with the sequence they reflect.
async fn bootstrap(modeling: &mut Modeling, id: &str) -> anyhow::Result<(BTreeSet<String>, i64)> {
    let mut members = BTreeSet::new();
    let mut page_token = String::new();
    let mut as_of = None;
    loop {
        let page = modeling
            .list_segment_members(ListSegmentMembersRequest {
                parent: segment_name(id),
                page_size: 1,
                page_token,
                ..ListSegmentMembersRequest::default()
            })
            .await?
            .into_inner();
        anyhow::ensure!(
            as_of.is_none_or(|s| s == page.as_of_sequence),
            "every page reflects the first page's sequence"
        );
        as_of = Some(page.as_of_sequence);
        anyhow::ensure!(
            page.total_size >= members.len() as i64,
            "total covers every page"
        );
        members.extend(page.members.into_iter().map(|m| m.person_id));
        if page.next_page_token.is_empty() {
            return Ok((members, as_of.unwrap_or(0)));
        }
        page_token = page.next_page_token;
    }
}

/// Waits until `id` is ACTIVE with `count` members.
async fn settled(modeling: &mut Modeling, id: &str, count: i64) -> anyhow::Result<Segment> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let segment = modeling
            .get_segment(GetSegmentRequest {
                name: segment_name(id),
            })
            .await?
            .into_inner()
            .segment
            .unwrap_or_default();
        if segment.state == SegmentState::Active as i32 && segment.member_count == count {
            return Ok(segment);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{id} did not settle at {count} members: {segment:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn of_kind(
    changes: &[SegmentChange],
    segment: &str,
    kind: SegmentChangeKind,
) -> BTreeMap<String, i32> {
    changes
        .iter()
        .filter(|c| c.segment == segment_name(segment) && c.kind == kind as i32)
        .map(|c| (c.person_id.clone(), c.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_keep_their_members_current_and_publish_every_change() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);

    let now = chrono::Utc::now().timestamp_millis();
    let batch = vec![
        purchase("p1a", 1, now - 2 * DAY_MS, 100.0),
        purchase("p1b", 1, now - 5 * DAY_MS, 100.0),
        purchase("p1c", 1, now - 9 * DAY_MS, 100.0),
        purchase("p2a", 2, now - 4 * DAY_MS, 150.0),
        purchase("p3a", 3, now - 40 * DAY_MS, 80.0),
        sample_event("p4v", 4, "view", now - DAY_MS),
    ];
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let person: BTreeMap<u64, String> = stored
        .iter()
        .filter_map(|e| {
            let n = e.message_id.get(1..2)?.parse().ok()?;
            Some((n, e.person_id.clone()))
        })
        .collect();
    let p = |n: u64| person.get(&n).cloned().unwrap_or_default();
    assert_eq!(person.len(), 4);

    // A preview before saving: size and sample, nothing created.
    let spenders_rule = events(
        "purchase",
        EventAggregation::Sum,
        "value",
        FilterOperator::GreaterThanOrEqual,
        150.0,
        days(30),
    );
    let preview = modeling
        .create_segment(create("spenders", spenders_rule.clone(), true))
        .await?
        .into_inner()
        .preview
        .unwrap_or_default();
    assert_eq!(preview.member_count, 2);
    let sample: BTreeSet<String> = preview.sample_persons.into_iter().collect();
    let expected: BTreeSet<String> = [1, 2]
        .iter()
        .map(|n| format!("tenants/{TENANT}/persons/{}", p(*n)))
        .collect();
    assert_eq!(sample, expected);
    let none = modeling
        .get_segment(GetSegmentRequest {
            name: segment_name("spenders"),
        })
        .await
        .expect_err("validate_only creates nothing");
    assert_eq!(none.code(), tonic::Code::NotFound);

    // The four segments; vip names two others.
    let lapsed_rule = all_of(vec![
        not(repeat_rule(1.0)),
        events(
            "purchase",
            EventAggregation::Count,
            "",
            FilterOperator::GreaterThanOrEqual,
            1.0,
            days(365),
        ),
    ]);
    let repeat_create = create("repeat", repeat_rule(2.0), false);
    let created = modeling
        .create_segment(repeat_create.clone())
        .await?
        .into_inner();
    let again = modeling.create_segment(repeat_create).await?.into_inner();
    assert_eq!(
        created.segment.as_ref().map(|s| &s.etag),
        again.segment.as_ref().map(|s| &s.etag),
        "a retried create with its request id answers the first result"
    );
    modeling
        .create_segment(create("spenders", spenders_rule, false))
        .await?;
    modeling
        .create_segment(create("lapsed", lapsed_rule, false))
        .await?;
    modeling
        .create_segment(create(
            "vip",
            all_of(vec![member_of("spenders"), not(member_of("lapsed"))]),
            false,
        ))
        .await?;
    settled(&mut modeling, "repeat", 1).await?;
    settled(&mut modeling, "spenders", 2).await?;
    settled(&mut modeling, "lapsed", 1).await?;
    settled(&mut modeling, "vip", 2).await?;

    let log = changes_after(&mut modeling, &format!("tenants/{TENANT}/segments/-"), 0).await?;
    let created = SegmentChangeReason::SegmentCreated as i32;
    assert_eq!(
        of_kind(&log, "repeat", SegmentChangeKind::Entered),
        BTreeMap::from([(p(1), created)])
    );
    assert_eq!(
        of_kind(&log, "spenders", SegmentChangeKind::Entered),
        BTreeMap::from([(p(1), created), (p(2), created)])
    );
    assert_eq!(
        of_kind(&log, "lapsed", SegmentChangeKind::Entered),
        BTreeMap::from([(p(3), created)])
    );
    assert_eq!(
        of_kind(&log, "vip", SegmentChangeKind::Entered),
        BTreeMap::from([(p(1), created), (p(2), created)])
    );
    let again = changes_after(&mut modeling, &format!("tenants/{TENANT}/segments/-"), 0).await?;
    let ids = |changes: &[SegmentChange]| -> Vec<String> {
        changes.iter().map(|c| c.change_id.clone()).collect()
    };
    assert_eq!(
        ids(&log),
        ids(&again[..log.len()]),
        "change ids are stable across reads"
    );
    assert!(
        log.iter()
            .all(|c| uuid::Uuid::parse_str(&c.change_id).is_ok())
    );
    let sequences: Vec<i64> = log.iter().map(|c| c.sequence).collect();
    assert_eq!(
        sequences,
        (1..=log.len() as i64).collect::<Vec<_>>(),
        "no gaps, in order"
    );

    // A stream from the head sees the next change; a new purchase makes p2 a repeat buyer.
    let head = log.last().map_or(0, |c| c.sequence);
    let mut stream = modeling
        .stream_segment_changes(StreamSegmentChangesRequest {
            parent: segment_name("repeat"),
            after_sequence: head,
            ..StreamSegmentChangesRequest::default()
        })
        .await?
        .into_inner();
    let sent = Instant::now();
    touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![purchase("p2b", 2, now, 20.0)],
    )
    .await?;
    let entry = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(batch) = stream.next().await {
            if let Some(change) = batch?.changes.into_iter().next() {
                return Ok::<_, anyhow::Error>(change);
            }
        }
        anyhow::bail!("the stream ended")
    })
    .await??;
    assert_eq!(entry.person_id, p(2));
    assert_eq!(entry.kind, SegmentChangeKind::Entered as i32);
    assert_eq!(entry.reason, SegmentChangeReason::RuleEvaluated as i32);
    assert_eq!(
        entry.cause_message_id, "p2b",
        "the purchase behind the entry"
    );
    eprintln!(
        "purchase acknowledged → entry streamed: {:?}",
        sent.elapsed()
    );

    // Bootstrap + the feed after its sequence is exactly the membership now.
    let (mut members, as_of) = bootstrap(&mut modeling, "repeat").await?;
    for change in changes_after(&mut modeling, &segment_name("repeat"), as_of).await? {
        if change.kind == SegmentChangeKind::Entered as i32 {
            members.insert(change.person_id);
        } else if change.kind == SegmentChangeKind::Exited as i32 {
            members.remove(&change.person_id);
        }
    }
    assert_eq!(members, BTreeSet::from([p(1), p(2)]));

    // Opting out takes p1 out of every segment; nothing about them is exported.
    IdentityServiceClient::new(app.channel(&token)?)
        .set_consent(SetConsentRequest {
            person_ref: Some(set_consent_request::PersonRef::Person(format!(
                "tenants/{TENANT}/persons/{}",
                p(1)
            ))),
            marketing_opt_out: true,
            ..SetConsentRequest::default()
        })
        .await?;
    settled(&mut modeling, "repeat", 1).await?;
    settled(&mut modeling, "spenders", 1).await?;
    settled(&mut modeling, "vip", 1).await?;
    let after_opt_out =
        changes_after(&mut modeling, &format!("tenants/{TENANT}/segments/-"), head).await?;
    let consent = SegmentChangeReason::ConsentChanged as i32;
    for segment in ["repeat", "spenders"] {
        assert_eq!(
            of_kind(&after_opt_out, segment, SegmentChangeKind::Exited).get(&p(1)),
            Some(&consent),
            "{segment}"
        );
    }
    let (repeat_members, _) = bootstrap(&mut modeling, "repeat").await?;
    assert_eq!(repeat_members, BTreeSet::from([p(2)]));

    // A rule change publishes the difference with RULE_CHANGED: p2 has 2 purchases, not 3.
    let current = settled(&mut modeling, "repeat", 1).await?;
    let before_update = changes_after(&mut modeling, &segment_name("repeat"), 0).await?;
    let since = before_update.last().map_or(0, |c| c.sequence);
    modeling
        .update_segment(UpdateSegmentRequest {
            segment: Some(Segment {
                name: segment_name("repeat"),
                etag: current.etag.clone(),
                rule: Some(repeat_rule(3.0)),
                ..Segment::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["rule".to_owned()],
            }),
            ..UpdateSegmentRequest::default()
        })
        .await?;
    settled(&mut modeling, "repeat", 0).await?;
    let changed = changes_after(&mut modeling, &segment_name("repeat"), since).await?;
    assert_eq!(
        of_kind(&changed, "repeat", SegmentChangeKind::Exited),
        BTreeMap::from([(p(2), SegmentChangeReason::RuleChanged as i32)])
    );
    let stale = modeling
        .update_segment(UpdateSegmentRequest {
            segment: Some(Segment {
                name: segment_name("repeat"),
                etag: current.etag,
                display_name: "stale".into(),
                ..Segment::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".to_owned()],
            }),
            ..UpdateSegmentRequest::default()
        })
        .await
        .expect_err("a stale etag is refused");
    assert_eq!(stale.code(), tonic::Code::Aborted);

    // A segment another one names cannot go; vip can, publishing its members' exits.
    let refused = modeling
        .delete_segment(DeleteSegmentRequest {
            name: segment_name("spenders"),
            ..DeleteSegmentRequest::default()
        })
        .await
        .expect_err("vip names spenders");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let before_delete = changes_after(&mut modeling, &segment_name("vip"), 0).await?;
    let since = before_delete.last().map_or(0, |c| c.sequence);
    modeling
        .delete_segment(DeleteSegmentRequest {
            name: segment_name("vip"),
            ..DeleteSegmentRequest::default()
        })
        .await?;
    let exits = touchline_testkit::eventually(Duration::from_secs(20), || {
        let mut modeling = modeling.clone();
        async move {
            let all = changes_after(
                &mut modeling,
                &format!("tenants/{TENANT}/segments/-"),
                since,
            )
            .await?;
            let exits = of_kind(&all, "vip", SegmentChangeKind::Exited);
            Ok((!exits.is_empty()).then_some(exits))
        }
    })
    .await?;
    assert_eq!(
        exits,
        BTreeMap::from([(p(2), SegmentChangeReason::SegmentDeleted as i32)])
    );
    modeling
        .delete_segment(DeleteSegmentRequest {
            name: segment_name("vip"),
            allow_missing: true,
            ..DeleteSegmentRequest::default()
        })
        .await?;

    // A cursor older than what is kept is told to bootstrap again.
    let pool = sqlx::PgPool::connect(&app.db.url).await?;
    sqlx::query("UPDATE modeling.segment_change_heads SET pruned_through = 3 WHERE tenant_id = $1")
        .bind(TENANT)
        .execute(&pool)
        .await?;
    let expired = modeling
        .list_segment_changes(ListSegmentChangesRequest {
            parent: segment_name("repeat"),
            after_sequence: 1,
            ..ListSegmentChangesRequest::default()
        })
        .await
        .expect_err("changes after 1 are gone");
    assert_eq!(expired.code(), tonic::Code::OutOfRange);
    assert!(
        expired.message().contains("ListSegmentMembers"),
        "{}",
        expired.message()
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_window_lets_a_person_go_when_time_passes_without_any_event() -> anyhow::Result<()>
{
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(create(
            "browsing-now",
            events(
                "view",
                EventAggregation::Count,
                "",
                FilterOperator::GreaterThanOrEqual,
                1.0,
                prost_types::Duration {
                    seconds: 8,
                    nanos: 0,
                },
            ),
            false,
        ))
        .await?;
    let viewed_at = chrono::Utc::now().timestamp_millis();
    let stored = touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![sample_event("v1", 1, "view", viewed_at)],
    )
    .await?;
    let person = stored
        .first()
        .map(|e| e.person_id.clone())
        .unwrap_or_default();
    let parent = segment_name("browsing-now");
    let changes = touchline_testkit::eventually(Duration::from_secs(30), || {
        let mut modeling = modeling.clone();
        let parent = parent.clone();
        async move {
            let all = changes_after(&mut modeling, &parent, 0).await?;
            Ok((all.len() >= 2).then_some(all))
        }
    })
    .await?;
    assert_eq!(changes[0].person_id, person);
    assert_eq!(changes[0].kind, SegmentChangeKind::Entered as i32);
    assert_eq!(changes[1].person_id, person);
    assert_eq!(changes[1].kind, SegmentChangeKind::Exited as i32);
    assert_eq!(changes[1].reason, SegmentChangeReason::TimeWindow as i32);
    let left_at = changes[1]
        .change_time
        .as_ref()
        .map_or(0, |t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000);
    assert!(
        left_at >= viewed_at + 8_000,
        "the exit comes once the view is 8 s old, not before ({} ms)",
        left_at - viewed_at
    );
    app.stop().await;
    Ok(())
}

/// The field of each violation of a refused call.
fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    touchline_e2e::field_violations(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_segment_definitions_name_each_problem() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(create("a", repeat_rule(1.0), false))
        .await?;
    modeling
        .create_segment(create("b", member_of("a"), false))
        .await?;

    let cases: Vec<(CreateSegmentRequest, &str, &str)> = vec![
        (
            create(
                "bad",
                events(
                    "purchse",
                    EventAggregation::Count,
                    "",
                    FilterOperator::GreaterThan,
                    0.0,
                    days(1),
                ),
                false,
            ),
            "segment.rule.event_aggregate.event.event_name",
            "UNKNOWN_EVENT_NAME",
        ),
        (
            create("Bad_Id", repeat_rule(1.0), false),
            "segment_id",
            "INVALID_ID",
        ),
        (
            create(
                "window",
                events(
                    "purchase",
                    EventAggregation::Count,
                    "",
                    FilterOperator::GreaterThan,
                    0.0,
                    days(5_000),
                ),
                false,
            ),
            "segment.rule.event_aggregate.within_last",
            "OUT_OF_RANGE",
        ),
        (
            create(
                "field",
                events(
                    "purchase",
                    EventAggregation::Sum,
                    "properties.amount",
                    FilterOperator::GreaterThan,
                    0.0,
                    days(5),
                ),
                false,
            ),
            "segment.rule.event_aggregate.field",
            "NOT_ANALYSABLE",
        ),
        (
            create(
                "stage",
                SegmentRule {
                    rule: Some(segment_rule::Rule::LifecycleStage(
                        LifecycleStageCondition::default(),
                    )),
                },
                false,
            ),
            "segment.rule.lifecycle_stage.stages",
            "REQUIRED",
        ),
        (
            create(
                "drop",
                SegmentRule {
                    rule: Some(segment_rule::Rule::FunnelDropOff(
                        FunnelDropOffCondition::default(),
                    )),
                },
                false,
            ),
            "segment.rule.funnel_drop_off.funnel",
            "REQUIRED",
        ),
        (
            create(
                "drop-step",
                drop_off_rule(&["view", "purchase"], 3, days(30)),
                false,
            ),
            "segment.rule.funnel_drop_off.step",
            "OUT_OF_RANGE",
        ),
        (
            create(
                "drop-names",
                drop_off_rule(&["view", "purchse"], 2, days(30)),
                false,
            ),
            "segment.rule.funnel_drop_off.funnel.steps[1].event.event_name",
            "UNKNOWN_EVENT_NAME",
        ),
        (
            create("ghost", member_of("nobody"), false),
            "segment.rule",
            "UNKNOWN_SEGMENT",
        ),
        (
            create("empty", all_of(Vec::new()), false),
            "segment.rule.all_of.rules",
            "REQUIRED",
        ),
        (create("a", repeat_rule(1.0), false), "", "ALREADY_EXISTS"),
    ];
    for (request, field, reason) in cases {
        let refused = modeling
            .create_segment(request)
            .await
            .expect_err("a bad definition is refused");
        if reason == "ALREADY_EXISTS" {
            assert_eq!(refused.code(), tonic::Code::AlreadyExists);
            continue;
        }
        let found = violations(&refused);
        assert!(
            found.iter().any(|(f, r)| f == field && r == reason),
            "{field} {reason} expected, got {found:?}"
        );
    }

    // A cycle through membership: a's rule may not name b, which names a.
    let a = modeling
        .get_segment(GetSegmentRequest {
            name: segment_name("a"),
        })
        .await?
        .into_inner()
        .segment
        .unwrap_or_default();
    let cycle = modeling
        .update_segment(UpdateSegmentRequest {
            segment: Some(Segment {
                name: segment_name("a"),
                etag: a.etag,
                rule: Some(member_of("b")),
                ..Segment::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["rule".to_owned()],
            }),
            ..UpdateSegmentRequest::default()
        })
        .await
        .expect_err("a cycle is refused");
    assert!(
        violations(&cycle).iter().any(|(_, r)| r == "SEGMENT_CYCLE"),
        "{:?}",
        violations(&cycle)
    );
    // A fixed range that ends before it starts.
    let mut backwards = create("range", repeat_rule(1.0), false);
    if let Some(Segment {
        rule:
            Some(SegmentRule {
                rule: Some(segment_rule::Rule::EventAggregate(condition)),
            }),
        ..
    }) = backwards.segment.as_mut()
    {
        condition.window = Some(event_aggregate_condition::Window::TimeRange(TimeRange {
            start_time: Some(prost_types::Timestamp {
                seconds: 2_000,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: 1_000,
                nanos: 0,
            }),
        }));
    }
    let refused = modeling
        .create_segment(backwards)
        .await
        .expect_err("backwards range");
    assert!(
        violations(&refused)
            .iter()
            .any(|(f, r)| f == "segment.rule.event_aggregate.time_range" && r == "INVALID_RANGE")
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_rfm_rules_select_the_persons_those_models_report() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    // Twelve persons with purchases spread over half a year, so stages and RFM segments vary.
    let mut batch = Vec::new();
    for person in 1..=12_u64 {
        for k in 0..(person % 4 + 1) {
            let days_ago = i64::try_from((person * 13 + k * 17) % 180).unwrap_or(0);
            let amount = f64::from(u32::try_from(person * 40 + k * 5).unwrap_or(0));
            batch.push(purchase(
                &format!("m{person}-{k}"),
                person,
                now - days_ago * DAY_MS - 3_600_000,
                amount,
            ));
        }
    }
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let persons: BTreeSet<String> = stored.iter().map(|e| e.person_id.clone()).collect();

    // Every stage the lifecycle reports for someone: the segment of that stage holds exactly
    // the persons GetPersonLifecycle puts in it.
    let mut by_stage: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for person in &persons {
        let stage = modeling
            .get_person_lifecycle(GetPersonLifecycleRequest {
                name: format!("tenants/{TENANT}/persons/{person}"),
                ..GetPersonLifecycleRequest::default()
            })
            .await?
            .into_inner()
            .current_stage;
        by_stage.entry(stage).or_default().insert(person.clone());
    }
    anyhow::ensure!(
        by_stage.len() >= 2,
        "the data gives several stages: {by_stage:?}"
    );
    for (stage, expected) in &by_stage {
        if *stage == LifecycleStage::Unspecified as i32 {
            continue;
        }
        let id = format!("stage-{stage}");
        modeling
            .create_segment(create(
                &id,
                SegmentRule {
                    rule: Some(segment_rule::Rule::LifecycleStage(
                        LifecycleStageCondition {
                            stages: vec![*stage],
                        },
                    )),
                },
                false,
            ))
            .await?;
        settled(&mut modeling, &id, i64::try_from(expected.len())?).await?;
        let (members, _) = bootstrap(&mut modeling, &id).await?;
        assert_eq!(&members, expected, "stage {stage}");
    }

    // The same for RFM segments against RunRfm.
    let scored = modeling
        .run_rfm(RunRfmRequest {
            page_size: 100,
            ..RunRfmRequest::default()
        })
        .await?
        .into_inner()
        .persons;
    let mut by_segment: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for p in scored {
        by_segment.entry(p.segment).or_default().insert(p.person_id);
    }
    anyhow::ensure!(
        by_segment.len() >= 2,
        "several RFM segments: {by_segment:?}"
    );
    for (segment, expected) in &by_segment {
        if *segment == RfmSegment::Unspecified as i32 {
            continue;
        }
        let id = format!("rfm-{segment}");
        modeling
            .create_segment(create(
                &id,
                SegmentRule {
                    rule: Some(segment_rule::Rule::RfmSegment(RfmSegmentCondition {
                        segments: vec![*segment],
                    })),
                },
                false,
            ))
            .await?;
        settled(&mut modeling, &id, i64::try_from(expected.len())?).await?;
        let (members, _) = bootstrap(&mut modeling, &id).await?;
        assert_eq!(&members, expected, "RFM segment {segment}");
    }
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funnel_drop_off_segment_holds_who_dropped_and_lets_go_who_completes()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    let view = |id: &str, person: u64, at_ms: i64| sample_event(id, person, "view", at_ms);
    // 1 viewed and bought; 2 viewed only; 3 viewed only, 40 days ago (outside the 30-day
    // window); 4 bought an hour after viewing; 5 bought before viewing, not after.
    let batch = vec![
        view("d1", 1, now - 3 * DAY_MS),
        purchase("d2", 1, now - 2 * DAY_MS, 10.0),
        view("d3", 2, now - 3 * DAY_MS),
        view("d4", 3, now - 40 * DAY_MS),
        view("d5", 4, now - 2 * DAY_MS),
        purchase("d6", 4, now - 2 * DAY_MS + hour, 10.0),
        purchase("d7", 5, now - 20 * DAY_MS, 10.0),
        view("d8", 5, now - 5 * DAY_MS),
    ];
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let person_of = |message: &str| touchline_e2e::person_of(&stored, message);
    let expected: BTreeSet<String> = [person_of("d3"), person_of("d8")].into();

    let rule = drop_off_rule(&["view", "purchase"], 2, days(30));
    modeling
        .create_segment(create("dropped-at-purchase", rule.clone(), false))
        .await?;
    settled(&mut modeling, "dropped-at-purchase", 2).await?;
    let (members, _) = bootstrap(&mut modeling, "dropped-at-purchase").await?;
    assert_eq!(members, expected, "who dropped before buying in the window");

    // The same funnel through ListFunnelDropOffs over the same 30 days lists the same persons.
    let Some(segment_rule::Rule::FunnelDropOff(condition)) = rule.rule else {
        anyhow::bail!("the rule is a drop-off condition");
    };
    let mut funnel = condition.funnel.unwrap_or_default();
    funnel.scope = Some(AnalysisScope {
        time_range: Some(TimeRange {
            start_time: Some(prost_types::Timestamp {
                seconds: (now - 30 * DAY_MS) / 1_000,
                nanos: 0,
            }),
            end_time: None,
        }),
        ..AnalysisScope::default()
    });
    let listed: BTreeSet<String> = modeling
        .list_funnel_drop_offs(ListFunnelDropOffsRequest {
            funnel: Some(funnel),
            step: 2,
            page_size: 100,
            ..ListFunnelDropOffsRequest::default()
        })
        .await?
        .into_inner()
        .persons
        .into_iter()
        .map(|p| p.person_id)
        .collect();
    assert_eq!(listed, expected, "ListFunnelDropOffs agrees");

    // Person 2 buys: they leave the segment.
    touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![purchase("d9", 2, now - hour, 10.0)],
    )
    .await?;
    settled(&mut modeling, "dropped-at-purchase", 1).await?;
    let (members, _) = bootstrap(&mut modeling, "dropped-at-purchase").await?;
    assert_eq!(
        members,
        [person_of("d8")].into(),
        "a completed funnel exits"
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trait_and_seen_time_conditions_select_by_the_latest_value_and_first_event()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    let with_level = |id: &str, person: u64, days_ago: i64, level: Option<&str>| {
        let mut event = sample_event(id, person, "view", now - days_ago * DAY_MS);
        if let Some(level) = level {
            let mut traits = prost_types::Struct::default();
            traits.fields.insert(
                "level".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(level.to_owned())),
                },
            );
            event.traits = Some(traits);
        }
        event
    };
    // 1 was silver, then gold; 2 was gold, then silver; 3 gold, then an event without the
    // trait (still gold); 4 never said. 1 and 2 were first seen 100 days ago, 3 and 4 lately.
    let batch = vec![
        with_level("t1", 1, 100, Some("silver")),
        with_level("t2", 1, 10, Some("gold")),
        with_level("t3", 2, 100, Some("gold")),
        with_level("t4", 2, 10, Some("silver")),
        with_level("t5", 3, 5, Some("gold")),
        with_level("t6", 3, 1, None),
        with_level("t7", 4, 2, None),
    ];
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let person_of = |message: &str| touchline_e2e::person_of(&stored, message);
    let trait_rule = |field: &str, operator: FilterOperator, values: Vec<String>| SegmentRule {
        rule: Some(segment_rule::Rule::Trait(TraitCondition {
            filter: Some(touchline_proto::common::v1::PropertyFilter {
                field: field.to_owned(),
                operator: operator as i32,
                values: values
                    .into_iter()
                    .map(|v| prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v)),
                    })
                    .collect(),
            }),
        })),
    };
    let gold = trait_rule(
        "traits.level",
        FilterOperator::Equals,
        vec!["gold".to_owned()],
    );

    // Not analysable yet: refused by name.
    let refused = modeling
        .create_segment(create("gold", gold.clone(), false))
        .await
        .expect_err("the trait is not marked analysable");
    assert!(
        violations(&refused)
            .iter()
            .any(|(f, r)| f == "segment.rule.trait.filter.field" && r == "NOT_ANALYSABLE"),
        "{:?}",
        violations(&refused)
    );
    touchline_e2e::mark_analysable(&mut modeling, TENANT, &["traits.level"]).await?;
    modeling.create_segment(create("gold", gold, false)).await?;
    settled(&mut modeling, "gold", 2).await?;
    let (members, _) = bootstrap(&mut modeling, "gold").await?;
    assert_eq!(
        members,
        [person_of("t1"), person_of("t5")].into(),
        "the latest value of the trait counts"
    );

    // Persons first seen more than 30 days ago.
    let since = chrono::DateTime::from_timestamp_millis(now - 30 * DAY_MS)
        .map(|at| at.to_rfc3339())
        .unwrap_or_default();
    modeling
        .create_segment(create(
            "old-friends",
            trait_rule("first_seen_time", FilterOperator::LessThan, vec![since]),
            false,
        ))
        .await?;
    settled(&mut modeling, "old-friends", 2).await?;
    let (members, _) = bootstrap(&mut modeling, "old-friends").await?;
    assert_eq!(members, [person_of("t1"), person_of("t3")].into());

    // A seen time that is not RFC 3339 is refused.
    let bad = modeling
        .create_segment(create(
            "bad-time",
            trait_rule(
                "last_seen_time",
                FilterOperator::GreaterThan,
                vec!["yesterday".to_owned()],
            ),
            false,
        ))
        .await
        .expect_err("not a time");
    assert!(
        violations(&bad)
            .iter()
            .any(|(f, r)| f == "segment.rule.trait.filter.values" && r == "INVALID_TIME")
    );
    app.stop().await;
    Ok(())
}

/// `rule` (an attributed-channel condition) reading `properties.utm_source` as referrer and
/// `properties.order_id` as conversion key, with a journey gap of 30 days.
fn by_referrer(mut rule: SegmentRule) -> SegmentRule {
    if let Some(segment_rule::Rule::AttributedChannel(condition)) = rule.rule.as_mut() {
        "properties.utm_source".clone_into(&mut condition.referrer_field);
        // The purchases carry no order id: every one counts, as without a key.
        "properties.order_id".clone_into(&mut condition.conversion_key_field);
        // A gap as long as the lookback window ends no conversion's journey early: a
        // touch before a longer pause is outside the window anyway.
        condition.journey_gap = Some(prost_types::Duration {
            seconds: 30 * 86_400,
            nanos: 0,
        });
    }
    rule
}

/// Persons whose conversions in the last 30 days credit `channel` under `model`, with at
/// least `min_share` of them; touches are `view` events.
fn attributed_rule(model: AttributionModelType, channel: &str, min_share: f64) -> SegmentRule {
    SegmentRule {
        rule: Some(segment_rule::Rule::AttributedChannel(
            AttributedChannelCondition {
                conversion_event: Some(EventMatcher {
                    event_name: "purchase".to_owned(),
                    filters: Vec::new(),
                }),
                model: Some(AttributionModel {
                    r#type: model as i32,
                    ..AttributionModel::default()
                }),
                channel: channel.to_owned(),
                min_share,
                within_last: Some(days(30)),
                touchpoint_events: vec![EventMatcher {
                    event_name: "view".to_owned(),
                    filters: Vec::new(),
                }],
                ..AttributedChannelCondition::default()
            },
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributed_channel_conditions_select_by_each_persons_credit() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    let view = |id: &str, person: u64, channel: &str, days_ago: i64| {
        let mut event = sample_event(id, person, "view", now - days_ago * DAY_MS);
        channel.clone_into(&mut event.channel);
        event
    };
    let buy =
        |id: &str, person: u64, days_ago: i64| purchase(id, person, now - days_ago * DAY_MS, 10.0);
    // 1: web, then a purchase. 2: web, app, then a purchase (first web, last app, linear
    // half each). 3: app then a purchase, then a second purchase with no touch between
    // (app is credited half of 3's conversions). 4: web then a purchase, 40 days ago.
    // 2's app view was opened by a store's QR code: read by referrer, it is a store touch.
    let mut opened_in_store = view("a4", 2, "app", 4);
    opened_in_store.properties = Some(prost_types::Struct {
        fields: [(
            "utm_source".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("store".to_owned())),
            },
        )]
        .into(),
    });
    let batch = vec![
        view("a1", 1, "web", 3),
        buy("a2", 1, 2),
        view("a3", 2, "web", 5),
        opened_in_store,
        buy("a5", 2, 3),
        view("a6", 3, "app", 4),
        buy("a7", 3, 3),
        buy("a8", 3, 1),
        view("a9", 4, "web", 50),
        buy("a10", 4, 40),
    ];
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let person_of = |message: &str| touchline_e2e::person_of(&stored, message);
    let cases = [
        (
            "last-web",
            attributed_rule(AttributionModelType::LastTouch, "web", 0.0),
            vec![person_of("a2")],
        ),
        (
            "linear-web-half",
            attributed_rule(AttributionModelType::Linear, "web", 0.5),
            vec![person_of("a2"), person_of("a5")],
        ),
        (
            "first-app-half",
            attributed_rule(AttributionModelType::FirstTouch, "app", 0.5),
            vec![person_of("a7")],
        ),
        (
            "first-app-most",
            attributed_rule(AttributionModelType::FirstTouch, "app", 0.6),
            Vec::new(),
        ),
        (
            "last-store-by-referrer",
            by_referrer(attributed_rule(
                AttributionModelType::LastTouch,
                "store",
                0.0,
            )),
            vec![person_of("a5")],
        ),
        (
            "last-app-by-referrer",
            by_referrer(attributed_rule(AttributionModelType::LastTouch, "app", 0.0)),
            vec![person_of("a7")],
        ),
        (
            "last-store-unread",
            attributed_rule(AttributionModelType::LastTouch, "store", 0.0),
            Vec::new(),
        ),
    ];
    touchline_e2e::mark_analysable(
        &mut modeling,
        TENANT,
        &["properties.utm_source", "properties.order_id"],
    )
    .await?;
    for (id, rule, expected) in cases {
        modeling.create_segment(create(id, rule, false)).await?;
        settled(&mut modeling, id, expected.len() as i64).await?;
        let (members, _) = bootstrap(&mut modeling, id).await?;
        let expected: BTreeSet<String> = expected.into_iter().collect();
        assert_eq!(members, expected, "{id}");
    }
    // The referrer is kept with the rule and read back.
    let kept = modeling
        .get_segment(GetSegmentRequest {
            name: segment_name("last-app-by-referrer"),
        })
        .await?
        .into_inner();
    let kept_fields = kept
        .segment
        .and_then(|s| s.rule)
        .and_then(|r| r.rule)
        .and_then(|r| match r {
            segment_rule::Rule::AttributedChannel(c) => Some((
                c.referrer_field,
                c.conversion_key_field,
                c.journey_gap.map(|gap| gap.seconds),
            )),
            _ => None,
        });
    assert_eq!(
        kept_fields,
        Some((
            "properties.utm_source".to_owned(),
            "properties.order_id".to_owned(),
            Some(30 * 86_400)
        ))
    );
    let refused = modeling
        .create_segment(create(
            "markov",
            attributed_rule(AttributionModelType::Markov, "web", 0.0),
            false,
        ))
        .await
        .expect_err("Markov has no per-person credit");
    assert!(
        violations(&refused).iter().any(|(f, r)| {
            f == "segment.rule.attributed_channel.model.type" && r == "NOT_PER_PERSON"
        }),
        "{:?}",
        violations(&refused)
    );
    let mut short_gap = attributed_rule(AttributionModelType::LastTouch, "web", 0.0);
    if let Some(segment_rule::Rule::AttributedChannel(condition)) = short_gap.rule.as_mut() {
        condition.journey_gap = Some(prost_types::Duration {
            seconds: 600,
            nanos: 0,
        });
    }
    let refused = modeling
        .create_segment(create("short-gap", short_gap, false))
        .await
        .expect_err("a journey gap under an hour");
    assert!(
        violations(&refused).iter().any(|(f, r)| {
            f == "segment.rule.attributed_channel.journey_gap" && r == "OUT_OF_RANGE"
        }),
        "{:?}",
        violations(&refused)
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_changes_and_triggers_carry_the_identifiers_a_crm_matches_on() -> anyhow::Result<()>
{
    use touchline_proto::common::v1::Identifier;
    use touchline_proto::modeling::v1::SubscribeTriggersRequest;
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    let phone = |person: u64| format!("1380013{:04}", 8_000 + person);
    let batch: Vec<_> = (1..=3u64)
        .map(|person| {
            let mut event = purchase(&format!("x{person}"), person, now - DAY_MS, 20.0);
            event.identifiers.extend([
                Identifier {
                    r#type: "member_card".to_owned(),
                    value: format!("M-{person:04}"),
                    scope: "acme".to_owned(),
                },
                Identifier {
                    r#type: "phone".to_owned(),
                    value: phone(person),
                    scope: String::new(),
                },
            ]);
            event
        })
        .collect();
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, batch).await?;
    let person_of = |message: &str| touchline_e2e::person_of(&stored, message);
    modeling
        .create_segment(create("cardholders", repeat_rule(1.0), false))
        .await?;
    settled(&mut modeling, "cardholders", 3).await?;
    let types = vec!["member_card".to_owned(), "phone".to_owned()];

    // Each member carries their member card in clear and their phone only pseudonymised;
    // no device id, which was not asked for.
    let check = |person: &str, identifiers: &[Identifier]| -> anyhow::Result<()> {
        let number: u64 = (1..=3)
            .find(|n| person_of(&format!("x{n}")) == person)
            .ok_or_else(|| anyhow::anyhow!("an unknown member {person}"))?;
        let card = identifiers.iter().find(|i| i.r#type == "member_card");
        anyhow::ensure!(
            card.map(|c| (c.value.as_str(), c.scope.as_str()))
                == Some((format!("M-{number:04}").as_str(), "acme")),
            "the member card in clear: {identifiers:?}"
        );
        let pseudonym = identifiers.iter().find(|i| i.r#type == "phone");
        anyhow::ensure!(
            pseudonym.is_some_and(|p| !p.value.is_empty() && !p.value.contains(&phone(number))),
            "the phone only pseudonymised: {identifiers:?}"
        );
        anyhow::ensure!(
            identifiers.iter().all(|i| i.r#type != "device_id"),
            "only the types asked for: {identifiers:?}"
        );
        Ok(())
    };
    let members = modeling
        .list_segment_members(ListSegmentMembersRequest {
            parent: segment_name("cardholders"),
            identifier_types: types.clone(),
            ..ListSegmentMembersRequest::default()
        })
        .await?
        .into_inner()
        .members;
    assert_eq!(members.len(), 3);
    for member in &members {
        check(&member.person_id, &member.identifiers)?;
    }
    let changes = modeling
        .list_segment_changes(ListSegmentChangesRequest {
            parent: segment_name("cardholders"),
            identifier_types: types.clone(),
            ..ListSegmentChangesRequest::default()
        })
        .await?
        .into_inner()
        .changes;
    assert_eq!(changes.len(), 3);
    for change in &changes {
        check(&change.person_id, &change.identifiers)?;
    }
    let activation = touchline_testkit::token(TENANT, &["activation:read"]);
    let mut triggers = ModelingServiceClient::new(app.channel(&activation)?)
        .subscribe_triggers(SubscribeTriggersRequest {
            identifier_types: types.clone(),
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let first = triggers
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the trigger stream ended"))?;
    anyhow::ensure!(!first.triggers.is_empty(), "the entries are triggers");
    for trigger in &first.triggers {
        check(&trigger.person_id, &trigger.identifiers)?;
    }
    drop(triggers);

    // A person who opts out carries no identifier any more, in any read.
    IdentityServiceClient::new(app.channel(&token)?)
        .set_consent(SetConsentRequest {
            person_ref: Some(set_consent_request::PersonRef::Person(format!(
                "tenants/{TENANT}/persons/{}",
                person_of("x1")
            ))),
            marketing_opt_out: true,
            ..SetConsentRequest::default()
        })
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let changes = modeling
            .list_segment_changes(ListSegmentChangesRequest {
                parent: segment_name("cardholders"),
                identifier_types: types.clone(),
                ..ListSegmentChangesRequest::default()
            })
            .await?
            .into_inner()
            .changes;
        let opted_out: Vec<&SegmentChange> = changes
            .iter()
            .filter(|c| c.person_id == person_of("x1"))
            .collect();
        if opted_out.len() == 2 {
            assert!(
                opted_out.iter().all(|c| c.identifiers.is_empty()),
                "{opted_out:?}"
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the opt-out exit did not come");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let too_many = modeling
        .list_segment_members(ListSegmentMembersRequest {
            parent: segment_name("cardholders"),
            identifier_types: (0..11).map(|i| format!("type_{i}")).collect(),
            ..ListSegmentMembersRequest::default()
        })
        .await
        .expect_err("at most 10 types");
    assert_eq!(
        violations(&too_many),
        vec![("identifier_types".to_owned(), "TOO_MANY_TYPES".to_owned())]
    );
    app.stop().await;
    Ok(())
}
