//! The per-person model outputs rules may read besides events — churn scores and flags,
//! lifecycle stages, RFM segments — computed once per evaluation under the tenant's model
//! settings, and only when a rule reads them; and the holders of the identifier types rules
//! name, read from the identifiers identity announced.

use std::collections::HashSet;

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;
use touchline_analytics::calendar::Interval;
use touchline_analytics::lifecycle::LifecycleStage;
use uuid::Uuid;

use super::Modeling;
use crate::error::ModelingError;
use crate::journeys::churn::{self, ChurnTable, PurchaseEvent};
use crate::journeys::churn_settings::RfmOptions;
use crate::journeys::lifecycle::{self, LifecycleOptions};
use crate::journeys::query::Scope;
use crate::journeys::segments::{Context, IdentifierHeld, Rule};
use crate::journeys::{RunContext, TenantView};

/// What the outputs are computed from, read before the view is taken.
pub(super) struct Inputs {
    /// The churn table, when needed.
    pub churn: Option<Arc<ChurnTable>>,
    lifecycle: Option<(LifecycleOptions, Scope)>,
    rfm: Option<(PurchaseEvent, RfmOptions)>,
    zone: Tz,
    /// The persons holding each identifier type a rule names (see [`Modeling::read_holders`]).
    pub holders: HashMap<IdentifierHeld, Arc<HashSet<Uuid>>>,
}

/// The outputs computed over the view.
#[derive(Default)]
pub(super) struct Outputs {
    /// Every person's lifecycle stage, when needed.
    pub lifecycle: Option<HashMap<Uuid, LifecycleStage>>,
    /// Every scored person's RFM segment (contract number), when needed.
    pub rfm: Option<HashMap<Uuid, u8>>,
}

/// The contract's `Interval` number as the calendar's; weeks by default.
fn interval(number: i32) -> Interval {
    match number {
        1 => Interval::Hour,
        2 => Interval::Day,
        4 => Interval::Month,
        _ => Interval::Week,
    }
}

fn settings_invalid(problems: &crate::journeys::query::Violations) -> ModelingError {
    tracing::error!(
        violations = problems.0.len(),
        "stored model settings break a rule"
    );
    ModelingError::Internal("model settings")
}

/// Which outputs a computation needs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Needs {
    /// Churn scores and flags.
    pub churn: bool,
    /// Lifecycle stages.
    pub lifecycle: bool,
    /// RFM segments.
    pub rfm: bool,
}

impl Needs {
    /// Every output.
    pub const ALL: Self = Self {
        churn: true,
        lifecycle: true,
        rfm: true,
    };

    /// What `rules` read.
    pub fn of(rules: &[&Rule]) -> Self {
        Self {
            churn: rules.iter().any(|r| r.uses_churn()),
            lifecycle: rules.iter().any(|r| r.uses_lifecycle()),
            rfm: rules.iter().any(|r| r.uses_rfm()),
        }
    }
}

impl Modeling {
    /// Reads what `needs` asks for: the churn table, the lifecycle and RFM options.
    pub(super) async fn output_inputs(
        &self,
        tenant: &str,
        needs: Needs,
    ) -> Result<Inputs, ModelingError> {
        let settings = self.model_settings(tenant).await?;
        let effective = settings
            .settings
            .validate("")
            .map_err(|p| settings_invalid(&p))?;
        let churn = if needs.churn {
            Some(self.churn_table(tenant, &settings).await?)
        } else {
            None
        };
        let lifecycle = needs.lifecycle.then(|| {
            let s = &settings.settings;
            let options = LifecycleOptions {
                interval: Some(interval(s.lifecycle.interval)),
                qualifying: s.lifecycle.qualifying.clone(),
                churn_intervals: s.lifecycle.churn_intervals,
            };
            let scope = Scope {
                time_zone: s.time_zone.clone(),
                week_start: s.week_start,
                ..Scope::default()
            };
            (options, scope)
        });
        let rfm = if needs.rfm {
            let purchase = self
                .purchase_event(tenant, effective.purchase_event.as_ref())
                .await?;
            Some((purchase, effective.rfm.clone()))
        } else {
            None
        };
        Ok(Inputs {
            churn,
            lifecycle,
            rfm,
            zone: effective.time_zone,
            holders: HashMap::new(),
        })
    }

    /// Reads, for each identifier condition of `rules`, who holds such an identifier now.
    pub(super) async fn read_holders(
        &self,
        tenant: &str,
        rules: &[&Rule],
        inputs: &mut Inputs,
    ) -> Result<(), ModelingError> {
        let named: std::collections::BTreeSet<IdentifierHeld> =
            rules.iter().flat_map(|r| r.identifiers_held()).collect();
        for held in named {
            let persons =
                crate::store::identifiers::holders(&self.pool, tenant, &held.id_type, &held.scope)
                    .await?;
            inputs.holders.insert(held, Arc::new(persons));
        }
        Ok(())
    }
}

impl Inputs {
    /// Computes the outputs over `view` as of `now_ms`.
    pub(super) fn outputs(
        &self,
        view: &TenantView,
        run: &RunContext,
        now_ms: i64,
    ) -> Result<Outputs, ModelingError> {
        let lifecycle = match &self.lifecycle {
            Some((options, scope)) => Some(
                lifecycle::stages(view, options, scope, &run.defined, now_ms, run.threads)
                    .map_err(|p| settings_invalid(&p))?,
            ),
            None => None,
        };
        let rfm = match &self.rfm {
            Some((purchase, options)) => {
                let condition =
                    churn::purchase_condition(view, purchase, run, "purchase_event", false)
                        .map_err(|p| settings_invalid(&p))?;
                let scored = churn::run_rfm(view, &condition, options, now_ms, run);
                Some(
                    scored
                        .persons
                        .iter()
                        .map(|p| (p.person, p.segment.code()))
                        .collect(),
                )
            }
            None => None,
        };
        Ok(Outputs { lifecycle, rfm })
    }

    /// What a rule reads at `now_ms`, borrowing the outputs.
    pub(super) fn context<'a>(&'a self, outputs: &'a Outputs, now_ms: i64) -> Context<'a> {
        Context {
            now_ms,
            zone: self.zone,
            churn: self.churn.as_deref(),
            lifecycle: outputs.lifecycle.as_ref(),
            rfm: outputs.rfm.as_ref(),
            holders: Some(&self.holders),
        }
    }
}
