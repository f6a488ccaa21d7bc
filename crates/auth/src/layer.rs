//! The tower layer that guards every RPC of a tonic server.
//!
//! Order of checks: allow-listed health/reflection paths pass untouched; otherwise the bearer
//! token is verified (UNAUTHENTICATED on failure) and only then is the path looked up in the
//! scope table (PERMISSION_DENIED when unlisted or the scope is missing). Verifying first means
//! an anonymous caller learns nothing about which methods exist.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use tower::{Layer, Service};

use crate::{AuthError, Principal, ScopePolicy, Verifier};

/// Path prefixes served without a token: probes and tooling must work before credentials exist.
pub const ALLOW_LISTED_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Whether `path` is served without authentication.
pub fn is_allow_listed(path: &str) -> bool {
    ALLOW_LISTED_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// Extracts the JWT from the request's `authorization: Bearer <jwt>` header.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        // Two credentials are ambiguous; picking one could let the wrong one through.
        return Err(AuthError::MalformedToken {
            reason: "more than one authorization header".to_owned(),
        });
    }
    let malformed = |reason: &str| AuthError::MalformedToken {
        reason: reason.to_owned(),
    };
    let value = value
        .to_str()
        .map_err(|_| malformed("authorization header is not ascii"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| malformed("authorization header is not a bearer credential"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("authorization scheme is not bearer"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(malformed("empty bearer token"));
    }
    Ok(token)
}

/// Tower layer wrapping a tonic server's services with [`AuthService`].
#[derive(Debug, Clone)]
pub struct AuthLayer {
    verifier: Verifier,
    policy: Arc<ScopePolicy>,
}

impl AuthLayer {
    /// A layer verifying with `verifier` and authorising with `policy`.
    pub fn new(verifier: Verifier, policy: ScopePolicy) -> Self {
        Self {
            verifier,
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            policy: Arc::clone(&self.policy),
        }
    }
}

/// Service produced by [`AuthLayer`]; see the module docs for the checks it makes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Verifier,
    policy: Arc<ScopePolicy>,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is not necessarily ready; keep the instance poll_ready was called on.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            if is_allow_listed(&path) {
                return inner.call(req).await;
            }
            match authorise(&verifier, &policy, req.headers(), &path).await {
                Ok(principal) => {
                    // Acting for every tenant is an explicit grant, and each use of it is
                    // written to the audit trail (target `touchline::audit`).
                    if principal.is_platform() {
                        tracing::info!(
                            target: "touchline::audit",
                            subject = %principal.subject,
                            path = %path,
                            "platform account call"
                        );
                    }
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(err) => {
                    tracing::info!(
                        path = %path,
                        code = ?err.code(),
                        reason = %err,
                        "request refused by auth"
                    );
                    Ok(err.to_status().into_http())
                }
            }
        })
    }
}

async fn authorise(
    verifier: &Verifier,
    policy: &ScopePolicy,
    headers: &http::HeaderMap,
    path: &str,
) -> Result<Principal, AuthError> {
    let token = bearer_token(headers)?;
    let principal = verifier.verify(token).await?;
    policy.authorise(&principal, path)?;
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&'static str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn bearer_parsing() {
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(AuthError::MissingToken)
        ));
        assert_eq!(
            bearer_token(&headers(&["Bearer a.b.c"])).ok(),
            Some("a.b.c")
        );
        assert_eq!(
            bearer_token(&headers(&["bearer  a.b.c "])).ok(),
            Some("a.b.c")
        );
        for bad in [
            &["Basic dXNlcg=="][..],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a", "Bearer b"],
        ] {
            assert!(
                matches!(
                    bearer_token(&headers(bad)),
                    Err(AuthError::MalformedToken { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn allow_list_covers_health_and_both_reflection_versions_only() {
        assert!(is_allow_listed("/grpc.health.v1.Health/Check"));
        assert!(is_allow_listed("/grpc.health.v1.Health/Watch"));
        assert!(is_allow_listed(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(is_allow_listed(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_allow_listed("/grpc.health.v1.HealthX/Check"));
        assert!(!is_allow_listed(
            "/touchline.collection.v1.CollectionService/IngestEvents"
        ));
    }
}
