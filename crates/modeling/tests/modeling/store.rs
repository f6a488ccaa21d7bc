//! The event store keeps one row per message id: a restatement (a later clean event with the
//! same message id) replaces it; a retraction deletes it; a redelivered older one changes
//! nothing.

use chrono::{TimeZone as _, Utc};
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::store::{NewStoredEvent, commit_batch};

fn event(sequence: i64, message_id: &str, name: &str) -> NewStoredEvent {
    NewStoredEvent {
        sequence,
        message_id: message_id.to_owned(),
        person_id: None,
        event_name: name.to_owned(),
        channel: "ads".to_owned(),
        event_time: Utc
            .timestamp_opt(1_780_000_000, 0)
            .single()
            .unwrap_or_default(),
        payload: name.as_bytes().to_vec(),
        retraction: false,
    }
}

async fn rows(pool: &PgPool) -> anyhow::Result<Vec<(i64, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT sequence, message_id, event_name FROM modeling.events WHERE tenant_id = 't' ORDER BY sequence",
    )
    .fetch_all(pool)
    .await?)
}

/// A fresh event store holding m1 ("first") at 1 and m2 ("other") at 2,
/// consumer `c` at 2. The database lives as long as the returned handle.
async fn seeded() -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    commit_batch(
        &pool,
        "t",
        &[event(1, "m1", "first"), event(2, "m2", "other")],
        "c",
        2,
    )
    .await?;
    Ok((db, pool))
}

#[tokio::test]
async fn a_restatement_replaces_and_a_redelivery_does_not() -> anyhow::Result<()> {
    let (_db, pool) = seeded().await?;
    // The restatement of m1 and, in the same batch, a redelivery of the original.
    commit_batch(
        &pool,
        "t",
        &[event(5, "m1", "restated"), event(1, "m1", "first")],
        "c",
        5,
    )
    .await?;
    // An old batch delivered again after the restatement.
    commit_batch(&pool, "t", &[event(1, "m1", "first")], "c", 1).await?;
    assert_eq!(
        rows(&pool).await?,
        vec![
            (2, "m2".to_owned(), "other".to_owned()),
            (5, "m1".to_owned(), "restated".to_owned()),
        ]
    );
    let cursor: i64 = sqlx::query_scalar(
        "SELECT last_sequence FROM modeling.consumer_cursors WHERE consumer = 'c' AND tenant_id = 't'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(cursor, 5, "the cursor never moves back");
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn a_retraction_deletes_and_a_later_restatement_stores_again() -> anyhow::Result<()> {
    let (_db, pool) = seeded().await?;
    commit_batch(
        &pool,
        "t",
        &[
            NewStoredEvent::retraction(7, "m1"),
            NewStoredEvent::retraction(8, "m9"),
        ],
        "c",
        8,
    )
    .await?;
    assert_eq!(
        rows(&pool).await?,
        vec![(2, "m2".to_owned(), "other".to_owned())],
        "m1 is withdrawn; a retraction of an unknown id changes nothing"
    );
    // In one batch, the latest record per message id decides.
    commit_batch(
        &pool,
        "t",
        &[
            event(9, "m1", "released"),
            NewStoredEvent::retraction(10, "m2"),
            event(3, "m2", "late"),
        ],
        "c",
        10,
    )
    .await?;
    assert_eq!(
        rows(&pool).await?,
        vec![(9, "m1".to_owned(), "released".to_owned())]
    );
    pool.close().await;
    Ok(())
}
