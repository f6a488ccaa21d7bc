//! The model settings' reads and their transaction: field mask, etag, request id, every rule
//! checked, and the segments the inactivity rules name looked up.

use std::sync::Arc;

use uuid::Uuid;

use super::{Modeling, invalid};
use crate::error::ModelingError;
use crate::journeys::churn::ChurnTable;
use crate::journeys::churn_settings::{ModelSettings, VersionedSettings, apply_mask};
use crate::journeys::query::Violations;
use crate::store::model_settings as store;

/// A settings change as asked for.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    /// The incoming settings; only the masked fields are taken.
    pub incoming: ModelSettings,
    /// The etag the caller read; empty skips the check.
    pub etag: String,
    /// The update mask's paths.
    pub paths: Vec<String>,
    /// The idempotency key; empty for none.
    pub request_id: String,
    /// Check only.
    pub validate_only: bool,
}

/// Each inactivity rule naming a segment that is not one of the tenant's live segments.
async fn unknown_rule_segments(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    settings: &ModelSettings,
) -> Result<Violations, ModelingError> {
    let mut problems = Violations::default();
    for (index, rule) in settings.churn.inactivity_rules.iter().enumerate() {
        if rule.segment.is_empty() {
            continue;
        }
        let live = match crate::domain::tenant_segment_id(&rule.segment, tenant) {
            Some(id) => crate::store::segments::get(conn, tenant, id)
                .await?
                .is_some(),
            None => false,
        };
        if !live {
            problems.add(
                format!("model_settings.churn.inactivity_rules[{index}].segment"),
                "UNKNOWN_SEGMENT",
                format!(
                    "{:?} is not a segment of this tenant / 该租户没有这个分群",
                    rule.segment
                ),
            );
        }
    }
    Ok(problems)
}

fn versioned(stored: Option<store::StoredSettings>) -> VersionedSettings {
    match stored {
        Some(stored) => VersionedSettings {
            settings: stored.settings,
            etag: stored.revision.to_string(),
            update_ms: Some(stored.updated_at.timestamp_millis()),
        },
        None => VersionedSettings {
            etag: "0".to_owned(),
            ..VersionedSettings::default()
        },
    }
}

impl Modeling {
    /// The tenant's settings as stored (defaults before the first change).
    pub async fn model_settings(&self, tenant: &str) -> Result<VersionedSettings, ModelingError> {
        Ok(versioned(store::get(&self.pool, tenant).await?))
    }

    /// The tenant's settings with the churn table they give over every event committed so
    /// far (its suggestion and fit are the settings' output-only fields).
    pub async fn model_settings_with_outputs(
        &self,
        tenant: &str,
    ) -> Result<(VersionedSettings, Arc<ChurnTable>), ModelingError> {
        let settings = self.model_settings(tenant).await?;
        let table = self.churn_table(tenant, &settings).await?;
        Ok((settings, table))
    }

    /// Changes the settings by field mask in one transaction: a retried request id answers
    /// with the stored settings, a stale etag is ABORTED, the result must pass every rule.
    pub async fn update_model_settings(
        &self,
        tenant: &str,
        update: &SettingsUpdate,
    ) -> Result<VersionedSettings, ModelingError> {
        // Every problem of the request is named before the store is touched: the masked
        // fields are checked on their own (stored fields always pass), with the request id.
        let mut problems = Violations::default();
        if !update.request_id.is_empty() && Uuid::parse_str(&update.request_id).is_err() {
            problems.add("request_id", "INVALID_REQUEST_ID", "request_id is a UUID");
        }
        match apply_mask(&ModelSettings::default(), &update.incoming, &update.paths) {
            Ok(masked) => {
                if let Err(found) = masked.validate("model_settings.") {
                    problems.0.extend(found.0);
                }
            }
            Err(found) => problems.0.extend(found.0),
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let mut tx = self.pool.begin().await?;
        if !update.request_id.is_empty()
            && store::request_seen(&mut tx, tenant, &update.request_id).await?
        {
            let stored = store::get_for_update(&mut tx, tenant).await?;
            tx.commit().await?;
            return Ok(versioned(stored));
        }
        let current = store::get_for_update(&mut tx, tenant).await?;
        let revision = current.as_ref().map_or(0, |c| c.revision);
        if !update.etag.is_empty() && update.etag != revision.to_string() {
            return Err(ModelingError::Aborted(
                "the model settings changed since they were read",
            ));
        }
        let base = current.map(|c| c.settings).unwrap_or_default();
        let next = apply_mask(&base, &update.incoming, &update.paths).map_err(invalid)?;
        next.validate("model_settings.").map_err(invalid)?;
        let unknown = unknown_rule_segments(&mut tx, tenant, &next).await?;
        if !unknown.is_empty() {
            return Err(invalid(unknown));
        }
        if update.validate_only {
            return Ok(VersionedSettings {
                settings: next,
                etag: revision.to_string(),
                update_ms: None,
            });
        }
        let Some((stored, at)) = store::put(&mut tx, tenant, &next, revision).await? else {
            return Err(ModelingError::Aborted(
                "the model settings changed concurrently",
            ));
        };
        if !update.request_id.is_empty() {
            store::record_request(&mut tx, tenant, &update.request_id, stored).await?;
        }
        tx.commit().await?;
        Ok(VersionedSettings {
            settings: next,
            etag: stored.to_string(),
            update_ms: Some(at.timestamp_millis()),
        })
    }
}
