//! The tower layer: status codes, allow-list, principal propagation, and a real tonic server.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Duration as ChronoDuration;
use http::{HeaderValue, Request, Response};
use tonic::Code;
use tonic::body::Body;
use touchline_auth::{AuthLayer, ScopePolicy, principal};
use tower::{Layer, ServiceExt, service_fn};

use crate::helpers::*;

const INGEST: &str = "/touchline.collection.v1.CollectionService/IngestEvents";
const ERASE: &str = "/touchline.governance.v1.GovernanceService/EraseSubject";
const SCOPES: &[(&str, &str)] = &[(INGEST, "events:write"), (ERASE, "subjects:erase")];

/// Outcome of one call through the layer.
struct Outcome {
    code: Code,
    message: String,
    /// Subject the inner service saw via `principal()`, `None` if the call was not forwarded
    /// or carried no principal.
    seen_subject: Option<String>,
}

/// Runs one request through `AuthLayer` over an inner service that reports what it saw.
async fn call(path: &str, authorization: Option<&str>) -> (Outcome, usize) {
    let forwarded = Arc::new(AtomicUsize::new(0));
    let inner = service_fn({
        let forwarded = Arc::clone(&forwarded);
        move |req: Request<Body>| {
            let forwarded = Arc::clone(&forwarded);
            async move {
                forwarded.fetch_add(1, Ordering::SeqCst);
                // Read the principal the way a handler does, through tonic's request type.
                let subject = principal(&tonic::Request::from_http(req))
                    .map(|p| format!("{}@{}", p.subject, p.tenant))
                    .unwrap_or_else(|_| "none".to_owned());
                let mut response = Response::new(Body::default());
                response
                    .headers_mut()
                    .insert("grpc-status", HeaderValue::from_static("0"));
                response.headers_mut().insert(
                    "x-seen-subject",
                    HeaderValue::from_str(&subject).expect("ascii"),
                );
                Ok::<_, Infallible>(response)
            }
        }
    });
    let layer = AuthLayer::new(
        file_verifier().await,
        ScopePolicy::new(SCOPES).expect("policy"),
    );
    let mut builder = Request::builder().uri(format!("http://localhost{path}"));
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    let request = builder.body(Body::default()).expect("request");
    let response = layer
        .layer(inner)
        .oneshot(request)
        .await
        .expect("infallible");
    let status = tonic::Status::from_header_map(response.headers());
    let code = status.as_ref().map_or(Code::Unknown, tonic::Status::code);
    let message = status.map(|s| s.message().to_owned()).unwrap_or_default();
    let seen_subject = response
        .headers()
        .get("x-seen-subject")
        .and_then(|v| v.to_str().ok())
        .filter(|s| *s != "none")
        .map(str::to_owned);
    (
        Outcome {
            code,
            message,
            seen_subject,
        },
        forwarded.load(Ordering::SeqCst),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn missing_token_is_unauthenticated_and_not_forwarded() {
    let (outcome, forwarded) = call(INGEST, None).await;
    assert_eq!(outcome.code, Code::Unauthenticated);
    assert_eq!(outcome.message, "missing bearer token");
    assert_eq!(forwarded, 0);
}

#[tokio::test]
async fn invalid_tokens_are_unauthenticated_with_general_messages() {
    let expired = rs256(RSA1_KID, &expired_claims(ChronoDuration::minutes(10)));
    let (outcome, forwarded) = call(INGEST, Some(&bearer(&expired))).await;
    assert_eq!(outcome.code, Code::Unauthenticated);
    assert_eq!(outcome.message, "token expired");
    assert_eq!(forwarded, 0);

    let unknown = rs256("secret-kid-name", &claims());
    let (outcome, _) = call(INGEST, Some(&bearer(&unknown))).await;
    assert_eq!(outcome.code, Code::Unauthenticated);
    assert!(
        !outcome.message.contains("secret-kid-name"),
        "{}",
        outcome.message
    );

    let (outcome, _) = call(INGEST, Some("Basic YWxpY2U6cHc=")).await;
    assert_eq!(outcome.code, Code::Unauthenticated);
}

#[tokio::test]
async fn unauthenticated_callers_cannot_tell_listed_from_unlisted_methods() {
    let (listed, _) = call(INGEST, None).await;
    let (unlisted, _) = call("/touchline.secret.v1.Hidden/Thing", None).await;
    assert_eq!(listed.code, Code::Unauthenticated);
    assert_eq!(unlisted.code, Code::Unauthenticated);
    assert_eq!(listed.message, unlisted.message);
}

#[tokio::test]
async fn missing_scope_is_permission_denied() {
    let token = es256(EC1_KID, &claims()); // has events:write, not subjects:erase
    let (outcome, forwarded) = call(ERASE, Some(&bearer(&token))).await;
    assert_eq!(outcome.code, Code::PermissionDenied);
    assert!(
        outcome.message.contains("subjects:erase"),
        "{}",
        outcome.message
    );
    assert_eq!(forwarded, 0);
}

#[tokio::test]
async fn unlisted_method_is_permission_denied() {
    let token = rs256(RSA1_KID, &claims());
    let (outcome, forwarded) = call(
        "/touchline.collection.v1.CollectionService/NotInTable",
        Some(&bearer(&token)),
    )
    .await;
    assert_eq!(outcome.code, Code::PermissionDenied);
    assert_eq!(outcome.message, "permission denied");
    assert_eq!(forwarded, 0);
}

#[tokio::test]
async fn valid_token_with_scope_passes_with_principal() {
    let token = rs256(RSA1_KID, &claims());
    let (outcome, forwarded) = call(INGEST, Some(&bearer(&token))).await;
    assert_eq!(outcome.code, Code::Ok);
    assert_eq!(forwarded, 1);
    assert_eq!(outcome.seen_subject.as_deref(), Some("alice@acme"));
}

#[tokio::test]
async fn health_and_reflection_pass_without_token() {
    for path in [
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        let (outcome, forwarded) = call(path, None).await;
        assert_eq!(outcome.code, Code::Ok, "{path}");
        assert_eq!(forwarded, 1, "{path}");
        assert_eq!(outcome.seen_subject, None, "{path}");
    }
}

#[tokio::test]
async fn layer_fits_a_real_tonic_server() {
    use tonic::transport::server::TcpIncoming;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let (_reporter, health) = tonic_health::server::health_reporter();
    let layer = AuthLayer::new(
        file_verifier().await,
        ScopePolicy::new(SCOPES).expect("policy"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    // The listener is bound already, so connecting cannot race the server start.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    // Health is allow-listed: no token needed.
    let reply = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    server.abort();
}
