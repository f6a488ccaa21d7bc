//! Minting tokens: HS256 for the development `touchline token` command, RS256/ES256 from a PEM
//! private key for tests and tooling that stand in for an identity provider.
//!
//! Minted tokens carry exactly the claims the verifier reads: `iss`, `aud`, `sub`, `tenant`,
//! `iat`, `exp`, optional `nbf`, `roles` (omitted when empty) and `scope` as one
//! space-separated string (omitted when empty).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::AuthError;

/// Lifetime used by [`TokenClaims::new`].
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What to put in a minted token.
///
/// `exp` is `issued_at + ttl`; `issued_at` defaults to now. Setting `issued_at` in the past
/// yields an already expired token, which tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `iss`.
    pub issuer: String,
    /// `aud` (a single audience).
    pub audience: String,
    /// `sub`.
    pub subject: String,
    /// `tenant`.
    pub tenant: String,
    /// `roles`.
    pub roles: Vec<String>,
    /// Written as the space-separated `scope` claim; entries must not contain whitespace.
    pub scopes: BTreeSet<String>,
    /// Time from `issued_at` to `exp`.
    pub ttl: Duration,
    /// `iat`; `None` means the moment of minting.
    pub issued_at: Option<DateTime<Utc>>,
    /// `nbf`, if any.
    pub not_before: Option<DateTime<Utc>>,
}

impl TokenClaims {
    /// Claims with no roles or scopes, issued now, valid for [`DEFAULT_TOKEN_TTL`].
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        subject: impl Into<String>,
        tenant: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            subject: subject.into(),
            tenant: tenant.into(),
            roles: Vec::new(),
            scopes: BTreeSet::new(),
            ttl: DEFAULT_TOKEN_TTL,
            issued_at: None,
            not_before: None,
        }
    }

    /// Adds scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Adds roles.
    #[must_use]
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Replaces the lifetime.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn to_wire(&self) -> Result<WireClaims<'_>, AuthError> {
        let signing_error = |reason: String| AuthError::Signing { reason };
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(signing_error(format!(
                "scope {bad:?} is empty or contains whitespace"
            )));
        }
        let iat = self.issued_at.unwrap_or_else(Utc::now).timestamp();
        let ttl = i64::try_from(self.ttl.as_secs())
            .map_err(|_| signing_error("ttl too large".to_owned()))?;
        let exp = iat
            .checked_add(ttl)
            .ok_or_else(|| signing_error("ttl too large".to_owned()))?;
        let scope = self
            .scopes
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(WireClaims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &self.subject,
            tenant: &self.tenant,
            roles: &self.roles,
            scope,
            iat,
            exp,
            nbf: self.not_before.map(|t| t.timestamp()),
        })
    }
}

#[derive(Serialize)]
struct WireClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    tenant: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

/// Asymmetric algorithms a token can be minted with from a PEM key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the PEM is an RSA private key (PKCS#1 or PKCS#8).
    Rs256,
    /// ECDSA P-256 with SHA-256; the PEM is a PKCS#8 EC private key.
    Es256,
}

/// Mints an HS256 token signed with `secret` (development only; verifiers reject HS256 unless
/// configured with the same secret and `allow_hs256`).
pub fn mint_hs256(secret: &[u8], claims: &TokenClaims) -> Result<String, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::Signing {
            reason: "hs256 secret is empty".to_owned(),
        });
    }
    encode(
        Header::new(Algorithm::HS256),
        &EncodingKey::from_secret(secret),
        claims,
    )
}

/// Mints an RS256 or ES256 token with a PEM private key, naming `kid` in the header so a
/// JWKS-backed verifier can select the matching public key.
pub fn mint_with_pem(
    alg: SigningAlgorithm,
    private_key_pem: &[u8],
    kid: Option<&str>,
    claims: &TokenClaims,
) -> Result<String, AuthError> {
    let key_error = |err: jsonwebtoken::errors::Error| AuthError::Signing {
        reason: format!("unusable private key: {err}"),
    };
    let (alg, key) = match alg {
        SigningAlgorithm::Rs256 => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(private_key_pem).map_err(key_error)?,
        ),
        SigningAlgorithm::Es256 => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(private_key_pem).map_err(key_error)?,
        ),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(header, &key, claims)
}

fn encode(header: Header, key: &EncodingKey, claims: &TokenClaims) -> Result<String, AuthError> {
    jsonwebtoken::encode(&header, &claims.to_wire()?, key).map_err(|err| AuthError::Signing {
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::dangerous::insecure_decode;

    #[test]
    fn hs256_token_carries_the_documented_claims() {
        let claims = TokenClaims::new("iss", "aud", "alice", "acme")
            .with_scopes(["b:read", "a:write"])
            .with_roles(["admin"])
            .with_ttl(Duration::from_secs(120));
        let token = mint_hs256(b"dev-secret", &claims).expect("mint");
        let data = insecure_decode::<serde_json::Value>(&token).expect("decode");
        assert_eq!(data.header.alg, Algorithm::HS256);
        let c = data.claims;
        assert_eq!(c["iss"], "iss");
        assert_eq!(c["aud"], "aud");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["scope"], "a:write b:read");
        assert_eq!(c["roles"], serde_json::json!(["admin"]));
        let exp = c["exp"].as_i64().expect("exp");
        let iat = c["iat"].as_i64().expect("iat");
        assert_eq!(exp - iat, 120);
        assert!(c.get("nbf").is_none());
    }

    #[test]
    fn empty_scopes_and_roles_are_omitted() {
        let token = mint_hs256(b"k", &TokenClaims::new("i", "a", "s", "t")).expect("mint");
        let c = insecure_decode::<serde_json::Value>(&token)
            .expect("decode")
            .claims;
        assert!(c.get("scope").is_none() && c.get("roles").is_none());
    }

    #[test]
    fn scopes_with_whitespace_and_empty_secrets_are_refused() {
        let claims = TokenClaims::new("i", "a", "s", "t").with_scopes(["two words"]);
        assert!(matches!(
            mint_hs256(b"k", &claims),
            Err(AuthError::Signing { .. })
        ));
        let claims = TokenClaims::new("i", "a", "s", "t");
        assert!(matches!(
            mint_hs256(b"", &claims),
            Err(AuthError::Signing { .. })
        ));
    }

    #[test]
    fn garbage_pem_is_a_signing_error() {
        let claims = TokenClaims::new("i", "a", "s", "t");
        assert!(matches!(
            mint_with_pem(SigningAlgorithm::Es256, b"not a key", None, &claims),
            Err(AuthError::Signing { .. })
        ));
    }
}
