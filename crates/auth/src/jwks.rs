//! Loading a JWKS from a file or URL into keys pinned to one algorithm each.
//!
//! Only RS256 (RSA keys) and ES256 (P-256 keys) are kept. A key's algorithm comes from its
//! `alg` member, or from its type when `alg` is absent; a JWK advertising any other algorithm,
//! or marked for encryption, is skipped so that it can never verify a token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::AuthError;

/// Largest JWKS document accepted; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Bound on one JWKS download so a hung identity provider cannot stall verification forever.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One verification key and the only algorithm it may verify.
pub(crate) struct KeyEntry {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The usable keys of one JWKS snapshot.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<KeyEntry>>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the RS256/ES256 signing keys.
    pub(crate) fn parse(document: &[u8]) -> Result<Self, AuthError> {
        // Parse members one by one so that one exotic key does not make the whole set unusable.
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document =
            serde_json::from_slice(document).map_err(|err| AuthError::InvalidJwks {
                reason: format!("not a jwks document: {err}"),
            })?;
        let mut keys: Vec<Arc<KeyEntry>> = Vec::with_capacity(doc.keys.len());
        for (index, value) in doc.keys.into_iter().enumerate() {
            let jwk: Jwk = match serde_json::from_value(value) {
                Ok(jwk) => jwk,
                Err(err) => {
                    tracing::warn!(index, error = %err, "skipping unparsable jwk");
                    continue;
                }
            };
            let Some(entry) = entry_for(&jwk) else {
                tracing::debug!(index, kid = ?jwk.common.key_id, "skipping jwk not usable for rs256/es256");
                continue;
            };
            if entry.kid.is_some() && keys.iter().any(|k| k.kid == entry.kid) {
                tracing::warn!(kid = ?entry.kid, "skipping jwk with duplicate kid");
                continue;
            }
            keys.push(Arc::new(entry));
        }
        if keys.is_empty() {
            return Err(AuthError::InvalidJwks {
                reason: "no rs256 or es256 signing key in the set".to_owned(),
            });
        }
        Ok(Self { keys })
    }

    /// The key a token with this `kid` must verify against.
    ///
    /// A token without `kid` is accepted only when the set holds a single key, since
    /// otherwise picking one would be guesswork.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<Arc<KeyEntry>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned(),
            None => match self.keys.as_slice() {
                [only] => Some(Arc::clone(only)),
                _ => None,
            },
        }
    }

    /// Number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

fn entry_for(jwk: &Jwk) -> Option<KeyEntry> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match declared {
            None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(_) => return None,
        },
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            match declared {
                None | Some(KeyAlgorithm::ES256) => Algorithm::ES256,
                Some(_) => return None,
            }
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// Where the JWKS comes from.
#[derive(Debug, Clone)]
pub(crate) enum JwksSource {
    /// Re-read from disk on every (re)load.
    File(PathBuf),
    /// Downloaded on every (re)load.
    Url(reqwest::Url),
}

impl JwksSource {
    /// Validates a configured URL: only http and https are meaningful here.
    pub(crate) fn url(raw: &str) -> Result<Self, AuthError> {
        let url = reqwest::Url::parse(raw).map_err(|err| AuthError::Config {
            reason: format!("jwks_url is not a url: {err}"),
        })?;
        match url.scheme() {
            "http" | "https" => Ok(Self::Url(url)),
            other => Err(AuthError::Config {
                reason: format!("jwks_url scheme {other} is not http or https"),
            }),
        }
    }

    /// Human-readable origin for logs and errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            // Strip any credentials or query a URL might carry before it reaches a log line.
            Self::Url(url) => {
                let mut shown = url.clone();
                let _ = shown.set_username("");
                let _ = shown.set_password(None);
                shown.set_query(None);
                shown.to_string()
            }
        }
    }

    /// Reads and parses the current key set.
    pub(crate) async fn load(&self, http: &reqwest::Client) -> Result<KeySet, AuthError> {
        let fetch_error = |reason: String| AuthError::JwksFetch {
            source_name: self.describe(),
            reason,
        };
        let bytes = match self {
            Self::File(path) => tokio::fs::read(path)
                .await
                .map_err(|err| fetch_error(err.to_string()))?,
            Self::Url(url) => {
                let mut response = http
                    .get(url.clone())
                    .header(http::header::ACCEPT, "application/json")
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|err| fetch_error(err.without_url().to_string()))?;
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|err| fetch_error(err.without_url().to_string()))?
                {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(fetch_error(format!(
                            "document larger than {MAX_JWKS_BYTES} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                body
            }
        };
        KeySet::parse(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = include_str!("../tests/fixtures/test-only-jwks.json");

    #[test]
    fn fixture_set_yields_one_rsa_and_one_ec_key() {
        let set = KeySet::parse(JWKS.as_bytes()).expect("parse");
        assert_eq!(set.len(), 2);
        let rsa = set.find(Some("test-rsa-1")).expect("rsa key");
        assert_eq!(rsa.alg, Algorithm::RS256);
        let ec = set.find(Some("test-ec-1")).expect("ec key");
        assert_eq!(ec.alg, Algorithm::ES256);
        assert!(set.find(Some("nope")).is_none());
        // Two keys: a kid-less token cannot pick one.
        assert!(set.find(None).is_none());
    }

    #[test]
    fn keys_for_other_algorithms_or_uses_are_skipped() {
        let mut doc: serde_json::Value = serde_json::from_str(JWKS).expect("json");
        let keys = doc["keys"].as_array_mut().expect("keys");
        keys[0]["alg"] = "PS256".into();
        keys[1]["use"] = "enc".into();
        keys.push(serde_json::json!({"kty":"oct","kid":"hmac","k":"c2VjcmV0"}));
        let err = KeySet::parse(doc.to_string().as_bytes())
            .err()
            .expect("no usable key left");
        assert!(matches!(err, AuthError::InvalidJwks { .. }));
    }

    #[test]
    fn alg_is_inferred_from_key_type_and_single_key_serves_kidless_tokens() {
        let mut doc: serde_json::Value = serde_json::from_str(JWKS).expect("json");
        let keys = doc["keys"].as_array_mut().expect("keys");
        keys.truncate(1);
        let rsa = keys[0].as_object_mut().expect("object");
        rsa.remove("alg");
        rsa.remove("kid");
        let set = KeySet::parse(doc.to_string().as_bytes()).expect("parse");
        assert_eq!(set.find(None).expect("sole key").alg, Algorithm::RS256);
    }

    #[test]
    fn garbage_is_invalid_jwks() {
        assert!(matches!(
            KeySet::parse(b"not json"),
            Err(AuthError::InvalidJwks { .. })
        ));
    }

    #[test]
    fn only_http_urls_are_sources() {
        assert!(JwksSource::url("https://idp.example/jwks.json").is_ok());
        assert!(matches!(
            JwksSource::url("file:///etc/jwks.json"),
            Err(AuthError::Config { .. })
        ));
        let shown = JwksSource::url("https://user:pw@idp.example/jwks?token=x")
            .expect("url")
            .describe();
        assert!(!shown.contains("pw") && !shown.contains("token"));
    }
}
