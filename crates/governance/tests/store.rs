//! Store tests on a real PostgreSQL (a fresh database per test): the
//! outcome ledger invariant, cross-source dedup, restatements and
//! exactly-once replay.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_governance::domain::clean::{Inputs, clean};
use touchline_governance::domain::dictionary::{Dictionary, templates};
use touchline_governance::domain::pii::PrivacySettings;
use touchline_governance::domain::source::SourceSpec;
use touchline_governance::domain::value::to_struct;
use touchline_governance::store::publish::{Processed, Verdict, commit_batch};
use touchline_governance::store::quarantine::{Filter, ReplayDone, apply_replay, list};
use touchline_governance::store::{quality, tenant};
use touchline_proto::common::v1::{Event, Identifier};

/// A migrated database of the test's own; it is dropped with the returned guard.
async fn fresh_pool() -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(
            touchline_governance::SCHEMA,
            &touchline_governance::MIGRATOR,
        )
        .await?;
    Ok((db, pool))
}

fn retail() -> Dictionary {
    let mut events = BTreeMap::new();
    for t in templates().into_iter().filter(|t| t.id == "retail") {
        for e in t.events {
            events.insert(e.event_name.clone(), e);
        }
    }
    Dictionary { version: 1, events }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T02:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn row(
    seq: i64,
    message_id: &str,
    name: &str,
    source: &str,
    order: &str,
    amount: &str,
    card: &str,
) -> (i64, Event) {
    let props = json!({"order_id": order, "amount": amount});
    (
        seq,
        Event {
            message_id: message_id.into(),
            event: name.into(),
            source: source.into(),
            original_timestamp: "2026-11-24 16:00:00".into(),
            properties: Some(to_struct(&props.as_object().cloned().unwrap_or_default())),
            identifiers: vec![Identifier {
                r#type: "member_card".into(),
                value: card.into(),
                scope: "b".into(),
            }],
            ..Default::default()
        },
    )
}

async fn process(
    pool: &PgPool,
    dict: &Dictionary,
    rows: &[(i64, Event)],
) -> anyhow::Result<Vec<Processed>> {
    let key = tenant::current_key(pool, "t1").await?;
    let privacy = PrivacySettings::default();
    let mut out = Vec::new();
    for (seq, event) in rows {
        let mut source = SourceSpec::generic(&event.source);
        source.sdk = false;
        source.time_zone = chrono_tz::Asia::Shanghai;
        let verdict = match clean(Inputs {
            event,
            received_at: now(),
            source: &source,
            dictionary: Some(dict),
            privacy: &privacy,
            key: &key,
        }) {
            Ok(c) => Verdict::Clean(Box::new(c)),
            Err(q) => Verdict::Quarantined(q),
        };
        out.push(Processed {
            raw_sequence: *seq,
            message_id: event.message_id.clone(),
            source: event.source.clone(),
            source_event_name: event.event.clone(),
            received_at: now(),
            source_revision: 0,
            dictionary_version: dict.version,
            raw_event: prost::Message::encode_to_vec(event),
            traceparent: None,
            verdict,
        });
    }
    Ok(out)
}

#[tokio::test]
async fn dedups_across_sources_restates_and_keeps_the_ledger_balanced() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    let dict = retail();
    let rows = vec![
        row(1, "pos-1", "pos_order", "pos", "O-1", "129.00", "MC1"),
        // The same order from the CRM export: a natural-key duplicate.
        row(2, "crm-1", "member_order", "crm", "O-1", "¥129.00", "MC1"),
        // The POS re-sends O-1 with changed content: a restatement.
        row(3, "pos-1b", "pos_order", "pos", "O-1", "139.00", "MC1"),
        // The POS re-sends it unchanged: a duplicate.
        row(4, "pos-1c", "pos_order", "pos", "O-1", "139.00", "MC1"),
        // Unknown to the dictionary: quarantined.
        row(5, "x-1", "mystery", "pos", "O-2", "1", "MC2"),
        row(6, "pos-2", "pos_order", "pos", "O-3", "5", "MC3"),
    ];
    let processed = process(&pool, &dict, &rows).await?;
    commit_batch(&pool, "t1", &processed, "governance.clean", 6).await?;
    // Re-committing the same batch changes nothing.
    commit_batch(&pool, "t1", &processed, "governance.clean", 6).await?;

    let clean: Vec<(String, i64)> = sqlx::query_as(
        "SELECT message_id, raw_sequence FROM governance.clean_events WHERE tenant_id = 't1' ORDER BY sequence",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        clean,
        vec![
            ("pos-1".into(), 1),
            ("pos-1".into(), 3),
            ("pos-2".into(), 6)
        ]
    );

    let day = now().date_naive();
    let counts = quality::day_counts(&pool, "t1", "UTC", day, day, &[]).await?;
    let total: (i64, i64, i64, i64, i64) = counts.iter().fold((0, 0, 0, 0, 0), |a, c| {
        (
            a.0 + c.seen,
            a.1 + c.clean,
            a.2 + c.quarantined,
            a.3 + c.duplicates_natural_key,
            a.4 + c.restatements,
        )
    });
    assert_eq!(total, (6, 2, 1, 2, 1));
    assert_eq!(
        total.0,
        total.1 + total.2 + total.3 + total.4,
        "received = clean + quarantined + duplicates"
    );
    Ok(())
}

