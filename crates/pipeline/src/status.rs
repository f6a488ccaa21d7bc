//! Where each consumer of a log stands, per tenant: the head it last saw, the cursor it
//! committed, how long it has been behind, and its last error. Workers report into a
//! [`PipelineStatus`] their process shares; the status RPC, readiness and metrics read it.
//! Kept in memory: it describes this process's consumers now, and is rebuilt from the first
//! batch after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A consumer failing this long counts as stuck.
pub const STUCK_FAILING_FOR: Duration = Duration::from_secs(5);
/// A consumer behind the head and not moving this long counts as stuck.
pub const STUCK_STILL_FOR: Duration = Duration::from_secs(30);

/// The consumer-wide part: a session error is about all its tenants.
#[derive(Debug, Clone, Default)]
struct Session {
    last_error: Option<String>,
    failing_since: Option<SystemTime>,
}

#[derive(Debug, Clone)]
struct Position {
    head: i64,
    cursor: i64,
    behind_since: Option<SystemTime>,
    last_progress: SystemTime,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: BTreeMap<String, Session>,
    positions: BTreeMap<(String, String), Position>,
}

/// The shared status of a process's consumers; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PipelineStatus {
    inner: Arc<Mutex<Inner>>,
}

/// A consumer's state for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At the head.
    CaughtUp,
    /// Behind and moving.
    CatchingUp,
    /// Failing, or behind and still, past the bounds.
    Stuck,
}

/// One row of the status, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRow {
    /// The consumer.
    pub consumer: String,
    /// The tenant.
    pub tenant: String,
    /// Newest upstream sequence seen.
    pub head: i64,
    /// Committed cursor.
    pub cursor: i64,
    /// How long it has been behind.
    pub lag: Duration,
    /// When its cursor last moved.
    pub last_progress: SystemTime,
    /// Its session's last error.
    pub last_error: Option<String>,
    /// Since when its session has been failing.
    pub failing_since: Option<SystemTime>,
    /// Its state.
    pub state: State,
}

impl ConsumerRow {
    /// Events behind the head.
    pub fn lag_events(&self) -> i64 {
        (self.head - self.cursor).max(0)
    }
}

impl PipelineStatus {
    /// An empty status.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Option<T> {
        self.inner.lock().ok().map(|mut inner| f(&mut inner))
    }

    /// The consumer read a batch of `tenant` whose log head is `head`.
    pub fn saw_head(&self, consumer: &str, tenant: &str, head: i64) {
        let now = SystemTime::now();
        self.with(|inner| {
            let position = position(inner, consumer, tenant, now);
            position.head = position.head.max(head);
            if position.head > position.cursor && position.behind_since.is_none() {
                position.behind_since = Some(now);
            }
        });
    }

    /// The consumer committed its cursor for `tenant` at `cursor`.
    pub fn committed(&self, consumer: &str, tenant: &str, cursor: i64) {
        let now = SystemTime::now();
        self.with(|inner| {
            let position = position(inner, consumer, tenant, now);
            if cursor > position.cursor {
                position.cursor = cursor;
                position.last_progress = now;
            }
            position.head = position.head.max(cursor);
            if position.cursor >= position.head {
                position.behind_since = None;
            }
        });
    }

    /// The consumer's session failed with `error` (never personal data).
    pub fn failed(&self, consumer: &str, error: &str) {
        let now = SystemTime::now();
        self.with(|inner| {
            let session = inner.sessions.entry(consumer.to_owned()).or_default();
            session.last_error = Some(error.to_owned());
            session.failing_since.get_or_insert(now);
        });
    }

    /// The consumer's session works again (a batch went through, or a stream opened).
    pub fn recovered(&self, consumer: &str) {
        self.with(|inner| {
            if let Some(session) = inner.sessions.get_mut(consumer) {
                session.last_error = None;
                session.failing_since = None;
            }
        });
    }

    /// Every consumer and tenant, as of `now`, ordered by consumer then tenant. A consumer
    /// that has failed before seeing any tenant is reported with an empty tenant.
    pub fn rows(&self, now: SystemTime) -> Vec<ConsumerRow> {
        self.with(|inner| {
            let mut rows: Vec<ConsumerRow> = inner
                .positions
                .iter()
                .map(|((consumer, tenant), p)| {
                    let session = inner.sessions.get(consumer).cloned().unwrap_or_default();
                    row(consumer, tenant, p, &session, now)
                })
                .collect();
            for (consumer, session) in &inner.sessions {
                if !inner.positions.keys().any(|(c, _)| c == consumer)
                    && session.failing_since.is_some()
                {
                    let idle = Position {
                        head: 0,
                        cursor: 0,
                        behind_since: None,
                        last_progress: now,
                    };
                    rows.push(row(consumer, "", &idle, session, now));
                }
            }
            rows.sort_by(|a, b| (&a.consumer, &a.tenant).cmp(&(&b.consumer, &b.tenant)));
            rows
        })
        .unwrap_or_default()
    }

    /// Whether any consumer is stuck now.
    pub fn any_stuck(&self) -> bool {
        self.rows(SystemTime::now())
            .iter()
            .any(|r| r.state == State::Stuck)
    }
}

