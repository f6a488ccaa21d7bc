//! Read your writes: a read that names a raw-log position waits until the event store reflects
//! every event collection acknowledged up to it.
//!
//! Two steps, each polled with a short growing pause: governance says when it has cleaned
//! everything up to the position and which clean record was then its newest; the store
//! reflects the position once its cursor reaches that record. Both are cheap indexed reads, and
//! the pauses stay short (at most 100 ms) because a caller waiting here is usually a person or
//! a test right after a write.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::error::ModelingError;
use crate::store;
use crate::upstream::Governance;

/// How long a read waits for its position before answering UNAVAILABLE. A caller's shorter
/// deadline ends the wait first, with DEADLINE_EXCEEDED.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Kept back from the caller's deadline, so the answer reaches it in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(100);

/// When a wait gives up, and what it says then.
#[derive(Debug, Clone, Copy)]
struct Bound {
    until: Instant,
    /// Whether `until` is the caller's deadline rather than [`MAX_WAIT`].
    callers: bool,
    raw: i64,
}

impl Bound {
    fn new(raw: i64, deadline: Option<Duration>) -> Self {
        let now = Instant::now();
        match deadline {
            Some(left) if left < MAX_WAIT => Bound {
                until: now + left.saturating_sub(DEADLINE_MARGIN),
                callers: true,
                raw,
            },
            _ => Bound {
                until: now + MAX_WAIT,
                callers: false,
                raw,
            },
        }
    }

    fn expired(self) -> ModelingError {
        if self.callers {
            ModelingError::DeadlineExceeded { wanted: self.raw }
        } else {
            ModelingError::NotYetVisible { wanted: self.raw }
        }
    }
}

/// Waits until the tenant's store reflects `raw` and returns the clean-log position it then
/// reflects; `deadline` is what is left of the caller's.
pub async fn wait_until_reflected(
    pool: &PgPool,
    governance: &Governance,
    tenant: &str,
    raw: i64,
    deadline: Option<Duration>,
) -> Result<i64, ModelingError> {
    let bound = Bound::new(raw, deadline);
    let mut pause = FIRST_PAUSE;
    let target = loop {
        let position = governance
            .clean_position(tenant, raw)
            .await
            .map_err(|status| ModelingError::upstream("governance", &status))?;
        if position.cleaned {
            break position.clean_head;
        }
        pause = rest(pause, bound).await?;
    };
    loop {
        let cursor = store::cursor(pool, crate::CLEAN_LOG_CONSUMER, tenant).await?;
        if cursor >= target {
            return Ok(cursor);
        }
        pause = rest(pause, bound).await?;
    }
}

/// Sleeps `pause` unless that passes the bound; returns the next, longer pause.
async fn rest(pause: Duration, bound: Bound) -> Result<Duration, ModelingError> {
    if Instant::now() + pause > bound.until {
        return Err(bound.expired());
    }
    tokio::time::sleep(pause).await;
    Ok((pause * 2).min(LONGEST_PAUSE))
}
