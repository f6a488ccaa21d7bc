//! What one delivery attempt came to, in terms the delivery worker acts on and the tenant may
//! read.
//!
//! Error texts are shown to tenants in their delivery log, so they say what happened at the
//! level the tenant can act on ("answered 500", "no response within 15s") and never carry our
//! internal details: no resolved addresses, no library error chains, no local ports.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use crate::address::AddressRejection;
use crate::schedule::{Disposition, disposition};

/// The result of one attempt, with how long it took (from sending the request to the answer's
/// headers, or to the failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered { status: u16, elapsed: Duration },
    /// The attempt failed; the schedule decides whether and when to try again.
    Retry {
        /// The receiver's status, when it answered at all.
        status: Option<u16>,
        /// What the receiver's `Retry-After` asked for, when it sent one that parses.
        retry_after: Option<Duration>,
        /// A short description, safe to show the tenant.
        error: String,
        elapsed: Duration,
    },
    /// The receiver answered 410 Gone: it wants no more deliveries.
    Gone { elapsed: Duration },
}

impl Outcome {
    /// How long the attempt took.
    pub fn elapsed(&self) -> Duration {
        match self {
            Self::Delivered { elapsed, .. }
            | Self::Retry { elapsed, .. }
            | Self::Gone { elapsed } => *elapsed,
        }
    }

    /// What the attempt means for the delivery and its endpoint.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Delivered { .. } => Disposition::Delivered,
            Self::Retry { .. } => Disposition::Retry,
            Self::Gone { .. } => Disposition::Disable,
        }
    }

    /// The outcome of an answer with `status`.
    pub(crate) fn from_status(
        status: u16,
        retry_after: Option<Duration>,
        elapsed: Duration,
    ) -> Self {
        match disposition(status) {
            Disposition::Delivered => Self::Delivered { status, elapsed },
            Disposition::Disable => Self::Gone { elapsed },
            Disposition::Retry => Self::Retry {
                status: Some(status),
                retry_after,
                error: status_error(status),
                elapsed,
            },
        }
    }

    /// The outcome of a request that got no answer.
    pub(crate) fn from_failure(
        failure: &reqwest::Error,
        timeout: Duration,
        elapsed: Duration,
    ) -> Self {
        Self::Retry {
            status: None,
            retry_after: None,
            error: failure_error(failure, timeout),
            elapsed,
        }
    }
}

fn status_error(status: u16) -> String {
    if (300..400).contains(&status) {
        // Following a redirect would send the delivery to an address nobody checked; the
        // tenant should register the final URL instead.
        format!("answered {status}; redirects are not followed, register the final URL")
    } else {
        format!("answered {status}")
    }
}

fn failure_error(failure: &reqwest::Error, timeout: Duration) -> String {
    if failure.is_timeout() {
        return format!("no response within {}s", timeout.as_secs_f64());
    }
    for cause in causes(failure) {
        if let Some(rejection) = cause.downcast_ref::<AddressRejection>() {
            return rejection_error(rejection);
        }
        if let Some(text) = cause.downcast_ref::<io::Error>().and_then(io_error_text) {
            return text.to_owned();
        }
    }
    if failure.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed before a response arrived".to_owned()
    }
}

fn rejection_error(rejection: &AddressRejection) -> String {
    match rejection {
        AddressRejection::ResolvesToNonPublic { class, .. } => {
            format!("the host resolves to {class}, which is not allowed")
        }
        AddressRejection::Unresolvable { .. } | AddressRejection::NoAddresses { .. } => {
            "the host name could not be resolved".to_owned()
        }
        other => format!("address refused ({})", other.code()),
    }
}

/// The first I/O error kind we can name, looking through I/O errors wrapped in I/O errors
/// (the connector wraps the TLS layer's error that way, and `io::Error::source` skips the
/// wrapped error itself).
fn io_error_text(error: &io::Error) -> Option<&'static str> {
    std::iter::successors(Some(error), |current| {
        current.get_ref()?.downcast_ref::<io::Error>()
    })
    .find_map(|current| io_kind_text(current.kind()))
}

fn io_kind_text(kind: io::ErrorKind) -> Option<&'static str> {
    match kind {
        io::ErrorKind::ConnectionRefused => Some("connection refused"),
        io::ErrorKind::ConnectionReset => Some("connection reset"),
        io::ErrorKind::ConnectionAborted => Some("connection aborted"),
        io::ErrorKind::TimedOut => Some("connection timed out"),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            Some("host unreachable")
        }
        // The TLS layer reports handshake failures (bad certificate, not TLS at all) as
        // invalid data.
        io::ErrorKind::InvalidData => Some("the TLS handshake failed"),
        io::ErrorKind::UnexpectedEof => Some("the connection closed before a response"),
        _ => None,
    }
}

/// `error` and every error it was caused by.
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&current| current.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(12);

    #[test]
    fn statuses_map_to_the_three_outcomes() {
        assert_eq!(
            Outcome::from_status(204, None, MS),
            Outcome::Delivered {
                status: 204,
                elapsed: MS
            }
        );
        assert_eq!(
            Outcome::from_status(410, None, MS),
            Outcome::Gone { elapsed: MS }
        );
        assert_eq!(
            Outcome::from_status(503, Some(Duration::from_secs(30)), MS),
            Outcome::Retry {
                status: Some(503),
                retry_after: Some(Duration::from_secs(30)),
                error: "answered 503".to_owned(),
                elapsed: MS
            }
        );
    }

    #[test]
    fn a_redirect_says_it_was_not_followed() {
        let Outcome::Retry { error, .. } = Outcome::from_status(301, None, MS) else {
            panic!("a redirect is a failed attempt");
        };
        assert!(error.contains("not followed"), "{error}");
    }

    #[test]
    fn every_outcome_knows_its_elapsed_time_and_disposition() {
        let outcomes = [
            Outcome::from_status(200, None, MS),
            Outcome::from_status(410, None, MS),
            Outcome::from_status(500, None, MS),
        ];
        let dispositions: Vec<_> = outcomes.iter().map(Outcome::disposition).collect();
        assert_eq!(
            dispositions,
            [
                Disposition::Delivered,
                Disposition::Disable,
                Disposition::Retry
            ]
        );
        assert!(outcomes.iter().all(|outcome| outcome.elapsed() == MS));
    }
}
