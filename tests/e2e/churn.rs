//! RFM, churn scores and model settings through the real services, on five buyers whose
//! answers are worked out by hand (and a sixth person who only browses).
//!
//! Purchases are `purchase` events (a conversion in the dictionary, valued by `amount`), at
//! 23:00 UTC k days before today's midnight T0, so a purchase k days back lies on the UTC day
//! `today − k − 1`:
//!
//! | person | k (days before T0) | amounts      | R, F, M            | scores (R, F, M) | segment            |
//! |--------|--------------------|--------------|--------------------|------------------|--------------------|
//! | p1     | 2, 10, 20, 30      | 100 each     | 2d+1h, 4, 400      | 5, 5, 4          | champions          |
//! | p2     | 5, 40              | 50 each      | 5d+1h, 2, 100      | 4, 3, 3          | potential loyalist |
//! | p3     | 60                 | 500          | 60d+1h, 1, 500     | 3, 1, 5          | other              |
//! | p4     | 100, 120, 150      | 30 each      | 100d+1h, 3, 90     | 2, 4, 2          | at risk            |
//! | p5     | 300                | 20           | 300d+1h, 1, 20     | 1, 1, 1          | lost               |
//!
//! With five persons and five levels the nearest-rank bounds are the four smallest values:
//! recency 2d, 5d, 60d, 100d (+1h each); frequency 1, 1, 2, 3; monetary 20, 90, 100, 400. A
//! value's level is one more than the bounds strictly below it (recency reversed), and the
//! default map's first matching rule names the segment.
//!
//! A second scenario chooses the probability-alive model through UpdateModelSettings: under
//! MBG/NBD, one-time buyers have a churn score above 0 that grows with the time since their
//! purchase; under BG/NBD the same buyers score 0.

use std::collections::BTreeMap;
use touchline_e2e::at;

use prost_types::{Duration, FieldMask};
use touchline_analytics::churn::bgnbd::{BetaGeoModel, BgNbdParams, CustomerSummary};
use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CanonicalEvent, CreateCanonicalEventRequest, PublishDictionaryVersionRequest,
};
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{SetConsentRequest, set_consent_request};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    BgNbdParameters, BgNbdSettings, ChurnModel, ChurnModelEvents, ChurnScore, ChurnScoreOrder,
    ChurnSettings, GetChurnScoresRequest, GetModelSettingsRequest, InactivityRule,
    ListChurnScoresRequest, ModelSettings, RfmSegment, RfmSettings, RunRfmRequest,
    UpdateModelSettingsRequest,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "churn";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "segments:write",
    "identity:write",
];
const DAY_MS: i64 = 86_400_000;
/// (person, days before T0, amount)
const PURCHASES: [(u64, i64, f64); 11] = [
    (1, 2, 100.0),
    (1, 10, 100.0),
    (1, 20, 100.0),
    (1, 30, 100.0),
    (2, 5, 50.0),
    (2, 40, 50.0),
    (3, 60, 500.0),
    (4, 100, 30.0),
    (4, 120, 30.0),
    (4, 150, 30.0),
    (5, 300, 20.0),
];
/// The fixed BG/NBD parameters the scores are checked with.
const PARAMS: [f64; 4] = [0.8, 12.0, 0.6, 2.5];

/// The purchases of `PURCHASES` as events (`b{row}`), at 23:00 UTC k days before `t0`.
fn purchase_events(t0: i64) -> Vec<touchline_proto::common::v1::Event> {
    PURCHASES
        .iter()
        .enumerate()
        .map(|(i, (person, k, amount))| {
            let mut event = sample_event(
                &format!("b{i}"),
                *person,
                "purchase",
                t0 - k * DAY_MS - 3_600_000,
            );
            event.properties = Some(touchline_e2e::properties([(
                "amount",
                prost_types::value::Kind::NumberValue(*amount),
            )]));
            event
        })
        .collect()
}

fn days(n: i64) -> Duration {
    Duration {
        seconds: n * 86_400,
        nanos: 0,
    }
}

fn ms_of(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
}

async fn dictionary(app: &TestApp, token: &str) -> anyhow::Result<()> {
    let mut governance = GovernanceServiceClient::new(app.channel(token)?);
    for (id, conversion) in [("purchase", true), ("view", false)] {
        governance
            .create_canonical_event(CreateCanonicalEventRequest {
                canonical_event_id: id.to_owned(),
                canonical_event: Some(CanonicalEvent {
                    conversion,
                    value_property: if conversion {
                        "amount".to_owned()
                    } else {
                        String::new()
                    },
                    ..CanonicalEvent::default()
                }),
                ..Default::default()
            })
            .await?;
    }
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;
    Ok(())
}

/// The field violations of a refused call.
fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    tonic_types::StatusExt::get_error_details(status)
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// P(alive) of the contract's formula, computed here on whole UTC days.
fn p_alive(x: f64, t_x: f64, age: f64) -> f64 {
    let [r, alpha, a, b] = PARAMS;
    if x == 0.0 {
        return 1.0;
    }
    1.0 / (1.0 + a / (b + x - 1.0) * ((alpha + age) / (alpha + t_x)).powf(r + x))
}

