//! Posting a signed delivery to an endpoint.
//!
//! One [`Sender`] serves every endpoint: it keeps a pool of connections per host and applies
//! the same rules to each request.
//!
//! - The body goes out as `application/json` with the three Standard Webhooks headers,
//!   stamped with the time of this attempt (the specification's replay protection expects a
//!   fresh timestamp on every retry).
//! - Every address is checked against the [`AddressPolicy`] when the connection is made, not
//!   only when the endpoint was registered (see [`crate::address`]).
//! - Redirects are never followed: a 3xx is a failed attempt. Following one would send the
//!   payload to a URL nobody validated, and a public endpoint redirecting to
//!   `http://169.254.169.254/` is the classic way around an address check.
//! - Proxies from the environment are ignored, since a proxy would resolve the name itself
//!   and the address check would never see the real address.
//! - The answer's body is not read: only its status and `Retry-After` matter, and a receiver
//!   must not be able to make us download an arbitrary amount of data.

mod outcome;
mod resolver;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::redirect;

pub use outcome::Outcome;
use resolver::PolicyResolver;

use crate::address::{AddressPolicy, AddressRejection};
use crate::schedule::parse_retry_after;
use crate::secret::SigningSecret;
use crate::signature::{self, unix_seconds};

/// The specification recommends 15 to 30 seconds; the low end keeps a slow receiver from
/// holding a delivery worker for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How a [`Sender`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// The whole attempt, from connecting to the answer's headers.
    pub timeout: Duration,
    /// Which addresses may be connected to.
    pub policy: AddressPolicy,
    /// Sent as `user-agent`, so receivers can tell our deliveries apart in their logs.
    pub user_agent: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            policy: AddressPolicy::STRICT,
            user_agent: concat!("touchline-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Why nothing was sent. Each of these is a problem with the endpoint or the message, not
/// with the receiver, so retrying the same delivery cannot help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the endpoint URL is refused: {0}")]
    Address(#[from] AddressRejection),
    #[error("the message id {id:?} {problem}")]
    InvalidMessageId { id: String, problem: &'static str },
    #[error("a delivery needs at least one signing secret")]
    NoSecrets,
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// Sends deliveries; cheap to clone, and meant to be shared.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: AddressPolicy,
    timeout: Duration,
}

impl Sender {
    pub fn new(config: SenderConfig) -> Result<Self, SendError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .https_only(!config.policy.allow_plain_http)
            .dns_resolver(Arc::new(PolicyResolver {
                policy: config.policy,
            }))
            .user_agent(config.user_agent)
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(SendError::Client)?;
        Ok(Self {
            client,
            policy: config.policy,
            timeout: config.timeout,
        })
    }

    /// Makes one attempt to deliver message `id` with `body` to `url`, signed with every one
    /// of `secrets` (the current secret, and the previous one while a rotation overlaps).
    ///
    /// An `Err` means nothing was sent because the URL or the message is unusable; every
    /// attempt that was made, whatever became of it, is an [`Outcome`].
    pub async fn send(
        &self,
        url: &str,
        id: &str,
        body: Bytes,
        secrets: &[&SigningSecret],
    ) -> Result<Outcome, SendError> {
        // Hosts written as IP addresses never reach the resolver, so the literal is checked
        // here, on every attempt, like resolved names are.
        let url = self.policy.check_url(url)?;
        check_message_id(id)?;
        if secrets.is_empty() {
            return Err(SendError::NoSecrets);
        }

        let timestamp = unix_seconds(SystemTime::now());
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in signature::headers(id, timestamp, &body, secrets) {
            request = request.header(name, value);
        }

        let started = Instant::now();
        let answer = request.body(body).send().await;
        let elapsed = started.elapsed();
        Ok(match answer {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, SystemTime::now()));
                Outcome::from_status(response.status().as_u16(), retry_after, elapsed)
            }
            Err(failure) => Outcome::from_failure(&failure, self.timeout, elapsed),
        })
    }
}

/// The id is signed as text ahead of a `.`, so a `.` inside it would make two different
/// (id, timestamp) pairs sign the same content; and it travels as a header, so it must be
/// visible ASCII.
fn check_message_id(id: &str) -> Result<(), SendError> {
    let problem = if id.is_empty() {
        Some("is empty")
    } else if id.contains('.') {
        Some("contains '.'")
    } else if !id.bytes().all(|byte| byte.is_ascii_graphic()) {
        Some("is not visible ASCII")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SendError::InvalidMessageId {
            id: id.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_visible_ascii_without_dots() {
        assert!(check_message_id("msg_p5jXN8AQM9LWM0D4loKWxJek").is_ok());
        assert!(check_message_id("01890a5d-ac96-774b-bcce-b302099a8057").is_ok());
        for id in ["", "msg.1", "msg 1", "msg\n1", "msg_é"] {
            assert!(
                matches!(
                    check_message_id(id),
                    Err(SendError::InvalidMessageId { .. })
                ),
                "{id:?}"
            );
        }
    }
}
