//! Token verification: algorithm pinning, key selection with bounded JWKS refetch, claims.
//!
//! The algorithm is never taken on the token's word: an RS256/ES256 token must name (by `kid`)
//! a key published for exactly that algorithm, and HS256 is verified only against the
//! configured development secret, never against a JWKS key, which rules out the classic
//! "HMAC with the RSA public key" confusion.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::claims::RawClaims;
use crate::error::from_jwt;
use crate::jwks::{HTTP_TIMEOUT, JwksSource, KeyEntry, KeySet};
use crate::{AuthConfig, AuthError, Principal};

/// HS256 secrets shorter than this are weak enough to deserve a warning at start.
const MIN_HS256_SECRET_BYTES: usize = 32;

/// Verifies bearer tokens into [`Principal`]s. Cheap to clone; clones share keys and state.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    hs256: Option<DecodingKey>,
    source: Option<JwksSource>,
    keys: RwLock<Arc<KeySet>>,
    http: reqwest::Client,
    cooldown: Duration,
    /// When the last unknown-`kid` refetch started; the lock also serialises refetches so a
    /// burst of such tokens causes one download, not one each.
    last_refetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field(
                "jwks_source",
                &self.inner.source.as_ref().map(JwksSource::describe),
            )
            .field("hs256_enabled", &self.inner.hs256.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Validates `config`, loads the JWKS once and returns a ready verifier.
    ///
    /// Fails when no key source is configured, when both a JWKS file and URL are given, when
    /// `allow_hs256` is set without a secret, or when the initial JWKS load fails.
    pub async fn from_config(config: &AuthConfig) -> Result<Self, AuthError> {
        let config_error = |reason: &str| AuthError::Config {
            reason: reason.to_owned(),
        };
        if config.issuer.trim().is_empty() {
            return Err(config_error("issuer must not be empty"));
        }
        if config.audience.trim().is_empty() {
            return Err(config_error("audience must not be empty"));
        }
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(_), Some(_)) => {
                return Err(config_error("set either jwks_file or jwks_url, not both"));
            }
            (Some(path), None) => Some(JwksSource::File(path.clone())),
            (None, Some(url)) => Some(JwksSource::url(url)?),
            (None, None) => None,
        };
        let hs256 = match (&config.hs256_secret, config.allow_hs256) {
            (Some(secret), true) => {
                let bytes = secret.expose_secret().as_bytes();
                if bytes.is_empty() {
                    return Err(config_error("hs256_secret must not be empty"));
                }
                if bytes.len() < MIN_HS256_SECRET_BYTES {
                    tracing::warn!(
                        min_bytes = MIN_HS256_SECRET_BYTES,
                        "hs256 secret is short; use it for development only"
                    );
                }
                tracing::warn!("hs256 tokens are accepted; this is meant for development");
                Some(DecodingKey::from_secret(bytes))
            }
            (None, true) => return Err(config_error("allow_hs256 is set but hs256_secret is not")),
            (Some(_), false) => {
                tracing::info!("hs256_secret is configured but allow_hs256 is false; ignoring it");
                None
            }
            (None, false) => None,
        };
        if source.is_none() && hs256.is_none() {
            return Err(config_error(
                "no verification keys: set jwks_file or jwks_url (or hs256 for development)",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|err| AuthError::Config {
                reason: format!("http client for jwks: {err}"),
            })?;
        let keys = match &source {
            Some(source) => {
                let set = source.load(&http).await?;
                tracing::info!(source = %source.describe(), keys = set.len(), "jwks loaded");
                set
            }
            None => KeySet::default(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                leeway_secs: config.leeway_secs,
                hs256,
                source,
                keys: RwLock::new(Arc::new(keys)),
                http,
                cooldown: Duration::from_secs(config.jwks_refetch_cooldown_secs),
                last_refetch: Mutex::new(None),
            }),
        })
    }

    /// Verifies `token` (the bare JWT, without `Bearer `) and returns its principal.
    ///
    /// Async because an unknown `kid` may trigger a JWKS refetch (at most once per cooldown).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|err| AuthError::MalformedToken {
                reason: format!("unreadable header: {err}"),
            })?;
        if header.crit.is_some() {
            // RFC 7515: extensions we do not understand must make the token invalid.
            return Err(AuthError::MalformedToken {
                reason: "critical header extensions are not supported".to_owned(),
            });
        }
        let data = match header.alg {
            Algorithm::HS256 => {
                let Some(secret) = &self.inner.hs256 else {
                    return Err(AuthError::AlgorithmNotAllowed {
                        alg: format!("{:?}", header.alg),
                    });
                };
                self.decode(token, secret, Algorithm::HS256)?
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let entry = self.key_for(header.kid.as_deref()).await?;
                if entry.alg != header.alg {
                    return Err(AuthError::AlgorithmMismatch {
                        token_alg: format!("{:?}", header.alg),
                        key_alg: format!("{:?}", entry.alg),
                    });
                }
                self.decode(token, &entry.key, entry.alg)?
            }
            other => {
                return Err(AuthError::AlgorithmNotAllowed {
                    alg: format!("{other:?}"),
                });
            }
        };
        data.into_principal()
    }

    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<RawClaims, AuthError> {
        let mut validation = Validation::new(alg);
        validation.leeway = self.inner.leeway_secs;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        jsonwebtoken::decode::<RawClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|err| from_jwt(&err))
    }

    /// Finds the key for `kid`, refetching the JWKS once if it is unknown and the cooldown
    /// allows.
    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<KeyEntry>, AuthError> {
        if let Some(entry) = self.inner.keys.read().await.find(kid) {
            return Ok(entry);
        }
        // A token without kid cannot be rescued by new keys; only named keys rotate in.
        if kid.is_some() {
            self.refetch_if_due().await;
            if let Some(entry) = self.inner.keys.read().await.find(kid) {
                return Ok(entry);
            }
        }
        Err(AuthError::UnknownKey {
            kid: kid.map(str::to_owned),
        })
    }

    /// Reloads the JWKS unless one was reloaded within the cooldown. The startup load does not
    /// count, so the first rotated key after start is picked up at once.
    async fn refetch_if_due(&self) {
        let Some(source) = &self.inner.source else {
            return;
        };
        let mut last = self.inner.last_refetch.lock().await;
        let now = Instant::now();
        if let Some(previous) = *last
            && now.duration_since(previous) < self.inner.cooldown
        {
            tracing::debug!("unknown kid within jwks refetch cooldown; not refetching");
            return;
        }
        *last = Some(now);
        match source.load(&self.inner.http).await {
            Ok(set) => {
                tracing::info!(source = %source.describe(), keys = set.len(), "jwks refetched");
                *self.inner.keys.write().await = Arc::new(set);
            }
            Err(err) => {
                tracing::warn!(error = %err, "jwks refetch failed; keeping previous keys");
            }
        }
    }
}
