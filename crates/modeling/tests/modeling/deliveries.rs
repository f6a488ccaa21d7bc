//! Webhook delivery's bookkeeping: batches frozen ahead keep their ids and order, and one
//! transaction records the attempts of several deliveries and destinations, each meaning what
//! it would alone (a delivery moves its cursor and drops its batch, a failure schedules a
//! retry, an attempt for a destination deleted and created again is dropped, and a batch a
//! replay dropped does not move the cursor back).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::store::activation::{
    self as store, ACTIVE, Attempt, Batch, DELIVERED, Destination, FAILING, RETRYING,
};
use touchline_modeling::store::deliveries::{self, AttemptRecord};

async fn migrated() -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    Ok((db, pool))
}

fn destination(id: &str) -> Destination {
    Destination {
        tenant_id: "t".to_owned(),
        destination_id: id.to_owned(),
        display_name: String::new(),
        url: "https://example.com/hooks".to_owned(),
        trigger_types: Vec::new(),
        segment_ids: Vec::new(),
        max_batch_size: 1,
        signing_secret: "whsec_x".to_owned(),
        previous_secret: None,
        previous_secret_until: None,
        delivered_sequence: 0,
        state: ACTIVE,
        consecutive_failures: 0,
        last_success_at: None,
        last_failure_at: None,
        last_error: String::new(),
        created_at: Utc::now(),
        max_deliveries_per_second: 0,
        identifier_types: Vec::new(),
        definition_ids: Vec::new(),
        ordering: store::SEQUENCE,
        max_concurrency: 1,
        frozen_sequence: 0,
    }
}

/// Creates destination `id` and returns when it was created.
async fn create(pool: &PgPool, id: &str) -> anyhow::Result<DateTime<Utc>> {
    let mut conn = pool.acquire().await?;
    anyhow::ensure!(store::insert_destination(&mut conn, &destination(id)).await?);
    let created = store::destination(pool, "t", id)
        .await?
        .map(|d| d.created_at)
        .ok_or_else(|| anyhow::anyhow!("{id} was not created"))?;
    Ok(created)
}

fn batch(id: &str, first: i64, last: i64) -> Batch {
    Batch {
        webhook_id: format!("msg_{id}_{first}_{last}"),
        first_sequence: first,
        last_sequence: last,
        body: format!("{first}-{last}").into_bytes(),
        attempts: 0,
        next_attempt_at: Utc::now(),
        lane: 0,
    }
}

async fn freeze(pool: &PgPool, id: &str, batches: &[Batch]) -> anyhow::Result<bool> {
    let mut conn = pool.acquire().await?;
    Ok(deliveries::freeze(&mut conn, "t", id, batches).await?)
}

async fn frozen(pool: &PgPool, id: &str) -> anyhow::Result<Vec<(i64, i64, i32)>> {
    let mut conn = pool.acquire().await?;
    Ok(deliveries::frozen(&mut conn, "t", id, 100, &[])
        .await?
        .into_iter()
        .map(|b| (b.first_sequence, b.last_sequence, b.attempts))
        .collect())
}

fn record(
    id: &str,
    created_at: DateTime<Utc>,
    (first, last): (i64, i64),
    outcome: i16,
    retry_at: Option<DateTime<Utc>>,
) -> AttemptRecord {
    AttemptRecord {
        tenant: "t".to_owned(),
        id: id.to_owned(),
        created_at,
        attempt: Attempt {
            webhook_id: format!("msg_{id}_{first}_{last}"),
            first_sequence: first,
            last_sequence: last,
            attempt: 1,
            attempted_at: Utc::now(),
            outcome,
            http_status: if outcome == DELIVERED { 204 } else { 500 },
            error: String::new(),
            duration_ms: 1,
        },
        retry_at,
    }
}

async fn record_all(pool: &PgPool, records: &[AttemptRecord]) -> anyhow::Result<Vec<bool>> {
    let mut tx = pool.begin().await?;
    let kept = deliveries::record_attempts(&mut tx, records).await?;
    tx.commit().await?;
    Ok(kept)
}

async fn cursor_and_state(pool: &PgPool, id: &str) -> anyhow::Result<(i64, i16)> {
    let d = store::destination(pool, "t", id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} is gone"))?;
    Ok((d.delivered_sequence, d.state))
}