/// Every page of a listing.
async fn all_pages(
    modeling: &mut Modeling,
    request: ListChurnScoresRequest,
) -> anyhow::Result<(Vec<ChurnScore>, usize, i64)> {
    let mut scores = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = modeling
            .list_churn_scores(ListChurnScoresRequest {
                page_token: token,
                ..request.clone()
            })
            .await?
            .into_inner();
        pages += 1;
        scores.extend(page.scores);
        if page.next_page_token.is_empty() {
            return Ok((scores, pages, page.total_size));
        }
        anyhow::ensure!(pages < 20, "the listing does not end");
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfm_churn_scores_and_settings_match_the_hand_worked_answers() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    dictionary(&app, &token).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);

    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now.rem_euclid(DAY_MS);
    let mut events = purchase_events(t0);
    events.push(sample_event("v6", 6, "view", t0 - 3 * DAY_MS));
    let stored =
        touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events.clone()).await?;
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let person_of: BTreeMap<u64, String> = stored
        .iter()
        .filter_map(|e| {
            let n = match e.message_id.as_str() {
                "v6" => 6,
                id => {
                    PURCHASES
                        .get(id.strip_prefix('b')?.parse::<usize>().ok()?)?
                        .0
                }
            };
            Some((n, e.person_id.clone()))
        })
        .collect();
    assert_eq!(person_of.len(), 6, "six persons");
    let p = |n: u64| person_of.get(&n).cloned().unwrap_or_default();

    // Settings before any change: defaults, the fallback suggestion (6 gaps < 10), etag 0.
    let settings = modeling
        .get_model_settings(GetModelSettingsRequest::default())
        .await?
        .into_inner()
        .model_settings
        .unwrap_or_default();
    assert_eq!(settings.name, format!("tenants/{TENANT}/modelSettings"));
    assert_eq!(settings.etag, "0");
    assert_eq!(settings.time_zone, "UTC");
    let churn = settings.churn.clone().unwrap_or_default();
    let rule = churn.inactivity_rules.first().cloned().unwrap_or_default();
    assert_eq!(rule.suggested_threshold, Some(days(90)));
    assert_eq!(rule.gap_sample_size, 6);
    assert_eq!(churn.model, ChurnModel::MbgNbd as i32, "the default model");
    assert_eq!(
        churn.bg_nbd.as_ref().and_then(|b| b.prediction_period),
        Some(days(30)),
        "the default prediction period"
    );
    let fit = churn.bg_nbd.and_then(|b| b.last_fit).unwrap_or_default();
    assert_eq!(fit.person_count, 5, "five persons bought in the fit window");
    assert_eq!(fit.model, ChurnModel::MbgNbd as i32);
    assert_eq!(settings.rfm.map(|r| r.score_levels), Some(5));

    // RFM at T0 with the default settings: the table of the module docs.
    let rfm = modeling
        .run_rfm(RunRfmRequest {
            as_of: Some(at(t0)),
            page_size: 3,
            ..RunRfmRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!(rfm.person_count, 5);
    assert_eq!(
        rfm.computation.as_ref().map(|c| c.persons_considered),
        Some(6)
    );
    let thresholds = rfm.thresholds.clone().unwrap_or_default();
    assert_eq!(thresholds.frequency, [1.0, 1.0, 2.0, 3.0]);
    assert_eq!(thresholds.monetary, [20.0, 90.0, 100.0, 400.0]);
    let hours = 1.0 / 24.0;
    assert_eq!(
        thresholds.recency_days,
        [2.0 + hours, 5.0 + hours, 60.0 + hours, 100.0 + hours]
    );
    let mut persons = rfm.persons.clone();
    assert_eq!(persons.len(), 3);
    assert!(!rfm.next_page_token.is_empty());
    let rest = modeling
        .run_rfm(RunRfmRequest {
            as_of: Some(at(t0)),
            page_size: 3,
            page_token: rfm.next_page_token.clone(),
            ..RunRfmRequest::default()
        })
        .await?
        .into_inner();
    assert!(rest.next_page_token.is_empty());
    persons.extend(rest.persons);
    let ids: Vec<&str> = persons.iter().map(|p| p.person_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "persons come by id across pages");
    let expected = [
        (1, (5, 5, 4), RfmSegment::Champions, 4, 400.0),
        (2, (4, 3, 3), RfmSegment::PotentialLoyalist, 2, 100.0),
        (3, (3, 1, 5), RfmSegment::Other, 1, 500.0),
        (4, (2, 4, 2), RfmSegment::AtRisk, 3, 90.0),
        (5, (1, 1, 1), RfmSegment::Lost, 1, 20.0),
    ];
    for (n, scores, segment, frequency, monetary) in expected {
        let person = persons
            .iter()
            .find(|r| r.person_id == p(n))
            .ok_or_else(|| anyhow::anyhow!("p{n} is scored"))?;
        assert_eq!(
            (
                (
                    person.recency_score,
                    person.frequency_score,
                    person.monetary_score
                ),
                person.segment,
                person.frequency,
                person.monetary
            ),
            (scores, segment as i32, frequency, monetary),
            "p{n}"
        );
    }
    let sizes: Vec<(i32, i64)> = rfm
        .segments
        .iter()
        .map(|s| (s.segment, s.person_count))
        .collect();
    assert_eq!(sizes.len(), 5);
    assert!(sizes.iter().all(|(_, n)| *n == 1));
    assert_eq!(rfm.cells.len(), 5);
    // Each segment is named for people in both languages.
    let at_risk = rfm
        .segments
        .iter()
        .find(|s| s.segment == RfmSegment::AtRisk as i32)
        .map(|s| (s.display_name_en.as_str(), s.display_name_zh_cn.as_str()));
    assert_eq!(at_risk, Some(("At risk", "流失风险客户")));
    assert!(
        rfm.segments
            .iter()
            .all(|s| !s.display_name_en.is_empty() && !s.display_name_zh_cn.is_empty())
    );

    // Settings: BG/NBD with fixed parameters and a 30-day rule, with an etag and a request id.
    let change = UpdateModelSettingsRequest {
        model_settings: Some(ModelSettings {
            churn: Some(ChurnSettings {
                inactivity_rules: vec![InactivityRule {
                    threshold: Some(days(30)),
                    ..InactivityRule::default()
                }],
                model: ChurnModel::BgNbd as i32,
                bg_nbd: Some(BgNbdSettings {
                    fixed_parameters: Some(BgNbdParameters {
                        r: PARAMS[0],
                        alpha: PARAMS[1],
                        a: PARAMS[2],
                        b: PARAMS[3],
                    }),
                    ..BgNbdSettings::default()
                }),
                ..ChurnSettings::default()
            }),
            etag: "0".to_owned(),
            ..ModelSettings::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec![
                "churn.inactivity_rules".to_owned(),
                "churn.model".to_owned(),
                "churn.bg_nbd.fixed_parameters".to_owned(),
            ],
        }),
        request_id: "6a1f0c52-4a0e-4d2e-9a57-1f6f3e0b2c11".to_owned(),
        validate_only: false,
    };
    let updated = modeling
        .update_model_settings(change.clone())
        .await?
        .into_inner()
        .model_settings
        .unwrap_or_default();
    assert_eq!(updated.etag, "1");
    assert_eq!(
        updated.churn.as_ref().map(|c| c.model),
        Some(ChurnModel::BgNbd as i32)
    );
    let retried = modeling
        .update_model_settings(change.clone())
        .await?
        .into_inner()
        .model_settings
        .unwrap_or_default();
    assert_eq!(retried.etag, "1", "a retried request id applies once");
    let stale = modeling
        .update_model_settings(UpdateModelSettingsRequest {
            request_id: String::new(),
            ..change.clone()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(stale, Some(tonic::Code::Aborted), "etag 0 is stale now");

    // Churn scores: 1 − P(alive) with the fixed parameters, the 30-day rule.
    let names: Vec<String> = (1..=6)
        .map(|n| format!("tenants/{TENANT}/persons/{}", p(n)))
        .chain([format!("tenants/{TENANT}/persons/{}", uuid::Uuid::nil())])
        .collect();
    let scores = modeling
        .get_churn_scores(GetChurnScoresRequest {
            persons: names.clone(),
            ..GetChurnScoresRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!(scores.missing_persons, [names[6].clone()]);
    assert_eq!(scores.scores.len(), 6);
    let compute_ms = ms_of(scores.scores[0].compute_time.as_ref());
    let today = compute_ms.div_euclid(DAY_MS);
    let t0_day = t0.div_euclid(DAY_MS);
    // (person, purchase k's, churned by 30 days)
    let histories: [(u64, &[i64], bool); 5] = [
        (1, &[2, 10, 20, 30], false),
        (2, &[5, 40], false),
        (3, &[60], true),
        (4, &[100, 120, 150], true),
        (5, &[300], true),
    ];
    for (n, ks, churned) in histories {
        let score = &scores.scores[usize::try_from(n - 1)?];
        assert_eq!(score.person_id, p(n));
        let purchase_days: Vec<i64> = ks.iter().map(|k| t0_day - k - 1).collect();
        let (first, last) = (
            purchase_days.iter().min().copied().unwrap_or(0),
            purchase_days.iter().max().copied().unwrap_or(0),
        );
        let x = ks.len() as f64 - 1.0;
        let expected = p_alive(x, (last - first) as f64, (today - first) as f64);
        let alive = score.probability_alive.unwrap_or(f64::NAN);
        let churn = score.score.unwrap_or(f64::NAN);
        assert!(
            (alive - expected).abs() < 1e-12,
            "p{n}: {alive} vs {expected}"
        );
        assert!(
            (churn - (1.0 - alive)).abs() < 1e-12,
            "p{n}: score is 1 − P(alive)"
        );
        assert_eq!(score.churned, churned, "p{n}");
        // Expected purchases in the default 30-day period: BG/NBD's forecast on the same
        // summary (the forecast itself is checked against lifetimes in the analytics crate).
        let forecast = BetaGeoModel::BgNbd
            .expected_purchases(
                &BgNbdParams {
                    r: PARAMS[0],
                    alpha: PARAMS[1],
                    a: PARAMS[2],
                    b: PARAMS[3],
                },
                &CustomerSummary {
                    repeat_purchases: ks.len() as u64 - 1,
                    recency: (last - first) as f64,
                    age: (today - first) as f64,
                },
                30.0,
            )
            .unwrap_or(f64::NAN);
        let expected_purchases = score.expected_purchases.unwrap_or(f64::NAN);
        assert!(
            (expected_purchases - forecast).abs() < 1e-12 * (1.0 + forecast),
            "p{n}: {expected_purchases} vs {forecast}"
        );
        assert_eq!(score.repeat_purchases, ks.len() as i64 - 1);
        assert_eq!(score.inactivity_threshold, Some(days(30)));
        let k_min = ks.iter().min().copied().unwrap_or(0);
        let last_ms = t0 - k_min * DAY_MS - 3_600_000;
        assert_eq!(ms_of(score.last_purchase_time.as_ref()), last_ms);
        let inactive = score.inactive_for.map_or(0, |d| d.seconds * 1_000);
        assert_eq!(
            inactive,
            (compute_ms - last_ms).div_euclid(1_000) * 1_000,
            "p{n}"
        );
    }
    let browser = &scores.scores[5];
    assert_eq!(
        (
            browser.score,
            browser.probability_alive,
            browser.expected_purchases
        ),
        (None, None, None)
    );
    assert!(!browser.churned, "no purchase: never active, never churned");

    // Listings: score order across pages of 2, ties by id, the unscored person last.
    let mut expected_order: Vec<(f64, String)> = scores
        .scores
        .iter()
        .map(|s| (s.score.unwrap_or(-1.0), s.person_id.clone()))
        .collect();
    expected_order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let (listed, pages, total) = all_pages(
        &mut modeling,
        ListChurnScoresRequest {
            page_size: 2,
            ..ListChurnScoresRequest::default()
        },
    )
    .await?;
    assert_eq!((pages, total), (3, 6));
    let listed_ids: Vec<String> = listed.iter().map(|s| s.person_id.clone()).collect();
    let expected_ids: Vec<String> = expected_order.into_iter().map(|(_, id)| id).collect();
    assert_eq!(listed_ids, expected_ids);
    let (by_id, _, _) = all_pages(
        &mut modeling,
        ListChurnScoresRequest {
            page_size: 4,
            order_by: ChurnScoreOrder::PersonId as i32,
            ..ListChurnScoresRequest::default()
        },
    )
    .await?;
    let mut sorted_ids = expected_ids.clone();
    sorted_ids.sort();
    assert_eq!(
        by_id
            .iter()
            .map(|s| s.person_id.clone())
            .collect::<Vec<_>>(),
        sorted_ids
    );
    let (churned, _, churned_total) = all_pages(
        &mut modeling,
        ListChurnScoresRequest {
            churned_only: true,
            ..ListChurnScoresRequest::default()
        },
    )
    .await?;
    assert_eq!(churned_total, 3);
    let mut churned_ids: Vec<String> = churned.iter().map(|s| s.person_id.clone()).collect();
    churned_ids.sort();
    let mut want: Vec<String> = [3, 4, 5].iter().map(|&n| p(n)).collect();
    want.sort();
    assert_eq!(churned_ids, want);

    // An opted-out person leaves the listing (it feeds CRM) but still answers by name.
    IdentityServiceClient::new(app.channel(&token)?)
        .set_consent(SetConsentRequest {
            person_ref: Some(set_consent_request::PersonRef::Person(names[3].clone())),
            marketing_opt_out: true,
            ..SetConsentRequest::default()
        })
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (left, _, total) = all_pages(
            &mut modeling,
            ListChurnScoresRequest {
                churned_only: true,
                ..ListChurnScoresRequest::default()
            },
        )
        .await?;
        if total == 2 {
            assert!(
                left.iter()
                    .all(|s| s.person_id != p(4) && !s.marketing_opt_out)
            );
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the opt-out did not reach the listing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let named = modeling
        .get_churn_scores(GetChurnScoresRequest {
            persons: vec![names[3].clone()],
            ..GetChurnScoresRequest::default()
        })
        .await?
        .into_inner();
    assert!(named.scores.first().is_some_and(|s| s.marketing_opt_out));

    // Bad input: every problem named.
    let refused = modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                churn: Some(ChurnSettings {
                    inactivity_rules: vec![InactivityRule {
                        threshold: Some(days(-3)),
                        ..InactivityRule::default()
                    }],
                    ..ChurnSettings::default()
                }),
                ..ModelSettings::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["churn.inactivity_rules".to_owned()],
            }),
            ..UpdateModelSettingsRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a negative threshold is refused"))?;
    assert_eq!(
        violations(&refused),
        ["model_settings.churn.inactivity_rules[0].threshold"]
    );
    let refused = modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings::default()),
            update_mask: Some(FieldMask {
                paths: vec!["time_zone".to_owned(), "churn.colour".to_owned()],
            }),
            ..UpdateModelSettingsRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unknown mask path is refused"))?;
    assert_eq!(violations(&refused), ["update_mask.paths[1]"]);
    let refused = modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                time_zone: "Mars/Olympus_Mons".to_owned(),
                ..ModelSettings::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["time_zone".to_owned()],
            }),
            request_id: "again".to_owned(),
            ..UpdateModelSettingsRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a bad time zone and request id are refused"))?;
    assert_eq!(
        violations(&refused),
        ["request_id", "model_settings.time_zone"]
    );
    let refused = modeling
        .list_churn_scores(ListChurnScoresRequest {
            page_token: "not-a-token".to_owned(),
            min_score: 1.5,
            ..ListChurnScoresRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a bad listing is refused"))?;
    assert_eq!(violations(&refused), ["min_score", "page_token"]);
    let refused = modeling
        .get_churn_scores(GetChurnScoresRequest {
            persons: vec![
                format!("tenants/{TENANT}/persons/not-a-uuid"),
                "p1".to_owned(),
            ],
            ..GetChurnScoresRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad person names are refused"))?;
    assert_eq!(violations(&refused), ["persons[0]", "persons[1]"]);
    let refused = modeling
        .run_rfm(RunRfmRequest {
            settings: Some(RfmSettings {
                score_levels: 11,
                lookback: Some(days(-1)),
                ..RfmSettings::default()
            }),
            ..RunRfmRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad RFM settings are refused"))?;
    assert_eq!(
        violations(&refused),
        ["settings.lookback", "settings.score_levels"]
    );
    let other = modeling
        .get_churn_scores(GetChurnScoresRequest {
            persons: vec![format!("tenants/elsewhere/persons/{}", p(1))],
            ..GetChurnScoresRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(other, Some(tonic::Code::PermissionDenied));
    Ok(())
}

/// The stored person of each generated person, and the persons' resource names in generated
/// order: `message_id` is `{prefix}{index}`, and `person_at` gives the generated person of an
/// event index.
fn stored_persons(
    stored: &[touchline_proto::modeling::v1::StoredEvent],
    prefix: &str,
    person_at: impl Fn(usize) -> Option<u64>,
    tenant: &str,
) -> anyhow::Result<(BTreeMap<u64, String>, Vec<String>)> {
    let mut person_of: BTreeMap<u64, String> = BTreeMap::new();
    for event in stored {
        let index: usize = event.message_id.trim_start_matches(prefix).parse()?;
        let person = person_at(index).ok_or_else(|| anyhow::anyhow!("no event {index}"))?;
        person_of.insert(person, event.person_id.clone());
    }
    let names = person_of
        .values()
        .map(|id| format!("tenants/{tenant}/persons/{id}"))
        .collect();
    Ok((person_of, names))
}

/// MBG/NBD's P(alive) on whole UTC days, from the parameters the service reports.
fn mbg_alive(p: &BgNbdParameters, x: f64, t_x: f64, age: f64) -> f64 {
    1.0 / (1.0 + p.a / (p.b + x) * ((p.alpha + age) / (p.alpha + t_x)).powf(p.r + x))
}

/// Sets one field of the churn settings, named by its mask `path`; returns the settings as
/// stored.
async fn set_churn(
    modeling: &mut Modeling,
    churn: ChurnSettings,
    path: &str,
) -> Result<ModelSettings, tonic::Status> {
    let reply = modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                churn: Some(churn),
                ..ModelSettings::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec![path.to_owned()],
            }),
            ..UpdateModelSettingsRequest::default()
        })
        .await?;
    Ok(reply.into_inner().model_settings.unwrap_or_default())
}

/// Chooses the tenant's model; returns the settings as stored.
async fn choose_model(modeling: &mut Modeling, model: i32) -> Result<ModelSettings, tonic::Status> {
    let churn = ChurnSettings {
        model,
        ..ChurnSettings::default()
    };
    set_churn(modeling, churn, "churn.model").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbg_nbd_scores_one_time_buyers_by_how_long_ago_they_bought() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("churn-mbg", SCOPES);
    dictionary(&app, &token).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);

    // (person, days before T0): one-time buyers 3 (recent), 60 and 200 days back (long
    // inactive), and two repeat buyers so the fit sees both kinds.
    let purchases: [(u64, i64); 9] = [
        (1, 3),
        (2, 200),
        (3, 60),
        (4, 10),
        (4, 40),
        (4, 70),
        (4, 100),
        (5, 150),
        (5, 160),
    ];
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now.rem_euclid(DAY_MS);
    let events: Vec<_> = purchases
        .iter()
        .enumerate()
        .map(|(i, (person, k))| {
            sample_event(
                &format!("m{i}"),
                *person,
                "purchase",
                t0 - k * DAY_MS - 3_600_000,
            )
        })
        .collect();
    let stored =
        touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events.clone()).await?;
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let (person_of, names) =
        stored_persons(&stored, "m", |i| purchases.get(i).map(|p| p.0), "churn-mbg")?;
    assert_eq!(person_of.len(), 5, "five persons");

    // MBG/NBD chosen by name: the stored settings say so, and so does the fit.
    let chosen = choose_model(&mut modeling, ChurnModel::MbgNbd as i32).await?;
    assert_eq!(
        chosen.churn.as_ref().map(|c| c.model),
        Some(ChurnModel::MbgNbd as i32)
    );
    let scores = modeling
        .get_churn_scores(GetChurnScoresRequest {
            persons: names.clone(),
            ..GetChurnScoresRequest::default()
        })
        .await?
        .into_inner()
        .scores;
    assert_eq!(scores.len(), 5);
    let fit = modeling
        .get_model_settings(GetModelSettingsRequest::default())
        .await?
        .into_inner()
        .model_settings
        .and_then(|s| s.churn)
        .and_then(|c| c.bg_nbd)
        .and_then(|b| b.last_fit)
        .unwrap_or_default();
    assert_eq!(fit.model, ChurnModel::MbgNbd as i32);
    assert_eq!(fit.person_count, 5);
    let params = fit.parameters.unwrap_or_default();
    let today = ms_of(scores[0].compute_time.as_ref()).div_euclid(DAY_MS);
    let t0_day = t0.div_euclid(DAY_MS);
    let score_of = |n: usize| scores[n - 1].score.unwrap_or(f64::NAN);
    for (n, score) in scores.iter().enumerate() {
        let ks: Vec<i64> = purchases
            .iter()
            .filter(|(person, _)| *person == n as u64 + 1)
            .map(|(_, k)| *k)
            .collect();
        let first = t0_day - ks.iter().max().copied().unwrap_or(0) - 1;
        let last = t0_day - ks.iter().min().copied().unwrap_or(0) - 1;
        let x = ks.len() as f64 - 1.0;
        let alive = mbg_alive(&params, x, (last - first) as f64, (today - first) as f64);
        let got = score.probability_alive.unwrap_or(f64::NAN);
        assert!((got - alive).abs() < 1e-9, "p{}: {got} vs {alive}", n + 1);
        assert!((score.score.unwrap_or(f64::NAN) - (1.0 - got)).abs() < 1e-12);
    }
    // One-time buyers: above 0, and the longer since the purchase, the higher.
    let (recent, middle, gone) = (score_of(1), score_of(3), score_of(2));
    assert!(recent > 0.0, "{recent}");
    assert!(
        recent < middle && middle < gone,
        "{recent} < {middle} < {gone}"
    );
    // The listing ranks the long-inactive one-time buyer above the recent one.
    let (listed, _, _) = all_pages(&mut modeling, ListChurnScoresRequest::default()).await?;
    let rank = |n: usize| {
        let id = person_of.get(&(n as u64)).cloned().unwrap_or_default();
        listed.iter().position(|s| s.person_id == id)
    };
    assert!(rank(2) < rank(1), "{:?} before {:?}", rank(2), rank(1));

    // BG/NBD on the same data: one-time buyers are certainly alive.
    choose_model(&mut modeling, ChurnModel::BgNbd as i32).await?;
    let scores = modeling
        .get_churn_scores(GetChurnScoresRequest {
            persons: names.clone(),
            ..GetChurnScoresRequest::default()
        })
        .await?
        .into_inner()
        .scores;
    for n in [1, 2, 3] {
        let score = &scores[n - 1];
        assert_eq!(
            (score.score, score.probability_alive),
            (Some(0.0), Some(1.0)),
            "p{n}"
        );
    }

    // An unknown model is refused by name.
    let refused = choose_model(&mut modeling, 9)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unknown model is refused"))?;
    assert_eq!(violations(&refused), ["model_settings.churn.model"]);
    Ok(())
}

/// Chooses what the model counts; returns the settings as stored.
async fn choose_model_events(
    modeling: &mut Modeling,
    model_events: i32,
) -> Result<ModelSettings, tonic::Status> {
    let churn = ChurnSettings {
        model_events,
        ..ChurnSettings::default()
    };
    set_churn(modeling, churn, "churn.model_events").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_any_event_keeps_a_browsing_buyer_alive_and_scores_visitors() -> anyhow::Result<()>
{
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("churn-activity", SCOPES);
    dictionary(&app, &token).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);

    // (person, event, days before T0): 1 and 2 bought once, 200 days back; 1 still browses,
    // 2 does nothing since; 3 browses and never bought; 4 and 5 buy again and again.
    let history: [(u64, &str, i64); 12] = [
        (1, "purchase", 200),
        (1, "view", 30),
        (1, "view", 2),
        (2, "purchase", 200),
        (3, "view", 40),
        (3, "view", 5),
        (4, "purchase", 10),
        (4, "purchase", 40),
        (4, "purchase", 70),
        (5, "purchase", 150),
        (5, "purchase", 160),
        (5, "view", 120),
    ];
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now.rem_euclid(DAY_MS);
    let events: Vec<_> = history
        .iter()
        .enumerate()
        .map(|(i, (person, name, k))| {
            sample_event(&format!("a{i}"), *person, name, t0 - k * DAY_MS - 3_600_000)
        })
        .collect();
    let stored =
        touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events.clone()).await?;
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let (_, names) = stored_persons(
        &stored,
        "a",
        |i| history.get(i).map(|h| h.0),
        "churn-activity",
    )?;
    let scores = |modeling: &mut Modeling| {
        let mut modeling = modeling.clone();
        let persons = names.clone();
        async move {
            Ok::<_, anyhow::Error>(
                modeling
                    .get_churn_scores(GetChurnScoresRequest {
                        persons,
                        ..GetChurnScoresRequest::default()
                    })
                    .await?
                    .into_inner()
                    .scores,
            )
        }
    };

    // Purchases (the default): the two one-time buyers look alike, the visitor has no score.
    let on_purchases = scores(&mut modeling).await?;
    assert_eq!(on_purchases.len(), 5);
    assert_eq!(on_purchases[0].score, on_purchases[1].score, "p1 and p2");
    assert!(on_purchases[0].score.is_some());
    assert_eq!(on_purchases[2].score, None, "a visitor has no purchase");

    // Any event: the browsing buyer is more alive than the silent one, the visitor is scored,
    // and repeat purchases still count purchases.
    let chosen = choose_model_events(&mut modeling, ChurnModelEvents::AnyEvent as i32).await?;
    assert_eq!(
        chosen.churn.as_ref().map(|c| c.model_events),
        Some(ChurnModelEvents::AnyEvent as i32)
    );
    let on_activity = scores(&mut modeling).await?;
    let score = |n: usize| on_activity[n - 1].score.unwrap_or(f64::NAN);
    assert!(score(1) < score(2), "{} < {}", score(1), score(2));
    assert!(on_activity[2].score.is_some(), "the visitor is scored");
    assert_eq!(on_activity[0].repeat_purchases, 0, "p1 bought once");
    assert_eq!(on_activity[3].repeat_purchases, 2, "p4 bought three times");

    // Unknown numbers are refused by name.
    let refused = choose_model_events(&mut modeling, 7)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("unknown model events are refused"))?;
    assert_eq!(violations(&refused), ["model_settings.churn.model_events"]);
    Ok(())
}

/// When the scores a read finds were computed: the earliest compute time of a page.
async fn computed_at(modeling: &mut Modeling) -> anyhow::Result<(i64, i64)> {
    let page = modeling
        .list_churn_scores(ListChurnScoresRequest::default())
        .await?
        .into_inner();
    let computed = page
        .scores
        .iter()
        .map(|s| ms_of(s.compute_time.as_ref()))
        .min()
        .unwrap_or(0);
    Ok((computed, page.total_size))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_scores_are_kept_fresh_as_events_arrive_without_a_read() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("churn-fresh", SCOPES);
    dictionary(&app, &token).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    let buy = |id: &str, person: u64, days_ago: i64| {
        sample_event(id, person, "purchase", now - days_ago * DAY_MS)
    };
    touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![buy("f1", 1, 40), buy("f2", 1, 20), buy("f3", 2, 90)],
    )
    .await?;
    // Nobody reads for a while: the worker computes the scores as the events arrive.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let asked = chrono::Utc::now().timestamp_millis();
    let (computed, persons) = computed_at(&mut modeling).await?;
    assert_eq!(persons, 2);
    assert!(
        computed > now && computed < asked,
        "computed at {computed}, before the read at {asked}"
    );

    // A new buyer arrives; within the worker's pace (at most every 5 s while events arrive)
    // the scores include them, again computed before any read asks.
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, vec![buy("f4", 3, 1)]).await?;
    let arrived = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let asked = chrono::Utc::now().timestamp_millis();
    let (computed, persons) = computed_at(&mut modeling).await?;
    assert_eq!(persons, 3, "the new buyer is scored");
    assert!(
        computed >= arrived - 1_000 && computed < asked,
        "computed at {computed}: after the event ({arrived}), before the read ({asked})"
    );
    app.stop().await;
    Ok(())
}

