//! The tenant's event dictionary: the draft of canonical events, industry templates applied
//! to it, and the versions published from it.

use std::collections::BTreeMap;

use super::Governance;
use crate::domain::dictionary::{
    Dictionary, EventDef, TemplateMerge, apply_template, templates, validate_event,
};
use crate::domain::versions::{changes_since, draft_etag};
use crate::error::GovernanceError;
use crate::store::dictionary::{self as store, DraftEvent, VersionRow};
use crate::store::tenant;

/// A canonical event, with its draft bookkeeping when it was read from the draft.
#[derive(Debug, Clone)]
pub struct CanonicalEvent {
    /// The definition.
    pub def: EventDef,
    /// The draft entry (version, times, etag); none for a published version's event.
    pub stored: Option<DraftEvent>,
}

/// Which canonical events a listing shows.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// 0 for the draft, else a published version.
    pub version: i64,
    /// Whether deprecated events are shown.
    pub show_deprecated: bool,
    /// Only events of this touchpoint type, when given.
    pub touchpoint_type: Option<i32>,
    /// Only events of this owning department, when given.
    pub owning_department: Option<i32>,
    /// Only events named after this one (the previous page's last).
    pub after_name: String,
    /// The page size.
    pub size: usize,
}

/// One page of canonical events.
#[derive(Debug, Clone)]
pub struct EventsPage {
    /// The page, by name.
    pub events: Vec<CanonicalEvent>,
    /// Continues the listing; empty on the last page.
    pub next_page_token: String,
    /// The draft's etag when the draft was listed, else empty.
    pub draft_etag: String,
}

/// A publish as asked for.
#[derive(Debug, Clone, Copy)]
pub struct PublishRequest<'a> {
    /// The etag of the draft the publisher reviewed; empty skips the check.
    pub draft_etag: &'a str,
    /// The version's description.
    pub description: &'a str,
    /// Who publishes.
    pub publisher: &'a str,
    /// Check only; publish nothing.
    pub validate_only: bool,
}

/// A version published (or that would be, on a dry run).
#[derive(Debug, Clone)]
pub struct Published {
    /// Its number.
    pub version: i64,
    /// How many canonical events it holds.
    pub event_count: usize,
    /// What changed since the previous active version, with change kinds.
    pub changes: Vec<(String, i32)>,
}

/// One page of published versions, newest first.
#[derive(Debug, Clone)]
pub struct VersionsPage {
    /// The page.
    pub versions: Vec<VersionRow>,
    /// The active version.
    pub active: i64,
    /// Continues the listing; empty on the last page.
    pub next_page_token: String,
}

