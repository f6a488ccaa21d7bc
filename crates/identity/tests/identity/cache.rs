//! The Redis cache-aside: hits answer like PostgreSQL, failures never fail a call.

use redis::AsyncCommands as _;
use touchline_identity::cache::cache_key;
use touchline_identity::cache::local::Entry;
use touchline_identity::domain::IdentifierKey;
use touchline_identity::{IdentityApi, IdentityCache, IdentityConfig};

use crate::helpers::{
    OwnRedis, REDIS_URL, TestDb, as_governance_sends, cache_at, cache_under, id, item,
    layer_trusted, local_cache, local_config, resolve,
};

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

#[tokio::test]
async fn hits_answer_like_postgresql_and_misses_are_filled() {
    let db = TestDb::new(4).await;
    let (cache, prefix) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    let from_pg = resolve(
        &api,
        "t1",
        vec![item(vec![
            id("email", "Cat@X.io"),
            id("member_card", "m-7"),
        ])],
    )
    .await;
    let person = from_pg[0].person_id.clone();

    // After commit both identifiers are cached, under normalised keys, with
    // a TTL within the configured 600 s ± 10 %.
    let mut redis = redis().await;
    for key in [
        IdentifierKey::normalise("email", "", &as_governance_sends("cat@x.io")),
        IdentifierKey::normalise("member_card", "", "m-7"),
    ] {
        let name = cache_key(&prefix, "t1", &key);
        let cached: Option<String> = redis.get(&name).await.expect("get");
        // Entries carry the identifier's version, compared on refill.
        assert_eq!(cached, Some(format!("p:{person}:1")), "{name}");
        let ttl: i64 = redis.ttl(&name).await.expect("ttl");
        assert!((540..=660).contains(&ttl), "ttl {ttl}");
    }

    // Remove the rows behind the cache: an answer now can only come from Redis.
    sqlx::query("DELETE FROM identity.identifiers WHERE tenant_id = 't1'")
        .execute(&db.pool)
        .await
        .expect("delete identifiers");
    let from_cache = resolve(&api, "t1", vec![item(vec![id("member_card", " m-7 ")])]).await;
    assert_eq!(from_cache[0].person_id, person);
    assert!(!from_cache[0].created);
    assert_eq!(db.counts("t1").await.1, 0, "a hit writes nothing");

    // A partly cached item goes to PostgreSQL, which is the authority.
    let partly = resolve(
        &api,
        "t1",
        vec![item(vec![
            id("email", "cat@x.io"),
            id("phone", "+8613800000009"),
        ])],
    )
    .await;
    assert!(partly[0].created, "postgresql no longer knows the email");
    assert_ne!(partly[0].person_id, person);
    db.drop().await;
}

#[tokio::test]
async fn an_unreachable_redis_only_costs_the_cache() {
    let db = TestDb::new(4).await;
    let config = IdentityConfig {
        redis_url: Some("redis://127.0.0.1:1".to_owned()),
        ..IdentityConfig::default()
    };
    let cache = IdentityCache::connect(&config)
        .await
        .expect("a lazy connection never fails at start")
        .expect("a cache when a url is set");
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    let first = resolve(&api, "t1", vec![item(vec![id("phone", "+8613800000004")])]).await;
    assert!(first[0].created);
    let second = resolve(
        &api,
        "t1",
        vec![item(vec![
            id("phone", "+8613800000004"),
            id("user_id", "u-4"),
        ])],
    )
    .await;
    assert_eq!(second[0].person_id, first[0].person_id);
    assert_eq!(db.counts("t1").await, (1, 2));
    db.drop().await;
}

#[tokio::test]
async fn no_url_means_no_cache_and_bad_settings_are_refused() {
    assert!(
        IdentityCache::connect(&IdentityConfig::default())
            .await
            .expect("no url is fine")
            .is_none()
    );
    let zero_timeout = IdentityConfig {
        redis_url: Some(REDIS_URL.to_owned()),
        redis_timeout_ms: 0,
        ..IdentityConfig::default()
    };
    assert!(IdentityCache::connect(&zero_timeout).await.is_err());
    let bad_url = IdentityConfig {
        redis_url: Some("not a url".to_owned()),
        ..IdentityConfig::default()
    };
    assert!(IdentityCache::connect(&bad_url).await.is_err());
}

