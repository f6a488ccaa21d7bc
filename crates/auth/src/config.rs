//! Configuration of token verification, deserialised from the service's config file or
//! `TOUCHLINE_` environment like every other section.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Default accepted clock skew in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Default minimum time between two JWKS refetches triggered by unknown key ids.
pub const DEFAULT_JWKS_REFETCH_COOLDOWN_SECS: u64 = 30;
/// Default issuer and audience, matching what the dev token command mints.
pub const DEFAULT_ISSUER: &str = "touchline";
/// Default audience, see [`DEFAULT_ISSUER`].
pub const DEFAULT_AUDIENCE: &str = "touchline";

/// How a server verifies bearer tokens.
///
/// Exactly one of `jwks_file` / `jwks_url` supplies the RS256/ES256 keys. HS256 is accepted
/// only when both `hs256_secret` is set and `allow_hs256` is true, which is meant for
/// development; a deployment with HS256 alone (no JWKS) is possible but logged loudly.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Required value of the `iss` claim.
    pub issuer: String,
    /// Value that must appear in the `aud` claim.
    pub audience: String,
    /// Path of a JWKS JSON file; re-read when an unknown `kid` arrives.
    pub jwks_file: Option<PathBuf>,
    /// `http(s)` URL of a JWKS document; refetched when an unknown `kid` arrives.
    pub jwks_url: Option<String>,
    /// Shared secret for HS256 tokens; ignored unless `allow_hs256` is true.
    pub hs256_secret: Option<SecretString>,
    /// Opt-in for HS256 (development only).
    pub allow_hs256: bool,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Minimum seconds between two JWKS refetches caused by unknown key ids.
    pub jwks_refetch_cooldown_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            jwks_file: None,
            jwks_url: None,
            hs256_secret: None,
            allow_hs256: false,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            jwks_refetch_cooldown_secs: DEFAULT_JWKS_REFETCH_COOLDOWN_SECS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn empty_document_takes_defaults() {
        let config: AuthConfig = serde_json::from_str("{}").expect("parse");
        assert_eq!(config.issuer, DEFAULT_ISSUER);
        assert_eq!(config.audience, DEFAULT_AUDIENCE);
        assert!(!config.allow_hs256);
        assert_eq!(config.leeway_secs, 60);
        assert_eq!(config.jwks_refetch_cooldown_secs, 30);
        assert!(config.jwks_file.is_none() && config.jwks_url.is_none());
    }

    #[test]
    fn secret_parses_and_does_not_print() {
        let config: AuthConfig =
            serde_json::from_str(r#"{"hs256_secret":"hunter2","allow_hs256":true}"#)
                .expect("parse");
        let secret = config.hs256_secret.as_ref().expect("secret set");
        assert_eq!(secret.expose_secret(), "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let parsed = serde_json::from_str::<AuthConfig>(r#"{"jwks_uri":"x"}"#);
        assert!(parsed.is_err());
    }
}
