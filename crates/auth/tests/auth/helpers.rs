//! Shared fixtures: the committed test-only keys, claim builders and verifiers over them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration as ChronoDuration, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use touchline_auth::{AuthConfig, SigningAlgorithm, TokenClaims, Verifier, mint_with_pem};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "touchline-test";

pub const RSA1_PEM: &[u8] = include_bytes!("../fixtures/test-only-rsa-1.key.pem");
pub const RSA2_PEM: &[u8] = include_bytes!("../fixtures/test-only-rsa-2.key.pem");
pub const EC1_PEM: &[u8] = include_bytes!("../fixtures/test-only-ec-p256-1.key.pem");
pub const JWKS: &str = include_str!("../fixtures/test-only-jwks.json");
pub const JWKS_ROTATED: &str = include_str!("../fixtures/test-only-jwks-rotated.json");

pub const RSA1_KID: &str = "test-rsa-1";
pub const RSA2_KID: &str = "test-rsa-2";
pub const EC1_KID: &str = "test-ec-1";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Claims the test verifiers accept, valid for an hour from now.
pub fn claims() -> TokenClaims {
    TokenClaims::new(ISSUER, AUDIENCE, "alice", "acme")
        .with_scopes(["events:write", "reports:read"])
        .with_roles(["analyst"])
}

/// Claims whose `exp` lies `ago` in the past.
pub fn expired_claims(ago: ChronoDuration) -> TokenClaims {
    let mut c = claims().with_ttl(std::time::Duration::from_secs(3600));
    c.issued_at = Some(Utc::now() - ChronoDuration::hours(1) - ago);
    c
}

pub fn rs256(kid: &str, claims: &TokenClaims) -> String {
    mint_with_pem(SigningAlgorithm::Rs256, RSA1_PEM, Some(kid), claims).expect("mint rs256")
}

pub fn es256(kid: &str, claims: &TokenClaims) -> String {
    mint_with_pem(SigningAlgorithm::Es256, EC1_PEM, Some(kid), claims).expect("mint es256")
}

/// Signs an arbitrary JSON payload, for payloads the typed minting API refuses to build.
pub fn rs256_raw(kid: &str, payload: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA1_PEM).expect("rsa key");
    jsonwebtoken::encode(&header, payload, &key).expect("encode")
}

pub fn file_config() -> AuthConfig {
    AuthConfig {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        jwks_file: Some(fixture("test-only-jwks.json")),
        ..AuthConfig::default()
    }
}

pub async fn file_verifier() -> Verifier {
    Verifier::from_config(&file_config())
        .await
        .expect("verifier over fixture jwks")
}

/// A minimal HTTP/1.1 server answering every request with the current JWKS document and
/// counting requests, so tests can see exactly when the verifier fetches.
pub struct JwksServer {
    pub url: String,
    document: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(document: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let document = Arc::new(Mutex::new(document.to_owned()));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let document = Arc::clone(&document);
            let hits = Arc::clone(&hits);
            async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    // Read the request head; the verifier sends no body.
                    let mut head = Vec::new();
                    let mut buf = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = document.lock().await.clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                        body.len(),
                        body
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            }
        });
        Self {
            url: format!("http://{addr}/.well-known/jwks.json"),
            document,
            hits,
            task,
        }
    }

    pub async fn serve(&self, document: &str) {
        *self.document.lock().await = document.to_owned();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
