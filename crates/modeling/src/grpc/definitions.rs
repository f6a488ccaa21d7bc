//! The trigger-definition calls: each reads its request into the service's terms, calls the
//! service, and converts the stored definition back.

use tonic::{Request, Response, Status};
use touchline_error::to_status;
use touchline_proto::modeling::v1 as pb;

use super::activation::definition_name;
use super::journeys::{span, span_ms, timestamp};
use super::segments::segment_name;
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use crate::service::{DefinitionInput, Modeling, NewDefinition};
use crate::store::activation::StoredDefinition;

fn status(err: ModelingError) -> Status {
    to_status(&err)
}

fn named<'a>(name: &'a str, field: &str) -> Result<(&'a str, &'a str), Status> {
    definition_name(name).ok_or_else(|| {
        status(ModelingError::invalid(
            field,
            "INVALID_NAME",
            "a trigger definition is named tenants/{tenant}/triggerDefinitions/{id}",
        ))
    })
}

/// The contract's definition for a stored one.
fn definition(tenant: &str, d: &StoredDefinition) -> pb::TriggerDefinition {
    let values: Vec<i32> = d.target_values.iter().map(|v| i32::from(*v)).collect();
    let t = i32::from(d.trigger_type);
    pb::TriggerDefinition {
        name: format!("tenants/{tenant}/triggerDefinitions/{}", d.definition_id),
        display_name: d.display_name.clone(),
        r#type: t,
        segment: if d.segment_id.is_empty() {
            String::new()
        } else {
            format!("tenants/{tenant}/segments/{}", d.segment_id)
        },
        lifecycle_stages: if t == pb::TriggerType::LifecycleStageChanged as i32 {
            values.clone()
        } else {
            Vec::new()
        },
        rfm_segments: if t == pb::TriggerType::RfmSegmentChanged as i32 {
            values
        } else {
            Vec::new()
        },
        frequency_cap: d
            .cap_max
            .zip(d.cap_period_secs)
            .map(|(most, secs)| pb::FrequencyCap {
                max_triggers: most,
                period: Some(span(secs.saturating_mul(1_000))),
            }),
        suppressed_count: d.suppressed_count,
        create_time: Some(timestamp(d.created_at)),
        update_time: Some(timestamp(d.updated_at)),
        etag: d.revision.to_string(),
    }
}

/// A definition as the service takes it.
fn input(tenant: &str, given: Option<&pb::TriggerDefinition>) -> DefinitionInput {
    let mut problems = Violations::default();
    let Some(d) = given else {
        problems.add("trigger_definition", "REQUIRED", "a definition is required");
        return DefinitionInput {
            problems,
            ..DefinitionInput::default()
        };
    };
    let segment = if d.segment.is_empty() {
        String::new()
    } else {
        match segment_name(&d.segment) {
            Some((parent, id)) if parent == format!("tenants/{tenant}") => id.to_owned(),
            _ => {
                problems.add(
                    "trigger_definition.segment",
                    "INVALID_NAME",
                    "a segment of the same tenant, as tenants/{tenant}/segments/{segment}",
                );
                String::new()
            }
        }
    };
    let cap = d.frequency_cap.as_ref().map(|c| {
        let secs = c.period.as_ref().map_or(0, span_ms) / 1_000;
        (c.max_triggers, secs)
    });
    DefinitionInput {
        display_name: d.display_name.clone(),
        trigger_type: d.r#type,
        segment,
        lifecycle_stages: d.lifecycle_stages.clone(),
        rfm_segments: d.rfm_segments.clone(),
        cap,
        problems,
    }
}

/// The token of the page after `id`.
fn token(id: &str) -> String {
    super::segments::encode(&format!("definitions:{id}"))
}

fn after(token: &str) -> Result<String, ModelingError> {
    if token.is_empty() {
        Ok(String::new())
    } else {
        super::segments::decode(token, "definitions:")
    }
}

/// CreateTriggerDefinition.
pub(super) async fn create(
    modeling: &Modeling,
    request: Request<pb::CreateTriggerDefinitionRequest>,
) -> Result<Response<pb::CreateTriggerDefinitionResponse>, Status> {
    let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
    let req = request.into_inner();
    let new = NewDefinition {
        id: req.trigger_definition_id,
        input: input(&tenant, req.trigger_definition.as_ref()),
        request_id: req.request_id,
    };
    let stored = modeling
        .create_trigger_definition(&tenant, new)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::CreateTriggerDefinitionResponse {
        trigger_definition: Some(definition(&tenant, &stored)),
    }))
}

/// GetTriggerDefinition.
pub(super) async fn get(
    modeling: &Modeling,
    request: Request<pb::GetTriggerDefinitionRequest>,
) -> Result<Response<pb::GetTriggerDefinitionResponse>, Status> {
    let (parent, id) = named(&request.get_ref().name, "name")?;
    let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
    let stored = modeling
        .trigger_definition(&tenant, id)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::GetTriggerDefinitionResponse {
        trigger_definition: Some(definition(&tenant, &stored)),
    }))
}

/// ListTriggerDefinitions.
pub(super) async fn list(
    modeling: &Modeling,
    request: Request<pb::ListTriggerDefinitionsRequest>,
) -> Result<Response<pb::ListTriggerDefinitionsResponse>, Status> {
    let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
    let req = request.get_ref();
    let size = super::segments::size(req.page_size, 100, 500).map_err(status)?;
    let from = after(&req.page_token).map_err(status)?;
    let (rows, more) = modeling
        .trigger_definitions(&tenant, &from, size)
        .await
        .map_err(status)?;
    let next_page_token = match rows.last() {
        Some(last) if more => token(&last.definition_id),
        _ => String::new(),
    };
    Ok(Response::new(pb::ListTriggerDefinitionsResponse {
        trigger_definitions: rows.iter().map(|d| definition(&tenant, d)).collect(),
        next_page_token,
    }))
}

/// UpdateTriggerDefinition.
pub(super) async fn update(
    modeling: &Modeling,
    request: Request<pb::UpdateTriggerDefinitionRequest>,
) -> Result<Response<pb::UpdateTriggerDefinitionResponse>, Status> {
    let given = request.get_ref().trigger_definition.as_ref();
    let name = given.map(|d| d.name.as_str()).unwrap_or_default();
    let (parent, id) = named(name, "trigger_definition.name")?;
    let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
    let req = request.get_ref();
    let etag = given.map(|d| d.etag.clone()).unwrap_or_default();
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.clone())
        .unwrap_or_default();
    let stored = modeling
        .update_trigger_definition(&tenant, id, &etag, input(&tenant, given), &paths)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::UpdateTriggerDefinitionResponse {
        trigger_definition: Some(definition(&tenant, &stored)),
    }))
}

/// DeleteTriggerDefinition.
pub(super) async fn delete(
    modeling: &Modeling,
    request: Request<pb::DeleteTriggerDefinitionRequest>,
) -> Result<Response<pb::DeleteTriggerDefinitionResponse>, Status> {
    let (parent, id) = named(&request.get_ref().name, "name")?;
    let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
    let req = request.get_ref();
    let deleted = modeling
        .delete_trigger_definition(&tenant, id, &req.etag)
        .await
        .map_err(status)?;
    if !deleted && !req.allow_missing {
        return Err(status(ModelingError::NotFound("trigger definition")));
    }
    Ok(Response::new(pb::DeleteTriggerDefinitionResponse {}))
}
