//! Identity changes applied to the event store: a merge moves history and redirects late
//! events, a split moves the split-off identifiers' events back, an erasure removes every row
//! and queues its confirmation.

use chrono::{TimeZone as _, Utc};
use prost::Message as _;
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::split::events_to_move;
use touchline_modeling::store::{NewStoredEvent, changes, commit_batch};
use touchline_proto::common::v1::Identifier;
use touchline_proto::governance::v1::CleanEvent;
use uuid::Uuid;

fn id(value: &str) -> Identifier {
    Identifier {
        r#type: "device_id".to_owned(),
        value: value.to_owned(),
        scope: String::new(),
    }
}

fn event(sequence: i64, person: Uuid, device: &str) -> NewStoredEvent {
    let clean = CleanEvent {
        sequence,
        message_id: format!("m{sequence}"),
        identifiers: vec![id(device)],
        ..Default::default()
    };
    NewStoredEvent {
        sequence,
        message_id: clean.message_id.clone(),
        person_id: Some(person),
        event_name: "view".to_owned(),
        channel: "app".to_owned(),
        event_time: Utc
            .timestamp_opt(1_780_000_000, 0)
            .single()
            .unwrap_or_default(),
        payload: clean.encode_to_vec(),
        retraction: false,
    }
}

async fn persons(pool: &PgPool) -> anyhow::Result<Vec<(i64, Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT sequence, person_id FROM modeling.events WHERE tenant_id = 't' ORDER BY sequence",
    )
    .fetch_all(pool)
    .await?)
}

