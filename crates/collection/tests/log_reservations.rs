//! The raw log's visibility rule with parallel appends, on a real PostgreSQL
//! (a fresh database per test): a range still being stored hides the ranges
//! above it from readers, a range whose writer died is taken back so readers
//! get past it, and under many concurrent appends a reader following the
//! visible head sees every stored sequence once, in order.

use std::collections::BTreeSet;

use chrono::Utc;
use sqlx::{Connection as _, PgPool};
use touchline_collection::store::{self, GroupCounts, NewRawEvent};

mod common;
use common::fresh_pool;

const TENANT: &str = "acme";
const SOURCE: &str = "app";

fn events(prefix: &str, n: usize) -> Vec<NewRawEvent> {
    (0..n)
        .map(|i| NewRawEvent {
            message_id: format!("{prefix}-{i}"),
            event_name: "view".to_owned(),
            source: SOURCE.to_owned(),
            channel: "app".to_owned(),
            payload: vec![1, 2, 3],
            ..NewRawEvent::default()
        })
        .collect()
}

fn counts(n: usize) -> Vec<GroupCounts> {
    vec![GroupCounts {
        source: SOURCE.to_owned(),
        offered: n as i64,
        ..GroupCounts::default()
    }]
}

/// Reserves a range for `rows` and stores them; `None` when the range
/// lapsed first.
async fn store_in(
    pool: &PgPool,
    first: i64,
    rows: &[NewRawEvent],
) -> anyhow::Result<Option<Vec<Option<i64>>>> {
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    Ok(store::append_group(
        &mut conn,
        TENANT,
        first,
        rows,
        now,
        now,
        &counts(rows.len()),
    )
    .await?)
}

async fn reserve(pool: &PgPool, n: usize) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    Ok(store::reserve(&mut conn, TENANT, n as i64).await?)
}

/// Makes every open reservation old enough to be taken back.
async fn age_reservations_past_lapse(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE collection.log_reservations
            SET reserved_at = now() - make_interval(secs => $1)",
    )
    .bind((store::RESERVATION_LAPSES_AFTER_SECS + 1) as f64)
    .execute(pool)
    .await?;
    Ok(())
}

async fn visible_head(pool: &PgPool) -> anyhow::Result<i64> {
    let heads = store::heads(pool, Some(&[TENANT.to_owned()])).await?;
    Ok(heads.first().map_or(0, |(_, head)| *head))
}

async fn sequences(pool: &PgPool, after: i64, up_to: i64) -> anyhow::Result<Vec<i64>> {
    Ok(store::read_after(pool, TENANT, after, up_to, 10_000)
        .await?
        .iter()
        .map(|r| r.sequence)
        .collect())
}

#[tokio::test]
async fn a_range_still_being_stored_hides_the_ranges_above_it() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    let slow = reserve(&pool, 3).await?;
    let fast = reserve(&pool, 2).await?;
    assert_eq!((slow, fast), (1, 4));

    let stored = store_in(&pool, fast, &events("fast", 2)).await?;
    assert_eq!(stored, Some(vec![Some(4), Some(5)]));
    // Stored but above a range still open: a reader following the head must
    // not pass it, or it would never read 1 to 3.
    assert_eq!(visible_head(&pool).await?, 0);
    assert_eq!(sequences(&pool, 0, i64::MAX).await?, vec![4, 5]);
    assert!(
        sequences(&pool, 0, visible_head(&pool).await?)
            .await?
            .is_empty()
    );

    let stored = store_in(&pool, slow, &events("slow", 3)).await?;
    assert_eq!(stored, Some(vec![Some(1), Some(2), Some(3)]));
    assert_eq!(visible_head(&pool).await?, 5);
    assert_eq!(sequences(&pool, 0, 5).await?, vec![1, 2, 3, 4, 5]);
    Ok(())
}

#[tokio::test]
async fn a_lapsed_range_is_taken_back_and_its_late_rows_are_refused() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    let dead = reserve(&pool, 2).await?;
    let live = reserve(&pool, 1).await?;
    store_in(&pool, live, &events("live", 1)).await?;
    assert_eq!(visible_head(&pool).await?, 0);

    // Young reservations are left alone.
    assert_eq!(store::release_lapsed(&pool).await?, 0);
    age_reservations_past_lapse(&pool).await?;
    assert_eq!(store::release_lapsed(&pool).await?, 1);
    assert_eq!(visible_head(&pool).await?, 3);
    assert_eq!(sequences(&pool, 0, 3).await?, vec![3]);

    // The writer that stalled comes back: nothing of its group is stored
    // or counted, so its caller's retry cannot make a second copy.
    assert_eq!(store_in(&pool, dead, &events("dead", 2)).await?, None);
    let (rows, accepted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM collection.raw_events),
                (SELECT coalesce(sum(accepted), 0)::bigint FROM collection.ingest_counts)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((rows, accepted), (1, 1));
    Ok(())
}

#[tokio::test]
async fn a_range_being_stored_is_never_taken_back() -> anyhow::Result<()> {
    let (db, pool) = fresh_pool().await?;
    let first = reserve(&pool, 1).await?;
    age_reservations_past_lapse(&pool).await?;
    // A writer in the middle of storing holds the reservation's row lock.
    let mut writer = sqlx::PgConnection::connect(&db.url).await?;
    let mut tx = writer.begin().await?;
    sqlx::query("SELECT 1 FROM collection.log_reservations WHERE first_sequence = $1 FOR UPDATE")
        .bind(first)
        .execute(&mut *tx)
        .await?;
    assert_eq!(store::release_lapsed(&pool).await?, 0);
    tx.rollback().await?;
    assert_eq!(
        store_in(&pool, first, &events("e", 1)).await?,
        Some(vec![Some(first)])
    );
    Ok(())
}

#[tokio::test]
async fn a_reader_following_the_head_sees_every_concurrent_append_once_in_order()
-> anyhow::Result<()> {
    const WRITERS: usize = 8;
    const GROUPS: usize = 40;
    let (_db, pool) = fresh_pool().await?;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        writers.spawn(async move {
            let mut stored = Vec::new();
            for g in 0..GROUPS {
                // Uneven sizes and a repeated message id per group, so
                // ranges finish out of order and leave holes.
                let mut rows = events(&format!("w{w}-g{g}"), 1 + (w * 7 + g * 3) % 23);
                rows.push(NewRawEvent {
                    message_id: format!("shared-{g}"),
                    ..rows[0].clone()
                });
                let first = reserve(&pool, rows.len()).await?;
                let Some(sequences) = store_in(&pool, first, &rows).await? else {
                    anyhow::bail!("a live reservation lapsed");
                };
                stored.extend(sequences.into_iter().flatten());
            }
            Ok::<_, anyhow::Error>(stored)
        });
    }
    let mut read = Vec::new();
    let mut cursor = 0;
    let mut stored = BTreeSet::new();
    let mut writing = true;
    while writing || cursor < visible_head(&pool).await? {
        writing = !writers.is_empty();
        while let Some(done) = writers.try_join_next() {
            stored.extend(done??);
        }
        let head = visible_head(&pool).await?;
        let batch = sequences(&pool, cursor, head).await?;
        read.extend(&batch);
        cursor = head.max(cursor);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(read.windows(2).all(|w| w[0] < w[1]), "read out of order");
    assert_eq!(read.iter().copied().collect::<BTreeSet<_>>(), stored);
    assert_eq!(read.len(), stored.len(), "a sequence read twice");
    Ok(())
}
