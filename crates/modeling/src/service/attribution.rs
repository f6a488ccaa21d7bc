//! Attribution calls: check the request, read the cost reports it needs, run the models on
//! the tenant's current view (stored events) or on the supplied paths, on the blocking pool.

use super::Modeling;
use super::journeys::InSegment;
use crate::error::ModelingError;
use crate::journeys::attribution::models::ModelsError;
use crate::journeys::attribution::on_paths::{
    self, AttributionFigures, OnPathsError, OnPathsQuery,
};
use crate::journeys::attribution::query::{AttributionQuery, Conversion, Costs, ValidAttribution};
use crate::journeys::attribution::unidentified::{self, Unidentified};
use crate::journeys::attribution::{self, StoredError, StoredFigures};
use crate::store::costs::{CostSums, cost_sums};
use crate::store::journal;

fn stored(err: StoredError) -> ModelingError {
    match err {
        StoredError::Invalid(problems) => ModelingError::Invalid(problems.0),
        StoredError::Models(err) => models_failed(err),
    }
}

fn models_failed(err: ModelsError) -> ModelingError {
    match err {
        ModelsError::TooManyChannels { model, channels } => ModelingError::TooManyChannels {
            model,
            channels,
            limit: touchline_analytics::attribution::SHAPLEY_EXACT_CHANNEL_LIMIT,
        },
        ModelsError::Model(err) => {
            tracing::error!(error = %err, "an attribution model refused a checked input");
            ModelingError::Internal("attribution model")
        }
    }
}

/// Attribution on stored events, with what the cost reports gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The models' figures.
    pub figures: StoredFigures,
    /// The cost reports read (`None` without cost events).
    pub cost_reports: Option<CostSums>,
    /// The conversions in the range stored without a person, which no model credits unless
    /// the request credits them to the channel that recorded them (none counted when the
    /// scope names a segment: no segment holds them).
    pub unidentified: Unidentified,
}

impl Modeling {
    /// Attribution over every event committed before the call.
    pub async fn run_attribution(
        &self,
        tenant: &str,
        query: &AttributionQuery,
    ) -> Result<Attribution, ModelingError> {
        let mut valid = query
            .validate(chrono::Utc::now().timestamp_millis())
            .map_err(|problems| ModelingError::Invalid(problems.0))?;
        if let Conversion::Dictionary(names) = &mut valid.conversion {
            *names = self.conversion_event_names(tenant).await?;
        }
        let (costs, cost_reports) = match &valid.costs {
            Costs::None => (Vec::new(), None),
            Costs::Supplied(list) => (list.clone(), None),
            Costs::Events {
                event_name,
                cost_property,
                channel_property,
            } => {
                let sums = cost_sums(
                    &self.pool,
                    tenant,
                    event_name,
                    cost_property,
                    channel_property.as_deref(),
                    valid.range,
                )
                .await?;
                (sums.by_channel.clone(), Some(sums))
            }
        };
        let names = valid.event_names().map(str::to_owned).collect();
        let segment = InSegment::at(&query.scope.segment, "scope.segment");
        let person_less = query.scope.segment.is_empty();
        let request = valid.clone();
        let (journeys, properties, revision) = self
            .on_scoped_view(tenant, names, segment, move |view, run| {
                let journeys = attribution::read_journeys(view, &valid, run).map_err(stored)?;
                Ok((journeys, view.properties.clone(), view.positions.revision))
            })
            .await?;
        // The conversions without a person are counted first: crediting them to the channel
        // that recorded them adds them to the journeys the models read.
        let unidentified = if person_less {
            self.unidentified_conversions(tenant, request.clone(), properties, revision)
                .await?
        } else {
            Unidentified::default()
        };
        let recorded = unidentified.recorded.clone();
        let threads = self.journeys.threads();
        let figures = tokio::task::spawn_blocking(move || {
            attribution::credit(journeys, &request, &costs, &recorded, threads).map_err(stored)
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "the attribution models failed");
            ModelingError::Internal("attribution")
        })??;
        Ok(Attribution {
            figures,
            cost_reports,
            unidentified,
        })
    }

    /// The conversions of `query` among the events stored without a person, up to the
    /// `revision` the models read: the rows stream from the store to a reader on the
    /// blocking pool, a few chunks in flight.
    async fn unidentified_conversions(
        &self,
        tenant: &str,
        query: ValidAttribution,
        properties: Vec<String>,
        revision: i64,
    ) -> Result<Unidentified, ModelingError> {
        let names = unidentified::conversion_names(&query);
        let range = query.range;
        let threads = self.journeys.threads();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<journal::JournalEvent>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            unidentified::count(
                std::iter::from_fn(|| receiver.blocking_recv()),
                properties,
                &query,
                threads,
            )
        });
        let read = journal::unowned(
            &self.pool,
            tenant,
            names.as_deref(),
            range,
            revision,
            &sender,
        )
        .await;
        drop(sender);
        let counted = reader.await.map_err(|err| {
            tracing::error!(error = %err, "the unidentified-conversion count failed");
            ModelingError::Internal("attribution")
        })?;
        read?;
        counted.map_err(|err| match err {
            unidentified::UnidentifiedError::Projection(err) => ModelingError::Projection(err),
            err => {
                tracing::error!(error = %err, "conversions without a person could not be counted");
                ModelingError::Internal("attribution")
            }
        })
    }

    /// The events the tenant's dictionary flags as conversions; refused when there is none
    /// or the dictionary cannot be read (the caller can name the conversion instead).
    async fn conversion_event_names(&self, tenant: &str) -> Result<Vec<String>, ModelingError> {
        let defined = match &self.governance {
            Some(governance) => governance
                .canonical_events(tenant)
                .await
                .map_err(|status| ModelingError::upstream("governance", &status))?,
            None => Vec::new(),
        };
        let names: Vec<String> = defined
            .into_iter()
            .filter(|e| e.conversion)
            .map(|e| e.name)
            .collect();
        if names.is_empty() {
            return Err(ModelingError::invalid(
                "conversion_event",
                "REQUIRED",
                "the event dictionary flags no event as a conversion: name the conversion event",
            ));
        }
        Ok(names)
    }

    /// Attribution on paths the caller supplies; reads no stored data.
    pub async fn run_attribution_on_paths(
        &self,
        query: OnPathsQuery,
    ) -> Result<AttributionFigures, ModelingError> {
        let threads = self.journeys.threads();
        tokio::task::spawn_blocking(move || on_paths::run(&query, threads))
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "an attribution task failed");
                ModelingError::Internal("attribution")
            })?
            .map_err(|err| match err {
                OnPathsError::Invalid(problems) => ModelingError::Invalid(problems.0),
                OnPathsError::Models(err) => models_failed(err),
            })
    }
}
