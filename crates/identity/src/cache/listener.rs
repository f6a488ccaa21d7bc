//! Keeps every process's in-process layer in step with the others' moves.
//!
//! The relay's invalidation script publishes the tombstones it writes on
//! the prefix's channel, in the same script run, so a subscriber never
//! sees a tombstone Redis does not hold. A subscriber trusts its layer only
//! while it is subscribed and hears its own heartbeat, published through
//! the ordinary connection, back within [`SILENCE`]: a Redis that hangs
//! without closing the connection would otherwise leave the layer serving
//! owners whose invalidations cannot arrive. Whenever trust is lost the
//! layer is emptied, and it starts empty again when trust returns.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use tokio::time::Instant;

use super::local::{Entry, LocalLayer};

/// How often the subscriber publishes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// Silence on the channel after which the layer is distrusted: twenty
/// heartbeats. An overloaded machine delays heartbeats by seconds, and
/// every loss of trust empties the layer, so a short bound would cost the
/// layer exactly when it helps most; a hung Redis (which cannot take the
/// relay's tombstones either) is still noticed within seconds.
pub const SILENCE: Duration = Duration::from_secs(10);
/// Pause before subscribing again after a failure.
const RETRY: Duration = Duration::from_millis(500);
/// Bound on connecting and subscribing.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The message the invalidation script publishes: keys and, in the same
/// order, the versions their tombstones carry.
#[derive(Debug, Deserialize)]
struct Invalidation {
    keys: Vec<String>,
    versions: Vec<String>,
}

/// The channel the tombstones of keys under `prefix` are published on.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:identity:invalidations")
}

/// Applies a published message to `layer`; returns how many tombstones it
/// held (0 for heartbeats and anything unreadable).
pub fn apply(layer: &LocalLayer, payload: &[u8]) -> usize {
    let Ok(message) = serde_json::from_slice::<Invalidation>(payload) else {
        return 0;
    };
    let mut applied = 0;
    for (key, version) in message.keys.into_iter().zip(message.versions) {
        let Ok(version) = version.parse() else {
            // Cannot tell how new the move is: nothing held may be trusted.
            layer.distrust();
            return applied;
        };
        layer.offer(key, Entry::Tombstone { version });
        applied += 1;
    }
    applied
}

/// Subscribes for `layer` until it is dropped.
pub fn spawn(
    client: redis::Client,
    conn: ConnectionManager,
    prefix: &str,
    layer: &Arc<LocalLayer>,
) {
    let channel = channel(prefix);
    let heartbeat = format!("heartbeat:{}", uuid::Uuid::new_v4().simple());
    let layer = Arc::downgrade(layer);
    tokio::spawn(async move {
        loop {
            listen(&client, conn.clone(), &channel, &heartbeat, &layer).await;
            let Some(strong) = layer.upgrade() else {
                return;
            };
            strong.distrust();
            drop(strong);
            tokio::time::sleep(RETRY).await;
        }
    });
}

/// One subscription, until it fails, falls silent or the layer is dropped.
async fn listen(
    client: &redis::Client,
    mut conn: ConnectionManager,
    channel: &str,
    heartbeat: &str,
    layer: &Weak<LocalLayer>,
) {
    let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    })
    .await;
    let Ok(Ok(pubsub)) = subscribed else { return };
    let mut messages = pubsub.into_on_message();
    let mut ticker = tokio::time::interval(HEARTBEAT);
    let mut heard = Instant::now();
    let mut trusted = false;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return };
                let Some(layer) = layer.upgrade() else { return };
                heard = Instant::now();
                let payload = message.get_payload_bytes();
                if payload == heartbeat.as_bytes() {
                    // Our own heartbeat made the round trip: from here on
                    // every later invalidation reaches us.
                    if !trusted {
                        layer.trust();
                        trusted = true;
                    }
                } else {
                    apply(&layer, payload);
                }
            }
            _ = ticker.tick() => {
                if layer.strong_count() == 0 || heard.elapsed() > SILENCE {
                    return;
                }
                let mut publish = redis::cmd("PUBLISH");
                publish.arg(channel).arg(heartbeat);
                // A lost heartbeat shows as silence; nothing else to do.
                let _ = tokio::time::timeout(HEARTBEAT, publish.query_async::<i64>(&mut conn)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_tombstones_reach_the_layer_and_heartbeats_do_not() {
        let layer = LocalLayer::new(100, Duration::from_secs(60));
        layer.trust();
        let person = uuid::Uuid::from_u128(7);
        layer.offer("a".to_owned(), Entry::Live { person, version: 1 });
        assert_eq!(apply(&layer, b"heartbeat:x"), 0);
        assert_eq!(layer.get("a"), Some(Entry::Live { person, version: 1 }));
        let message = br#"{"keys":["a","b"],"versions":["2","5"]}"#;
        assert_eq!(apply(&layer, message), 2);
        assert_eq!(layer.get("a"), Some(Entry::Tombstone { version: 2 }));
        assert_eq!(layer.get("b"), Some(Entry::Tombstone { version: 5 }));
        // An unreadable version empties the layer rather than guessing.
        apply(&layer, br#"{"keys":["a"],"versions":["x"]}"#);
        assert!(!layer.trusted());
    }
}
