//! Stopping a query whose caller is gone.
//!
//! tonic drops a call's future when the client cancels or its deadline passes, but a query
//! already running on the blocking pool would go on to the end. The call holds a
//! [`CancelOnDrop`]; dropping it raises the flag the query's scope reads before each person,
//! so the rest of the scan skips every person and the thread is free within moments.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag a running query reads.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Whether the query should stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// A guard that raises the flag when dropped (unless disarmed first).
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Some(self.clone()))
    }
}

/// Raises its flag when dropped: held by the call, dropped with it.
#[derive(Debug)]
pub struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    /// The call finished: dropping the guard no longer cancels.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_cancels_and_a_disarmed_one_does_not() {
        let cancel = Cancel::default();
        cancel.on_drop().disarm();
        assert!(!cancel.is_cancelled());
        drop(cancel.on_drop());
        assert!(cancel.is_cancelled());
    }
}
