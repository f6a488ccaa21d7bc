//! Dictionary RPCs: thin conversions around the draft and versions.

use std::collections::BTreeMap;

use touchline_error::FieldViolation;
use touchline_proto::common::v1::{Department, TouchpointType};
use touchline_proto::governance::v1 as pb;

use super::convert::{event_from_pb, event_to_pb};
use crate::domain::dictionary::{Dictionary, apply_template, templates, validate_event};
use crate::error::GovernanceError;
use crate::store::{dictionary as store, tenant};

fn invalid(field: &str, reason: &'static str, description: &str) -> GovernanceError {
    GovernanceError::invalid(field, reason, description)
}

/// `ListIndustryTemplates`.
pub fn list_templates(req: &pb::ListIndustryTemplatesRequest) -> pb::ListIndustryTemplatesResponse {
    let full = req.view() == pb::TemplateView::Full;
    let industry_templates = templates()
        .into_iter()
        .filter(|t| req.industry() == pb::Industry::Unspecified || t.industry == req.industry)
        .map(|t| pb::IndustryTemplate {
            name: format!("industryTemplates/{}", t.id),
            industry: t.industry,
            display_name: Some(touchline_proto::common::v1::LocalizedText {
                zh_cn: t.display_name.zh_cn.clone(),
                en: t.display_name.en.clone(),
            }),
            description: Some(touchline_proto::common::v1::LocalizedText {
                zh_cn: t.description.zh_cn.clone(),
                en: t.description.en.clone(),
            }),
            canonical_event_count: i32::try_from(t.events.len()).unwrap_or(i32::MAX),
            canonical_events: if full {
                let parent = format!("industryTemplates/{}", t.id);
                t.events
                    .iter()
                    .map(|e| event_to_pb(&parent, e, None))
                    .collect()
            } else {
                Vec::new()
            },
            revision: t.revision.clone(),
        })
        .collect();
    pb::ListIndustryTemplatesResponse {
        industry_templates,
        next_page_token: String::new(),
    }
}

/// `ApplyIndustryTemplate`.
pub async fn apply(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::ApplyIndustryTemplateRequest,
) -> Result<pb::ApplyIndustryTemplateResponse, GovernanceError> {
    let id = req
        .template
        .strip_prefix("industryTemplates/")
        .unwrap_or(&req.template);
    let template = templates()
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| GovernanceError::NotFound(format!("industryTemplates/{id}")))?;
    let draft: BTreeMap<_, _> = store::draft(pool, tenant)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.def))
        .collect();
    let overwrite = req.mode() == pb::ApplyTemplateMode::Overwrite;
    let merge = apply_template(&draft, &template, overwrite);
    if !req.validate_only {
        store::upsert_events(pool, tenant, &merge.writes).await?;
    }
    Ok(pb::ApplyIndustryTemplateResponse {
        added_event_names: merge.added,
        updated_event_names: merge.updated,
        unchanged_event_names: merge.unchanged,
    })
}

/// `CreateCanonicalEvent`.
pub async fn create(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::CreateCanonicalEventRequest,
) -> Result<pb::CreateCanonicalEventResponse, GovernanceError> {
    let Some(event) = &req.canonical_event else {
        return Err(invalid(
            "canonical_event",
            "REQUIRED",
            "the canonical event is required",
        ));
    };
    let def = event_from_pb(req.canonical_event_id.trim(), event);
    let problems = validate_event(&def);
    if !problems.is_empty() {
        return Err(GovernanceError::Invalid(
            problems
                .into_iter()
                .map(|(f, d)| FieldViolation::new(f, "INVALID", d))
                .collect(),
        ));
    }
    let parent = format!("tenants/{tenant}");
    if req.validate_only {
        return Ok(pb::CreateCanonicalEventResponse {
            canonical_event: Some(event_to_pb(&parent, &def, None)),
        });
    }
    if !store::insert_event(pool, tenant, &def).await? {
        return Err(GovernanceError::AlreadyExists(format!(
            "{parent}/canonicalEvents/{}",
            def.event_name
        )));
    }
    let stored = store::draft(pool, tenant).await?;
    Ok(pb::CreateCanonicalEventResponse {
        canonical_event: Some(event_to_pb(&parent, &def, stored.get(&def.event_name))),
    })
}

