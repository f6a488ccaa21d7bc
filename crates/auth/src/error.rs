//! The one error type of this crate and its mapping to gRPC status codes.
//!
//! Variants distinguish every reason a request can be refused so that logs and tests can tell
//! them apart; the message a client sees ([`AuthError::client_message`]) is deliberately
//! general and never carries key material, key ids or configuration values.
// Error mappings name every variant: a new one must choose its code, not fall through.
#![warn(clippy::wildcard_enum_match_arm)]

use tonic::Code;

/// Why authentication or authorisation failed, or why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request carried no `authorization` header.
    #[error("missing bearer token")]
    MissingToken,
    /// The `authorization` header or the token itself is not a well-formed bearer JWT.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// What was wrong with its shape.
        reason: String,
    },
    /// A required claim is absent (`exp`, `iss`, `aud`, `sub` or `tenant`).
    #[error("missing required claim {claim}")]
    MissingClaim {
        /// Name of the absent claim.
        claim: String,
    },
    /// A claim is present but has the wrong type or an unusable value (e.g. `exp` as a string).
    #[error("invalid claims: {reason}")]
    InvalidClaims {
        /// What could not be parsed.
        reason: String,
    },
    /// The token's `exp` (plus leeway) is in the past.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` (minus leeway) is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// The token's `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// The token's `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The signature does not verify with the selected key.
    #[error("bad signature")]
    BadSignature,
    /// The header's `alg` is not one this verifier accepts (e.g. HS256 when not enabled).
    #[error("algorithm {alg} not allowed")]
    AlgorithmNotAllowed {
        /// The algorithm named in the token header.
        alg: String,
    },
    /// The header's `alg` differs from the algorithm the selected key is pinned to.
    #[error("token algorithm {token_alg} does not match key algorithm {key_alg}")]
    AlgorithmMismatch {
        /// The algorithm named in the token header.
        token_alg: String,
        /// The algorithm the key was published for.
        key_alg: String,
    },
    /// No key in the (possibly refetched) JWKS matches the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey {
        /// The `kid` from the token header, if it had one.
        kid: Option<String>,
    },
    /// The JWKS could not be read or downloaded.
    #[error("jwks fetch from {source_name} failed: {reason}")]
    JwksFetch {
        /// The file path or URL it was read from.
        source_name: String,
        /// The underlying failure.
        reason: String,
    },
    /// The JWKS was read but is not a usable key set.
    #[error("invalid jwks: {reason}")]
    InvalidJwks {
        /// What was wrong with it.
        reason: String,
    },
    /// The [`crate::AuthConfig`] is inconsistent (e.g. no key source, two key sources).
    #[error("invalid auth config: {reason}")]
    Config {
        /// What to change.
        reason: String,
    },
    /// A token could not be minted (bad PEM key, encoding failure).
    #[error("token signing failed: {reason}")]
    Signing {
        /// The underlying failure.
        reason: String,
    },
    /// The scope table is unusable (a path listed twice with different scopes, a path that is
    /// not `/package.Service/Method`, an empty scope).
    #[error("invalid scope table: {reason}")]
    InvalidScopeTable {
        /// Which entry is wrong and why.
        reason: String,
    },
    /// The caller is authenticated but lacks the scope the RPC requires.
    #[error("missing required scope {scope}")]
    MissingScope {
        /// The scope the RPC requires.
        scope: String,
    },
    /// The RPC path is absent from the scope table, so it is refused (fail closed).
    #[error("method {path} is not in the scope table")]
    UnlistedMethod {
        /// The gRPC path that was called.
        path: String,
    },
    /// A tenant-scoped caller named a tenant other than its own (or a platform account acted
    /// without naming one where its own tenant claim cannot be acted on).
    #[error("not allowed for this tenant")]
    ForeignTenant,
    /// A request's `parent` is not `tenants/{tenant}`.
    #[error("parent {parent:?} is not tenants/{{tenant}}")]
    MalformedParent {
        /// What the caller sent.
        parent: String,
    },
    /// A platform account acted without naming the tenant it acts on.
    #[error("platform accounts must name the tenant in parent")]
    ParentRequired,
}

