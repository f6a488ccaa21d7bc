//! The journey projection kept current from the store: after any run of stored, restated,
//! retracted, merged, split, detached and erased events, a funnel over the long-lived view
//! (moved forward change by change) equals the funnel over a view rebuilt from the store,
//! and its step-1 count equals a count taken in SQL.

use chrono::{TimeZone as _, Utc};
use prost::Message as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::journeys::funnel::FunnelFigures;
use touchline_modeling::journeys::query::{
    BreakdownAttribution, FunnelBreakdown, FunnelOrder, FunnelQuery, FunnelStep, Matcher, Scope,
};
use touchline_modeling::service::Modeling;
use touchline_modeling::store::{NewStoredEvent, changes, commit_batch};
use touchline_proto::governance::v1::CleanEvent;
use uuid::Uuid;

const TENANT: &str = "t";
const BASE_S: i64 = 1_780_000_000;
const NAMES: [&str; 3] = ["view_item", "add_to_cart", "pay"];
const CHANNELS: [&str; 3] = ["app", "pos", "mini_program"];

fn stored(
    sequence: i64,
    message: &str,
    person: Uuid,
    name: &str,
    channel: &str,
    at_s: i64,
) -> NewStoredEvent {
    let payload = CleanEvent {
        sequence,
        message_id: message.to_owned(),
        event_name: name.to_owned(),
        channel: channel.to_owned(),
        touchpoint: format!("{channel}_home"),
        source: format!("{channel}_sdk"),
        ..CleanEvent::default()
    }
    .encode_to_vec();
    NewStoredEvent {
        sequence,
        message_id: message.to_owned(),
        person_id: Some(person),
        event_name: name.to_owned(),
        channel: channel.to_owned(),
        event_time: Utc.timestamp_opt(at_s, 0).single().unwrap_or_default(),
        payload,
        retraction: false,
    }
}

fn funnel(attribution: BreakdownAttribution) -> FunnelQuery {
    let step = |name: &str| FunnelStep {
        label: String::new(),
        event: Some(Matcher {
            event_name: name.to_owned(),
            filters: Vec::new(),
        }),
    };
    FunnelQuery {
        steps: NAMES.iter().map(|n| step(n)).collect(),
        window_ms: Some(3 * 86_400_000),
        order: FunnelOrder::Ordered,
        exclusions: Vec::new(),
        breakdown: Some(FunnelBreakdown {
            field: "channel".to_owned(),
            limit: 2,
            attribution,
        }),
        scope: Scope {
            start_ms: Some((BASE_S - 86_400) * 1_000),
            end_ms: Some((BASE_S + 20 * 86_400) * 1_000),
            ..Scope::default()
        },
    }
}

/// The figures that must agree, without the computation time.
fn figures(mut figures: FunnelFigures) -> FunnelFigures {
    figures.computation.persons_considered = 0;
    figures
}

async fn sql_step_one(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(DISTINCT person_id) FROM modeling.events
          WHERE tenant_id = $1 AND event_name = 'view_item' AND person_id IS NOT NULL
            AND event_time >= to_timestamp($2)",
    )
    .bind(TENANT)
    .bind((BASE_S - 86_400) as f64)
    .fetch_one(pool)
    .await?)
}

struct History {
    rng: ChaCha8Rng,
    persons: Vec<Uuid>,
    next_sequence: i64,
    messages: Vec<String>,
}

impl History {
    fn person(&mut self) -> Uuid {
        let index = self.rng.random_range(0..self.persons.len());
        self.persons[index]
    }

    fn event(&mut self, message: String) -> NewStoredEvent {
        self.next_sequence += 1;
        let person = self.person();
        let name = NAMES[self.rng.random_range(0..NAMES.len())];
        let channel = CHANNELS[self.rng.random_range(0..CHANNELS.len())];
        let at = BASE_S + self.rng.random_range(0..10 * 86_400);
        stored(self.next_sequence, &message, person, name, channel, at)
    }