#[tokio::test]
async fn replay_releases_a_fixed_event_exactly_once() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    let empty = Dictionary {
        version: 1,
        events: BTreeMap::new(),
    };
    let rows = vec![row(1, "pos-1", "pos_order", "pos", "O-1", "1", "MC1")];
    let processed = process(&pool, &empty, &rows).await?;
    commit_batch(&pool, "t1", &processed, "governance.clean", 1).await?;
    let (listed, total) = list(&pool, "t1", &Filter::default(), 0, 10).await?;
    assert_eq!((listed.len(), total), (1, 1));

    // After the fix (the retail dictionary knows pos_order) it is released once.
    let fixed = process(&pool, &retail(), &rows).await?;
    let items: Vec<(Processed, bool)> = fixed.into_iter().map(|p| (p, false)).collect();
    let first = apply_replay(&pool, "t1", &items).await?;
    assert!(matches!(first[0], ReplayDone::Released(_)));
    let second = apply_replay(&pool, "t1", &items).await?;
    assert_eq!(second, vec![ReplayDone::Gone]);
    let clean: i64 =
        sqlx::query_scalar("SELECT count(*) FROM governance.clean_events WHERE tenant_id = 't1'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(clean, 1);
    let day = now().date_naive();
    let counts = quality::day_counts(&pool, "t1", "UTC", day, day, &[]).await?;
    assert_eq!(
        counts
            .iter()
            .map(|c| (c.seen, c.clean, c.quarantined))
            .collect::<Vec<_>>(),
        vec![(1, 1, 0)]
    );
    Ok(())
}

#[tokio::test]
async fn keys_rotate_to_a_new_version() -> anyhow::Result<()> {
    let (_db, pool) = fresh_pool().await?;
    let k1 = tenant::current_key(&pool, "t1").await?;
    assert_eq!(k1.version, 1);
    assert_eq!(
        tenant::current_key(&pool, "t1").await?,
        k1,
        "stable until rotated"
    );
    let k2 = tenant::rotate_key(&pool, "t1").await?;
    assert_eq!(k2.version, 2);
    assert_ne!(k2.secret, k1.secret);
    assert_eq!(tenant::current_key(&pool, "t1").await?.version, 2);
    assert_eq!(
        tenant::current_key(&pool, "t2").await?.version,
        1,
        "per tenant"
    );
    Ok(())
}