impl AuthError {
    /// The gRPC code a request refused for this reason gets.
    ///
    /// Exhaustive on purpose: a new variant must decide its code here.
    pub fn code(&self) -> Code {
        match self {
            AuthError::MissingToken
            | AuthError::MalformedToken { .. }
            | AuthError::MissingClaim { .. }
            | AuthError::InvalidClaims { .. }
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::WrongIssuer
            | AuthError::WrongAudience
            | AuthError::BadSignature
            | AuthError::AlgorithmNotAllowed { .. }
            | AuthError::AlgorithmMismatch { .. }
            | AuthError::UnknownKey { .. } => Code::Unauthenticated,
            AuthError::MissingScope { .. }
            | AuthError::UnlistedMethod { .. }
            | AuthError::ForeignTenant => Code::PermissionDenied,
            AuthError::MalformedParent { .. } | AuthError::ParentRequired => Code::InvalidArgument,
            // These describe the server, not the caller: a request can only meet them if key
            // material is unavailable, which the caller may retry later.
            AuthError::JwksFetch { .. } | AuthError::InvalidJwks { .. } => Code::Unavailable,
            AuthError::Config { .. }
            | AuthError::Signing { .. }
            | AuthError::InvalidScopeTable { .. } => Code::Internal,
        }
    }

    /// The message sent to the client: says what is wrong in general terms, never which key,
    /// which issuer or audience was expected, or where keys come from.
    pub fn client_message(&self) -> String {
        match self {
            AuthError::MissingToken => "missing bearer token".to_owned(),
            AuthError::MalformedToken { .. } => "malformed bearer token".to_owned(),
            AuthError::MissingClaim { claim } => format!("token lacks required claim {claim}"),
            AuthError::InvalidClaims { .. } => "token claims are malformed".to_owned(),
            AuthError::Expired => "token expired".to_owned(),
            AuthError::NotYetValid => "token not yet valid".to_owned(),
            AuthError::WrongIssuer => "token issuer not accepted".to_owned(),
            AuthError::WrongAudience => "token audience not accepted".to_owned(),
            AuthError::BadSignature => "token signature invalid".to_owned(),
            AuthError::AlgorithmNotAllowed { .. } => "token algorithm not allowed".to_owned(),
            AuthError::AlgorithmMismatch { .. } => {
                "token algorithm does not match its key".to_owned()
            }
            AuthError::UnknownKey { .. } => "token signed by an unknown key".to_owned(),
            AuthError::JwksFetch { .. } | AuthError::InvalidJwks { .. } => {
                "token verification keys unavailable".to_owned()
            }
            AuthError::Config { .. }
            | AuthError::Signing { .. }
            | AuthError::InvalidScopeTable { .. } => "authentication misconfigured".to_owned(),
            AuthError::MissingScope { scope } => format!("missing required scope {scope}"),
            // Same text whether or not the method exists, so callers cannot probe the table.
            AuthError::UnlistedMethod { .. } => "permission denied".to_owned(),
            // Same text whether or not the other tenant exists.
            AuthError::ForeignTenant | AuthError::ParentRequired => self.to_string(),
            AuthError::MalformedParent { parent } => {
                format!("parent must look like tenants/{{tenant}}, not {parent:?}")
            }
        }
    }

    /// Converts into the `tonic::Status` the client receives.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.code(), self.client_message())
    }
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        err.to_status()
    }
}

/// Maps a `jsonwebtoken` failure to our vocabulary.
pub(crate) fn from_jwt(err: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim {
            claim: claim.clone(),
        },
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaims {
            reason: format!("claim {claim} has an invalid format"),
        },
        ErrorKind::Json(source) => AuthError::InvalidClaims {
            reason: source.to_string(),
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmNotAllowed {
                alg: "unexpected".to_owned(),
            }
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidSubject => AuthError::MalformedToken {
            reason: err.to_string(),
        },
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::RsaFailedSigning
        | ErrorKind::Signing(_)
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::Provider(_) => AuthError::BadSignature,
        // `ErrorKind` is `#[non_exhaustive]`, so a wildcard is forced on us; an unknown
        // failure must still refuse the token rather than let it through.
        _ => AuthError::MalformedToken {
            reason: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_failures_are_unauthenticated_and_authorisation_failures_denied() {
        assert_eq!(AuthError::Expired.code(), Code::Unauthenticated);
        assert_eq!(
            AuthError::UnknownKey { kid: None }.code(),
            Code::Unauthenticated
        );
        assert_eq!(
            AuthError::MissingScope {
                scope: "x".to_owned()
            }
            .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            AuthError::UnlistedMethod {
                path: "/a/b".to_owned()
            }
            .code(),
            Code::PermissionDenied
        );
    }

    #[test]
    fn client_messages_do_not_echo_internal_details() {
        let err = AuthError::AlgorithmMismatch {
            token_alg: "ES256".to_owned(),
            key_alg: "RS256".to_owned(),
        };
        assert!(!err.client_message().contains("RS256"));
        let err = AuthError::UnknownKey {
            kid: Some("secret-kid".to_owned()),
        };
        assert!(!err.client_message().contains("secret-kid"));
        let err = AuthError::UnlistedMethod {
            path: "/pkg.Svc/Hidden".to_owned(),
        };
        assert_eq!(err.client_message(), "permission denied");
    }
}
