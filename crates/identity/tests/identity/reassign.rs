//! Numbers the carrier gave out again, recorded through RecordReassignedNumbers with the
//! Redis cache in front: the new subscriber gets the number even when nothing on their
//! events tells them from its first holder, earlier uses keep their holder, an unseen
//! number's uses split by time whichever arrives first, and a record that comes too late
//! changes nothing and says so.

use touchline_identity::IdentityApi;
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

use crate::helpers::{TestDb, admin, feed, id, local_cache, req, resolve, violations};

const DAY: i64 = 86_400;
const T0: i64 = 1_780_000_000;

fn instant(day: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: T0 + day * DAY,
        nanos: 0,
    }
}

fn at(day: i64, identifiers: Vec<Identifier>) -> pb::ResolveItem {
    pb::ResolveItem {
        identifiers,
        observed_at: Some(instant(day)),
        evidence_message_id: format!("m-{day}"),
    }
}

fn phone(number: &str) -> Identifier {
    id("phone", number)
}

/// Records `numbers` (number, day its current subscriber got it) as the tenant's admin.
async fn record(
    api: &IdentityApi,
    tenant: &str,
    numbers: &[(&str, i64)],
) -> Result<Vec<pb::ReassignedNumberResult>, tonic::Status> {
    let request = req(
        admin(tenant),
        pb::RecordReassignedNumbersRequest {
            parent: String::new(),
            numbers: numbers
                .iter()
                .map(|(number, day)| pb::ReassignedNumber {
                    identifier: Some(phone(number)),
                    holder_since: Some(instant(*day)),
                })
                .collect(),
        },
    );
    Ok(api
        .record_reassigned_numbers(request)
        .await?
        .into_inner()
        .results)
}

fn outcomes(results: &[pb::ReassignedNumberResult]) -> Vec<pb::ReassignmentOutcome> {
    results.iter().map(|r| r.outcome()).collect()
}

