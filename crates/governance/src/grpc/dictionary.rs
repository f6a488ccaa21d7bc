//! Dictionary RPCs: conversions around the service's draft and versions.

use touchline_proto::common::v1::{Department, TouchpointType};
use touchline_proto::governance::v1 as pb;

use super::convert::{event_from_pb, event_to_pb};
use crate::domain::clean::timestamp_pb;
use crate::domain::dictionary::templates;
use crate::domain::{names, pages};
use crate::error::GovernanceError;
use crate::service::{CanonicalEvent, EventQuery, Governance, PublishRequest};
use crate::store::dictionary::VersionRow;

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
    governance: &Governance,
    tenant: &str,
    req: &pb::ApplyIndustryTemplateRequest,
) -> Result<pb::ApplyIndustryTemplateResponse, GovernanceError> {
    let overwrite = req.mode() == pb::ApplyTemplateMode::Overwrite;
    let merge = governance
        .apply_template(
            tenant,
            names::template_id(&req.template),
            overwrite,
            req.validate_only,
        )
        .await?;
    Ok(pb::ApplyIndustryTemplateResponse {
        added_event_names: merge.added,
        updated_event_names: merge.updated,
        unchanged_event_names: merge.unchanged,
    })
}

/// `CreateCanonicalEvent`.
pub async fn create(
    governance: &Governance,
    tenant: &str,
    req: &pb::CreateCanonicalEventRequest,
) -> Result<pb::CreateCanonicalEventResponse, GovernanceError> {
    let Some(event) = &req.canonical_event else {
        return Err(GovernanceError::invalid(
            "canonical_event",
            "REQUIRED",
            "the canonical event is required",
        ));
    };
    let def = event_from_pb(req.canonical_event_id.trim(), event);
    let created = governance
        .create_event(tenant, def, req.validate_only)
        .await?;
    Ok(pb::CreateCanonicalEventResponse {
        canonical_event: Some(canonical_event(tenant, &created)),
    })
}

/// A service event as the contract's, named under the tenant.
pub fn canonical_event(tenant: &str, event: &CanonicalEvent) -> pb::CanonicalEvent {
    event_to_pb(
        &format!("tenants/{tenant}"),
        &event.def,
        event.stored.as_ref(),
    )
}

/// `GetCanonicalEvent`.
pub async fn get(
    governance: &Governance,
    tenant: &str,
    req: &pb::GetCanonicalEventRequest,
) -> Result<pb::GetCanonicalEventResponse, GovernanceError> {
    let found = governance
        .canonical_event(tenant, req.dictionary_version, &req.name)
        .await?;
    Ok(pb::GetCanonicalEventResponse {
        canonical_event: Some(canonical_event(tenant, &found)),
    })
}

/// `ListCanonicalEvents` (page token: the last name returned).
pub async fn list(
    governance: &Governance,
    tenant: &str,
    req: &pb::ListCanonicalEventsRequest,
) -> Result<pb::ListCanonicalEventsResponse, GovernanceError> {
    // An unknown enum number reads as unspecified, which filters nothing.
    let query = EventQuery {
        version: req.dictionary_version,
        show_deprecated: req.show_deprecated,
        touchpoint_type: (req.touchpoint_type() != TouchpointType::Unspecified)
            .then_some(req.touchpoint_type),
        owning_department: (req.owning_department() != Department::Unspecified)
            .then_some(req.owning_department),
        after_name: req.page_token.clone(),
        size: pages::canonical_events_page(req.page_size),
    };
    let page = governance.list_events(tenant, &query).await?;
    Ok(pb::ListCanonicalEventsResponse {
        canonical_events: page
            .events
            .iter()
            .map(|e| canonical_event(tenant, e))
            .collect(),
        next_page_token: page.next_page_token,
        draft_etag: page.draft_etag,
    })
}

/// `PublishDictionaryVersion`.
pub async fn publish(
    governance: &Governance,
    tenant: &str,
    publisher: &str,
    req: &pb::PublishDictionaryVersionRequest,
) -> Result<pb::PublishDictionaryVersionResponse, GovernanceError> {
    let published = governance
        .publish(
            tenant,
            PublishRequest {
                draft_etag: &req.draft_etag,
                description: &req.description,
                publisher,
                validate_only: req.validate_only,
            },
        )
        .await?;
    Ok(pb::PublishDictionaryVersionResponse {
        dictionary_version: Some(pb::DictionaryVersion {
            name: format!("tenants/{tenant}/dictionaryVersions/{}", published.version),
            version: published.version,
            description: req.description.clone(),
            publish_time: Some(timestamp_pb(chrono::Utc::now())),
            publisher: publisher.to_owned(),
            active: true,
            canonical_event_count: i32::try_from(published.event_count).unwrap_or(i32::MAX),
            validation_rule_count: 0,
            changes: changes(published.changes),
        }),
    })
}

fn changes(changes: Vec<(String, i32)>) -> Vec<pb::DictionaryChange> {
    changes
        .into_iter()
        .map(|(event_name, kind)| pb::DictionaryChange { event_name, kind })
        .collect()
}

/// `ListDictionaryVersions` (page token: the last version returned).
pub async fn versions(
    governance: &Governance,
    tenant: &str,
    req: &pb::ListDictionaryVersionsRequest,
) -> Result<pb::ListDictionaryVersionsResponse, GovernanceError> {
    let size = pages::versions_page(req.page_size);
    let before = pages::versions_before(&req.page_token)?;
    let page = governance.versions(tenant, size, before).await?;
    Ok(pb::ListDictionaryVersionsResponse {
        dictionary_versions: page
            .versions
            .into_iter()
            .map(|v| version_to_pb(tenant, v, page.active))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

fn version_to_pb(tenant: &str, v: VersionRow, active: i64) -> pb::DictionaryVersion {
    pb::DictionaryVersion {
        name: format!("tenants/{tenant}/dictionaryVersions/{}", v.version),
        version: v.version,
        description: v.description,
        publish_time: Some(timestamp_pb(v.published_at)),
        publisher: v.publisher,
        active: v.version == active,
        canonical_event_count: i32::try_from(v.dictionary.events.len()).unwrap_or(i32::MAX),
        validation_rule_count: 0,
        changes: changes(v.changes),
    }
}
