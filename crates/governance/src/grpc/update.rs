//! `UpdateCanonicalEvent`: changes one draft event by field mask, with
//! optimistic concurrency on its etag.

use touchline_error::FieldViolation;
use touchline_proto::governance::v1 as pb;

use super::convert::{event_from_pb, event_to_pb};
use crate::domain::dictionary::{Dictionary, EventDef, validate_event};
use crate::error::GovernanceError;
use crate::store::dictionary as store;

fn invalid(field: &str, reason: &'static str, description: &str) -> GovernanceError {
    GovernanceError::Invalid(vec![FieldViolation::new(field, reason, description)])
}

/// Copies the masked field `path` of `from` into `into`.
fn apply_path(into: &mut EventDef, from: &EventDef, path: &str) -> Result<(), GovernanceError> {
    match path {
        "display_name" => into.display_name = from.display_name.clone(),
        "description" => into.description.clone_from(&from.description),
        "aliases" => into.aliases = from.aliases.clone(),
        "properties" => into.properties = from.properties.clone(),
        "touchpoint" => into.touchpoint = from.touchpoint.clone(),
        "touchpoint.channel" => into.touchpoint.channel.clone_from(&from.touchpoint.channel),
        "touchpoint.touchpoint" => into
            .touchpoint
            .touchpoint
            .clone_from(&from.touchpoint.touchpoint),
        "touchpoint.touchpoint_type" => {
            into.touchpoint.touchpoint_type = from.touchpoint.touchpoint_type;
        }
        "touchpoint.owning_department" => {
            into.touchpoint.owning_department = from.touchpoint.owning_department;
        }
        "conversion" => into.conversion = from.conversion,
        "value_property" => into.value_property.clone_from(&from.value_property),
        "state" => into.deprecated = from.deprecated,
        "natural_key_properties" => {
            into.natural_key_properties = from.natural_key_properties.clone();
        }
        "anonymous_allowed" => into.anonymous_allowed = from.anonymous_allowed,
        "*" => {
            for p in [
                "display_name",
                "description",
                "aliases",
                "properties",
                "touchpoint",
                "conversion",
                "value_property",
                "state",
                "natural_key_properties",
                "anonymous_allowed",
            ] {
                apply_path(into, from, p)?;
            }
        }
        "name" | "event_name" | "template" | "version" | "create_time" | "update_time" | "etag" => {
            return Err(invalid(
                "update_mask",
                "IMMUTABLE_FIELD",
                &format!("{path} cannot be changed"),
            ));
        }
        other => {
            return Err(invalid(
                "update_mask",
                "UNKNOWN_FIELD",
                &format!("{other} is not a field of a canonical event"),
            ));
        }
    }
    Ok(())
}

/// `UpdateCanonicalEvent`.
#[expect(
    clippy::too_many_lines,
    reason = "one optimistic update: read, check the etag, apply the mask field by field, validate, write"
)]
pub async fn update(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::UpdateCanonicalEventRequest,
) -> Result<pb::UpdateCanonicalEventResponse, GovernanceError> {
    let Some(event) = &req.canonical_event else {
        return Err(invalid(
            "canonical_event",
            "REQUIRED",
            "the canonical event is required",
        ));
    };
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.clone())
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(invalid(
            "update_mask",
            "REQUIRED",
            "name the fields to change, or `*`",
        ));
    }
    let parent = format!("tenants/{tenant}");
    let id = event
        .name
        .strip_prefix(&format!("{parent}/canonicalEvents/"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            invalid(
                "canonical_event.name",
                "INVALID_NAME",
                "expected tenants/{tenant}/canonicalEvents/{event} of the caller's tenant",
            )
        })?;
    let mut draft = store::draft(pool, tenant).await?;
    let current = draft
        .get(id)
        .cloned()
        .ok_or_else(|| GovernanceError::NotFound(event.name.clone()))?;
    let etag = current.updated_at.timestamp_micros().to_string();
    if !event.etag.is_empty() && event.etag != etag {
        return Err(GovernanceError::Aborted(
            "the canonical event changed since it was read".into(),
        ));
    }
    let incoming = event_from_pb(id, event);
    let mut def = current.def.clone();
    for path in &paths {
        apply_path(&mut def, &incoming, path.trim())?;
    }
    let problems = validate_event(&def);
    if !problems.is_empty() {
        return Err(GovernanceError::Invalid(
            problems
                .into_iter()
                .map(|(f, d)| FieldViolation::new(f, "INVALID", d))
                .collect(),
        ));
    }
    if let Some(entry) = draft.get_mut(id) {
        entry.def = def.clone();
    }
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
    if !conflicts.is_empty() {
        return Err(invalid(
            "canonical_event.aliases",
            "ALIAS_CONFLICT",
            &conflicts.join("; "),
        ));
    }
    if req.validate_only {
        return Ok(pb::UpdateCanonicalEventResponse {
            canonical_event: Some(event_to_pb(&parent, &def, Some(&current))),
        });
    }
    if !store::update_event(pool, tenant, &def, current.updated_at).await? {
        return Err(GovernanceError::Aborted(
            "the canonical event changed concurrently".into(),
        ));
    }
    let stored = store::draft(pool, tenant).await?;
    Ok(pb::UpdateCanonicalEventResponse {
        canonical_event: Some(event_to_pb(&parent, &def, stored.get(&def.event_name))),
    })
}
