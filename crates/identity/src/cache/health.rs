//! Failure bookkeeping shared by all clones of a cache: when to stand aside, and how often
//! to say so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{COOL_DOWN, FAILURES_BEFORE_COOL_DOWN, WARN_EVERY};

/// Failure bookkeeping shared by all clones of a cache.
pub(super) struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` until which the cache stands aside.
    cool_until_ms: AtomicU64,
    /// Milliseconds since `epoch` of the last warning, plus one (0 = never).
    last_warn_ms: AtomicU64,
    /// Failures not warned about since the last warning.
    suppressed: AtomicU64,
    /// Failures since the last success.
    in_a_row: AtomicU64,
}

impl Health {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            cool_until_ms: AtomicU64::new(0),
            last_warn_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            in_a_row: AtomicU64::new(0),
        }
    }

    pub(super) fn succeeded(&self) {
        if self.in_a_row.load(Ordering::Relaxed) != 0 {
            self.in_a_row.store(0, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn cooling_down(&self) -> bool {
        self.now_ms() < self.cool_until_ms.load(Ordering::Relaxed)
    }

    pub(super) fn failed(&self, operation: &'static str, error: &str) {
        let now = self.now_ms();
        let cool_down = u64::try_from(COOL_DOWN.as_millis()).unwrap_or(u64::MAX);
        if self.in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_BEFORE_COOL_DOWN {
            self.cool_until_ms
                .store(now.saturating_add(cool_down), Ordering::Relaxed);
        }
        let warn_every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_add(1).saturating_sub(last) >= warn_every;
        // Only the caller that wins the swap warns; the others count.
        if due
            && self
                .last_warn_ms
                .compare_exchange(
                    last,
                    now.saturating_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                operation,
                error,
                suppressed,
                cool_down_ms = cool_down,
                "redis call failed; serving from postgresql"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_start_a_cool_down_and_warnings_are_spaced() {
        let health = Health::new();
        assert!(!health.cooling_down());
        // One slow reply, then a success: no cool-down.
        health.failed("mget", "timed out");
        health.succeeded();
        health.failed("mget", "timed out");
        assert!(!health.cooling_down());
        health.failed("mget", "timed out");
        assert!(!health.cooling_down());
        health.failed("mget", "timed out");
        assert!(health.cooling_down());
        assert_eq!(health.suppressed.load(Ordering::Relaxed), 3);
    }
}
