//! The event counters kept by triggers agree with a direct count of the store after any mix
//! of writes the services make: batches of new events, restatements that change an event's
//! name or channel, retractions, merges and splits that move events between persons, and
//! erasures. The reference is the plain GROUP BY CountEvents ran before the counters.

use chrono::{TimeZone as _, Utc};
use rand::{Rng as _, SeedableRng as _};
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::store::{NewStoredEvent, commit_batch, count_events};
use uuid::Uuid;

type Table = Vec<(String, i64, i64)>;

/// What CountEvents answered before the counters: one scan of the store.
async fn reference(pool: &PgPool, tenant: &str) -> anyhow::Result<(i64, i64, Table, Table)> {
    let totals: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT person_id) FROM modeling.events WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?;
    let mut tables = Vec::new();
    for column in ["channel", "event_name"] {
        let table: Table = sqlx::query_as(&format!(
            "SELECT {column}, count(*), count(DISTINCT person_id) FROM modeling.events
              WHERE tenant_id = $1 GROUP BY 1 ORDER BY 2 DESC, 1"
        ))
        .bind(tenant)
        .fetch_all(pool)
        .await?;
        tables.push(table);
    }
    let names = tables.pop().unwrap_or_default();
    let channels = tables.pop().unwrap_or_default();
    Ok((totals.0, totals.1, channels, names))
}

fn event(rng: &mut rand_chacha::ChaCha8Rng, sequence: i64, persons: &[Uuid]) -> NewStoredEvent {
    let person = (rng.random_range(0..10) > 0).then(|| persons[rng.random_range(0..persons.len())]);
    NewStoredEvent {
        sequence,
        message_id: format!("m{}", rng.random_range(0..60)),
        person_id: person,
        event_name: ["view", "cart", "pay"][rng.random_range(0..3)].to_owned(),
        channel: ["app", "web", "pos", "wechat"][rng.random_range(0..4)].to_owned(),
        event_time: Utc
            .timestamp_opt(1_780_000_000, 0)
            .single()
            .unwrap_or_default(),
        payload: Vec::new(),
        retraction: rng.random_range(0..12) == 0,
    }
}

/// Moves every event of one person to another, as a merge does.
async fn merge(pool: &PgPool, tenant: &str, from: Uuid, to: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE modeling.events SET person_id = $3 WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(pool)
    .await?;
    Ok(())
}

#[tokio::test]
async fn counters_equal_a_direct_count_after_random_writes() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let persons: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    for seed in 0..6u64 {
        let tenant = format!("t{seed}");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut sequence = 0;
        for round in 0..40 {
            match rng.random_range(0..10) {
                0 => {
                    let (a, b) = (
                        persons[rng.random_range(0..8)],
                        persons[rng.random_range(0..8)],
                    );
                    merge(&pool, &tenant, a, b).await?;
                }
                1 => {
                    sqlx::query(
                        "DELETE FROM modeling.events WHERE tenant_id = $1 AND person_id = $2",
                    )
                    .bind(&tenant)
                    .bind(persons[rng.random_range(0..8)])
                    .execute(&pool)
                    .await?;
                }
                _ => {
                    let batch: Vec<NewStoredEvent> = (0..rng.random_range(1..12))
                        .map(|_| {
                            sequence += 1;
                            event(&mut rng, sequence, &persons)
                        })
                        .collect();
                    commit_batch(&pool, &tenant, &batch, "c", sequence).await?;
                }
            }
            let counted = count_events(&pool, &tenant).await?;
            let direct = reference(&pool, &tenant).await?;
            assert_eq!(counted, direct, "seed {seed}, round {round}");
        }
    }
    Ok(())
}