    /// One random change to the store.
    async fn step(&mut self, pool: &PgPool) -> anyhow::Result<()> {
        let choice = self.rng.random_range(0..10);
        match choice {
            0..=4 => {
                let count = self.rng.random_range(1..6);
                let mut batch = Vec::new();
                for _ in 0..count {
                    let message = format!("m{}", self.messages.len());
                    self.messages.push(message.clone());
                    batch.push(self.event(message));
                }
                commit_batch(pool, TENANT, &batch, "c", self.next_sequence).await?;
            }
            5 if !self.messages.is_empty() => {
                let message = self.messages[self.rng.random_range(0..self.messages.len())].clone();
                let restated = self.event(message);
                commit_batch(pool, TENANT, &[restated], "c", self.next_sequence).await?;
            }
            6 if !self.messages.is_empty() => {
                let message = self.messages[self.rng.random_range(0..self.messages.len())].clone();
                self.next_sequence += 1;
                let retraction = NewStoredEvent::retraction(self.next_sequence, &message);
                commit_batch(pool, TENANT, &[retraction], "c", self.next_sequence).await?;
            }
            7 => {
                let (survivor, merged) = (self.person(), self.person());
                let mut tx = pool.begin().await?;
                changes::lock_tenant(&mut tx, TENANT).await?;
                if survivor != merged {
                    changes::apply_merge(&mut tx, TENANT, survivor, &[merged]).await?;
                }
                tx.commit().await?;
            }
            8 => {
                // A split: some of one person's events move to a new person.
                let from = self.person();
                let to = Uuid::new_v4();
                self.persons.push(to);
                let mut tx = pool.begin().await?;
                changes::lock_tenant(&mut tx, TENANT).await?;
                let events = changes::events_of(&mut tx, TENANT, from).await?;
                let moving: Vec<i64> = events
                    .iter()
                    .map(|(sequence, _)| *sequence)
                    .filter(|_| self.rng.random_bool(0.5))
                    .collect();
                changes::move_events(&mut tx, TENANT, &moving, to).await?;
                tx.commit().await?;
            }
            _ => {
                let person = self.person();
                let mut tx = pool.begin().await?;
                changes::lock_tenant(&mut tx, TENANT).await?;
                changes::erase(
                    &mut tx,
                    TENANT,
                    &[person],
                    &format!("e{}", self.next_sequence),
                )
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_view_moved_forward_equals_a_view_rebuilt_after_any_history() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    // Every step's name stored once, before the range, by a person no change touches: a
    // step whose name no stored event carries is refused (tested below).
    let known: Vec<NewStoredEvent> = (0..NAMES.len())
        .map(|i| {
            stored(
                i as i64 + 1,
                &format!("k{i}"),
                Uuid::new_v4(),
                NAMES[i],
                "app",
                BASE_S - 9 * 86_400,
            )
        })
        .collect();
    commit_batch(&pool, TENANT, &known, "c", 3).await?;
    let long_lived = Modeling::new(pool.clone());
    let attributions = [
        BreakdownAttribution::FirstTouch,
        BreakdownAttribution::LastTouch,
        BreakdownAttribution::Step(2),
        BreakdownAttribution::AllEvents,
    ];
    for seed in 0..3u64 {
        let mut history = History {
            rng: ChaCha8Rng::seed_from_u64(seed),
            persons: (0..8).map(|_| Uuid::new_v4()).collect(),
            next_sequence: 1_000_000 * (seed as i64 + 1),
            messages: Vec::new(),
        };
        for round in 0..40 {
            history.step(&pool).await?;
            let query = funnel(attributions[round % attributions.len()]);
            let kept = long_lived.run_funnel(TENANT, &query).await?;
            let rebuilt = Modeling::new(pool.clone())
                .run_funnel(TENANT, &query)
                .await?;
            assert_eq!(
                kept.computation.positions, rebuilt.computation.positions,
                "seed {seed} round {round}: both read the same store"
            );
            let step_one = kept.steps.first().map_or(0, |s| s.summary.count);
            assert_eq!(
                i64::try_from(step_one)?,
                sql_step_one(&pool).await?,
                "seed {seed} round {round}: step 1 is every person with a view_item"
            );
            assert_eq!(figures(kept), figures(rebuilt), "seed {seed} round {round}");
        }
    }
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn an_unknown_step_is_refused_with_the_nearest_stored_names() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let person = Uuid::new_v4();
    commit_batch(
        &pool,
        TENANT,
        &[stored(1, "a", person, "add_to_cart", "app", BASE_S)],
        "c",
        1,
    )
    .await?;
    let mut query = funnel(BreakdownAttribution::FirstTouch);
    if let Some(step) = query.steps.get_mut(1).and_then(|s| s.event.as_mut()) {
        step.event_name = "add_to_krt".to_owned();
    }
    let err = Modeling::new(pool.clone())
        .run_funnel(TENANT, &query)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unknown step must be refused"))?;
    let touchline_modeling::ModelingError::Invalid(violations) = err else {
        anyhow::bail!("expected field violations, got {err:?}");
    };
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "funnel.steps[0].event.event_name",
            "funnel.steps[1].event.event_name",
            "funnel.steps[2].event.event_name"
        ]
    );
    assert!(
        violations[1].description.contains("nearest: add_to_cart"),
        "{}",
        violations[1].description
    );
    pool.close().await;
    Ok(())
}
