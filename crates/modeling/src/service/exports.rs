//! The identifiers members, changes and triggers carry for the systems that act on them (a
//! CRM matches on its own id, a member card, a UnionID): read from identity as it stores
//! them, so the types a tenant pseudonymises (phone, email) only ever leave pseudonymised.

use std::collections::HashMap;

use touchline_proto::common::v1::Identifier;
use uuid::Uuid;

use super::Modeling;
use crate::error::ModelingError;

/// Most identifier types one request may ask members or changes to carry.
pub const MAX_EXPORT_TYPES: usize = 10;

/// Checks the identifier types a request asks for: at most ten, none empty.
pub fn check_export_types(types: &[String], field: &str) -> Result<(), ModelingError> {
    if types.len() > MAX_EXPORT_TYPES {
        return Err(ModelingError::invalid(
            field,
            "TOO_MANY_TYPES",
            format!("at most {MAX_EXPORT_TYPES} identifier types"),
        ));
    }
    if let Some(index) = types
        .iter()
        .position(|t| t.trim().is_empty() || t.len() > 64)
    {
        return Err(ModelingError::invalid(
            &format!("{field}[{index}]"),
            "INVALID_TYPE",
            "an identifier type such as crm_id or member_card, at most 64 bytes",
        ));
    }
    Ok(())
}

impl Modeling {
    /// The identifiers of `types` each of `persons` holds now; nothing (and no call) when no
    /// type is asked for, and nothing for a person who opted out of marketing.
    pub async fn exported_identifiers(
        &self,
        tenant: &str,
        persons: &[Uuid],
        types: &[String],
    ) -> Result<HashMap<Uuid, Vec<Identifier>>, ModelingError> {
        if types.is_empty() || persons.is_empty() {
            return Ok(HashMap::new());
        }
        let mut persons = persons.to_vec();
        persons.sort_unstable();
        persons.dedup();
        let opted_out = crate::store::opted_out_among(&self.pool, tenant, &persons).await?;
        persons.retain(|p| !opted_out.contains(p));
        let identity = self.identity.as_ref().ok_or(ModelingError::Upstream {
            service: "identity",
            code: tonic::Code::Unavailable,
        })?;
        identity
            .identifiers(tenant, &persons, types)
            .await
            .map_err(|status| ModelingError::upstream("identity", &status))
    }
}
