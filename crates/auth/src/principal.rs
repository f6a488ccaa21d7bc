//! The authenticated caller as handlers see it.

use std::collections::BTreeSet;

use crate::AuthError;

/// Who is calling, for which tenant, with which roles and OAuth2 scopes.
///
/// Built only from a verified token; the auth layer stores it in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub` claim.
    pub subject: String,
    /// The token's `tenant` claim; every query a handler makes filters by it.
    pub tenant: String,
    /// The token's `roles` claim (empty when absent).
    pub roles: Vec<String>,
    /// Union of the space-separated `scope` claim and the `scp` array.
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Whether the caller was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the caller is a platform service account, whose tenant claim
    /// is `*` and who acts for the tenant a request names. Verification lets
    /// `*` through only with the platform scope; the scope is checked again
    /// here so a principal built any other way grants nothing.
    pub fn is_platform(&self) -> bool {
        self.tenant == PLATFORM_TENANT && self.has_scope(crate::PLATFORM_SCOPE)
    }

    /// The tenant a request acts on. `parent` is `tenants/{tenant}` or empty
    /// (the caller's own tenant). A tenant-scoped caller naming another
    /// tenant is refused without saying whether that tenant exists.
    pub fn tenant_for(&self, parent: &str) -> Result<String, tonic::Status> {
        let named = match parent {
            "" => None,
            _ => match parent.strip_prefix("tenants/") {
                Some(tenant) if !tenant.is_empty() && !tenant.contains('/') => Some(tenant),
                _ => {
                    return Err(AuthError::MalformedParent {
                        parent: parent.to_owned(),
                    }
                    .into());
                }
            },
        };
        match (named, self.is_platform()) {
            (None, false) if self.tenant == PLATFORM_TENANT => Err(AuthError::ForeignTenant.into()),
            (None, false) => Ok(self.tenant.clone()),
            (None, true) => Err(AuthError::ParentRequired.into()),
            (Some(tenant), true) => Ok(tenant.to_owned()),
            (Some(tenant), false) if tenant == self.tenant => Ok(tenant.to_owned()),
            (Some(_), false) => Err(AuthError::ForeignTenant.into()),
        }
    }
}

/// The tenant claim of platform service accounts.
pub const PLATFORM_TENANT: &str = "*";

/// Returns the caller of a handler's request, as the auth layer stored it.
///
/// A missing principal means the service was wired without the auth layer (or the method is
/// allow-listed); either way the caller is not authenticated.
pub fn principal<T>(req: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| AuthError::MissingToken.to_status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Principal {
        Principal {
            subject: "u1".to_owned(),
            tenant: "t1".to_owned(),
            roles: vec!["analyst".to_owned()],
            scopes: ["events:write".to_owned()].into_iter().collect(),
        }
    }

    #[test]
    fn tenant_for_keeps_callers_in_their_tenant() {
        let p = sample();
        assert_eq!(p.tenant_for("").ok().as_deref(), Some("t1"));
        assert_eq!(p.tenant_for("tenants/t1").ok().as_deref(), Some("t1"));
        assert_eq!(
            p.tenant_for("tenants/t2").map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            p.tenant_for("t1").map_err(|s| s.code()),
            Err(tonic::Code::InvalidArgument)
        );
        let wildcard = Principal {
            tenant: PLATFORM_TENANT.to_owned(),
            ..sample()
        };
        assert!(!wildcard.is_platform(), "the claim alone grants nothing");
        assert!(wildcard.tenant_for("tenants/t2").is_err());
        assert!(wildcard.tenant_for("").is_err());
        let mut platform = wildcard;
        platform.scopes.insert(crate::PLATFORM_SCOPE.to_owned());
        assert_eq!(
            platform.tenant_for("tenants/t2").ok().as_deref(),
            Some("t2")
        );
        assert!(platform.tenant_for("").is_err());
    }

    #[test]
    fn scope_and_role_checks_are_exact() {
        let p = sample();
        assert!(p.has_scope("events:write"));
        assert!(!p.has_scope("events"));
        assert!(p.has_role("analyst"));
        assert!(!p.has_role("admin"));
    }

    #[test]
    fn principal_helper_reads_extensions() {
        let mut req = tonic::Request::new(());
        let missing = principal(&req).expect_err("no principal yet");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        req.extensions_mut().insert(sample());
        assert_eq!(principal(&req).expect("present"), sample());
    }
}
