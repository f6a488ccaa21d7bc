//! `UpdateCanonicalEvent`: the request as a service update, the event back as the contract's.

use touchline_proto::governance::v1 as pb;

use super::convert::event_from_pb;
use super::dictionary::canonical_event;
use crate::domain::names;
use crate::error::GovernanceError;
use crate::service::{EventUpdate, Governance};

/// `UpdateCanonicalEvent`.
pub async fn update(
    governance: &Governance,
    tenant: &str,
    req: &pb::UpdateCanonicalEventRequest,
) -> Result<pb::UpdateCanonicalEventResponse, GovernanceError> {
    let Some(event) = &req.canonical_event else {
        return Err(GovernanceError::invalid(
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
        return Err(GovernanceError::invalid(
            "update_mask",
            "REQUIRED",
            "name the fields to change, or `*`",
        ));
    }
    let id = names::canonical_event_id(tenant, &event.name)?;
    let update = EventUpdate {
        id: id.to_owned(),
        name: event.name.clone(),
        etag: event.etag.clone(),
        incoming: event_from_pb(id, event),
        paths,
        validate_only: req.validate_only,
    };
    let updated = governance.update_event(tenant, &update).await?;
    Ok(pb::UpdateCanonicalEventResponse {
        canonical_event: Some(canonical_event(tenant, &updated)),
    })
}