impl Governance {
    /// Merges the template `id` into the draft (replacing changed events with `overwrite`);
    /// a dry run writes nothing.
    pub async fn apply_template(
        &self,
        tenant: &str,
        id: &str,
        overwrite: bool,
        validate_only: bool,
    ) -> Result<TemplateMerge, GovernanceError> {
        let template = templates()
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| GovernanceError::NotFound(format!("industryTemplates/{id}")))?;
        let draft: BTreeMap<_, _> = store::draft(&self.pool, tenant)
            .await?
            .into_iter()
            .map(|(k, v)| (k, v.def))
            .collect();
        let merge = apply_template(&draft, &template, overwrite);
        if !validate_only {
            store::upsert_events(&self.pool, tenant, &merge.writes).await?;
        }
        Ok(merge)
    }

    /// Adds `def` to the draft after checking it; a dry run only checks.
    pub async fn create_event(
        &self,
        tenant: &str,
        def: EventDef,
        validate_only: bool,
    ) -> Result<CanonicalEvent, GovernanceError> {
        let problems = validate_event(&def);
        if !problems.is_empty() {
            return Err(GovernanceError::problems(problems));
        }
        if validate_only {
            return Ok(CanonicalEvent { def, stored: None });
        }
        if !store::insert_event(&self.pool, tenant, &def).await? {
            return Err(GovernanceError::AlreadyExists(format!(
                "tenants/{tenant}/canonicalEvents/{}",
                def.event_name
            )));
        }
        let stored = store::draft(&self.pool, tenant)
            .await?
            .remove(&def.event_name);
        Ok(CanonicalEvent { def, stored })
    }

    /// The canonical event `name` of the draft (version 0) or of a published version.
    pub async fn canonical_event(
        &self,
        tenant: &str,
        version: i64,
        name: &str,
    ) -> Result<CanonicalEvent, GovernanceError> {
        let prefix = format!("tenants/{tenant}/canonicalEvents/");
        self.events_of(tenant, version)
            .await?
            .into_iter()
            .find(|e| name.strip_prefix(&prefix) == Some(e.def.event_name.as_str()))
            .ok_or_else(|| GovernanceError::NotFound(name.to_owned()))
    }

    /// A page of the canonical events `query` selects (page token: the last name returned).
    pub async fn list_events(
        &self,
        tenant: &str,
        query: &EventQuery,
    ) -> Result<EventsPage, GovernanceError> {
        let all: Vec<CanonicalEvent> = self
            .events_of(tenant, query.version)
            .await?
            .into_iter()
            .filter(|e| query.show_deprecated || !e.def.deprecated)
            .filter(|e| {
                let t = &e.def.touchpoint;
                query.touchpoint_type.is_none_or(|v| t.touchpoint_type == v)
                    && query
                        .owning_department
                        .is_none_or(|v| t.owning_department == v)
            })
            .filter(|e| query.after_name.is_empty() || e.def.event_name > query.after_name)
            .collect();
        let more = all.len() > query.size;
        let events: Vec<_> = all.into_iter().take(query.size).collect();
        let next_page_token = match events.last() {
            Some(last) if more => last.def.event_name.clone(),
            _ => String::new(),
        };
        let draft_etag = if query.version == 0 {
            self.draft_etag(tenant).await?
        } else {
            String::new()
        };
        Ok(EventsPage {
            events,
            next_page_token,
            draft_etag,
        })
    }

    /// The events of the draft (version 0) or of a published version, by name.
    async fn events_of(
        &self,
        tenant: &str,
        version: i64,
    ) -> Result<Vec<CanonicalEvent>, GovernanceError> {
        if version == 0 {
            let draft = store::draft(&self.pool, tenant).await?;
            return Ok(draft
                .into_values()
                .map(|d| CanonicalEvent {
                    def: d.def.clone(),
                    stored: Some(d),
                })
                .collect());
        }
        let dict = tenant::dictionary(&self.pool, tenant, version)
            .await?
            .ok_or_else(|| {
                GovernanceError::NotFound(format!("tenants/{tenant}/dictionaryVersions/{version}"))
            })?;
        Ok(dict
            .events
            .into_values()
            .map(|def| CanonicalEvent { def, stored: None })
            .collect())
    }

    async fn draft_etag(&self, tenant: &str) -> Result<String, GovernanceError> {
        let draft = store::draft(&self.pool, tenant).await?;
        Ok(draft_etag(draft.values().map(|d| d.updated_at)))
    }

    /// Publishes the draft as the next version, unless it changed since the publisher
    /// reviewed it, holds conflicting aliases, or changes nothing.
    pub async fn publish(
        &self,
        tenant: &str,
        req: PublishRequest<'_>,
    ) -> Result<Published, GovernanceError> {
        if !req.draft_etag.is_empty() && req.draft_etag != self.draft_etag(tenant).await? {
            return Err(GovernanceError::Aborted(
                "the draft changed since it was reviewed".into(),
            ));
        }
        let draft = store::draft(&self.pool, tenant).await?;
        let dictionary = Dictionary {
            version: 0,
            events: draft.into_iter().map(|(k, v)| (k, v.def)).collect(),
        };
        let conflicts = dictionary.conflicts();
        if !conflicts.is_empty() {
            return Err(GovernanceError::FailedPrecondition(conflicts.join("; ")));
        }
        let active = tenant::active_version(&self.pool, tenant).await?;
        let previous = tenant::dictionary(&self.pool, tenant, active)
            .await?
            .unwrap_or_default();
        let changes = changes_since(&previous, &dictionary);
        if changes.is_empty() && active > 0 {
            return Err(GovernanceError::FailedPrecondition(
                "nothing changed since the active version".into(),
            ));
        }
        let version = if req.validate_only {
            active + 1
        } else {
            store::publish(
                &self.pool,
                tenant,
                active,
                &dictionary,
                req.description,
                req.publisher,
                &changes,
            )
            .await?
            .ok_or_else(|| {
                GovernanceError::Aborted("another version was published concurrently".into())
            })?
        };
        Ok(Published {
            version,
            event_count: dictionary.events.len(),
            changes,
        })
    }

    /// Up to `size` published versions older than `before`, newest first.
    pub async fn versions(
        &self,
        tenant: &str,
        size: i64,
        before: i64,
    ) -> Result<VersionsPage, GovernanceError> {
        let active = tenant::active_version(&self.pool, tenant).await?;
        let mut versions = store::versions(&self.pool, tenant, size + 1, before).await?;
        let more = versions.len() > usize::try_from(size).unwrap_or(usize::MAX);
        versions.truncate(usize::try_from(size).unwrap_or(50));
        let next_page_token = match versions.last() {
            Some(last) if more => last.version.to_string(),
            _ => String::new(),
        };
        Ok(VersionsPage {
            versions,
            active,
            next_page_token,
        })
    }
}