fn position<'a>(
    inner: &'a mut Inner,
    consumer: &str,
    tenant: &str,
    now: SystemTime,
) -> &'a mut Position {
    inner
        .positions
        .entry((consumer.to_owned(), tenant.to_owned()))
        .or_insert(Position {
            head: 0,
            cursor: 0,
            behind_since: None,
            last_progress: now,
        })
}

fn row(
    consumer: &str,
    tenant: &str,
    p: &Position,
    session: &Session,
    now: SystemTime,
) -> ConsumerRow {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let lag = p.behind_since.map(since).unwrap_or_default();
    let failing = session
        .failing_since
        .map(since)
        .is_some_and(|d| d >= STUCK_FAILING_FOR);
    let still =
        p.head > p.cursor && since(p.last_progress) >= STUCK_STILL_FOR && lag >= STUCK_STILL_FOR;
    let state = if failing || still {
        State::Stuck
    } else if p.head > p.cursor {
        State::CatchingUp
    } else {
        State::CaughtUp
    };
    ConsumerRow {
        consumer: consumer.to_owned(),
        tenant: tenant.to_owned(),
        head: p.head,
        cursor: p.cursor,
        lag,
        last_progress: p.last_progress,
        last_error: session.last_error.clone(),
        failing_since: session.failing_since,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_heads_and_commits() {
        let status = PipelineStatus::new();
        status.saw_head("c", "t", 10);
        let now = SystemTime::now();
        let rows = status.rows(now);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].lag_events(), 10);
        assert_eq!(rows[0].state, State::CatchingUp);
        status.committed("c", "t", 10);
        let rows = status.rows(SystemTime::now());
        assert_eq!(rows[0].lag_events(), 0);
        assert_eq!(rows[0].state, State::CaughtUp);
        assert_eq!(rows[0].lag, Duration::ZERO);
    }

    #[test]
    fn a_failing_session_turns_stuck_after_the_bound_and_clears() {
        let status = PipelineStatus::new();
        status.failed("c", "identity unavailable");
        let now = SystemTime::now();
        assert_eq!(
            status.rows(now)[0].state,
            State::CaughtUp,
            "not yet past the bound"
        );
        let later = now + STUCK_FAILING_FOR;
        let rows = status.rows(later);
        assert_eq!(rows[0].state, State::Stuck);
        assert_eq!(rows[0].last_error.as_deref(), Some("identity unavailable"));
        status.recovered("c");
        assert!(
            status.rows(later).is_empty(),
            "no tenant seen and no failure: nothing to say"
        );
    }

    #[test]
    fn behind_and_still_past_the_bound_is_stuck() {
        let status = PipelineStatus::new();
        status.saw_head("c", "t", 5);
        let later = SystemTime::now() + STUCK_STILL_FOR + Duration::from_secs(1);
        assert_eq!(status.rows(later)[0].state, State::Stuck);
    }
}