#[tokio::test]
async fn a_recorded_reassignment_hands_the_number_over_without_other_evidence() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let number = "+8613912345678";
    // The first holder: a WeChat customer who never had an app account.
    let first = resolve(
        &api,
        "t1",
        vec![at(0, vec![id("wechat_unionid", "u-a"), phone(number)])],
    )
    .await[0]
        .person_id
        .clone();
    // Cached now: an answer without a time may come from Redis.
    assert_eq!(
        resolve(&api, "t1", vec![at(1, vec![phone(number)])]).await[0].person_id,
        first
    );
    let recorded = record(&api, "t1", &[(number, 60)]).await.expect("recorded");
    assert_eq!(outcomes(&recorded), [pb::ReassignmentOutcome::HandedOver]);
    let since = recorded[0].person_id.clone();
    // At once, before the outbox relay runs: the cache no longer names the first holder.
    assert_eq!(
        crate::helpers::who(&api, "t1", phone(number)).await,
        Some(since.clone())
    );
    assert!(!since.is_empty() && since != first);
    // The new subscriber shows only the number and a new app account: the rules of time
    // alone would join them to the first holder (see the next test); the record does not.
    let answers = resolve(
        &api,
        "t1",
        vec![
            at(95, vec![phone(number), id("user_id", "app-2")]),
            at(10, vec![phone(number)]),
            at(96, vec![phone(number)]),
            at(97, vec![id("user_id", "app-2")]),
        ],
    )
    .await;
    assert_eq!(answers[0].person_id, since, "the new subscriber");
    assert_eq!(
        answers[1].person_id, first,
        "before the date, its first holder"
    );
    assert_eq!(answers[2].person_id, since);
    assert_eq!(
        answers[3].person_id, since,
        "the account went with the number"
    );
    // Without a time, through the Resolve RPC (and the cache), the number is the new
    // subscriber's.
    assert_eq!(
        crate::helpers::who(&api, "t1", phone(number)).await,
        Some(since.clone())
    );
    // Consumers are told: the last LINK of the phone names the new holder.
    let changes = feed(&api, "t1", 0, 3).await;
    let link = pb::IdentityChangeKind::Link as i32;
    let holders: Vec<&str> = changes
        .iter()
        .filter(|c| c.kind == link && c.moved_identifiers.iter().any(|i| i.r#type == "phone"))
        .map(|c| c.person_id.as_str())
        .collect();
    assert_eq!(holders.last(), Some(&since.as_str()), "{holders:?}");
    // The handover is audited: who holds the number now, who held it, the number masked.
    let audited: Vec<(pb::MergeKind, pb::MergeRule, String, Vec<String>, String)> =
        crate::helpers::merges(&api, "t1")
            .await
            .into_iter()
            .filter(|m| m.kind() == pb::MergeKind::Handover)
            .map(|m| {
                let masked = m
                    .identifiers
                    .first()
                    .map(|i| format!("{}:{}", i.r#type, i.masked_value))
                    .unwrap_or_default();
                (m.kind(), m.rule(), m.person_id, m.other_person_ids, masked)
            })
            .collect();
    assert_eq!(audited.len(), 1, "{audited:?}");
    let (_, rule, holder, previous, masked) = &audited[0];
    assert_eq!(
        (*rule, holder, previous),
        (pb::MergeRule::CarrierRecord, &since, &vec![first.clone()])
    );
    let stored = phone(number).value;
    assert!(
        masked.starts_with("phone:") && !masked.contains(&stored),
        "{masked}"
    );
    // Recording it again changes nothing.
    let again = record(&api, "t1", &[(number, 60)]).await.expect("recorded");
    assert_eq!(outcomes(&again), [pb::ReassignmentOutcome::AlreadyRecorded]);
    assert_eq!(again[0].person_id, since);
    db.drop().await;
}

#[tokio::test]
async fn without_a_record_the_same_events_join_the_first_holder() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let number = "+8613912345678";
    let answers = resolve(
        &api,
        "t1",
        vec![
            at(0, vec![id("wechat_unionid", "u-a"), phone(number)]),
            at(95, vec![phone(number), id("user_id", "app-2")]),
        ],
    )
    .await;
    // Nothing on the second event tells a new subscriber from the first holder coming
    // back: this is why the carrier's record is needed.
    assert_eq!(answers[0].person_id, answers[1].person_id);
    db.drop().await;
}

#[tokio::test]
async fn an_unseen_number_splits_by_time_and_a_late_record_changes_nothing() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let (unseen, used) = ("+8613900000001", "+8613900000002");
    let card = |v: &str| id("member_card", v);
    resolve(&api, "t1", vec![at(0, vec![card("m-u"), phone(used)])]).await;
    resolve(&api, "t1", vec![at(70, vec![card("m-u"), phone(used)])]).await;
    let recorded = record(&api, "t1", &[(unseen, 60), (used, 60)])
        .await
        .expect("recorded");
    assert_eq!(
        outcomes(&recorded),
        [
            pb::ReassignmentOutcome::RecordedUnseen,
            pb::ReassignmentOutcome::UsedSince
        ]
    );
    // The new subscriber's use arrives before the earlier holder's: still two persons.
    let answers = resolve(
        &api,
        "t1",
        vec![
            at(90, vec![phone(unseen), id("user_id", "app-9")]),
            at(20, vec![phone(unseen), card("m-e")]),
            at(80, vec![phone(used)]),
        ],
    )
    .await;
    assert_eq!(answers[0].person_id, recorded[0].person_id);
    assert_ne!(answers[1].person_id, answers[0].person_id);
    assert_eq!(
        answers[2].person_id, recorded[1].person_id,
        "the holder who used it since keeps it"
    );
    db.drop().await;
}

#[tokio::test]
async fn bad_records_are_refused_with_every_field_named_and_nothing_written() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let request = req(
        admin("t1"),
        pb::RecordReassignedNumbersRequest {
            parent: String::new(),
            numbers: vec![
                pb::ReassignedNumber {
                    identifier: Some(phone("+8613912345678")),
                    holder_since: Some(instant(1)),
                },
                pb::ReassignedNumber {
                    identifier: Some(crate::helpers::clear_id("phone", "+8613912345679")),
                    holder_since: None,
                },
            ],
        },
    );
    let status = api
        .record_reassigned_numbers(request)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let fields = violations(&status);
    assert!(
        fields.contains(&(
            "numbers[1].identifier.value".to_owned(),
            "NOT_PSEUDONYMISED".to_owned()
        )) && fields.contains(&("numbers[1].holder_since".to_owned(), "REQUIRED".to_owned())),
        "{fields:?}"
    );
    assert!(
        !format!("{status:?}").contains("13912345679"),
        "the clear number is not echoed"
    );
    assert_eq!(db.counts("t1").await, (0, 0), "nothing written");
    db.drop().await;
}
