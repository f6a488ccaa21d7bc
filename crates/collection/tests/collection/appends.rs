//! The raw log's COPY append on a real PostgreSQL (a fresh database per
//! test): new message ids are copied at dense sequences; a stored one makes
//! the group insert the rest at the same sequences, counted as duplicates;
//! and a group that falls back keeps its place ahead of a later group that
//! carries the same message id.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgPool};
use touchline_collection::store::copy_append::append_group_by_copy;
use touchline_collection::store::counts::CountRow;
use touchline_collection::store::{GroupCounts, NewRawEvent, counts};

use crate::helpers::fresh_pool;

const TENANT: &str = "acme";

fn event(message_id: &str, version: &str) -> NewRawEvent {
    NewRawEvent {
        message_id: message_id.to_owned(),
        event_name: "page_view".to_owned(),
        source: "web".to_owned(),
        channel: "web_shop".to_owned(),
        payload: version.as_bytes().to_vec(),
        traceparent: (version == "traced").then(|| "00-abc-def-01".to_owned()),
        source_revision: 3,
        import_row: None,
    }
}

fn offered(events: &[NewRawEvent]) -> Vec<GroupCounts> {
    vec![GroupCounts {
        source: "web".to_owned(),
        offered: i64::try_from(events.len()).unwrap_or(i64::MAX),
        ..GroupCounts::default()
    }]
}

fn now() -> (DateTime<Utc>, DateTime<Utc>) {
    let received = Utc::now();
    (received, touchline_collection::committer::hour_of(received))
}

async fn copy(pool: &PgPool, events: &[NewRawEvent]) -> anyhow::Result<Vec<Option<i64>>> {
    let (received, hour) = now();
    let mut conn = pool.acquire().await?;
    let appended =
        append_group_by_copy(&mut conn, TENANT, events, received, hour, &offered(events)).await?;
    Ok(appended.sequences)
}

/// Message id → (sequence, payload) of every stored row.
async fn stored(pool: &PgPool) -> anyhow::Result<Vec<(String, i64, String, i64)>> {
    let rows: Vec<(String, i64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT message_id, sequence, payload, source_revision FROM collection.raw_events
          WHERE tenant_id = $1 ORDER BY sequence",
    )
    .bind(TENANT)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(m, s, p, r)| (m, s, String::from_utf8_lossy(&p).into_owned(), r))
        .collect())
}

async fn web_counts(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let start = Utc::now() - chrono::TimeDelta::days(1);
    let rows: Vec<CountRow> = counts::read(pool, TENANT, start, Utc::now(), &[]).await?;
    let accepted = rows.iter().map(|r| r.delta.accepted).sum();
    let duplicates = rows.iter().map(|r| r.delta.duplicates).sum();
    Ok((accepted, duplicates))
}

#[tokio::test]
async fn new_message_ids_are_copied_at_dense_sequences() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    let first = copy(&pool, &[event("a", "traced"), event("b", "1")]).await?;
    assert_eq!(first, vec![Some(1), Some(2)]);
    let second = copy(&pool, &[event("c", "1")]).await?;
    assert_eq!(second, vec![Some(3)]);
    let rows = stored(&pool).await?;
    assert_eq!(
        rows,
        vec![
            ("a".to_owned(), 1, "traced".to_owned(), 3),
            ("b".to_owned(), 2, "1".to_owned(), 3),
            ("c".to_owned(), 3, "1".to_owned(), 3),
        ]
    );
    let traceparent: Option<String> = sqlx::query_scalar(
        "SELECT traceparent FROM collection.raw_events WHERE tenant_id = $1 AND message_id = 'a'",
    )
    .bind(TENANT)
    .fetch_one(&pool)
    .await?;
    assert_eq!(traceparent.as_deref(), Some("00-abc-def-01"));
    assert_eq!(web_counts(&pool).await?, (3, 0));
    Ok(())
}

#[tokio::test]
async fn a_stored_message_id_makes_the_group_insert_the_rest() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    copy(&pool, &[event("a", "first"), event("b", "first")]).await?;
    let (received, hour) = now();
    let group = [
        event("c", "second"),
        event("a", "second"),
        event("d", "second"),
        event("c", "again"),
    ];
    let mut conn = pool.acquire().await?;
    let appended =
        append_group_by_copy(&mut conn, TENANT, &group, received, hour, &offered(&group)).await?;
    assert!(appended.conflicted);
    assert_eq!(appended.sequences, vec![Some(3), None, Some(5), None]);
    let rows = stored(&pool).await?;
    let payloads: Vec<(&str, i64, &str)> = rows
        .iter()
        .map(|(m, s, p, _)| (m.as_str(), *s, p.as_str()))
        .collect();
    assert_eq!(
        payloads,
        vec![
            ("a", 1, "first"),
            ("b", 2, "first"),
            ("c", 3, "second"),
            ("d", 5, "second")
        ],
        "a stored row is never replaced and nothing is stored twice"
    );
    assert_eq!(web_counts(&pool).await?, (4, 2));
    let head: i64 =
        sqlx::query_scalar("SELECT last_sequence FROM collection.log_heads WHERE tenant_id = $1")
            .bind(TENANT)
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        head, 6,
        "the fallback used the sequences the group reserved"
    );
    Ok(())
}

/// Waits until `n` sessions of this database wait on a lock.
async fn lock_waiters(pool: &PgPool, n: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await?;
        if waiting >= n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{waiting} of {n} sessions wait");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_group_that_falls_back_keeps_its_place_before_a_later_group() -> anyhow::Result<()> {
    let (db, pool) = fresh_pool().await?;
    // Another writer holds message id "x" uncommitted, so the earlier
    // group's COPY waits on it and then fails.
    let mut holder = sqlx::PgConnection::connect(&db.url).await?;
    let mut held = holder.begin().await?;
    sqlx::query(
        "INSERT INTO collection.raw_events
           (tenant_id, sequence, message_id, event_name, source, channel, received_at, payload)
         VALUES ($1, 1000, 'x', 'page_view', 'web', 'web_shop', now(), '\\x00')",
    )
    .bind(TENANT)
    .execute(&mut *held)
    .await?;

    let earlier_pool = pool.clone();
    let earlier = tokio::spawn(async move {
        copy(
            &earlier_pool,
            &[event("x", "earlier"), event("y", "earlier")],
        )
        .await
    });
    lock_waiters(&pool, 1).await?;
    // The later group carries "y" too; it waits on the tenant's head.
    let later_pool = pool.clone();
    let later = tokio::spawn(async move {
        copy(&later_pool, &[event("y", "later"), event("z", "later")]).await
    });
    lock_waiters(&pool, 2).await?;
    held.commit().await?;

    let earlier = earlier.await??;
    let later = later.await??;
    assert_eq!(earlier, vec![None, Some(2)], "the earlier group stores y");
    assert_eq!(
        later,
        vec![None, Some(4)],
        "the later group's y is the duplicate"
    );
    let y: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM collection.raw_events WHERE tenant_id = $1 AND message_id = 'y'",
    )
    .bind(TENANT)
    .fetch_one(&pool)
    .await?;
    assert_eq!(y, b"earlier");
    Ok(())
}
