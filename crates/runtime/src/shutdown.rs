//! One shutdown signal for a whole process.
//!
//! The first SIGINT/SIGTERM starts the orderly sequence (health NOT_SERVING,
//! stop accepting, drain under a deadline, flush telemetry); a second one
//! exits at once, for the operator who does not want to wait.

use tokio_util::sync::CancellationToken;

/// A cloneable handle every server, stream and worker watches.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown sequence.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// A child handle: triggered with this one, or on its own.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
        }
    }

    /// Triggers on the first SIGINT or SIGTERM; exits the process on the second.
    pub fn on_signals(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; a second signal exits immediately");
            shutdown.trigger();
            wait_for_signal().await;
            tracing::warn!("second signal; exiting now");
            std::process::exit(130);
        });
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