#[tokio::test]
async fn batches_frozen_ahead_keep_their_order_and_a_second_freeze_keeps_the_first()
-> anyhow::Result<()> {
    let (_db, pool) = migrated().await?;
    create(&pool, "a").await?;
    assert!(freeze(&pool, "a", &[batch("a", 1, 1), batch("a", 2, 3)]).await?);
    assert!(freeze(&pool, "a", &[batch("a", 4, 4)]).await?);
    // Another replica freezing the same range finds it taken and reads the stored ones.
    let mut other = batch("a", 2, 3);
    other.body = b"different".to_vec();
    assert!(!freeze(&pool, "a", &[other]).await?);
    assert_eq!(
        frozen(&pool, "a").await?,
        vec![(1, 1, 0), (2, 3, 0), (4, 4, 0)]
    );
    let mut conn = pool.acquire().await?;
    let stored = deliveries::frozen(&mut conn, "t", "a", 1, &[]).await?;
    assert_eq!(
        stored.into_iter().map(|b| b.body).collect::<Vec<_>>(),
        vec![b"1-1".to_vec()]
    );
    // A caller holding a body already is not sent it again.
    let bodies: Vec<Vec<u8>> = deliveries::frozen(&mut conn, "t", "a", 10, &[2])
        .await?
        .into_iter()
        .map(|b| b.body)
        .collect();
    assert_eq!(bodies, vec![b"1-1".to_vec(), Vec::new(), b"4-4".to_vec()]);
    Ok(())
}

#[tokio::test]
async fn one_transaction_records_deliveries_of_several_destinations_and_a_failure()
-> anyhow::Result<()> {
    let (_db, pool) = migrated().await?;
    let a = create(&pool, "a").await?;
    let b = create(&pool, "b").await?;
    freeze(
        &pool,
        "a",
        &[batch("a", 1, 1), batch("a", 2, 2), batch("a", 3, 3)],
    )
    .await?;
    freeze(&pool, "b", &[batch("b", 1, 1), batch("b", 2, 2)]).await?;
    let retry_at = Utc::now() + chrono::Duration::seconds(5);
    let kept = record_all(
        &pool,
        &[
            record("a", a, (1, 1), DELIVERED, None),
            record("b", b, (1, 1), DELIVERED, None),
            record("a", a, (2, 2), DELIVERED, None),
            record("b", b, (2, 2), RETRYING, Some(retry_at)),
        ],
    )
    .await?;
    assert_eq!(kept, vec![true; 4]);
    assert_eq!(cursor_and_state(&pool, "a").await?, (2, ACTIVE));
    assert_eq!(frozen(&pool, "a").await?, vec![(3, 3, 0)]);
    // b delivered 1, then failed on 2: its cursor is past 1 and 2 waits for its retry.
    assert_eq!(cursor_and_state(&pool, "b").await?, (1, FAILING));
    assert_eq!(frozen(&pool, "b").await?, vec![(2, 2, 1)]);
    let due = store::next_retry(&pool, "t", "b").await?;
    assert_eq!(
        due.map(|d| d.timestamp_micros()),
        Some(retry_at.timestamp_micros())
    );
    // The ledger lists each destination's attempts newest first, in the order they were made.
    let ledger: Vec<(i64, i16)> = store::attempts(&pool, "t", "b", 0, 10)
        .await?
        .into_iter()
        .map(|(_, a)| (a.first_sequence, a.outcome))
        .collect();
    assert_eq!(ledger, vec![(2, RETRYING), (1, DELIVERED)]);
    Ok(())
}