/// The events of the draft (version 0) or of a published version.
async fn events_of(
    pool: &sqlx::PgPool,
    tenant: &str,
    version: i64,
) -> Result<Vec<pb::CanonicalEvent>, GovernanceError> {
    let parent = format!("tenants/{tenant}");
    if version == 0 {
        let draft = store::draft(pool, tenant).await?;
        return Ok(draft
            .values()
            .map(|d| event_to_pb(&parent, &d.def, Some(d)))
            .collect());
    }
    let dict = tenant::dictionary(pool, tenant, version)
        .await?
        .ok_or_else(|| {
            GovernanceError::NotFound(format!("{parent}/dictionaryVersions/{version}"))
        })?;
    Ok(dict
        .events
        .values()
        .map(|e| event_to_pb(&parent, e, None))
        .collect())
}

/// `GetCanonicalEvent`.
pub async fn get(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::GetCanonicalEventRequest,
) -> Result<pb::GetCanonicalEventResponse, GovernanceError> {
    let found = events_of(pool, tenant, req.dictionary_version)
        .await?
        .into_iter()
        .find(|e| e.name == req.name)
        .ok_or_else(|| GovernanceError::NotFound(req.name.clone()))?;
    Ok(pb::GetCanonicalEventResponse {
        canonical_event: Some(found),
    })
}

