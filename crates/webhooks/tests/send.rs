//! The sender against small scripted HTTP servers on loopback: what it sends, and what it
//! makes of each kind of answer, or of no answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use touchline_webhooks::signature::{self, DEFAULT_TOLERANCE};
use touchline_webhooks::{
    AddressClass, AddressPolicy, AddressRejection, Outcome, SendError, Sender, SenderConfig,
    SigningSecret,
};

/// A request as the scripted server read it.
#[derive(Debug)]
struct Received {
    request_line: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A server on 127.0.0.1 that answers every request with `response` (raw HTTP) after
/// `delay`, reports each request it read, and counts connections.
struct ScriptedServer {
    address: SocketAddr,
    requests: mpsc::UnboundedReceiver<Received>,
    connections: Arc<AtomicUsize>,
}

impl ScriptedServer {
    async fn start(response: &str, delay: Duration) -> Self {
        let response: Arc<str> = response.into();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("a bound address");
        let (report, requests) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let report = report.clone();
                let response = Arc::clone(&response);
                tokio::spawn(async move {
                    answer(stream, &response, delay, report).await;
                });
            }
        });
        Self {
            address,
            requests,
            connections,
        }
    }

    fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/hooks/orders", self.address.port())
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn answer(
    mut stream: TcpStream,
    response: &str,
    delay: Duration,
    report: mpsc::UnboundedSender<Received>,
) {
    let Some(received) = read_request(&mut stream).await else {
        return;
    };
    let _ = report.send(received);
    tokio::time::sleep(delay).await;
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Received {
        request_line,
        headers,
        body,
    })
}

const NO_CONTENT: &str = "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
const BODY: &str = r#"{"type":"order.paid","data":{"order":"o-1"}}"#;
const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

fn local_sender() -> Sender {
    Sender::new(SenderConfig {
        policy: AddressPolicy::LOCAL,
        ..SenderConfig::default()
    })
    .expect("the client builds")
}

fn secret() -> SigningSecret {
    SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret")
}

async fn send(sender: &Sender, url: &str) -> Result<Outcome, SendError> {
    sender
        .send(url, ID, Bytes::from_static(BODY.as_bytes()), &[&secret()])
        .await
}

#[tokio::test]
async fn a_delivery_is_a_signed_json_post() {
    let mut server = ScriptedServer::start(NO_CONTENT, Duration::ZERO).await;
    let outcome = send(&local_sender(), &server.url("127.0.0.1"))
        .await
        .expect("the URL is allowed");
    assert!(
        matches!(outcome, Outcome::Delivered { status: 204, .. }),
        "{outcome:?}"
    );

    let received = server.requests.recv().await.expect("one request");
    assert_eq!(received.request_line, "POST /hooks/orders HTTP/1.1");
    assert_eq!(received.body, BODY.as_bytes());
    let header = |name: &str| {
        received
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("webhook-id"), ID);
    assert!(header("user-agent").starts_with("touchline-webhooks/"));
    assert_eq!(
        signature::verify(
            &secret(),
            &received.headers,
            &received.body,
            SystemTime::now(),
            DEFAULT_TOLERANCE
        ),
        Ok(())
    );
}

