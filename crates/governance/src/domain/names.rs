//! Resource names of the governance contract: which tenant a name belongs to and which thing
//! of that tenant it names. A name of another tenant is refused as malformed, so a caller
//! cannot reach past its own tenant by naming something else.

use crate::error::GovernanceError;

/// The suffix of a tenant's privacy settings after `tenants/{tenant}`.
pub const PRIVACY_SUFFIX: &str = "/privacySettings";

/// The `tenants/{tenant}` part of a privacy settings name (empty stays empty, so the caller's
/// own tenant is meant).
pub fn privacy_parent(name: &str) -> Result<&str, GovernanceError> {
    match name {
        "" => Ok(""),
        _ => name.strip_suffix(PRIVACY_SUFFIX).ok_or_else(|| {
            GovernanceError::invalid(
                "name",
                "INVALID_NAME",
                "must look like tenants/{tenant}/privacySettings",
            )
        }),
    }
}

/// The part of `name` before `/{collection}/` (all of it when there is none): the parent the
/// caller must be allowed to act for.
pub fn parent_before<'a>(name: &'a str, collection: &str) -> &'a str {
    name.split(&format!("/{collection}/"))
        .next()
        .unwrap_or_default()
}

/// The id of a canonical event named `tenants/{tenant}/canonicalEvents/{event}`.
pub fn canonical_event_id<'a>(tenant: &str, name: &'a str) -> Result<&'a str, GovernanceError> {
    name.strip_prefix(&format!("tenants/{tenant}/canonicalEvents/"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            GovernanceError::invalid(
                "canonical_event.name",
                "INVALID_NAME",
                "expected tenants/{tenant}/canonicalEvents/{event} of the caller's tenant",
            )
        })
}

/// The id of an industry template, with or without its `industryTemplates/` prefix.
pub fn template_id(name: &str) -> &str {
    name.strip_prefix("industryTemplates/").unwrap_or(name)
}

/// The raw sequence named by `tenants/{tenant}/quarantinedEvents/{sequence}`.
pub fn quarantined_sequence(tenant: &str, name: &str, field: &str) -> Result<i64, GovernanceError> {
    name.strip_prefix(&format!("tenants/{tenant}/quarantinedEvents/"))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            GovernanceError::invalid(
                field,
                "INVALID_NAME",
                "expected tenants/{tenant}/quarantinedEvents/{sequence} of the caller's tenant",
            )
        })
}

/// The id of a reprocess job named `tenants/{tenant}/reprocessJobs/{job}`.
pub fn reprocess_job_id<'a>(tenant: &str, name: &'a str) -> Result<&'a str, GovernanceError> {
    name.strip_prefix(&format!("tenants/{tenant}/reprocessJobs/"))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            GovernanceError::invalid(
                "name",
                "INVALID_NAME",
                "expected tenants/{tenant}/reprocessJobs/{reprocess_job}",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_belong_to_the_callers_tenant() {
        assert_eq!(
            quarantined_sequence("t1", "tenants/t1/quarantinedEvents/7", "names").ok(),
            Some(7)
        );
        for bad in [
            "tenants/t2/quarantinedEvents/7",
            "tenants/t1/quarantinedEvents/x",
            "tenants/t1/quarantinedEvents/0",
            "7",
        ] {
            assert!(quarantined_sequence("t1", bad, "names").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_parent_is_what_comes_before_the_collection() {
        assert_eq!(
            parent_before("tenants/t1/canonicalEvents/order", "canonicalEvents"),
            "tenants/t1"
        );
        assert_eq!(parent_before("", "reprocessJobs"), "");
        assert_eq!(
            privacy_parent("tenants/t1/privacySettings").ok(),
            Some("tenants/t1")
        );
        assert!(privacy_parent("tenants/t1").is_err());
    }
}
