//! Changing one draft event by field mask, with optimistic concurrency on its etag.

use super::{CanonicalEvent, Governance};
use crate::domain::dictionary::{Dictionary, EventDef, validate_event};
use crate::domain::field_mask::apply_path;
use crate::error::GovernanceError;
use crate::store::dictionary::{self as store, DraftEvent};

/// An update as asked for.
#[derive(Debug, Clone)]
pub struct EventUpdate {
    /// The event's id.
    pub id: String,
    /// The event's full name, as the caller gave it.
    pub name: String,
    /// The etag the caller read; empty skips the check.
    pub etag: String,
    /// The incoming definition; only the masked fields are taken from it.
    pub incoming: EventDef,
    /// The field mask.
    pub paths: Vec<String>,
    /// Check only; write nothing.
    pub validate_only: bool,
}

impl Governance {
    /// Applies `update` to the draft event it names.
    pub async fn update_event(
        &self,
        tenant: &str,
        update: &EventUpdate,
    ) -> Result<CanonicalEvent, GovernanceError> {
        let mut draft = store::draft(&self.pool, tenant).await?;
        let current = draft
            .get(&update.id)
            .cloned()
            .ok_or_else(|| GovernanceError::NotFound(update.name.clone()))?;
        let etag = current.updated_at.timestamp_micros().to_string();
        if !update.etag.is_empty() && update.etag != etag {
            return Err(GovernanceError::Aborted(
                "the canonical event changed since it was read".into(),
            ));
        }
        let def = masked(&current.def, update)?;
        if let Some(entry) = draft.get_mut(&update.id) {
            entry.def = def.clone();
        }
        check_aliases(&draft, &def)?;
        if update.validate_only {
            return Ok(CanonicalEvent {
                def,
                stored: Some(current),
            });
        }
        if !store::update_event(&self.pool, tenant, &def, current.updated_at).await? {
            return Err(GovernanceError::Aborted(
                "the canonical event changed concurrently".into(),
            ));
        }
        let stored = store::draft(&self.pool, tenant)
            .await?
            .remove(&def.event_name);
        Ok(CanonicalEvent { def, stored })
    }
}

/// `current` with the masked fields of the update, checked.
fn masked(current: &EventDef, update: &EventUpdate) -> Result<EventDef, GovernanceError> {
    let mut def = current.clone();
    for path in &update.paths {
        apply_path(&mut def, &update.incoming, path.trim())?;
    }
    let problems = validate_event(&def);
    if !problems.is_empty() {
        return Err(GovernanceError::problems(problems));
    }
    Ok(def)
}

/// Refuses the update when the draft, with it, maps one source event to two canonical ones
/// and the changed event is one of them.
fn check_aliases(
    draft: &std::collections::BTreeMap<String, DraftEvent>,
    def: &EventDef,
) -> Result<(), GovernanceError> {
    let whole = Dictionary {
        version: 0,
        events: draft
            .iter()
            .map(|(k, v)| (k.clone(), v.def.clone()))
            .collect(),
    };
    let conflicts: Vec<String> = whole
        .conflicts()
        .into_iter()
        .filter(|c| c.contains(&def.event_name))
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(GovernanceError::invalid(
            "canonical_event.aliases",
            "ALIAS_CONFLICT",
            &conflicts.join("; "),
        ))
    }
}
