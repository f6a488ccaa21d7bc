//! touchline-auth: who is calling and whether they may.
//!
//! Belongs here: bearer-token verification (JWT with pinned RS256/ES256 keys from a JWKS,
//! HS256 only as an explicit development opt-in), the [`Principal`] handlers read, the
//! exact-path [`ScopePolicy`], the tonic [`AuthLayer`], and token minting for the dev CLI and
//! tests. Does not belong here: any knowledge of touchline services or protos (the scope
//! table is handed in), tenant data access rules, or user management.
//!
//! Wiring a server:
//!
//! ```no_run
//! # async fn wire(config: touchline_auth::AuthConfig) -> Result<(), touchline_auth::AuthError> {
//! use touchline_auth::{AuthLayer, ScopePolicy, Verifier};
//! const SCOPES: &[(&str, &str)] =
//!     &[("/touchline.collection.v1.CollectionService/IngestEvents", "events:write")];
//! let verifier = Verifier::from_config(&config).await?;
//! let layer = AuthLayer::new(verifier, ScopePolicy::new(SCOPES)?);
//! // tonic::transport::Server::builder().layer(layer).add_service(...)
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

mod claims;
mod config;
mod error;
mod jwks;
mod layer;
mod mint;
mod policy;
mod principal;
mod verifier;

pub use claims::{MAX_TENANT_BYTES, PLATFORM_SCOPE};
pub use config::{
    AuthConfig, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_JWKS_REFETCH_COOLDOWN_SECS,
    DEFAULT_LEEWAY_SECS,
};
pub use error::AuthError;
pub use layer::{ALLOW_LISTED_PREFIXES, AuthLayer, AuthService, bearer_token, is_allow_listed};
pub use mint::{DEFAULT_TOKEN_TTL, SigningAlgorithm, TokenClaims, mint_hs256, mint_with_pem};
pub use policy::ScopePolicy;
pub use principal::{PLATFORM_TENANT, Principal, principal};
pub use verifier::Verifier;
