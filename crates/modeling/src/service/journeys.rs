//! Journey analytics calls: check the request, take the tenant's current view, run the model
//! on the blocking pool.

use std::sync::Arc;

use touchline_analytics::funnel::PersonSelection;
use uuid::Uuid;

use super::Modeling;
use crate::error::ModelingError;
use crate::journeys::dropoffs::{self, DropOffPage, DropOffQuery};
use crate::journeys::funnel::{self, FunnelFigures, RunError};
use crate::journeys::lifecycle::{
    self, LifecycleFigures, LifecycleQuery, PersonError, PersonLifecycle, PersonLifecycleQuery,
};
use crate::journeys::listings::{ListingError, request_key};
use crate::journeys::paths::{self, PathFigures, PathsQuery};
use crate::journeys::query::{FunnelQuery, Violations};
use crate::journeys::retention::{self, RetentionFigures, RetentionQuery};
use crate::journeys::{Cancel, RunContext, TenantView};

/// The segment a query's scope names (an empty name: none) and the request field naming it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct InSegment<'a> {
    /// `tenants/{tenant}/segments/{segment}`, or empty.
    pub name: &'a str,
    /// Where the request names it, for a violation.
    pub field: &'static str,
}

impl<'a> InSegment<'a> {
    /// The segment `name` names at `field`.
    pub(super) fn at(name: &'a str, field: &'static str) -> Self {
        Self { name, field }
    }
}

fn invalid(problems: Violations) -> ModelingError {
    ModelingError::Invalid(problems.0)
}

