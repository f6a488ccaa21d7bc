//! The Prometheus scrape endpoint: `GET /metrics` in the text exposition format over HTTP/1.1.
//!
//! Deliberately small: one route, no keep-alive beyond what a scraper needs, a bounded number of
//! connections, each with a read timeout and an overall deadline, and an exit on shutdown that
//! closes the listener and drops open connections (a scrape is cheap to repeat).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Encoder as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Connections served at once; further ones wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a single connection stays open, whatever it does.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// Largest request head accepted (hyper's minimum buffer size).
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// What a scrape reads: the Prometheus registry the meter provider's reader reports into.
///
/// Cheap to clone. The default is an empty registry, which serves no series.
#[derive(Clone, Default)]
pub struct MetricsHandle {
    registry: prometheus::Registry,
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle").finish_non_exhaustive()
    }
}

impl MetricsHandle {
    pub(crate) fn new(registry: prometheus::Registry) -> Self {
        Self { registry }
    }

    /// Collects every instrument now and renders it in the text exposition format.
    pub fn encode(&self) -> anyhow::Result<String> {
        let families = self.registry.gather();
        let mut buffer = Vec::with_capacity(16 * 1024);
        prometheus::TextEncoder::new().encode(&families, &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
///
/// Other paths answer 404 and other methods on `/metrics` 405. Bind the listener yourself
/// (port 0 in tests). Returns once the listener is closed; connections still open then are
/// dropped. Accept errors (such as running out of file descriptors) are logged and retried
/// after a short pause rather than ending the endpoint.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: MetricsHandle,
    shutdown: impl Future<Output = ()>,
) {
    let handle = Arc::new(handle);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let handle = Arc::clone(&handle);
                connections.spawn(async move {
                    serve_connection(stream, handle).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    connections.shutdown().await;
}

/// Answers the requests of one connection, within [`CONNECTION_DEADLINE`].
async fn serve_connection(stream: TcpStream, handle: Arc<MetricsHandle>) {
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = respond(&request, &handle);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "metrics connection ended with an error"),
        Err(_) => tracing::debug!("metrics connection closed at its deadline"),
    }
}

/// The response to one request; the request body is never read.
fn respond<B>(request: &Request<B>, handle: &MetricsHandle) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match handle.encode() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "encoding metrics failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
        }
    }
}

/// A short plain-text answer with `status`.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("valid request")
    }

    #[test]
    fn routes_answer_by_path_and_method() {
        let handle = MetricsHandle::default();
        let ok = respond(&request(Method::GET, "/metrics?x=1"), &handle);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4");
        let missing = respond(&request(Method::GET, "/"), &handle);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let post = respond(&request(Method::POST, "/metrics"), &handle);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
