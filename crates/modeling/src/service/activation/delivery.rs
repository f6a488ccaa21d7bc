//! The delivery worker: one task per delivering destination, so a slow or dead endpoint
//! holds up only its own queue. A task keeps its destination's frozen batches in memory (id
//! and body fixed before the first attempt, so every retry is the same message) and sends
//! those `dispatch` says may go, up to the destination's `max_concurrency` at once and at
//! most its rate. Each answer goes to the ledger writer (see `ledger`), which writes the
//! attempts of many deliveries in one transaction; a batch leaves memory only once its
//! delivery is written. Every short while, and at once when new triggers arrive while the
//! queue runs low, the task reads its destination and batches again (seeing a deletion,
//! resume, replay or rotation) and freezes the next batches ahead. The work is I/O on the
//! async runtime; model runs use the blocking pool, so the two never wait for the same
//! threads.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use touchline_runtime::Shutdown;

use super::super::Modeling;
use super::endpoint::EndpointTask;
use super::ledger::Ledger;
use crate::store::activation as store;

/// How often the set of delivering destinations is read again.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// How long the ledger writer may take to write what is queued at shutdown.
const LEDGER_DRAIN: Duration = Duration::from_secs(5);

/// Pushes every destination's triggers.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    modeling: Modeling,
}

impl DeliveryWorker {
    /// The worker of `modeling`.
    pub fn new(modeling: Modeling) -> Self {
        Self { modeling }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let sender = match self.modeling.webhooks.sender() {
            Ok(sender) => sender,
            Err(err) => {
                tracing::error!(error = %err, "webhook delivery cannot start");
                return;
            }
        };
        let (ledger, writer) = Ledger::start(self.modeling.pool.clone());
        let mut tasks: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = self.modeling.segment_signals.deliveries_woken() => {}
                () = tokio::time::sleep(SUPERVISE_EVERY) => {}
            }
            let delivering = match store::delivering(&self.modeling.pool).await {
                Ok(list) => list,
                Err(err) => {
                    tracing::warn!(error = %err, "webhook destinations could not be read; retrying");
                    continue;
                }
            };
            tasks.retain(|_, task| !task.is_finished());
            for key in delivering {
                tasks.entry(key.clone()).or_insert_with(|| {
                    let task = EndpointTask {
                        modeling: self.modeling.clone(),
                        sender: sender.clone(),
                        ledger: ledger.clone(),
                        tenant: key.0,
                        id: key.1,
                    };
                    tokio::spawn(task.run(shutdown.clone()))
                });
            }
        }
        for (_, task) in tasks {
            task.abort();
            let _ = task.await;
        }
        // The attempts already made are written down, so a restart does not send them again.
        drop(ledger);
        if tokio::time::timeout(LEDGER_DRAIN, writer).await.is_err() {
            tracing::warn!("webhook attempts still queued at shutdown are sent again after it");
        }
    }
}