fn failed(err: RunError) -> ModelingError {
    match err {
        RunError::Invalid(problems) => invalid(problems),
        RunError::Projection(err) => ModelingError::Projection(err),
        RunError::TooLarge(too_large) => ModelingError::TooLarge {
            estimate_mib: too_large.estimate >> 20,
            budget_mib: too_large.budget >> 20,
        },
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Modeling {
    /// Runs `work` on the tenant's current view on the blocking pool, with the event names
    /// the tenant's dictionary defines when `names` holds one the view has never stored. If
    /// the call is dropped (the client cancelled, or its deadline passed), the running query
    /// is told to stop.
    pub(super) async fn on_view<T, W>(
        &self,
        tenant: &str,
        names: Vec<String>,
        work: W,
    ) -> Result<T, ModelingError>
    where
        T: Send + 'static,
        W: FnOnce(&TenantView, &RunContext) -> Result<T, ModelingError> + Send + 'static,
    {
        self.on_scoped_view(tenant, names, InSegment::default(), work)
            .await
    }

    /// The persons of the segment a scope names, as they are now; a name that is not one of
    /// the tenant's live segments is a violation of `segment.field`.
    pub(super) async fn segment_members(
        &self,
        tenant: &str,
        segment: &InSegment<'_>,
    ) -> Result<Vec<Uuid>, ModelingError> {
        let unknown = || {
            ModelingError::invalid(
                segment.field,
                "UNKNOWN_SEGMENT",
                format!(
                    "{:?} is not a segment of this tenant / 该租户没有这个分群",
                    segment.name
                ),
            )
        };
        let id = crate::domain::tenant_segment_id(segment.name, tenant).ok_or_else(unknown)?;
        crate::store::segments::live_members(&self.pool, tenant, id)
            .await?
            .ok_or_else(unknown)
    }

    /// [`Self::on_view`] limited to the members of the segment `segment` names, when it
    /// names one: membership as the segment worker last published it.
    pub(super) async fn on_scoped_view<T, W>(
        &self,
        tenant: &str,
        names: Vec<String>,
        segment: InSegment<'_>,
        work: W,
    ) -> Result<T, ModelingError>
    where
        T: Send + 'static,
        W: FnOnce(&TenantView, &RunContext) -> Result<T, ModelingError> + Send + 'static,
    {
        let members = if segment.name.is_empty() {
            None
        } else {
            Some(self.segment_members(tenant, &segment).await?)
        };
        let view = self.journeys.current(tenant).await?;
        let events = &view.projection.dictionaries().events;
        let unseen = names.iter().any(|name| events.code(name).is_none());
        let (view, defined) = if unseen {
            // The dictionary is read without holding the view: a slow governance must not
            // keep the tenant's next catch-up (and every query queued behind it) waiting.
            drop(view);
            let defined = self.defined_event_names(tenant).await;
            (self.journeys.current(tenant).await?, defined)
        } else {
            (view, Vec::new())
        };
        let mut run = RunContext {
            defined,
            threads: self.journeys.threads(),
            cancel: Cancel::default(),
            persons: None,
        };
        let guard = run.cancel.on_drop();
        let done = tokio::task::spawn_blocking(move || {
            run.persons = members
                .map(|ids| Arc::new(ids.iter().filter_map(|id| view.persons.get(id)).collect()));
            work(&view, &run)
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "a journey task failed");
            ModelingError::Internal("journey query")
        })?;
        guard.disarm();
        done
    }

    /// The funnel's figures over every event committed before the call.
    pub async fn run_funnel(
        &self,
        tenant: &str,
        query: &FunnelQuery,
    ) -> Result<FunnelFigures, ModelingError> {
        let funnel = query.validate(now_ms()).map_err(invalid)?;
        let names = funnel.event_names().map(str::to_owned).collect();
        let segment = InSegment::at(&query.scope.segment, "funnel.scope.segment");
        self.on_scoped_view(tenant, names, segment, move |view, run| {
            funnel::run(view, &funnel, run).map_err(failed)
        })
        .await
    }

    /// Retention tables over every event committed before the call.
    pub async fn run_retention(
        &self,
        tenant: &str,
        query: &RetentionQuery,
    ) -> Result<RetentionFigures, ModelingError> {
        let retention = query.validate(now_ms()).map_err(invalid)?;
        let names = retention.event_names().map(str::to_owned).collect();
        let segment = InSegment::at(&query.scope.segment, "scope.segment");
        self.on_scoped_view(tenant, names, segment, move |view, run| {
            retention::run(view, &retention, run).map_err(failed)
        })
        .await
    }

    /// Lifecycle counts per interval over every event committed before the call.
    pub async fn run_lifecycle(
        &self,
        tenant: &str,
        query: &LifecycleQuery,
    ) -> Result<LifecycleFigures, ModelingError> {
        let now = now_ms();
        let lifecycle = query.validate(now).map_err(invalid)?;
        let names = lifecycle.event_names().map(str::to_owned).collect();
        let segment = InSegment::at(&query.scope.segment, "scope.segment");
        self.on_scoped_view(tenant, names, segment, move |view, run| {
            lifecycle::run(view, &lifecycle, now, run).map_err(failed)
        })
        .await
    }

    /// The heaviest paths over every event committed before the call.
    pub async fn run_paths(
        &self,
        tenant: &str,
        query: &PathsQuery,
    ) -> Result<PathFigures, ModelingError> {
        let paths = query.validate(now_ms()).map_err(invalid)?;
        let names = paths.event_names().map(str::to_owned).collect();
        let segment = InSegment::at(&query.scope.segment, "scope.segment");
        self.on_scoped_view(tenant, names, segment, move |view, run| {
            paths::run(view, &paths, run).map_err(failed)
        })
        .await
    }

    /// A page of the persons who dropped at a funnel step (or reached it), opted-out persons
    /// left out, by person id; every page of a listing comes from its first page's
    /// computation.
    pub async fn list_funnel_drop_offs(
        &self,
        tenant: &str,
        query: &DropOffQuery,
    ) -> Result<DropOffPage, ModelingError> {
        let request = request_key(&format!(
            "{tenant}|{:?}|{}|{}|{}",
            query.funnel, query.step, query.breakdown_value, query.reached
        ));
        let funnel = query.funnel.validate(now_ms()).map_err(invalid)?;
        let steps = funnel.steps.len();
        let step = usize::try_from(query.step).unwrap_or(0);
        let (first, what) = if query.reached {
            (1, "reached")
        } else {
            (2, "dropped at")
        };
        if !(first..=steps).contains(&step) {
            return Err(ModelingError::invalid(
                "step",
                "OUT_OF_RANGE",
                format!("the step persons {what}, from {first} to {steps}"),
            ));
        }
        let selection = if query.reached {
            PersonSelection::Reached(step)
        } else {
            PersonSelection::DroppedAt(step)
        };
        let (listing, offset) =
            match dropoffs::decode_token(&query.page_token)? {
                Some((id, offset)) => {
                    let listing = self.journeys.listings.get(id, request).map_err(
                        |err| match err {
                            ListingError::Expired => ModelingError::ListingExpired,
                            ListingError::OtherRequest => ModelingError::invalid(
                                "page_token",
                                "INVALID_PAGE_TOKEN",
                                "the page token belongs to another listing: send the same request",
                            ),
                        },
                    )?;
                    (Some((id, listing)), offset)
                }
                None => (None, 0),
            };
        let (id, listing) = match listing {
            Some(found) => found,
            None => {
                let value =
                    (!query.breakdown_value.is_empty()).then(|| query.breakdown_value.clone());
                let names = funnel.event_names().map(str::to_owned).collect();
                let segment = InSegment::at(&query.funnel.scope.segment, "funnel.scope.segment");
                let (dropped, computation) = self
                    .on_scoped_view(tenant, names, segment, move |view, run| {
                        let (persons, computation) =
                            funnel::listed(view, &funnel, run, selection, value.as_deref())
                                .map_err(failed)?;
                        Ok((dropoffs::with_ids(view, &persons), computation))
                    })
                    .await?;
                let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
                let listing = dropoffs::listing(dropped, &opted_out, computation);
                self.journeys.listings.put(request, listing)
            }
        };
        Ok(dropoffs::page(id, &listing, offset, query.page_size))
    }

    /// One person's lifecycle stage and history.
    pub async fn person_lifecycle(
        &self,
        tenant: &str,
        query: PersonLifecycleQuery,
    ) -> Result<PersonLifecycle, ModelingError> {
        let Ok(person) = Uuid::parse_str(&query.person) else {
            return Err(ModelingError::invalid(
                "name",
                "INVALID_PERSON",
                "name is tenants/{tenant}/persons/{person id}",
            ));
        };
        let person = crate::store::survivor_of(&self.pool, tenant, person).await?;
        let names = query
            .options
            .qualifying
            .iter()
            .map(|m| m.event_name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        let now = now_ms();
        self.on_view(tenant, names, move |view, run| {
            lifecycle::person(view, &query, person, &run.defined, now).map_err(|err| match err {
                PersonError::Invalid(problems) => invalid(problems),
                PersonError::NotFound => ModelingError::NotFound("person"),
            })
        })
        .await
    }

    /// The names the tenant's event dictionary defines; empty (names are then checked
    /// against stored events alone) when governance is not configured or cannot answer.
    async fn defined_event_names(&self, tenant: &str) -> Vec<String> {
        let Some(governance) = &self.governance else {
            return Vec::new();
        };
        governance
            .canonical_event_names(tenant)
            .await
            .unwrap_or_else(|status| {
                tracing::warn!(code = ?status.code(), "the event dictionary could not be read");
                Vec::new()
            })
    }
}
