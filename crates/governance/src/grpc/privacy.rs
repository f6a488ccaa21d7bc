//! `GetPrivacySettings` / `UpdatePrivacySettings`: a tenant's privacy
//! settings, blocked values shown masked.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use touchline_proto::governance::v1 as pb;

use crate::domain::clean::timestamp_pb;
use crate::domain::pii::{self, PrivacySettings};
use crate::domain::privacy::{self, RawSettings};
use crate::error::GovernanceError;
use crate::store::tenant;

/// The resource name's suffix after `tenants/{tenant}`.
const SUFFIX: &str = "/privacySettings";

/// The `tenants/{tenant}` part of a settings name (empty stays empty).
pub fn parent_of(name: &str) -> Result<&str, GovernanceError> {
    match name {
        "" => Ok(""),
        _ => name.strip_suffix(SUFFIX).ok_or_else(|| {
            GovernanceError::Invalid(vec![touchline_error::FieldViolation::new(
                "name",
                "INVALID_NAME",
                "must look like tenants/{tenant}/privacySettings",
            )])
        }),
    }
}

/// The tenant's settings as the contract shows them.
pub async fn get(
    pool: &PgPool,
    tenant_id: &str,
    service_default_code: &str,
) -> Result<pb::GetPrivacySettingsResponse, GovernanceError> {
    let settings = tenant::privacy_settings(pool, tenant_id, service_default_code).await?;
    let changed = tenant::privacy_updated_at(pool, tenant_id).await?;
    Ok(pb::GetPrivacySettingsResponse {
        privacy_settings: Some(to_pb(tenant_id, &settings, changed)),
    })
}

/// Validates and stores the whole new settings.
pub async fn update(
    pool: &PgPool,
    tenant_id: &str,
    service_default_code: &str,
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
    let settings =
        privacy::validate(&raw, service_default_code).map_err(GovernanceError::Invalid)?;
    let changed = tenant::replace_privacy_settings(pool, tenant_id, &settings).await?;
    Ok(pb::UpdatePrivacySettingsResponse {
        privacy_settings: Some(to_pb(tenant_id, &settings, Some(changed))),
    })
}

fn to_pb(
    tenant_id: &str,
    settings: &PrivacySettings,
    changed: Option<DateTime<Utc>>,
) -> pb::PrivacySettings {
    pb::PrivacySettings {
        name: format!("tenants/{tenant_id}{SUFFIX}"),
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
        update_time: changed.map(timestamp_pb),
    }
}