/// A job whose server stopped mid-run is reported failed once its heartbeat
/// is old, and a late report of that server cannot revive it; a job whose
/// server is alive is left alone.
#[tokio::test]
async fn an_orphaned_reprocess_job_is_reported_failed() -> anyhow::Result<()> {
    use std::time::Duration;
    use touchline_governance::store::reprocess::{self, ORPHANED, Progress};

    let (_db, pool) = fresh_pool().await?;
    let new = |id: &str| job_row(id, 1, (now(), now()), &[]);
    let running = Progress {
        state: 2,
        total: 10,
        examined: 5,
        ..Progress::default()
    };
    for id in ["alive", "orphan"] {
        reprocess::create(&pool, "t1", &new(id), None, Duration::from_secs(180)).await?;
        reprocess::progress(&pool, "t1", id, &running).await?;
    }
    sqlx::query(
        "UPDATE governance.reprocess_jobs SET heartbeat_at = now() - interval '1 hour'
          WHERE job_id = 'orphan'",
    )
    .execute(&pool)
    .await?;

    let limit = Duration::from_secs(180);
    let alive = reprocess::get(&pool, "t1", "alive", limit).await?;
    assert_eq!(alive.map(|j| j.state), Some(2), "a live job keeps running");
    let orphan = reprocess::get(&pool, "t1", "orphan", limit)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job vanished"))?;
    assert_eq!(orphan.state, 4);
    assert_eq!(orphan.error, ORPHANED);
    assert!(orphan.completed_at.is_some());

    // The stopped server comes back and reports success: too late.
    let done = Progress {
        state: 3,
        total: 10,
        examined: 10,
        ..Progress::default()
    };
    reprocess::progress(&pool, "t1", "orphan", &done).await?;
    let orphan = reprocess::get(&pool, "t1", "orphan", limit).await?;
    assert_eq!(orphan.map(|j| j.state), Some(4));
    Ok(())
}

#[tokio::test]
async fn an_apply_job_is_refused_while_another_applies_an_overlapping_range() -> anyhow::Result<()>
{
    use std::time::Duration;
    use touchline_governance::store::reprocess::{self, Created, mode};

    let (_db, pool) = fresh_pool().await?;
    let hour = chrono::TimeDelta::hours(1);
    let job = |id: &str, job_mode: i16, from: i32, to: i32, sources: &[&str]| {
        job_row(
            id,
            job_mode,
            (now() + hour * from, now() + hour * to),
            sources,
        )
    };
    let limit = Duration::from_secs(180);
    let started = |c: &Created| matches!(c, Created::Started(_));
    let first =
        reprocess::create(&pool, "t1", &job("a", mode::APPLY, 0, 4, &[]), None, limit).await?;
    assert!(started(&first));
    let overlapping = reprocess::create(
        &pool,
        "t1",
        &job("b", mode::APPLY, 3, 6, &["pos"]),
        None,
        limit,
    )
    .await?;
    assert!(
        matches!(&overlapping, Created::Overlapping(id) if id == "a"),
        "{overlapping:?}"
    );
    // Dry runs, other ranges and other tenants are not held up.
    for (tenant, new) in [
        ("t1", job("c", mode::DRY_RUN, 0, 4, &[])),
        ("t1", job("d", mode::APPLY, 4, 8, &[])),
        ("t2", job("e", mode::APPLY, 0, 4, &[])),
    ] {
        let created = reprocess::create(&pool, tenant, &new, None, limit).await?;
        assert!(started(&created), "{} {created:?}", new.job_id);
    }
    // Once the first job is orphaned, the range is free again.
    sqlx::query(
        "UPDATE governance.reprocess_jobs SET heartbeat_at = now() - interval '1 hour'
          WHERE job_id = 'a'",
    )
    .execute(&pool)
    .await?;
    let again =
        reprocess::create(&pool, "t1", &job("f", mode::APPLY, 1, 2, &[]), None, limit).await?;
    assert!(started(&again), "{again:?}");
    Ok(())
}

/// A pending job of `mode` over `range` received times.
fn job_row(
    id: &str,
    mode: i16,
    range: (DateTime<Utc>, DateTime<Utc>),
    sources: &[&str],
) -> touchline_governance::store::reprocess::JobRow {
    touchline_governance::store::reprocess::JobRow {
        job_id: id.to_owned(),
        state: 1,
        mode,
        range_start: range.0,
        range_end: range.1,
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        dictionary_version: 1,
        total_events: 0,
        examined_events: 0,
        diff: None,
        error: String::new(),
        creator: "tester".to_owned(),
        created_at: now(),
        completed_at: None,
    }
}
