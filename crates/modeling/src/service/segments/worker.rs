//! The membership worker: a loop that looks at every tenant with segments a few times a
//! second and publishes what changed (see `membership`), woken at once by a new or changed
//! segment, with model outputs in a loop of their own beside it; and the signals that let
//! change streams wait for a publication instead of polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use touchline_runtime::Shutdown;

use super::super::Modeling;
use super::membership::TenantMemory;
use crate::service::activation::ModelMemory;
use crate::store::segments as store;

/// How often the worker looks at each tenant when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);
/// How long changes are kept.
pub const KEEP_CHANGES: Duration = Duration::from_secs(30 * 86_400);
/// How often old changes are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
struct Signals {
    wake: Notify,
    deliveries: Notify,
    heads: Mutex<HashMap<String, watch::Sender<i64>>>,
}

/// Wakes the worker when a definition changes, and change streams when changes are
/// published (in this process; streams also look at the store every second for changes
/// published by another replica).
#[derive(Debug, Clone, Default)]
pub struct SegmentSignals {
    inner: Arc<Signals>,
}

impl SegmentSignals {
    /// A definition changed: evaluate now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    async fn woken(&self) {
        self.inner.wake.notified().await;
    }

    /// A webhook destination was created or resumed: start delivering now.
    pub fn wake_deliveries(&self) {
        self.inner.deliveries.notify_one();
    }

    /// Waits for [`SegmentSignals::wake_deliveries`].
    pub async fn deliveries_woken(&self) {
        self.inner.deliveries.notified().await;
    }

    fn sender(&self, tenant: &str) -> watch::Sender<i64> {
        let mut heads = self
            .inner
            .heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        heads
            .entry(tenant.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    /// The tenant's log reached `head`.
    pub fn published(&self, tenant: &str, head: i64) {
        self.sender(tenant).send_replace(head);
    }

    /// Follows the tenant's head.
    pub fn subscribe(&self, tenant: &str) -> watch::Receiver<i64> {
        self.sender(tenant).subscribe()
    }
}

/// Keeps every tenant's segments current.
#[derive(Debug, Clone)]
pub struct SegmentWorker {
    modeling: Modeling,
}

impl SegmentWorker {
    /// Publishes the model-output triggers of every tenant that has a webhook destination.
    async fn model_triggers(&self, models: &mut HashMap<String, ModelMemory>) {
        let tenants = match crate::store::activation::destination_tenants(&self.modeling.pool).await
        {
            Ok(tenants) => tenants,
            Err(err) => {
                tracing::warn!(error = %err, "activation tenants could not be read; retrying");
                return;
            }
        };
        models.retain(|tenant, _| tenants.contains(tenant));
        for tenant in tenants {
            let remembered = models.entry(tenant.clone()).or_default();
            match self
                .modeling
                .refresh_model_triggers(&tenant, remembered)
                .await
            {
                Ok(0) => {}
                Ok(published) => {
                    tracing::info!(
                        tenant,
                        triggers = published,
                        "model-output triggers published"
                    );
                }
                Err(err) => {
                    tracing::warn!(tenant, error = %err, "model outputs could not be compared; retrying");
                }
            }
        }
    }

    /// Keeps the churn scores of every tenant with stored persons current (see
    /// `refresh_churn_scores`), so score reads and lists answer from memory.
    async fn churn_scores(&self, scores: &mut HashMap<String, ModelMemory>) {
        let tenants = match crate::store::tenants_with_persons(&self.modeling.pool).await {
            Ok(tenants) => tenants,
            Err(err) => {
                tracing::warn!(error = %err, "tenants with events could not be read; retrying");
                return;
            }
        };
        scores.retain(|tenant, _| tenants.contains(tenant));
        for tenant in tenants {
            let remembered = scores.entry(tenant.clone()).or_default();
            if let Err(err) = self
                .modeling
                .refresh_churn_scores(&tenant, remembered)
                .await
            {
                tracing::warn!(tenant, error = %err, "churn scores could not be refreshed; retrying");
            }
        }
    }

    /// The worker of `modeling` (sharing its views, caches and signals).
    pub fn new(modeling: Modeling) -> Self {
        Self { modeling }
    }

    /// Model outputs (model-output triggers, churn scores) until `shutdown`, in a loop of
    /// their own: a look computes every person's outputs and can take a second on a large
    /// tenant, which segment rounds, due within a second of their events, must not wait for.
    async fn run_model_outputs(self, shutdown: Shutdown) {
        let mut models: HashMap<String, ModelMemory> = HashMap::new();
        let mut scores: HashMap<String, ModelMemory> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(TICK) => {}
            }
            self.model_triggers(&mut models).await;
            self.churn_scores(&mut scores).await;
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let outputs = tokio::spawn(self.clone().run_model_outputs(shutdown.clone()));
        let mut memory: HashMap<String, TenantMemory> = HashMap::new();
        let mut pruned_at: Option<Instant> = None;
        let signals = self.modeling.segment_signals.clone();
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = signals.woken() => {}
                () = tokio::time::sleep(TICK) => {}
            }
            let tenants = match store::tenants(&self.modeling.pool).await {
                Ok(tenants) => tenants,
                Err(err) => {
                    tracing::warn!(error = %err, "segment tenants could not be read; retrying");
                    continue;
                }
            };
            memory.retain(|tenant, _| tenants.contains(tenant));
            for tenant in tenants {
                let remembered = memory.entry(tenant.clone()).or_default();
                match self.modeling.refresh_segments(&tenant, remembered).await {
                    Ok(round) if round.published > 0 => {
                        tracing::info!(
                            tenant,
                            changes = round.published,
                            "segment changes published"
                        );
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(tenant, error = %err, "segments could not be brought up to date; retrying");
                    }
                }
            }
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(Instant::now());
                if let Err(err) = store::prune(&self.modeling.pool, KEEP_CHANGES).await {
                    tracing::warn!(error = %err, "old segment changes could not be pruned");
                }
                if let Err(err) =
                    crate::store::activation::prune_triggers(&self.modeling.pool, KEEP_CHANGES)
                        .await
                {
                    tracing::warn!(error = %err, "old triggers could not be pruned");
                }
            }
        }
        if let Err(err) = outputs.await {
            tracing::error!(error = %err, "the model-output loop ended abnormally");
        }
    }
}
