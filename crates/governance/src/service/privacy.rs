//! A tenant's privacy settings: read with the service's default filled in, replaced whole after
//! the domain's checks.

use chrono::{DateTime, Utc};

use super::Governance;
use crate::domain::pii::PrivacySettings;
use crate::domain::privacy::{self, RawSettings};
use crate::error::GovernanceError;
use crate::store::tenant;

/// A tenant's settings and when they last changed (never, when only defaults apply).
#[derive(Debug, Clone)]
pub struct StoredPrivacy {
    /// The settings cleaning compares against.
    pub settings: PrivacySettings,
    /// The last change.
    pub changed: Option<DateTime<Utc>>,
}

impl Governance {
    /// The tenant's settings.
    pub async fn privacy_settings(
        &self,
        tenant_id: &str,
    ) -> Result<StoredPrivacy, GovernanceError> {
        let settings =
            tenant::privacy_settings(&self.pool, tenant_id, &self.default_country_code).await?;
        let changed = tenant::privacy_updated_at(&self.pool, tenant_id).await?;
        Ok(StoredPrivacy { settings, changed })
    }

    /// Checks `wanted` and stores it in place of the tenant's settings.
    pub async fn replace_privacy_settings(
        &self,
        tenant_id: &str,
        wanted: &RawSettings<'_>,
    ) -> Result<StoredPrivacy, GovernanceError> {
        let settings = privacy::validate(wanted, &self.default_country_code)
            .map_err(GovernanceError::Invalid)?;
        let changed = tenant::replace_privacy_settings(&self.pool, tenant_id, &settings).await?;
        Ok(StoredPrivacy {
            settings,
            changed: Some(changed),
        })
    }
}
