//! The cache under pressure: racing merges and lookups, a Redis that dies
//! mid-load, and calls cancelled at random points.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use rand::Rng as _;
use rand::seq::SliceRandom as _;
use redis::AsyncCommands as _;
use touchline_identity::IdentityCache;
use touchline_identity::cache::local::Entry;
use touchline_identity::cache::{cache_key, parse_entry};
use touchline_identity::domain::IdentifierKey;
use touchline_identity::{Identity, IdentityApi};
use touchline_runtime::Shutdown;
use uuid::Uuid;

use crate::helpers::{
    OwnRedis, REDIS_URL, TestDb, cache_at, event, id, layer_trusted, resolve, who,
};

/// Every live cache entry of `keys`, in Redis and in the in-process layer,
/// compared with PostgreSQL: the number of entries naming another person
/// than the graph does.
async fn stale_entries(
    db: &TestDb,
    cache: &IdentityCache,
    prefix: &str,
    tenant: &str,
    keys: &[IdentifierKey],
) -> usize {
    let mut redis = redis::Client::open(REDIS_URL)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let mut stale = 0;
    let layer = cache
        .local()
        .expect("the in-process layer is on by default");
    for key in keys {
        let name = cache_key(prefix, tenant, key);
        let cached: Option<String> = redis.get(&name).await.expect("get");
        let remote = cached.as_deref().and_then(parse_entry).map(|(p, _)| p);
        let local = match layer.get(&name) {
            Some(Entry::Live { person, .. }) => Some(person),
            _ => None,
        };
        if remote.is_none() && local.is_none() {
            continue;
        }
        let owner: Option<Uuid> = sqlx::query_scalar(
            "SELECT person_id FROM identity.identifiers
              WHERE tenant_id = $1 AND id_type = $2 AND id_scope = $3 AND id_value = $4",
        )
        .bind(tenant)
        .bind(&key.id_type)
        .bind(&key.scope)
        .bind(&key.value)
        .fetch_optional(&db.pool)
        .await
        .expect("owner");
        for person in [remote, local].into_iter().flatten() {
            if owner != Some(person) {
                stale += 1;
            }
        }
    }
    stale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_merges_and_lookups_leave_no_stale_entry() {
    const GROUPS: usize = 1_000;
    let db = TestDb::new(16).await;
    let (cache, prefix) = cache_at(REDIS_URL, 5_000).await;
    layer_trusted(&cache).await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache.clone()));
    let shutdown = Shutdown::new();
    let relay = tokio::spawn(api.relay().run(shutdown.clone()));

    // Per group: an anonymous visitor and an account, separate persons.
    let anon = |g: usize| id("anonymous_id", &format!("a-{g}"));
    let user = |g: usize| id("user_id", &format!("u-{g}"));
    let mut seed = Vec::new();
    for g in 0..GROUPS {
        seed.push(event(&format!("s-a-{g}"), vec![anon(g)]));
        seed.push(event(&format!("s-u-{g}"), vec![user(g)]));
    }
    // Seeded without the cache, so the first lookups miss and refill while
    // the merges move their identifiers.
    let uncached = IdentityApi::new(db.pool.clone(), None);
    for chunk in seed.chunks(500) {
        resolve(&uncached, "t1", chunk.to_vec()).await;
    }

    // 10,000 operations: per group one merge (login event
    // joining the two), one chained merge attempt with the next group (a
    // unique-type conflict, refused), and eight lookups of either id, some
    // through Resolve (single flight) and some through BatchResolve.
    #[derive(Clone, Copy)]
    enum Op {
        Merge(usize),
        Chain(usize),
        Lookup(usize, bool),
        BatchLookup(usize),
    }
    // A group's ten operations are shuffled among themselves and run side
    // by side (24 workers take them in order), so lookups race the very
    // merges that move their identifiers.
    let mut ops = Vec::with_capacity(GROUPS * 10);
    for g in 0..GROUPS {
        let mut group = vec![Op::Merge(g), Op::Chain(g)];
        for k in 0..4 {
            group.push(Op::Lookup(g, k % 2 == 0));
            group.push(Op::BatchLookup(g));
        }
        group.shuffle(&mut rand::rng());
        ops.extend(group);
    }
    assert_eq!(ops.len(), 10_000);
    let ops = Arc::new(ops);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..24)
        .map(|_| {
            let (api, ops, next) = (api.clone(), Arc::clone(&ops), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(op) = ops.get(i).copied() else {
                        return;
                    };
                    match op {
                        Op::Merge(g) => {
                            resolve(
                                &api,
                                "t1",
                                vec![event(&format!("m-{g}"), vec![anon(g), user(g)])],
                            )
                            .await;
                        }
                        Op::Chain(g) => {
                            let n = (g + 1) % GROUPS;
                            resolve(
                                &api,
                                "t1",
                                vec![event(&format!("c-{g}"), vec![user(g), anon(n)])],
                            )
                            .await;
                        }
                        Op::Lookup(g, anonymous) => {
                            let identifier = if anonymous { anon(g) } else { user(g) };
                            assert!(who(&api, "t1", identifier).await.is_some());
                        }
                        Op::BatchLookup(g) => {
                            resolve(&api, "t1", vec![event("", vec![user(g)])]).await;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker finished");
    }

    // Wait for the outbox to drain (the background relay and this call
    // share the work), then compare every cached entry with PostgreSQL.
    let relayer = api.relay();
    relayer.drain().await.expect("drain");
    assert_eq!(relayer.pending().await.expect("pending"), 0);
    let moved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.identifiers WHERE tenant_id = 't1' AND version > 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert!(moved > 0, "the test moved identifiers");
    let keys: Vec<IdentifierKey> = (0..GROUPS)
        .flat_map(|g| {
            [
                IdentifierKey::normalise("anonymous_id", "", &format!("a-{g}")),
                IdentifierKey::normalise("user_id", "", &format!("u-{g}")),
            ]
        })
        .collect();
    let layer = cache.local().expect("in-process layer");
    assert!(layer.trusted(), "the layer served throughout");
    assert!(!layer.is_empty(), "the layer held entries");
    assert_eq!(stale_entries(&db, &cache, &prefix, "t1", &keys).await, 0);
    shutdown.trigger();
    relay.await.expect("relay stopped");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_dying_mid_load_fails_no_call() {
    let db = TestDb::new(16).await;
    let mut redis = OwnRedis::start().await;
    let (cache, _) = cache_at(&redis.url(), 50).await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    let persons: Vec<String> = {
        let items: Vec<_> = (0..200)
            .map(|i| event(&format!("s-{i}"), vec![id("user_id", &format!("u-{i}"))]))
            .collect();
        resolve(&api, "t1", items)
            .await
            .into_iter()
            .map(|r| r.person_id)
            .collect()
    };
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (api, done, failed, stop) = (
                api.clone(),
                Arc::clone(&done),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            let persons = persons.clone();
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let n = i % persons.len();
                    let request = crate::helpers::req(
                        crate::helpers::admin("t1"),
                        touchline_proto::identity::v1::ResolveRequest {
                            identifier: Some(id("user_id", &format!("u-{n}"))),
                            ..Default::default()
                        },
                    );
                    use touchline_proto::identity::v1::identity_service_server::IdentityService as _;
                    match api.resolve(request).await {
                        Ok(reply) if reply.get_ref().person_id == persons[n] => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 8;
                }
            })
        })
        .collect();
    let wait_for = |target: u64| {
        let done = Arc::clone(&done);
        async move {
            tokio::time::timeout(Duration::from_secs(120), async {
                while done.load(Ordering::Relaxed) < target {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("load progresses");
        }
    };
    wait_for(2_000).await;
    redis.kill();
    let at_kill = done.load(Ordering::Relaxed);
    wait_for(at_kill + 2_000).await;
    redis.restart().await;
    let at_restart = done.load(Ordering::Relaxed);
    wait_for(at_restart + 2_000).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker finished");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(done.load(Ordering::Relaxed) >= 6_000);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_calls_never_hand_a_reply_to_another() {
    let db = TestDb::new(16).await;
    let (cache, _) = cache_at(REDIS_URL, 5_000).await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let identity: Identity = api.identity().clone();

    let mut expected: HashMap<String, String> = HashMap::new();
    let items: Vec<_> = (0..500)
        .map(|i| event(&format!("s-{i}"), vec![id("user_id", &format!("u-{i}"))]))
        .collect();
    for (i, result) in resolve(&api, "t1", items).await.into_iter().enumerate() {
        expected.insert(format!("u-{i}"), result.person_id);
    }
    let expected = Arc::new(expected);
    let wrong = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let cancelled = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let identity = identity.clone();
            let (expected, wrong, answered, cancelled) = (
                Arc::clone(&expected),
                Arc::clone(&wrong),
                Arc::clone(&answered),
                Arc::clone(&cancelled),
            );
            tokio::spawn(async move {
                for k in 0..625 {
                    let (n, polls, cancel) = {
                        let mut rng = rand::rng();
                        (
                            rng.random_range(0..500),
                            rng.random_range(0..6),
                            k % 2 == w % 2,
                        )
                    };
                    let name = format!("u-{n}");
                    let key = IdentifierKey::normalise("user_id", "", &name);
                    let check = |person: Option<Uuid>| {
                        if person.map(|p| p.to_string()).as_ref() != expected.get(&name) {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                    };
                    let mut call = std::pin::pin!(identity.resolve_one("t1", &key));
                    if cancel {
                        // Poll a random number of times, then drop the call
                        // wherever it stands (before, during or after its
                        // Redis round trip).
                        let mut finished = false;
                        for _ in 0..polls {
                            if let Poll::Ready(result) = futures::poll!(call.as_mut()) {
                                check(result.expect("resolve"));
                                finished = true;
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                        if !finished {
                            cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        check(call.await.expect("resolve"));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker finished");
    }
    assert_eq!(wrong.load(Ordering::Relaxed), 0);
    assert!(answered.load(Ordering::Relaxed) >= 5_000);
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "some calls were cancelled"
    );
    db.drop().await;
}