#[tokio::test]
async fn gone_disables_and_errors_retry_with_their_retry_after() {
    let gone = ScriptedServer::start(
        "HTTP/1.1 410 Gone\r\ncontent-length: 0\r\n\r\n",
        Duration::ZERO,
    )
    .await;
    let busy = ScriptedServer::start(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 120\r\ncontent-length: 0\r\n\r\n",
        Duration::ZERO,
    )
    .await;
    let limited = ScriptedServer::start(
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: Fri, 31 Dec 1999 23:59:59 GMT\r\ncontent-length: 0\r\n\r\n",
        Duration::ZERO,
    )
    .await;
    let sender = local_sender();

    let outcome = send(&sender, &gone.url("127.0.0.1"))
        .await
        .expect("allowed");
    assert!(matches!(outcome, Outcome::Gone { .. }), "{outcome:?}");

    let outcome = send(&sender, &busy.url("127.0.0.1"))
        .await
        .expect("allowed");
    let Outcome::Retry {
        status,
        retry_after,
        error,
        ..
    } = outcome
    else {
        panic!("503 retries: {outcome:?}");
    };
    assert_eq!(
        (status, retry_after, error.as_str()),
        (Some(503), Some(Duration::from_secs(120)), "answered 503")
    );

    // A date in the past asks for no wait at all.
    let outcome = send(&sender, &limited.url("127.0.0.1"))
        .await
        .expect("allowed");
    assert!(
        matches!(
            outcome,
            Outcome::Retry {
                status: Some(429),
                retry_after: Some(Duration::ZERO),
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let target = ScriptedServer::start(NO_CONTENT, Duration::ZERO).await;
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {}\r\ncontent-length: 0\r\n\r\n",
        target.url("127.0.0.1")
    );
    let redirecting = ScriptedServer::start(&redirect, Duration::ZERO).await;

    let outcome = send(&local_sender(), &redirecting.url("127.0.0.1"))
        .await
        .expect("allowed");
    let Outcome::Retry { status, error, .. } = outcome else {
        panic!("a redirect retries: {outcome:?}");
    };
    assert_eq!(status, Some(307));
    assert!(error.contains("redirects are not followed"), "{error}");
    assert_eq!(target.connections(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let slow = ScriptedServer::start(NO_CONTENT, Duration::from_secs(5)).await;
    let sender = Sender::new(SenderConfig {
        timeout: Duration::from_millis(300),
        policy: AddressPolicy::LOCAL,
        ..SenderConfig::default()
    })
    .expect("the client builds");

    let outcome = send(&sender, &slow.url("127.0.0.1"))
        .await
        .expect("allowed");
    let Outcome::Retry {
        status,
        error,
        elapsed,
        ..
    } = outcome
    else {
        panic!("a timeout retries: {outcome:?}");
    };
    assert_eq!(status, None);
    assert_eq!(error, "no response within 0.3s");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn nobody_listening_is_a_refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("a bound address").port();
    drop(listener);

    let outcome = send(&local_sender(), &format!("http://127.0.0.1:{port}/"))
        .await
        .expect("allowed");
    assert!(
        matches!(&outcome, Outcome::Retry { status: None, error, .. } if error == "connection refused"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_plain_http_server_behind_an_https_url_fails_the_handshake() {
    // Answers in plain HTTP as soon as a connection opens, whatever the client says.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("a bound address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(NO_CONTENT.as_bytes()).await;
        }
    });

    let outcome = send(&local_sender(), &format!("https://127.0.0.1:{port}/"))
        .await
        .expect("allowed");
    assert!(
        matches!(&outcome, Outcome::Retry { status: None, error, .. } if error == "the TLS handshake failed"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn names_are_resolved_through_the_policy_at_connect_time() {
    let server = ScriptedServer::start(NO_CONTENT, Duration::ZERO).await;

    // Allowed: localhost resolves to loopback, which the local policy permits.
    let outcome = send(&local_sender(), &server.url("localhost"))
        .await
        .expect("allowed");
    assert!(
        matches!(outcome, Outcome::Delivered { status: 204, .. }),
        "{outcome:?}"
    );
    assert_eq!(server.connections(), 1);

    // Refused by the resolver: the URL itself passes (a name, plain http allowed), but the
    // name resolves to loopback, so no connection is made.
    let public_only = Sender::new(SenderConfig {
        policy: AddressPolicy {
            allow_plain_http: true,
            ..AddressPolicy::STRICT
        },
        ..SenderConfig::default()
    })
    .expect("the client builds");
    let outcome = send(&public_only, &server.url("localhost"))
        .await
        .expect("the URL passes; the address is refused when connecting");
    assert!(
        matches!(
            &outcome,
            Outcome::Retry { status: None, error, .. }
                if error == "the host resolves to a loopback address, which is not allowed"
        ),
        "{outcome:?}"
    );
    assert_eq!(
        server.connections(),
        1,
        "a refused address was connected to"
    );
}

#[tokio::test]
async fn refused_urls_and_unusable_messages_send_nothing() {
    let server = ScriptedServer::start(NO_CONTENT, Duration::ZERO).await;
    let strict = Sender::new(SenderConfig::default()).expect("the client builds");

    let refused = send(&strict, &server.url("127.0.0.1")).await;
    assert!(
        matches!(
            refused,
            Err(SendError::Address(AddressRejection::PlainHttp))
        ),
        "{refused:?}"
    );
    let https = format!("https://127.0.0.1:{}/", server.address.port());
    let refused = send(&strict, &https).await;
    assert!(
        matches!(
            refused,
            Err(SendError::Address(AddressRejection::NonPublicAddress {
                class: AddressClass::Loopback,
                ..
            }))
        ),
        "{refused:?}"
    );
    let refused = send(&strict, "https://[::ffff:169.254.169.254]/").await;
    assert!(
        matches!(
            refused,
            Err(SendError::Address(AddressRejection::NonPublicAddress {
                class: AddressClass::LinkLocal,
                ..
            }))
        ),
        "{refused:?}"
    );

    let local = local_sender();
    let url = server.url("127.0.0.1");
    let body = Bytes::from_static(BODY.as_bytes());
    let bad_id = local.send(&url, "msg.1", body.clone(), &[&secret()]).await;
    assert!(
        matches!(bad_id, Err(SendError::InvalidMessageId { .. })),
        "{bad_id:?}"
    );
    let no_secret = local.send(&url, ID, body, &[]).await;
    assert!(
        matches!(no_secret, Err(SendError::NoSecrets)),
        "{no_secret:?}"
    );

    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn every_attempt_carries_a_fresh_timestamp() {
    let mut server = ScriptedServer::start(NO_CONTENT, Duration::ZERO).await;
    let sender = local_sender();
    let before = SystemTime::now();
    send(&sender, &server.url("127.0.0.1"))
        .await
        .expect("allowed");
    let received = server.requests.recv().await.expect("one request");
    let stamped: u64 = received
        .headers
        .get("webhook-timestamp")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a numeric timestamp");
    let before_secs = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    assert!(
        stamped >= before_secs && stamped <= before_secs + 5,
        "{stamped} vs {before_secs}"
    );
}
