//! `GetPrivacySettings` / `UpdatePrivacySettings`: a tenant's privacy settings, blocked values
//! shown masked.

use touchline_proto::governance::v1 as pb;

use crate::domain::clean::timestamp_pb;
use crate::domain::names::PRIVACY_SUFFIX;
use crate::domain::pii;
use crate::domain::privacy::RawSettings;
use crate::error::GovernanceError;
use crate::service::{Governance, StoredPrivacy};

/// The tenant's settings as the contract shows them.
pub async fn get(
    governance: &Governance,
    tenant_id: &str,
) -> Result<pb::GetPrivacySettingsResponse, GovernanceError> {
    let stored = governance.privacy_settings(tenant_id).await?;
    Ok(pb::GetPrivacySettingsResponse {
        privacy_settings: Some(to_pb(tenant_id, &stored)),
    })
}

/// Replaces the tenant's settings with the whole of `wanted`.
pub async fn update(
    governance: &Governance,
    tenant_id: &str,
    wanted: &pb::PrivacySettings,
) -> Result<pb::UpdatePrivacySettingsResponse, GovernanceError> {
    let raw = RawSettings {
        default_country_code: &wanted.default_country_code,
        direct_types: wanted.direct_types.iter().map(String::as_str).collect(),
        blocked: wanted
            .blocked_identifiers
            .iter()
            .map(|b| (b.r#type.as_str(), b.value.as_str()))
            .collect(),
    };
    let stored = governance.replace_privacy_settings(tenant_id, &raw).await?;
    Ok(pb::UpdatePrivacySettingsResponse {
        privacy_settings: Some(to_pb(tenant_id, &stored)),
    })
}

fn to_pb(tenant_id: &str, stored: &StoredPrivacy) -> pb::PrivacySettings {
    let settings = &stored.settings;
    pb::PrivacySettings {
        name: format!("tenants/{tenant_id}{PRIVACY_SUFFIX}"),
        default_country_code: settings.default_country_code.clone(),
        direct_types: settings.direct_types.iter().cloned().collect(),
        blocked_identifiers: settings
            .blocked
            .iter()
            .map(|(kind, value)| pb::BlockedIdentifier {
                r#type: kind.clone(),
                value: pii::mask(kind, value),
            })
            .collect(),
        update_time: stored.changed.map(timestamp_pb),
    }
}
