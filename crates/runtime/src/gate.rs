//! Fail fast while a dependency is down.
//!
//! A process whose services need PostgreSQL learns that the database stopped answering from a
//! watchdog (see `touchline_db::watchdog`), which flips a [`DependencyGate`]. While it is shut,
//! every call except health and reflection is answered at once with UNAVAILABLE and a retry
//! hint, instead of each waiting out the pool's acquire timeout; health reports NOT_SERVING so
//! load balancers route elsewhere. The gate opens again as soon as the database answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// A boxed, sendable call future.
type BoxedCall<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Whether the process's dependencies answer; cheap to clone, shared by the watchdog and the
/// layer.
#[derive(Debug, Clone, Default)]
pub struct DependencyGate {
    down: Arc<AtomicBool>,
}

impl DependencyGate {
    /// A gate that starts open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the dependency down (`true`) or back (`false`); returns whether that changed.
    pub fn set_down(&self, down: bool) -> bool {
        self.down.swap(down, Ordering::SeqCst) != down
    }

    /// Whether calls are being refused.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

/// How long a caller is told to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A layer answering some calls at once, before any handler or other layer runs: `check`
/// looks at the request's head and returns the refusal, if any. Used for the dependency gate
/// and the metadata limits.
#[derive(Clone)]
pub struct RefuseLayer<F> {
    check: F,
}

impl<F> std::fmt::Debug for RefuseLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefuseLayer").finish_non_exhaustive()
    }
}

impl<F> RefuseLayer<F>
where
    F: Fn(&http::request::Parts) -> Option<tonic::Status> + Clone,
{
    /// A layer refusing what `check` refuses.
    pub fn new(check: F) -> Self {
        Self { check }
    }
}

/// The layer refusing every call but health and reflection while `gate` is shut.
pub fn gate_layer(
    gate: DependencyGate,
) -> RefuseLayer<impl Fn(&http::request::Parts) -> Option<tonic::Status> + Clone> {
    RefuseLayer::new(move |head: &http::request::Parts| {
        (gate.is_down() && !always_served(head.uri.path())).then(unavailable)
    })
}

impl<S, F: Clone> tower::Layer<S> for RefuseLayer<F> {
    type Service = Refusing<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Refusing {
            inner,
            check: self.check.clone(),
        }
    }
}

/// A service behind a [`RefuseLayer`].
#[derive(Clone)]
pub struct Refusing<S, F> {
    inner: S,
    check: F,
}

impl<S, F> std::fmt::Debug for Refusing<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusing").finish_non_exhaustive()
    }
}

/// Whether a path is served whatever the dependencies say.
fn always_served(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// The answer while the database is down: UNAVAILABLE with a RetryInfo detail.
pub fn unavailable() -> tonic::Status {
    let details = tonic_types::ErrorDetails::with_retry_info(Some(RETRY_AFTER));
    <tonic::Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::Unavailable,
        "the database does not answer; retry shortly",
        details,
    )
}

impl<S, F, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Refusing<S, F>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    F: Fn(&http::request::Parts) -> Option<tonic::Status>,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxedCall<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let (head, body) = req.into_parts();
        if let Some(status) = (self.check)(&head) {
            let response = status.into_http::<ResBody>();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(http::Request::from_parts(head, body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_reports_changes_once() {
        let gate = DependencyGate::new();
        assert!(!gate.is_down());
        assert!(gate.set_down(true));
        assert!(!gate.set_down(true), "no change the second time");
        assert!(gate.is_down());
        assert!(gate.set_down(false));
    }

    #[test]
    fn the_refusal_carries_a_retry_hint() {
        let status = unavailable();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let details = tonic_types::StatusExt::get_error_details(&status);
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(RETRY_AFTER)
        );
    }

    #[test]
    fn health_and_reflection_pass_the_gate() {
        assert!(always_served("/grpc.health.v1.Health/Check"));
        assert!(always_served(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!always_served(
            "/touchline.collection.v1.CollectionService/IngestEvents"
        ));
    }
}