/// `ListCanonicalEvents` (page token: the last name returned).
pub async fn list(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::ListCanonicalEventsRequest,
) -> Result<pb::ListCanonicalEventsResponse, GovernanceError> {
    let size = usize::try_from(match req.page_size {
        n if n <= 0 => 100,
        n => n.min(1000),
    })
    .unwrap_or(100);
    let all: Vec<pb::CanonicalEvent> = events_of(pool, tenant, req.dictionary_version)
        .await?
        .into_iter()
        .filter(|e| req.show_deprecated || e.state() != pb::CanonicalEventState::Deprecated)
        .filter(|e| {
            let t = e.touchpoint.clone().unwrap_or_default();
            let any_type = req.touchpoint_type() == TouchpointType::Unspecified;
            let any_department = req.owning_department() == Department::Unspecified;
            (any_type || t.touchpoint_type == req.touchpoint_type)
                && (any_department || t.owning_department == req.owning_department)
        })
        .filter(|e| req.page_token.is_empty() || e.event_name > req.page_token)
        .collect();
    let more = all.len() > size;
    let page: Vec<_> = all.into_iter().take(size).collect();
    let next = if more {
        page.last()
            .map(|e| e.event_name.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let draft_etag = if req.dictionary_version == 0 {
        draft_etag(pool, tenant).await?
    } else {
        String::new()
    };
    Ok(pb::ListCanonicalEventsResponse {
        canonical_events: page,
        next_page_token: next,
        draft_etag,
    })
}

async fn draft_etag(pool: &sqlx::PgPool, tenant: &str) -> Result<String, GovernanceError> {
    let draft = store::draft(pool, tenant).await?;
    let latest = draft
        .values()
        .map(|d| d.updated_at.timestamp_micros())
        .max()
        .unwrap_or(0);
    Ok(format!("{}-{latest}", draft.len()))
}

/// `PublishDictionaryVersion`.
pub async fn publish(
    pool: &sqlx::PgPool,
    tenant: &str,
    publisher: &str,
    req: &pb::PublishDictionaryVersionRequest,
) -> Result<pb::PublishDictionaryVersionResponse, GovernanceError> {
    if !req.draft_etag.is_empty() && req.draft_etag != draft_etag(pool, tenant).await? {
        return Err(GovernanceError::Aborted(
            "the draft changed since it was reviewed".into(),
        ));
    }
    let draft = store::draft(pool, tenant).await?;
    let dictionary = Dictionary {
        version: 0,
        events: draft
            .iter()
            .map(|(k, v)| (k.clone(), v.def.clone()))
            .collect(),
    };
    let conflicts = dictionary.conflicts();
    if !conflicts.is_empty() {
        return Err(GovernanceError::FailedPrecondition(conflicts.join("; ")));
    }
    let active = tenant::active_version(pool, tenant).await?;
    let previous = tenant::dictionary(pool, tenant, active)
        .await?
        .unwrap_or_default();
    let mut changes = Vec::new();
    for (name, def) in &dictionary.events {
        match previous.events.get(name) {
            None => changes.push((name.clone(), 1)),
            Some(old) if old != def && def.deprecated && !old.deprecated => {
                changes.push((name.clone(), 3))
            }
            Some(old) if old != def => changes.push((name.clone(), 2)),
            Some(_) => {}
        }
    }
    if changes.is_empty() && active > 0 {
        return Err(GovernanceError::FailedPrecondition(
            "nothing changed since the active version".into(),
        ));
    }
    let version = if req.validate_only {
        active + 1
    } else {
        store::publish(
            pool,
            tenant,
            active,
            &dictionary,
            &req.description,
            publisher,
            &changes,
        )
        .await?
        .ok_or_else(|| {
            GovernanceError::Aborted("another version was published concurrently".into())
        })?
    };
    Ok(pb::PublishDictionaryVersionResponse {
        dictionary_version: Some(pb::DictionaryVersion {
            name: format!("tenants/{tenant}/dictionaryVersions/{version}"),
            version,
            description: req.description.clone(),
            publish_time: Some(crate::domain::clean::timestamp_pb(chrono::Utc::now())),
            publisher: publisher.to_owned(),
            active: true,
            canonical_event_count: i32::try_from(dictionary.events.len()).unwrap_or(i32::MAX),
            validation_rule_count: 0,
            changes: changes
                .into_iter()
                .map(|(event_name, kind)| pb::DictionaryChange { event_name, kind })
                .collect(),
        }),
    })
}

/// `ListDictionaryVersions` (page token: the last version returned).
pub async fn versions(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::ListDictionaryVersionsRequest,
) -> Result<pb::ListDictionaryVersionsResponse, GovernanceError> {
    let size = i64::from(if req.page_size <= 0 {
        50
    } else {
        req.page_size.min(500)
    });
    let before = if req.page_token.is_empty() {
        i64::MAX
    } else {
        req.page_token.parse::<i64>().map_err(|_| {
            invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "not a token this call returned",
            )
        })?
    };
    let active = tenant::active_version(pool, tenant).await?;
    let rows = store::versions(pool, tenant, size + 1, before).await?;
    let more = rows.len() > usize::try_from(size).unwrap_or(usize::MAX);
    let list: Vec<_> = rows
        .into_iter()
        .take(usize::try_from(size).unwrap_or(50))
        .collect();
    let next = if more {
        list.last()
            .map(|v| v.version.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListDictionaryVersionsResponse {
        dictionary_versions: list
            .into_iter()
            .map(|v| pb::DictionaryVersion {
                name: format!("tenants/{tenant}/dictionaryVersions/{}", v.version),
                version: v.version,
                description: v.description,
                publish_time: Some(crate::domain::clean::timestamp_pb(v.published_at)),
                publisher: v.publisher,
                active: v.version == active,
                canonical_event_count: i32::try_from(v.dictionary.events.len()).unwrap_or(i32::MAX),
                validation_rule_count: 0,
                changes: v
                    .changes
                    .into_iter()
                    .map(|(event_name, kind)| pb::DictionaryChange { event_name, kind })
                    .collect(),
            })
            .collect(),
        next_page_token: next,
    })
}
