//! The client side of the log pipeline: a stage that tails an upstream log
//! and commits its output together with the cursor it consumed.
//!
//! A session opens the Tail stream from the cursors in the stage's own
//! database and processes batches until the stream breaks; the loop here
//! reopens it with capped exponential backoff, forever, until shutdown. A
//! crash between processing and commit only means the batch is read again,
//! and every write is idempotent, so the effect is exactly once.

use std::future::Future;
use std::time::Duration;

use touchline_runtime::Shutdown;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `session` again and again until shutdown. A session that returns
/// `Ok` ended normally (the stream closed) and is reopened at once; one that
/// fails is retried after a growing pause.
pub async fn run<F, Fut, E>(
    name: &'static str,
    shutdown: Shutdown,
    status: &crate::status::PipelineStatus,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_triggered() {
        let outcome = tokio::select! {
            outcome = session() => outcome,
            () = shutdown.wait() => break,
        };
        match outcome {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(err) => {
                let error = err.to_string();
                status.failed(name, truncated(&error));
                tracing::warn!(consumer = name, error = %error, retry_in_ms = backoff.as_millis() as u64, "pipeline consumer session failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::info!(consumer = name, "pipeline consumer stopped");
}

/// An error as the status shows it: at most 500 bytes, cut at a character boundary.
fn truncated(error: &str) -> &str {
    let mut end = error.len().min(500);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}