/// Inactivity rules per segment: the five buyers of the module docs, p1 and p3 of whom also
/// viewed a product three days ago. The rule for the segment "viewed within 30 days" churns
/// after 30 days without a purchase, the default rule after 200 days: p3 (last purchase 60
/// days ago, a viewer) is churned and p4 (100 days, not one) is not, p5 (300 days) is. Each
/// rule suggests its threshold from the gaps of its own persons: p1's three for the segment,
/// p2's one and p4's two for the default rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_rules_per_segment_flag_each_person_by_their_own_rule() -> anyhow::Result<()> {
    use touchline_proto::modeling::v1::{CreateSegmentRequest, Segment};

    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    dictionary(&app, &token).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now.rem_euclid(DAY_MS);
    let mut events = purchase_events(t0);
    for person in [1, 3] {
        events.push(sample_event(
            &format!("v{person}"),
            person,
            "view",
            t0 - 3 * DAY_MS,
        ));
    }
    let stored =
        touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events.clone()).await?;
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let p = |n: u64| touchline_e2e::person_of(&stored, &format!("v{n}"));
    let buyer = |i: usize| touchline_e2e::person_of(&stored, &format!("b{i}"));
    // PURCHASES rows 4, 7 and 10 are p2's, p4's and p5's.
    let (p2, p4, p5) = (buyer(4), buyer(7), buyer(10));

    let viewers = format!("tenants/{TENANT}/segments/viewers");
    let rule = |segment: &str, threshold: i64| InactivityRule {
        segment: segment.to_owned(),
        threshold: Some(days(threshold)),
        ..InactivityRule::default()
    };
    // A segment that does not exist yet is refused by name.
    let refused = set_churn(
        &mut modeling,
        ChurnSettings {
            inactivity_rules: vec![rule(&viewers, 30), rule("", 200)],
            ..ChurnSettings::default()
        },
        "churn.inactivity_rules",
    )
    .await
    .err()
    .map(|status| touchline_e2e::field_violations(&status));
    assert_eq!(
        refused,
        Some(vec![(
            "model_settings.churn.inactivity_rules[0].segment".to_owned(),
            "UNKNOWN_SEGMENT".to_owned()
        )])
    );
    modeling
        .create_segment(CreateSegmentRequest {
            segment_id: "viewers".to_owned(),
            segment: Some(Segment {
                display_name: "viewed within 30 days / 30 天内浏览过".to_owned(),
                rule: Some(touchline_e2e::did_within("view", 30)),
                ..Segment::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..CreateSegmentRequest::default()
        })
        .await?;
    let settings = set_churn(
        &mut modeling,
        ChurnSettings {
            inactivity_rules: vec![rule(&viewers, 30), rule("", 200)],
            ..ChurnSettings::default()
        },
        "churn.inactivity_rules",
    )
    .await?;
    assert_eq!(
        settings
            .churn
            .map(|c| c.inactivity_rules.len())
            .unwrap_or_default(),
        2
    );

    // Membership reaches the rules once the segment worker has published it.
    let everyone = [p(1), p2.clone(), p(3), p4.clone(), p5.clone()];
    let names: Vec<String> = everyone
        .iter()
        .map(|id| format!("tenants/{TENANT}/persons/{id}"))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let scores = loop {
        let scores = modeling
            .get_churn_scores(GetChurnScoresRequest {
                persons: names.clone(),
                ..GetChurnScoresRequest::default()
            })
            .await?
            .into_inner()
            .scores;
        let in_segment = scores
            .iter()
            .filter(|s| !s.inactivity_rule_segment.is_empty())
            .count();
        if in_segment == 2 || std::time::Instant::now() > deadline {
            break scores;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let got: BTreeMap<String, (bool, String, Option<Duration>)> = scores
        .iter()
        .map(|s| {
            (
                s.person_id.clone(),
                (
                    s.churned,
                    s.inactivity_rule_segment.clone(),
                    s.inactivity_threshold,
                ),
            )
        })
        .collect();
    let want: BTreeMap<String, (bool, String, Option<Duration>)> = [
        (p(1), (false, viewers.clone(), Some(days(30)))),
        (p2, (false, String::new(), Some(days(200)))),
        (p(3), (true, viewers.clone(), Some(days(30)))),
        (p4, (false, String::new(), Some(days(200)))),
        (p5, (true, String::new(), Some(days(200)))),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);

    // Each rule's suggestion reads its own persons' gaps (fewer than 10: the 90-day fallback).
    let rules = modeling
        .get_model_settings(GetModelSettingsRequest::default())
        .await?
        .into_inner()
        .model_settings
        .and_then(|s| s.churn)
        .map(|c| c.inactivity_rules)
        .unwrap_or_default();
    let samples: Vec<(String, i64, Option<Duration>)> = rules
        .iter()
        .map(|r| (r.segment.clone(), r.gap_sample_size, r.suggested_threshold))
        .collect();
    assert_eq!(
        samples,
        [
            (viewers.clone(), 3, Some(days(90))),
            (String::new(), 3, Some(days(90)))
        ]
    );

    // A listing limited to the segment holds its members only; an unknown one is named.
    let (listed, _, total) = all_pages(
        &mut modeling,
        ListChurnScoresRequest {
            segment: viewers.clone(),
            order_by: ChurnScoreOrder::PersonId as i32,
            ..ListChurnScoresRequest::default()
        },
    )
    .await?;
    let mut viewers_ids = vec![p(1), p(3)];
    viewers_ids.sort();
    let listed_ids: Vec<String> = listed.iter().map(|s| s.person_id.clone()).collect();
    assert_eq!((listed_ids, total), (viewers_ids, 2));
    let unknown = modeling
        .list_churn_scores(ListChurnScoresRequest {
            segment: format!("tenants/{TENANT}/segments/nobody"),
            ..ListChurnScoresRequest::default()
        })
        .await
        .err()
        .map(|status| touchline_e2e::field_violations(&status));
    assert_eq!(
        unknown,
        Some(vec![("segment".to_owned(), "UNKNOWN_SEGMENT".to_owned())])
    );
    Ok(())
}
