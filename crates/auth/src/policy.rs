//! Which OAuth2 scope each RPC requires.
//!
//! The table is generated next to the protos and passed in; this crate knows no service. Lookup
//! is by exact path only (no wildcards), and a path missing from the table is refused, so a new
//! RPC is unreachable until someone decides its scope.

use std::collections::HashMap;

use crate::{AuthError, Principal};

/// Exact map from full gRPC path (`/package.Service/Method`) to the scope it requires.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy {
    scopes: HashMap<&'static str, &'static str>,
}

impl ScopePolicy {
    /// Builds the policy from `(path, scope)` rows.
    ///
    /// Rejects a row whose path is not `/package.Service/Method`, an empty or
    /// whitespace-containing scope, and a path listed twice with different scopes (repeating an
    /// identical row is harmless and accepted).
    pub fn new(table: &[(&'static str, &'static str)]) -> Result<Self, AuthError> {
        let mut scopes = HashMap::with_capacity(table.len());
        for &(path, scope) in table {
            if !is_grpc_path(path) {
                return Err(AuthError::InvalidScopeTable {
                    reason: format!("{path:?} is not a /package.Service/Method path"),
                });
            }
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(AuthError::InvalidScopeTable {
                    reason: format!("scope {scope:?} for {path} is empty or contains whitespace"),
                });
            }
            if let Some(previous) = scopes.insert(path, scope)
                && previous != scope
            {
                return Err(AuthError::InvalidScopeTable {
                    reason: format!("{path} maps to both {previous} and {scope}"),
                });
            }
        }
        Ok(Self { scopes })
    }

    /// The scope `path` requires, or `None` when the path is not in the table.
    pub fn required_scope(&self, path: &str) -> Option<&'static str> {
        self.scopes.get(path).copied()
    }

    /// Decides whether `principal` may call `path`: the path must be listed and its scope held.
    pub fn authorise(&self, principal: &Principal, path: &str) -> Result<(), AuthError> {
        let scope = self
            .required_scope(path)
            .ok_or_else(|| AuthError::UnlistedMethod {
                path: path.to_owned(),
            })?;
        if principal.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope {
                scope: scope.to_owned(),
            })
        }
    }

    /// Number of listed RPCs.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether no RPC is listed (every call would be refused).
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
}

fn is_grpc_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    match rest.split_once('/') {
        Some((service, method)) => {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INGEST: &str = "/touchline.collection.v1.CollectionService/IngestEvents";

    fn caller(scopes: &[&str]) -> Principal {
        Principal {
            subject: "s".to_owned(),
            tenant: "t".to_owned(),
            roles: Vec::new(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn lookup_is_exact() {
        let policy = ScopePolicy::new(&[(INGEST, "events:write")]).expect("policy");
        assert_eq!(policy.required_scope(INGEST), Some("events:write"));
        assert_eq!(
            policy.required_scope("/touchline.collection.v1.CollectionService/"),
            None
        );
        assert_eq!(policy.required_scope(&INGEST.to_lowercase()), None);
        assert_eq!(policy.len(), 1);
    }

    #[test]
    fn authorise_fails_closed() {
        let policy = ScopePolicy::new(&[(INGEST, "events:write")]).expect("policy");
        assert!(policy.authorise(&caller(&["events:write"]), INGEST).is_ok());
        assert!(matches!(
            policy.authorise(&caller(&["events:read"]), INGEST),
            Err(AuthError::MissingScope { scope }) if scope == "events:write"
        ));
        assert!(matches!(
            policy.authorise(&caller(&["events:write"]), "/x.Y/Z"),
            Err(AuthError::UnlistedMethod { .. })
        ));
    }

    #[test]
    fn conflicting_or_malformed_rows_are_rejected() {
        assert!(ScopePolicy::new(&[(INGEST, "a"), (INGEST, "a")]).is_ok());
        assert!(ScopePolicy::new(&[(INGEST, "a"), (INGEST, "b")]).is_err());
        assert!(ScopePolicy::new(&[("no-slash", "a")]).is_err());
        assert!(ScopePolicy::new(&[("/a/b/c", "a")]).is_err());
        assert!(ScopePolicy::new(&[(INGEST, "")]).is_err());
        assert!(ScopePolicy::new(&[(INGEST, "a b")]).is_err());
    }
}
