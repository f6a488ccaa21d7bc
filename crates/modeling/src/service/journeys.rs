//! Journey analytics calls: check the request, take the tenant's current view, run the model
//! on the blocking pool.

use super::Modeling;
use crate::error::ModelingError;
use crate::journeys::funnel::{self, FunnelFigures, RunError};
use crate::journeys::query::FunnelQuery;

impl Modeling {
    /// The funnel's figures over every event committed before the call.
    pub async fn run_funnel(
        &self,
        tenant: &str,
        query: &FunnelQuery,
    ) -> Result<FunnelFigures, ModelingError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let funnel = query
            .validate(now_ms)
            .map_err(|problems| ModelingError::Invalid(problems.0))?;
        let view = self.journeys.current(tenant).await?;
        let events = &view.projection.dictionaries().events;
        let unseen = funnel.event_names().any(|name| events.code(name).is_none());
        let defined = if unseen {
            self.defined_event_names(tenant).await
        } else {
            Vec::new()
        };
        let threads = self.journeys.threads();
        let ran =
            tokio::task::spawn_blocking(move || funnel::run(&view, &funnel, &defined, threads))
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "a funnel task failed");
                    ModelingError::Internal("funnel")
                })?;
        ran.map_err(|err| match err {
            RunError::Invalid(problems) => ModelingError::Invalid(problems.0),
            RunError::Projection(err) => ModelingError::Projection(err),
        })
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
