//! Per tenant turns: one tenant's clean-log batches are resolved one after another, in log
//! order, while batches of different tenants resolve at once.

/// Per tenant, the order in which its batches may be resolved: a ticket is taken when a batch
/// is read (in log order), and a batch resolves only once every earlier ticket is done.
#[derive(Debug, Default)]
pub(crate) struct TenantTurns {
    tenants: std::sync::Mutex<std::collections::HashMap<String, TenantQueue>>,
}

#[derive(Debug)]
struct TenantQueue {
    next_ticket: u64,
    done: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

/// One batch's place in its tenant's queue.
#[derive(Debug)]
pub(crate) struct Turn {
    ticket: u64,
    done: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl TenantTurns {
    pub(crate) fn take(&self, tenant: &str) -> Turn {
        let mut tenants = match self.tenants.lock() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        };
        let queue = tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantQueue {
                next_ticket: 0,
                done: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            });
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        Turn {
            ticket,
            done: queue.done.clone(),
        }
    }
}

impl Turn {
    /// Waits until every earlier batch of the tenant is resolved.
    pub(crate) async fn wait(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|finished| *finished >= self.ticket).await;
    }

    /// Lets the next batch of the tenant go.
    pub(crate) fn done(&self) {
        self.done
            .send_modify(|finished| *finished = (*finished).max(self.ticket + 1));
    }
}
