//! A webhook receiver inside the demo process: a small HTTP/1.1 server on a loopback port
//! that checks each delivery's Standard Webhooks signature with the destination's secret,
//! answers 204 (or 401 when the signature does not verify) and hands what it received to the
//! demo, which prints it.
//! 演示进程内的 Webhook 接收端：校验每次推送的签名，并把收到的内容交给演示打印。

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use touchline_runtime::Shutdown;
use touchline_webhooks::SigningSecret;
use touchline_webhooks::signature::{self, VerifyError};

/// The path deliveries are posted to.
const PATH: &str = "/hooks";
/// Largest body read (a batch of 1,000 triggers is far smaller).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long a sender may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One trigger as the delivery's JSON carries it (the contract's JSON mapping).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Trigger {
    /// Decimal, as 64-bit integers are in the JSON mapping.
    pub sequence: String,
    /// `TRIGGER_TYPE_SEGMENT_ENTERED`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `tenants/{tenant}/persons/{person}`.
    pub person: String,
    /// The person id.
    pub person_id: String,
    /// `tenants/{tenant}/segments/{segment}`.
    pub segment: String,
    /// `SEGMENT_CHANGE_REASON_…`.
    pub segment_change_reason: String,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Body {
    triggers: Vec<Trigger>,
}

/// One delivery as it arrived.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The `webhook-id` header (the same on every attempt of a batch).
    pub id: String,
    /// Whether the signature verified under the destination's secret.
    pub verified: Result<(), VerifyError>,
    /// The triggers of the body.
    pub triggers: Vec<Trigger>,
    /// Why the body could not be read as `{"triggers": [...]}`, when it could not.
    pub unreadable: Option<String>,
}

/// A running receiver: where to send deliveries and what has arrived.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// `http://127.0.0.1:{port}/hooks`.
    pub url: String,
    /// Deliveries in the order they arrived.
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

/// Starts a receiver on a free loopback port, verifying with `secret`, until `shutdown`.
pub(crate) async fn start(secret: SigningSecret, shutdown: Shutdown) -> anyhow::Result<Receiver> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let url = format!("http://{}{PATH}", listener.local_addr()?);
    let (sender, deliveries) = mpsc::unbounded_channel();
    tokio::spawn(accept(listener, Arc::new(secret), sender, shutdown));
    Ok(Receiver { url, deliveries })
}

async fn accept(
    listener: TcpListener,
    secret: Arc<SigningSecret>,
    sender: mpsc::UnboundedSender<Delivery>,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, Arc::clone(&secret), sender.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "the demo's webhook receiver could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers the requests of one connection (the sender keeps it open between deliveries).
async fn serve(
    stream: TcpStream,
    secret: Arc<SigningSecret>,
    sender: mpsc::UnboundedSender<Delivery>,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let secret = Arc::clone(&secret);
        let sender = sender.clone();
        async move { Ok::<_, Infallible>(receive(request, &secret, &sender).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "a webhook connection to the demo's receiver ended with an error");
    }
}

fn answer(status: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}

/// Reads, verifies and passes on one delivery.
async fn receive(
    request: Request<Incoming>,
    secret: &SigningSecret,
    sender: &mpsc::UnboundedSender<Delivery>,
) -> Response<Empty<Bytes>> {
    if request.uri().path() != PATH {
        return answer(StatusCode::NOT_FOUND);
    }
    if request.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED);
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let body = body.to_bytes();
    let verified = signature::verify(
        secret,
        &parts.headers,
        &body,
        SystemTime::now(),
        signature::DEFAULT_TOLERANCE,
    );
    let status = if verified.is_ok() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    };
    let (triggers, unreadable) = match serde_json::from_slice::<Body>(&body) {
        Ok(parsed) => (parsed.triggers, None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    let id = parts
        .headers
        .get(signature::WEBHOOK_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    // Passed on before answering, so a batch the sender counts as delivered has been seen.
    // Nobody may be listening any more once the demo has ended; the answer is the same.
    let _ = sender.send(Delivery {
        id,
        verified,
        triggers,
        unreadable,
    });
    answer(status)
}