#[tokio::test]
async fn an_attempt_for_a_replaced_destination_is_dropped_and_a_replayed_batch_moves_nothing()
-> anyhow::Result<()> {
    let (_db, pool) = migrated().await?;
    let old = create(&pool, "a").await?;
    freeze(&pool, "a", &[batch("a", 1, 1)]).await?;
    anyhow::ensure!(store::delete_destination(&pool, "t", "a").await?);
    let new = create(&pool, "a").await?;
    assert_ne!(old, new);
    let kept = record_all(&pool, &[record("a", old, (1, 1), DELIVERED, None)]).await?;
    assert_eq!(kept, vec![false]);
    assert_eq!(cursor_and_state(&pool, "a").await?, (0, ACTIVE));
    assert!(store::attempts(&pool, "t", "a", 0, 10).await?.is_empty());

    // A replay from 0 drops the frozen batches while one is in flight: its delivery is in
    // the ledger, but the cursor stays where the replay put it.
    freeze(&pool, "a", &[batch("a", 1, 1), batch("a", 2, 2)]).await?;
    store::resume(&pool, "t", "a", Some(0)).await?;
    let kept = record_all(&pool, &[record("a", new, (1, 1), DELIVERED, None)]).await?;
    assert_eq!(kept, vec![true]);
    assert_eq!(cursor_and_state(&pool, "a").await?, (0, ACTIVE));
    assert_eq!(store::attempts(&pool, "t", "a", 0, 10).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn batches_acknowledged_out_of_order_move_the_cursor_only_past_the_oldest_one_left()
-> anyhow::Result<()> {
    let (_db, pool) = migrated().await?;
    let a = create(&pool, "a").await?;
    freeze(
        &pool,
        "a",
        &[batch("a", 1, 2), batch("a", 3, 5), batch("a", 6, 6)],
    )
    .await?;
    let retry_at = Utc::now() + chrono::Duration::seconds(5);
    record_all(
        &pool,
        &[
            record("a", a, (3, 5), DELIVERED, None),
            record("a", a, (1, 2), RETRYING, Some(retry_at)),
        ],
    )
    .await?;
    // 3..=5 is acknowledged, but 1..=2 awaits its retry: nothing is acknowledged in order.
    assert_eq!(cursor_and_state(&pool, "a").await?, (0, FAILING));
    record_all(&pool, &[record("a", a, (6, 6), DELIVERED, None)]).await?;
    // Another delivery does not hide the batch still failing.
    assert_eq!(cursor_and_state(&pool, "a").await?, (0, FAILING));
    assert_eq!(
        store::next_retry(&pool, "t", "a")
            .await?
            .map(|d| d.timestamp_micros()),
        Some(retry_at.timestamp_micros())
    );
    record_all(&pool, &[record("a", a, (1, 2), DELIVERED, None)]).await?;
    // Everything frozen is acknowledged: the cursor is at the last frozen sequence.
    assert_eq!(cursor_and_state(&pool, "a").await?, (6, ACTIVE));
    assert!(frozen(&pool, "a").await?.is_empty());

    // A delivery answered after the endpoint said 410 leaves the destination disabled.
    freeze(&pool, "a", &[batch("a", 7, 7), batch("a", 8, 8)]).await?;
    record_all(&pool, &[record("a", a, (7, 7), store::GONE, None)]).await?;
    record_all(&pool, &[record("a", a, (8, 8), DELIVERED, None)]).await?;
    assert_eq!(cursor_and_state(&pool, "a").await?, (6, store::DISABLED));
    Ok(())
}

/// The plain reading of the cursor: walk the destination's sequences from the start and stop
/// before the first trigger of a batch not yet acknowledged; with none, everything the
/// destination has looked at.
fn naive_cursor(batches: &[(i64, i64, bool)], looked_at: i64) -> i64 {
    for sequence in 1..=looked_at {
        let pending = batches
            .iter()
            .any(|(first, last, acked)| !acked && (*first..=*last).contains(&sequence));
        if pending {
            return sequence - 1;
        }
    }
    looked_at
}

/// Random freezes, failures, deliveries in any order and steps over other triggers, against
/// the plain walk: the cursor never passes it, and a delivery brings it exactly there.
#[tokio::test]
async fn random_acknowledgements_move_the_cursor_as_a_plain_walk_says() -> anyhow::Result<()> {
    use rand::{Rng as _, SeedableRng as _};
    let (_db, pool) = migrated().await?;
    for seed in 0..4u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let id = format!("d{seed}");
        let created = create(&pool, &id).await?;
        // (first, last, acknowledged) of every batch frozen, and how far the destination has
        // looked (frozen or stepped over).
        let mut batches: Vec<(i64, i64, bool)> = Vec::new();
        let mut failed: std::collections::HashSet<i64> = std::collections::HashSet::new();
        let mut looked_at = 0i64;
        for step in 0..80 {
            // Whether this step must leave the cursor exactly where the walk says (a delivery,
            // or stepping over others with nothing pending); any step must leave it at or
            // below (never claiming what is not acknowledged).
            let mut exact = false;
            let pending: Vec<(i64, i64)> = batches
                .iter()
                .filter(|b| !b.2)
                .map(|b| (b.0, b.1))
                .collect();
            match rng.random_range(0..10) {
                // Freeze one to three batches, after triggers of others (a gap) now and then.
                0..=2 => {
                    let mut fresh = Vec::new();
                    for _ in 0..rng.random_range(1..=3) {
                        let first = looked_at + 1 + rng.random_range(0..3);
                        let last = first + rng.random_range(0..4);
                        fresh.push(batch(&id, first, last));
                        batches.push((first, last, false));
                        looked_at = last;
                    }
                    assert!(freeze(&pool, &id, &fresh).await?);
                }
                // Nothing for the destination up to a later head.
                3 => {
                    let head = looked_at + rng.random_range(1..4);
                    let mut conn = pool.acquire().await?;
                    deliveries::skip_to(&mut conn, "t", &id, head).await?;
                    looked_at = head;
                    exact = pending.is_empty();
                }
                // A failure of any pending batch.
                4 | 5 if !pending.is_empty() => {
                    let (first, last) = pending[rng.random_range(0..pending.len())];
                    let retry = Utc::now() + chrono::Duration::seconds(60);
                    record_all(
                        &pool,
                        &[record(&id, created, (first, last), RETRYING, Some(retry))],
                    )
                    .await?;
                    failed.insert(first);
                }
                // A delivery of any pending batch, in any order.
                _ if !pending.is_empty() => {
                    let (first, last) = pending[rng.random_range(0..pending.len())];
                    record_all(
                        &pool,
                        &[record(&id, created, (first, last), DELIVERED, None)],
                    )
                    .await?;
                    if let Some(b) = batches.iter_mut().find(|b| b.0 == first) {
                        b.2 = true;
                    }
                    failed.remove(&first);
                    exact = true;
                }
                _ => {}
            }
            let (cursor, state) = cursor_and_state(&pool, &id).await?;
            let walked = naive_cursor(&batches, looked_at);
            assert!(
                cursor <= walked,
                "seed {seed}, step {step}: {cursor} past {walked}"
            );
            if exact {
                assert_eq!(cursor, walked, "seed {seed}, step {step}: {batches:?}");
            }
            // Failing exactly while a failed batch awaits its retry (once anything was tried).
            if !failed.is_empty() {
                assert_eq!(state, FAILING, "seed {seed}, step {step}");
            } else if batches.iter().any(|b| b.2) {
                assert_eq!(state, ACTIVE, "seed {seed}, step {step}");
            }
        }
    }
    Ok(())
}

/// The interleaving that once left a destination's delivered cursor behind for good: a round
/// moves the freezing cursor over triggers of other types while the last batch is being
/// acknowledged. The acknowledgement takes the destination's row first and reads the freezing
/// cursor before the move; the skip waits for the row. Its look at the batches must come after
/// the acknowledgement commits, or it still sees the batch and keeps the delivered cursor,
/// with nothing frozen to move it until the next trigger.
#[tokio::test]
async fn an_acknowledgement_racing_a_skip_leaves_both_cursors_at_the_head() -> anyhow::Result<()> {
    let (_db, pool) = migrated().await?;
    let created = create(&pool, "crm").await?;
    assert!(freeze(&pool, "crm", &[batch("crm", 1, 6)]).await?);

    let mut acknowledging = pool.begin().await?;
    let kept = deliveries::record_attempts(
        &mut acknowledging,
        &[record("crm", created, (1, 6), DELIVERED, None)],
    )
    .await?;
    assert_eq!(kept, vec![true]);
    let skipping = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            deliveries::skip_to(&mut tx, "t", "crm", 8).await?;
            tx.commit().await?;
            anyhow::Ok(())
        })
    };
    // The skip has taken its snapshot and waits for the row the acknowledgement holds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut blocked = 0_i64;
    while blocked == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        blocked = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await?;
    }
    acknowledging.commit().await?;
    skipping.await??;
    assert_eq!(
        blocked, 1,
        "the skip waited for the acknowledgement's row lock"
    );

    let d = store::destination(&pool, "t", "crm")
        .await?
        .ok_or_else(|| anyhow::anyhow!("crm is gone"))?;
    assert!(frozen(&pool, "crm").await?.is_empty());
    assert_eq!((d.frozen_sequence, d.delivered_sequence), (8, 8));
    assert_eq!(cursor_and_state(&pool, "crm").await?, (8, ACTIVE));
    Ok(())
}