/// `drain` is a barrier: invalidations another relay is working on when it
/// is called count as queued. Here that relay fails and gives its batch
/// back; `drain` waits for it, relays the batch itself, and leaves the
/// outbox empty (returning while the rows were held would leave their
/// tombstones unwritten).
#[tokio::test]
async fn drain_waits_for_the_batch_another_relay_holds() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    resolve(&api, "t1", vec![item(vec![id("email", "dee@x.io")])]).await;
    resolve(&api, "t1", vec![item(vec![id("member_card", "m-9")])]).await;
    // Joining the two persons moves an identifier and queues its invalidation.
    resolve(
        &api,
        "t1",
        vec![item(vec![
            id("email", "dee@x.io"),
            id("member_card", "m-9"),
        ])],
    )
    .await;
    let relay = api.relay();
    let queued = relay.pending().await.expect("pending");
    assert!(queued > 0, "the merge queued invalidations");

    // Another relay's batch in flight: every queued row locked by its
    // open transaction.
    let mut other = db.pool.begin().await.expect("begin");
    let held: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM identity.outbox ORDER BY id FOR UPDATE")
            .fetch_all(&mut *other)
            .await
            .expect("lock the batch");
    assert_eq!(i64::try_from(held.len()).expect("row count"), queued);

    let drain = tokio::spawn({
        let relay = relay.clone();
        async move { relay.drain().await }
    });
    // Poll until the drain waits on the held rows; it must not return first.
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("activity");
        if waiting > 0 {
            break;
        }
        assert!(
            !drain.is_finished(),
            "drain returned while another relay held queued rows"
        );
        tokio::task::yield_now().await;
    }
    // That relay fails (Redis refused, say) and rolls back.
    other.rollback().await.expect("rollback");

    let relayed = drain.await.expect("drain task").expect("drain");
    assert_eq!(i64::try_from(relayed).expect("relayed"), queued);
    assert_eq!(relay.pending().await.expect("pending"), 0);
    db.drop().await;
}