#[tokio::test]
async fn merge_split_and_erasure_reshape_the_history() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    commit_batch(&pool, "t", &[event(1, a, "d1"), event(2, b, "d2")], "c", 2).await?;

    // b merged into a: b's history moves, and an event resolved to b before the merge but
    // stored after it lands on a.
    let mut tx = pool.begin().await?;
    changes::lock_tenant(&mut tx, "t").await?;
    assert_eq!(changes::apply_merge(&mut tx, "t", a, &[b]).await?, 1);
    tx.commit().await?;
    commit_batch(&pool, "t", &[event(3, b, "d2")], "c", 3).await?;
    assert_eq!(persons(&pool).await?, vec![(1, a), (2, a), (3, a)]);

    // The merge was wrong: d2 splits off to a new person, taking its events.
    let c = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let stored = changes::events_of(&mut tx, "t", a).await?;
    let decoded: Vec<(i64, Vec<Identifier>)> = stored
        .iter()
        .map(|(s, p)| Ok((*s, CleanEvent::decode(p.as_slice())?.identifiers)))
        .collect::<Result<_, prost::DecodeError>>()?;
    let to_move = events_to_move(decoded.iter().map(|(s, i)| (*s, i.as_slice())), &[id("d2")]);
    assert_eq!(changes::move_events(&mut tx, "t", &to_move, c).await?, 2);
    tx.commit().await?;
    assert_eq!(persons(&pool).await?, vec![(1, a), (2, c), (3, c)]);

    // Erasing c removes its rows and queues one confirmation.
    let mut tx = pool.begin().await?;
    changes::set_opt_out(&mut tx, "t", c, true).await?;
    let removed = changes::erase(&mut tx, "t", &[c], "tenants/t/erasures/e1").await?;
    tx.commit().await?;
    assert_eq!(removed, 3, "two events and the attribute row");
    assert_eq!(persons(&pool).await?, vec![(1, a)]);
    let mut conn = pool.acquire().await?;
    let pending = changes::pending_confirmations(&mut conn).await?;
    assert_eq!(
        pending,
        vec![("t".to_owned(), "tenants/t/erasures/e1".to_owned(), 3)]
    );
    changes::confirmation_sent(&mut conn, "t", "tenants/t/erasures/e1").await?;
    assert!(changes::pending_confirmations(&mut conn).await?.is_empty());
    drop(conn);

    // An event resolved to c before the erasure, stored after it (resolution runs ahead of
    // storage), is dropped.
    commit_batch(&pool, "t", &[event(4, c, "d2")], "c", 4).await?;
    assert_eq!(persons(&pool).await?, vec![(1, a)]);
    commit_batch(&pool, "t", &[event(5, a, "d1")], "c", 5).await?;
    assert_eq!(
        persons(&pool).await?,
        vec![(1, a), (5, a)],
        "others still land"
    );
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn a_detach_takes_the_person_off_events_made_only_of_shared_identifiers() -> anyhow::Result<()>
{
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let owner = Uuid::now_v7();
    let mut logged_in = event(2, owner, "ipad");
    let mut clean = CleanEvent::decode(logged_in.payload.as_slice())?;
    clean.identifiers.push(Identifier {
        r#type: "user_id".to_owned(),
        value: "u-1".to_owned(),
        scope: String::new(),
    });
    logged_in.payload = clean.encode_to_vec();
    commit_batch(&pool, "t", &[event(1, owner, "ipad"), logged_in], "c", 2).await?;

    let mut tx = pool.begin().await?;
    let stored = changes::events_of(&mut tx, "t", owner).await?;
    let decoded: Vec<(i64, Vec<Identifier>)> = stored
        .iter()
        .map(|(s, p)| Ok((*s, CleanEvent::decode(p.as_slice())?.identifiers)))
        .collect::<Result<_, prost::DecodeError>>()?;
    let shared = events_to_move(
        decoded.iter().map(|(s, i)| (*s, i.as_slice())),
        &[id("ipad")],
    );
    assert_eq!(changes::detach_events(&mut tx, "t", &shared).await?, 1);
    changes::record_detached(&mut tx, "t", owner, &[id("ipad")]).await?;
    tx.commit().await?;
    // Resolved to the owner before the detach, stored after it: it names nobody either.
    commit_batch(&pool, "t", &[event(3, owner, "ipad")], "c", 3).await?;
    let rows: Vec<(i64, Option<Uuid>)> = sqlx::query_as(
        "SELECT sequence, person_id FROM modeling.events WHERE tenant_id = 't' ORDER BY sequence",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(rows, vec![(1, None), (2, Some(owner)), (3, None)]);
    pool.close().await;
    Ok(())
}

/// Applies one merge the way the store did before runs of merges were folded into one plan:
/// statement by statement, as the reference the plan must match.
async fn merge_one_by_one(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    survivor: Uuid,
    merged: &[Uuid],
) -> anyhow::Result<()> {
    let merged: Vec<Uuid> = merged.iter().copied().filter(|p| *p != survivor).collect();
    if merged.is_empty() {
        return Ok(());
    }
    let statements = [
        "UPDATE modeling.events SET person_id = $2 WHERE tenant_id = $1 AND person_id = ANY($3)",
        "UPDATE modeling.person_redirects SET to_person = $2 WHERE tenant_id = $1 AND to_person = ANY($3)",
        "INSERT INTO modeling.person_redirects (tenant_id, from_person, to_person)
         SELECT $1, m, $2 FROM UNNEST($3::uuid[]) AS m
         ON CONFLICT (tenant_id, from_person) DO UPDATE SET to_person = EXCLUDED.to_person",
        "INSERT INTO modeling.detached_identifiers (tenant_id, person_id, id_type, id_scope, id_value)
         SELECT tenant_id, $2, id_type, id_scope, id_value FROM modeling.detached_identifiers
          WHERE tenant_id = $1 AND person_id = ANY($3)
         ON CONFLICT DO NOTHING",
        "INSERT INTO modeling.person_attributes (tenant_id, person_id, marketing_opt_out)
         SELECT $1, $2, bool_or(marketing_opt_out) FROM modeling.person_attributes
          WHERE tenant_id = $1 AND person_id = ANY($3)
         HAVING count(*) > 0
         ON CONFLICT (tenant_id, person_id) DO UPDATE
           SET marketing_opt_out = modeling.person_attributes.marketing_opt_out OR EXCLUDED.marketing_opt_out,
               updated_at = now()",
        "DELETE FROM modeling.person_attributes WHERE tenant_id = $1 AND person_id = ANY($3)",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(tenant)
            .bind(survivor)
            .bind(&merged)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

type Snapshot = (
    Vec<(i64, Option<Uuid>)>,
    Vec<(Uuid, Uuid)>,
    Vec<(Uuid, String)>,
    Vec<(Uuid, bool)>,
);

async fn snapshot(pool: &PgPool, tenant: &str) -> anyhow::Result<Snapshot> {
    Ok((
        sqlx::query_as(
            "SELECT sequence, person_id FROM modeling.events WHERE tenant_id = $1 ORDER BY 1",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await?,
        sqlx::query_as(
            "SELECT from_person, to_person FROM modeling.person_redirects
              WHERE tenant_id = $1 ORDER BY 1",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await?,
        sqlx::query_as(
            "SELECT person_id, id_value FROM modeling.detached_identifiers
              WHERE tenant_id = $1 ORDER BY 1, 2",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await?,
        sqlx::query_as(
            "SELECT person_id, marketing_opt_out FROM modeling.person_attributes
              WHERE tenant_id = $1 ORDER BY 1",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await?,
    ))
}

#[tokio::test]
async fn a_run_of_merges_leaves_what_merging_one_by_one_leaves() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let p: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    // Chains, a survivor merged away later, a person merged back, a merge naming its own
    // survivor, a person merged twice, and a redirect already pointing at a merged person.
    let merges: Vec<(Uuid, Vec<Uuid>)> = vec![
        (p[1], vec![p[0]]),
        (p[2], vec![p[1], p[3]]),
        (p[4], vec![p[4], p[5]]),
        (p[2], vec![p[4]]),
        (p[6], vec![p[2]]),
        (p[7], vec![p[8]]),
        (p[8], vec![p[7]]),
        (p[9], vec![p[0]]),
    ];
    for tenant in ["one-by-one", "run"] {
        let events: Vec<NewStoredEvent> = (0..30)
            .map(|i| event(i + 1, p[usize::try_from(i).unwrap_or(0) % p.len()], "d"))
            .collect();
        commit_batch(&pool, tenant, &events, "c", 30).await?;
        let mut tx = pool.begin().await?;
        // An earlier merge: someone already points at p[3].
        merge_one_by_one(&mut tx, tenant, p[3], &[Uuid::now_v7()]).await?;
        for (i, person) in p.iter().enumerate() {
            changes::record_detached(&mut tx, tenant, *person, &[id(&format!("shared-{i}"))])
                .await?;
            if i % 3 != 2 {
                changes::set_opt_out(&mut tx, tenant, *person, i % 3 == 1).await?;
            }
        }
        tx.commit().await?;
    }
    let mut tx = pool.begin().await?;
    for (survivor, merged) in &merges {
        merge_one_by_one(&mut tx, "one-by-one", *survivor, merged).await?;
    }
    let run: Vec<changes::Merge> = merges
        .iter()
        .map(|(survivor, merged)| changes::Merge {
            survivor: *survivor,
            merged: merged.clone(),
        })
        .collect();
    changes::apply_merges(&mut tx, "run", &run).await?;
    tx.commit().await?;

    let (one_by_one, folded) = (
        snapshot(&pool, "one-by-one").await?,
        snapshot(&pool, "run").await?,
    );
    // The redirect made before the run differs by its random id only.
    let unrelated = |s: &Snapshot| {
        s.1.iter()
            .filter(|(from, _)| !p.contains(from))
            .map(|(_, to)| *to)
            .collect::<Vec<_>>()
    };
    assert_eq!(unrelated(&one_by_one), unrelated(&folded));
    let own = |s: &Snapshot| -> Snapshot {
        (
            s.0.clone(),
            s.1.iter().filter(|(f, _)| p.contains(f)).copied().collect(),
            s.2.iter().filter(|(f, _)| p.contains(f)).cloned().collect(),
            s.3.clone(),
        )
    };
    assert_eq!(own(&one_by_one), own(&folded));
    let holders: std::collections::BTreeSet<Option<Uuid>> =
        one_by_one.0.iter().map(|(_, person)| *person).collect();
    assert_eq!(
        holders,
        [p[6], p[8], p[9]].into_iter().map(Some).collect(),
        "the chains end at their last survivors"
    );
    assert!(one_by_one.1.contains(&(p[0], p[9])));
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn random_runs_of_merges_leave_what_merging_one_by_one_leaves() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let p: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();
    let earlier = Uuid::now_v7();
    // A fixed linear congruential sequence: reproducible runs without a dependency.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap_or(0) % bound
    };
    for run in 0..6 {
        let merges: Vec<(Uuid, Vec<Uuid>)> = (0..25)
            .map(|_| {
                let survivor = p[next(p.len())];
                let mut merged: Vec<Uuid> = Vec::new();
                for _ in 0..=next(3) {
                    let person = p[next(p.len())];
                    if !merged.contains(&person) {
                        merged.push(person);
                    }
                }
                (survivor, merged)
            })
            .collect();
        let (one, folded) = (format!("one-by-one-{run}"), format!("run-{run}"));
        for tenant in [&one, &folded] {
            let events: Vec<NewStoredEvent> = (0..40)
                .map(|i| event(i + 1, p[usize::try_from(i).unwrap_or(0) % p.len()], "d"))
                .collect();
            commit_batch(&pool, tenant, &events, "c", 40).await?;
            let mut tx = pool.begin().await?;
            merge_one_by_one(&mut tx, tenant, p[next(p.len())], &[earlier]).await?;
            for (i, person) in p.iter().enumerate() {
                changes::record_detached(&mut tx, tenant, *person, &[id(&format!("s-{i}"))])
                    .await?;
                if i % 3 != 2 {
                    changes::set_opt_out(&mut tx, tenant, *person, i % 3 == 1).await?;
                }
            }
            tx.commit().await?;
        }
        // Both tenants start alike apart from where the earlier redirect points.
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE modeling.person_redirects SET to_person = $2 WHERE tenant_id = $1")
            .bind(&one)
            .bind(p[0])
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE modeling.person_redirects SET to_person = $2 WHERE tenant_id = $1")
            .bind(&folded)
            .bind(p[0])
            .execute(&mut *tx)
            .await?;
        for (survivor, merged) in &merges {
            merge_one_by_one(&mut tx, &one, *survivor, merged).await?;
        }
        let planned: Vec<changes::Merge> = merges
            .iter()
            .map(|(survivor, merged)| changes::Merge {
                survivor: *survivor,
                merged: merged.clone(),
            })
            .collect();
        changes::apply_merges(&mut tx, &folded, &planned).await?;
        tx.commit().await?;
        assert_eq!(
            snapshot(&pool, &one).await?,
            snapshot(&pool, &folded).await?,
            "run {run}: {merges:?}"
        );
    }
    pool.close().await;
    Ok(())
}
