//! PostHog's funnel scenarios through the modeling service: stored events, the per-query
//! projection, and RunFunnel's request rules and reply — the same numbers as PostHog's own
//! tests (test_basic_strict_funnel, test_basic_unordered_funnel,
//! test_funnel_exclusion_no_end_event), which the analytics crate also checks on the pure
//! model.

use chrono::{TimeZone as _, Utc};
use prost::Message as _;
use touchline_db::testing::TestDatabase;
use touchline_modeling::journeys::query::{
    FunnelExclusion, FunnelOrder, FunnelQuery, FunnelStep, Matcher, Scope,
};
use touchline_modeling::service::Modeling;
use touchline_modeling::store::{NewStoredEvent, commit_batch};
use touchline_proto::governance::v1::CleanEvent;
use uuid::Uuid;

const TENANT: &str = "posthog";
const T0_MS: i64 = 1_780_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn matcher(name: &str) -> Option<Matcher> {
    Some(Matcher {
        event_name: name.to_owned(),
        filters: Vec::new(),
    })
}

fn funnel(steps: &[&str], order: FunnelOrder) -> FunnelQuery {
    FunnelQuery {
        steps: steps
            .iter()
            .map(|name| FunnelStep {
                label: String::new(),
                event: matcher(name),
            })
            .collect(),
        window_ms: None,
        order,
        exclusions: Vec::new(),
        breakdown: None,
        scope: Scope {
            start_ms: Some(T0_MS - 24 * HOUR_MS),
            end_ms: Some(T0_MS + 30 * 24 * HOUR_MS),
            ..Scope::default()
        },
    }
}

/// Stores each person's events at the given hours after T0, in a fresh database.
async fn store(persons: &[Vec<(f64, &str)>]) -> anyhow::Result<(TestDatabase, Modeling)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let mut batch = Vec::new();
    for events in persons {
        let person = Uuid::new_v4();
        for (hours, name) in events {
            let sequence = batch.len() as i64 + 1;
            batch.push(NewStoredEvent {
                sequence,
                message_id: format!("m{sequence}"),
                person_id: Some(person),
                event_name: (*name).to_owned(),
                channel: "web".to_owned(),
                event_time: Utc
                    .timestamp_millis_opt(T0_MS + (hours * HOUR_MS as f64) as i64)
                    .single()
                    .unwrap_or_default(),
                payload: CleanEvent::default().encode_to_vec(),
                retraction: false,
            });
        }
    }
    let last = batch.len() as i64;
    commit_batch(&pool, TENANT, &batch, "c", last).await?;
    Ok((db, Modeling::new(pool)))
}

/// Events one hour apart.
fn hourly<'a>(names: &[&'a str]) -> Vec<(f64, &'a str)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64, *n))
        .collect()
}

async fn counts(modeling: &Modeling, query: &FunnelQuery) -> anyhow::Result<Vec<u64>> {
    let figures = modeling.run_funnel(TENANT, query).await?;
    Ok(figures.steps.iter().map(|s| s.summary.count).collect())
}

#[tokio::test]
async fn strict_funnels_break_on_any_other_event() -> anyhow::Result<()> {
    let persons: Vec<_> = [
        &["signup"][..],
        &["pageview", "signup"],
        &["signup", "pageview", "blah", "insight"],
        &["insight", "blah", "pageview", "signup"],
        &["pageview", "signup", "blah", "pageview", "insight"],
        &["blah", "signup", "blah", "pageview"],
        &["blah", "signup", "pageview", "insight", "blah"],
        &["insight", "pageview"],
    ]
    .iter()
    .map(|names| hourly(names))
    .collect();
    let (_db, modeling) = store(&persons).await?;
    let strict = funnel(&["signup", "pageview", "insight"], FunnelOrder::Strict);
    assert_eq!(counts(&modeling, &strict).await?, [7, 2, 1]);
    Ok(())
}

#[tokio::test]
async fn unordered_funnels_take_the_steps_in_any_order() -> anyhow::Result<()> {
    let persons: Vec<_> = [
        &["signup"][..],
        &["pageview", "signup"],
        &["signup", "pageview", "blah", "insight"],
        &["insight", "pageview", "signup"],
        &["pageview", "signup", "blah", "insight"],
        &["blah", "insight"],
        &["pageview", "blah"],
        &["insight", "pageview"],
    ]
    .iter()
    .map(|names| hourly(names))
    .collect();
    let (_db, modeling) = store(&persons).await?;
    let unordered = funnel(&["signup", "pageview", "insight"], FunnelOrder::Unordered);
    assert_eq!(counts(&modeling, &unordered).await?, [8, 5, 3]);
    Ok(())
}

#[tokio::test]
async fn an_exclusion_without_an_end_event_in_the_window_drops_the_person() -> anyhow::Result<()> {
    let persons = vec![
        vec![(1.0, "signup"), (2.0, "paid")],
        vec![(3.0, "signup"), (3.5, "x"), (4.0, "paid")],
        vec![(5.0, "signup"), (6.0, "x")],
        vec![(7.0, "signup"), (32.0, "x")],
    ];
    let (_db, modeling) = store(&persons).await?;
    let mut query = funnel(&["signup", "paid"], FunnelOrder::Ordered);
    query.window_ms = Some(24 * HOUR_MS);
    query.exclusions.push(FunnelExclusion {
        event: matcher("x"),
        from_step: 1,
        to_step: 2,
    });
    assert_eq!(counts(&modeling, &query).await?, [2, 1]);
    Ok(())
}