/// Two replicas under one prefix: a move committed and relayed by one
/// reaches the other's in-process layer through the invalidation channel,
/// so the other stops answering with the former owner.
#[tokio::test]
async fn a_move_relayed_by_one_replica_reaches_the_others_layer() {
    let db = TestDb::new(4).await;
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let (cache_a, cache_b) = (
        cache_under(REDIS_URL, &prefix, 5_000).await,
        cache_under(REDIS_URL, &prefix, 5_000).await,
    );
    layer_trusted(&cache_a).await;
    layer_trusted(&cache_b).await;
    let replica_a = IdentityApi::new(db.pool.clone(), Some(cache_a));
    let replica_b = IdentityApi::new(db.pool.clone(), Some(cache_b.clone()));

    // The oldest person survives a merge: the email's, created first.
    let older = resolve(&replica_a, "t1", vec![item(vec![id("email", "old@x.io")])]).await;
    let card = resolve(&replica_b, "t1", vec![item(vec![id("member_card", "m-1")])]).await;
    // Replica B answers the card from its own layer now.
    let name = cache_key(
        &prefix,
        "t1",
        &IdentifierKey::normalise("member_card", "", "m-1"),
    );
    let layer_b = cache_b.local().expect("layer");
    assert!(matches!(layer_b.get(&name), Some(Entry::Live { .. })));

    // Replica A merges the card's person into the older one and relays.
    resolve(
        &replica_a,
        "t1",
        vec![item(vec![
            id("email", "old@x.io"),
            id("member_card", "m-1"),
        ])],
    )
    .await;
    replica_a.relay().drain().await.expect("drain");
    let mut waited = 0;
    while matches!(layer_b.get(&name), Some(Entry::Live { .. })) {
        assert!(
            waited < 200,
            "the tombstone never reached replica B's layer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        waited += 1;
    }
    let after = resolve(&replica_b, "t1", vec![item(vec![id("member_card", "m-1")])]).await;
    assert_ne!(card[0].person_id, older[0].person_id);
    assert_eq!(
        after[0].person_id, older[0].person_id,
        "B follows the merge"
    );
    db.drop().await;
}

/// A Redis that goes away takes the layer's trust with it (its
/// invalidations could no longer arrive) and the layer comes back empty
/// when Redis does.
#[tokio::test]
async fn a_silent_channel_empties_the_layer_until_it_speaks_again() {
    let mut own = OwnRedis::start().await;
    let (cache, prefix) = cache_at(&own.url(), 50).await;
    layer_trusted(&cache).await;
    let layer = cache.local().expect("layer");
    let key = IdentifierKey::normalise("phone", "", "+8613800000001");
    cache
        .fill_many("t1", [(&key, uuid::Uuid::new_v4(), 1)])
        .await;
    let name = cache_key(&prefix, "t1", &key);
    assert!(layer.get(&name).is_some());

    own.kill();
    let mut waited = 0;
    while layer.trusted() {
        assert!(waited < 800, "the layer kept serving with its channel gone");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        waited += 1;
    }
    assert_eq!(layer.get(&name), None);
    own.restart().await;
    layer_trusted(&cache).await;
    assert_eq!(layer.get(&name), None, "trust returns with an empty layer");
}

/// An item the cache answers names where the same call's merges leave its person: the
/// anonymous id's person is merged into the card's person by the next item, and both items
/// answer with the card's person.
#[tokio::test]
async fn a_cached_answer_follows_the_merges_of_its_own_call() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let card = resolve(&api, "t1", vec![item(vec![id("member_card", "m-1")])]).await[0]
        .person_id
        .clone();
    let browser = resolve(&api, "t1", vec![item(vec![id("anonymous_id", "a-1")])]).await[0]
        .person_id
        .clone();
    assert_ne!(card, browser);
    let answers = resolve(
        &api,
        "t1",
        vec![
            item(vec![id("anonymous_id", "a-1")]),
            item(vec![id("anonymous_id", "a-1"), id("member_card", "m-1")]),
        ],
    )
    .await;
    assert_eq!(answers[1].person_id, card, "merged into the older person");
    assert_eq!(
        answers[0].person_id, card,
        "the cached answer follows the merge"
    );
    db.drop().await;
}

#[tokio::test]
async fn a_cache_never_answers_from_another_databases_entries() {
    // Two databases behind one configured prefix, as when a database is dropped and made
    // again while Redis keeps its entries.
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let config = local_config(&prefix);
    let (old, new) = (TestDb::new(2).await, TestDb::new(2).await);
    let cache_of = |db: &TestDb| {
        let pool = db.pool.clone();
        let config = config.clone();
        async move {
            IdentityCache::connect_to_store(&config, &pool)
                .await
                .expect("valid cache config")
                .expect("a cache when a url is set")
        }
    };
    let (old_cache, new_cache) = (cache_of(&old).await, cache_of(&new).await);
    assert_ne!(old_cache.prefix(), new_cache.prefix());
    assert!(old_cache.prefix().starts_with(&prefix));
    let again = cache_of(&old).await;
    assert_eq!(again.prefix(), old_cache.prefix(), "replicas share entries");

    let before = resolve(
        &IdentityApi::new(old.pool.clone(), Some(old_cache)),
        "t1",
        vec![item(vec![id("member_card", "m-42")])],
    )
    .await;
    let after = resolve(
        &IdentityApi::new(new.pool.clone(), Some(new_cache)),
        "t1",
        vec![item(vec![id("member_card", "m-42")])],
    )
    .await;
    assert_ne!(
        before[0].person_id, after[0].person_id,
        "the new database makes its own person, not the old one's"
    );
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.persons WHERE person_id::text = $1")
            .bind(&after[0].person_id)
            .fetch_one(&new.pool)
            .await
            .expect("count");
    assert_eq!(stored, 1, "the answer names a person of this database");
    old.drop().await;
    new.drop().await;
}
