//! Wakes log tailers promptly when a log grows.
//!
//! One `LISTEN` connection per process fans notifications out to any number
//! of waiting streams through `watch` channels, so a thousand open Tail calls
//! cost one database connection. A lost connection wakes everybody (they
//! re-read from their cursors), so a notification missed while reconnecting
//! can delay a tailer but never make it skip records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells the tailers of `channel` that `tenant`'s partition grew. Sent
/// inside the appending transaction, so PostgreSQL delivers it on commit
/// and never for a rolled-back append.
pub async fn wake_tailers(
    conn: &mut PgConnection,
    channel: &str,
    tenant: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// Fan-out of PostgreSQL notifications on a fixed set of channels.
#[derive(Clone)]
pub struct LogNotifier {
    channels: Arc<HashMap<String, watch::Sender<u64>>>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for LogNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogNotifier")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LogNotifier {
    /// Starts listening on `channels`. Fails when the first connection fails.
    pub async fn start(pool: &PgPool, channels: &[&str]) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all(channels.iter().copied()).await?;
        let senders: HashMap<String, watch::Sender<u64>> = channels
            .iter()
            .map(|name| ((*name).to_owned(), watch::channel(0u64).0))
            .collect();
        let senders = Arc::new(senders);
        let task = tokio::spawn(pump(listener, Arc::clone(&senders)));
        Ok(Self {
            channels: senders,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// A receiver that changes whenever `channel` is notified. Unknown
    /// channels yield a receiver that never changes.
    pub fn subscribe(&self, channel: &str) -> watch::Receiver<u64> {
        match self.channels.get(channel) {
            Some(sender) => sender.subscribe(),
            None => watch::channel(0).1,
        }
    }
}

async fn pump(mut listener: PgListener, senders: Arc<HashMap<String, watch::Sender<u64>>>) {
    let wake = |sender: &watch::Sender<u64>| sender.send_modify(|n| *n = n.wrapping_add(1));
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Some(sender) = senders.get(notification.channel()) {
                    wake(sender);
                }
            }
            // The connection dropped and will be re-established on the next
            // call; anything sent meanwhile is lost, so wake every tailer.
            Ok(None) => senders.values().for_each(wake),
            Err(err) => {
                tracing::warn!(error = %err, "log notification listener failed; retrying");
                senders.values().for_each(wake);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
