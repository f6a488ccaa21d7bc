//! The claims we read from a verified token and their strict parsing.
//!
//! `jsonwebtoken` checks `exp`/`nbf`/`iss`/`aud` itself but quietly treats a malformed numeric
//! claim as absent; typing them here makes a string such as `"exp":"1999999999"` a hard
//! rejection, because the payload is deserialised into [`RawClaims`] before its checks run.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::{AuthError, Principal};

/// Seconds since the Unix epoch, accepted only as a JSON number (RFC 7519 `NumericDate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct NumericDate(pub(crate) u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;

        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative JSON number of seconds since the epoch")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(NumericDate(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("numeric date before the epoch"))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // RFC 7519 allows fractional seconds; truncation loses nothing that matters.
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "range checked just above"
                    )]
                    Ok(NumericDate(v.trunc() as u64))
                } else {
                    Err(E::custom("numeric date out of range"))
                }
            }
        }

        deserializer.deserialize_any(NumericDateVisitor)
    }
}

/// The payload fields a verifier looks at. Unknown fields are ignored on purpose: identity
/// providers add their own.
#[derive(Debug, Deserialize)]
pub(crate) struct RawClaims {
    sub: Option<String>,
    tenant: Option<String>,
    roles: Option<Vec<String>>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
    // Parsed only for their strictness; jsonwebtoken compares them with the clock.
    #[allow(dead_code, reason = "deserialised to reject non-numeric values")]
    exp: Option<NumericDate>,
    #[allow(dead_code, reason = "deserialised to reject non-numeric values")]
    nbf: Option<NumericDate>,
    #[allow(dead_code, reason = "deserialised to reject non-numeric values")]
    iat: Option<NumericDate>,
}

impl RawClaims {
    /// Turns already signature- and time-checked claims into a [`Principal`].
    pub(crate) fn into_principal(self) -> Result<Principal, AuthError> {
        let subject = non_empty(self.sub, "sub")?;
        let tenant = non_empty(self.tenant, "tenant")?;
        let mut scopes: BTreeSet<String> = self
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        scopes.extend(
            self.scp
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !s.trim().is_empty()),
        );
        check_tenant(&tenant, &scopes)?;
        Ok(Principal {
            subject,
            tenant,
            roles: self.roles.unwrap_or_default(),
            scopes,
        })
    }
}

/// Longest tenant id, bytes.
pub const MAX_TENANT_BYTES: usize = 64;

/// A tenant claim is validated like any resource id: 1 to 64 ASCII letters, digits, `-`, `_`
/// or `.`, starting with a letter or digit — so it can never carry a NUL, a `/` that would
/// make `tenants/{tenant}` another resource, or text a store could not hold. The platform
/// claim `*` grants nothing by itself: it needs the explicit [`PLATFORM_SCOPE`].
fn check_tenant(tenant: &str, scopes: &BTreeSet<String>) -> Result<(), AuthError> {
    if tenant == crate::PLATFORM_TENANT {
        return if scopes.contains(PLATFORM_SCOPE) {
            Ok(())
        } else {
            Err(AuthError::InvalidClaims {
                reason: format!("tenant \"*\" needs the {PLATFORM_SCOPE} scope"),
            })
        };
    }
    let well_formed = tenant.len() <= MAX_TENANT_BYTES
        && tenant
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if well_formed {
        Ok(())
    } else {
        Err(AuthError::InvalidClaims {
            reason: "the tenant claim is not a valid tenant id".to_owned(),
        })
    }
}

/// The scope that lets a platform account (tenant claim `*`) act for any tenant: the stages'
/// own pipeline account, and operators' tools. Every call made with it is logged for audit.
pub const PLATFORM_SCOPE: &str = "tenants:all";

fn non_empty(value: Option<String>, claim: &str) -> Result<String, AuthError> {
    match value {
        None => Err(AuthError::MissingClaim {
            claim: claim.to_owned(),
        }),
        Some(v) if v.trim().is_empty() => Err(AuthError::InvalidClaims {
            reason: format!("claim {claim} is empty"),
        }),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<RawClaims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numeric_dates_accept_numbers_and_refuse_strings() {
        assert!(parse(r#"{"exp":1999999999}"#).is_ok());
        assert!(parse(r#"{"exp":1999999999.5}"#).is_ok());
        assert!(parse(r#"{"exp":"1999999999"}"#).is_err());
        assert!(parse(r#"{"nbf":"1"}"#).is_err());
        assert!(parse(r#"{"exp":-5}"#).is_err());
    }

    #[test]
    fn scopes_merge_scope_string_and_scp_array() {
        let claims =
            parse(r#"{"sub":"u","tenant":"t","scope":"a b  c","scp":["c","d",""],"roles":["r"]}"#)
                .expect("parse");
        let principal = claims.into_principal().expect("principal");
        let scopes: Vec<&str> = principal.scopes.iter().map(String::as_str).collect();
        assert_eq!(scopes, ["a", "b", "c", "d"]);
        assert_eq!(principal.roles, ["r"]);
    }

    #[test]
    fn tenant_is_required_and_non_empty() {
        let missing = parse(r#"{"sub":"u"}"#).expect("parse").into_principal();
        assert!(matches!(missing, Err(AuthError::MissingClaim { claim }) if claim == "tenant"));
        let empty = parse(r#"{"sub":"u","tenant":" "}"#)
            .expect("parse")
            .into_principal();
        assert!(matches!(empty, Err(AuthError::InvalidClaims { .. })));
    }

    #[test]
    fn roles_must_be_strings() {
        assert!(parse(r#"{"roles":"admin"}"#).is_err());
        assert!(parse(r#"{"scp":"a b"}"#).is_err());
    }
}
