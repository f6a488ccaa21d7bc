//! Signed webhook delivery, following Standard Webhooks 1.0.
//!
//! The crate knows nothing of gRPC, SQL or the rest of touchline. A caller holds an endpoint
//! URL, a message (id and JSON body) and the endpoint's secrets; this crate signs the message,
//! decides whether the URL may be called, makes the attempt and says what came of it and when
//! to try again.
//!
//! - [`secret`]: the `whsec_…` signing secret.
//! - [`signature`]: signing and verifying the `webhook-*` headers.
//! - [`schedule`]: which answers count as delivered, and the retry schedule.
//! - [`address`]: which URLs and addresses may be called.
//! - [`send`]: the HTTP attempt itself.

pub mod address;
pub mod schedule;
pub mod secret;
pub mod send;
pub mod signature;
#[cfg(feature = "testing")]
pub mod testing;

pub use address::{AddressClass, AddressPolicy, AddressRejection};
pub use schedule::{Disposition, Jitter, RetrySchedule};
pub use secret::{SecretError, SigningSecret};
pub use send::{Outcome, SendError, Sender, SenderConfig};
pub use signature::VerifyError;
