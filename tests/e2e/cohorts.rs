//! Retention and lifecycle through the real services, on three persons whose answers are
//! worked out by hand: p1 active in weeks 0 and 1, p2 in weeks 0 and 2, p3 in week 1 only.

use std::collections::BTreeMap;
use touchline_e2e::at;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, CountEventsRequest, EventMatcher, GetPersonLifecycleRequest, Interval,
    LifecycleOptions, LifecycleStage, LifecycleStatus, ListEventsRequest, RunLifecycleRequest,
    RunRetentionRequest,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "cohorts";
/// Monday 2026-09-07 00:00 UTC.
const WEEK_0_MS: i64 = 1_788_739_200_000;
const WEEK_MS: i64 = 7 * 86_400_000;

/// Weeks 0 to 2, in UTC with Monday weeks.
fn three_weeks() -> AnalysisScope {
    AnalysisScope {
        time_range: Some(TimeRange {
            start_time: Some(at(WEEK_0_MS)),
            end_time: Some(at(WEEK_0_MS + 3 * WEEK_MS)),
        }),
        ..AnalysisScope::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_lifecycle_match_the_hand_worked_answers() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, &["events:write", "models:read"]);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    // (person, week, hour into the week)
    let activity = [(1, 0, 10), (1, 1, 30), (2, 0, 50), (2, 2, 3), (3, 1, 100)];
    let events: Vec<_> = activity
        .iter()
        .enumerate()
        .map(|(i, (person, week, hour))| {
            sample_event(
                &format!("c{i}"),
                *person,
                "view",
                WEEK_0_MS + week * WEEK_MS + hour * 3_600_000,
            )
        })
        .collect();
    let acked = collection
        .ingest_events(IngestEventsRequest { events })
        .await?
        .into_inner();
    let position = acked.results.iter().map(|r| r.sequence).max().unwrap_or(0);
    modeling
        .count_events(CountEventsRequest {
            min_raw_sequence: position,
            ..CountEventsRequest::default()
        })
        .await?;
    let stored = modeling
        .list_events(ListEventsRequest {
            page_size: 100,
            ..ListEventsRequest::default()
        })
        .await?
        .into_inner()
        .events;
    assert_eq!(stored.len(), activity.len());
    let name = stored[0].event_name.clone();
    let person_of: BTreeMap<&str, &str> = stored
        .iter()
        .map(|e| (e.message_id.as_str(), e.person_id.as_str()))
        .collect();
    let p2 = person_of.get("c2").copied().unwrap_or_default().to_owned();

    let retention = modeling
        .run_retention(RunRetentionRequest {
            start_event: Some(EventMatcher {
                event_name: name.clone(),
                filters: Vec::new(),
            }),
            interval: Interval::Week as i32,
            periods: 3,
            scope: Some(three_weeks()),
            ..RunRetentionRequest::default()
        })
        .await?
        .into_inner();
    let table = &retention.tables[0];
    let rows: Vec<(i64, Vec<i64>)> = table
        .cohorts
        .iter()
        .map(|c| (c.size, c.cells.iter().map(|cell| cell.retained).collect()))
        .collect();
    assert_eq!(
        rows,
        [(2, vec![2, 1, 1]), (1, vec![1, 0, 0]), (0, vec![0, 0, 0])],
        "cohort week 0 is p1 and p2, back in weeks 1 and 2; week 1 is p3, never back"
    );

    let lifecycle = modeling
        .run_lifecycle(RunLifecycleRequest {
            options: Some(LifecycleOptions {
                interval: Interval::Week as i32,
                ..LifecycleOptions::default()
            }),
            scope: Some(three_weeks()),
            ..RunLifecycleRequest::default()
        })
        .await?
        .into_inner();
    let counts: Vec<[i64; 5]> = lifecycle
        .intervals
        .iter()
        .map(|i| {
            [
                i.new_count,
                i.returning_count,
                i.resurrecting_count,
                i.dormant_count,
                i.churned_count,
            ]
        })
        .collect();
    assert_eq!(
        counts,
        [[2, 0, 0, 0, 0], [1, 1, 0, 1, 0], [0, 0, 1, 2, 0]],
        "week 0: p1, p2 new; week 1: p3 new, p1 returning, p2 dormant; week 2: p2 resurrecting, p1 and p3 dormant"
    );

    let person = modeling
        .get_person_lifecycle(GetPersonLifecycleRequest {
            name: format!("tenants/{TENANT}/persons/{p2}"),
            options: Some(LifecycleOptions {
                interval: Interval::Week as i32,
                ..LifecycleOptions::default()
            }),
            as_of: Some(at(WEEK_0_MS + 3 * WEEK_MS - 1_000)),
            history_intervals: 3,
            ..GetPersonLifecycleRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!(person.person_id, p2);
    assert_eq!(person.current_stage, LifecycleStage::Returning as i32);
    assert_eq!(person.stage_since, Some(at(WEEK_0_MS + 2 * WEEK_MS)));
    let history: Vec<i32> = person.history.iter().map(|h| h.status).collect();
    assert_eq!(
        history,
        [
            LifecycleStatus::New as i32,
            LifecycleStatus::Dormant as i32,
            LifecycleStatus::Resurrecting as i32
        ]
    );
    let unknown = modeling
        .get_person_lifecycle(GetPersonLifecycleRequest {
            name: format!("tenants/{TENANT}/persons/{}", uuid::Uuid::nil()),
            ..GetPersonLifecycleRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(unknown, Some(tonic::Code::NotFound));
    let bad = modeling
        .run_lifecycle(RunLifecycleRequest {
            options: Some(LifecycleOptions {
                interval: Interval::Hour as i32,
                ..LifecycleOptions::default()
            }),
            ..RunLifecycleRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(bad, Some(tonic::Code::InvalidArgument));
    // A start before year 1 is refused, not a crash of the calendar.
    let ancient = modeling
        .run_retention(RunRetentionRequest {
            start_event: Some(EventMatcher::default()),
            scope: Some(AnalysisScope {
                time_range: Some(TimeRange {
                    start_time: Some(prost_types::Timestamp {
                        seconds: -8_334_601_315_200,
                        nanos: 0,
                    }),
                    end_time: None,
                }),
                ..AnalysisScope::default()
            }),
            ..RunRetentionRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(ancient, Some(tonic::Code::InvalidArgument));
    app.stop().await;
    Ok(())
}
