//! How much memory one query may hold, and the upper bounds that are checked against it
//! before a query runs, so a query too large is refused (RESOURCE_EXHAUSTED) rather than
//! taking the process's memory from every other tenant.
//!
//! The bounds follow what the models keep (see the analytics crate's accumulators):
//! - funnels keep one `i64` per counted person and step past the first (medians need every
//!   value), once overall and once per breakdown row the person counts under (at most the
//!   steps, with ALL_EVENTS attribution), one row of statistics per breakdown value per
//!   worker, and for listings about 48 bytes a counted person;
//! - retention keeps a counter per cohort, period and breakdown value per worker.
//!
//! Lifecycle (a few counters per interval) and paths (bounded by the items the data holds)
//! stay far below the budget on any tenant the projection can hold.

use touchline_projection::query::Dimension;

use super::compile;
use super::query::{BreakdownAttribution, ValidFunnel};
use super::view::TenantView;

/// The most memory one query may hold: 1 GiB, a twentieth of the machines the service is
/// sized for, so a few large queries side by side leave room for the projections.
pub const QUERY_BUDGET_BYTES: u64 = 1 << 30;

/// A query whose upper bound is over the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The bound, bytes.
    pub estimate: u64,
    /// The budget, bytes.
    pub budget: u64,
}

fn check(estimate: u64) -> Result<(), TooLarge> {
    if estimate > QUERY_BUDGET_BYTES {
        Err(TooLarge {
            estimate,
            budget: QUERY_BUDGET_BYTES,
        })
    } else {
        Ok(())
    }
}

fn values_of(view: &TenantView, dimension: Dimension) -> u64 {
    view.projection
        .dimension_size(dimension)
        .map_or(u64::MAX, |n| n as u64)
}

/// Checks a funnel's bound; `keep_persons` for a listing.
pub fn funnel(
    view: &TenantView,
    funnel: &ValidFunnel,
    threads: usize,
    keep_persons: bool,
) -> Result<(), TooLarge> {
    let persons = view.persons.len() as u64;
    let steps = funnel.steps.len() as u64;
    let values = |field| compile::view_dimension(view, field).map_or(0, |d| values_of(view, d));
    let (rows_per_person, values) = match &funnel.breakdown {
        None => (1, 0),
        Some((field, _, BreakdownAttribution::AllEvents)) => (1 + steps, values(field)),
        Some((field, _, _)) => (2, values(field)),
    };
    let times = persons
        .saturating_mul(steps.saturating_sub(1))
        .saturating_mul(8)
        .saturating_mul(rows_per_person);
    let rows = values
        .saturating_mul(steps * 56 + 96)
        .saturating_mul(threads as u64);
    let listing = if keep_persons {
        persons.saturating_mul(48 + steps * 4)
    } else {
        0
    };
    check(times.saturating_add(rows).saturating_add(listing))
}

/// Checks a retention's bound: `cells` cohorts × periods, split by `breakdown`.
pub fn retention(
    view: &TenantView,
    cells: u64,
    breakdown: Option<Dimension>,
    threads: usize,
) -> Result<(), TooLarge> {
    let values = breakdown.map_or(1, |dimension| values_of(view, dimension));
    check(
        cells
            .saturating_mul(16)
            .saturating_mul(values)
            .saturating_mul(threads as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journeys::query::{
        FunnelBreakdown, FunnelOrder, FunnelQuery, FunnelStep, Matcher, Scope,
    };

    fn query(steps: usize, attribution: BreakdownAttribution) -> ValidFunnel {
        let step = FunnelStep {
            label: String::new(),
            event: Some(Matcher::default()),
        };
        let query = FunnelQuery {
            steps: vec![step; steps],
            window_ms: None,
            order: FunnelOrder::Ordered,
            exclusions: Vec::new(),
            breakdown: Some(FunnelBreakdown {
                field: "channel".to_owned(),
                limit: 0,
                attribution,
            }),
            scope: Scope::default(),
        };
        query
            .validate(0)
            .unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    #[test]
    fn a_funnel_of_many_steps_over_many_persons_is_refused_before_it_runs() {
        let mut view = TenantView::build(std::iter::empty(), Vec::new(), 1)
            .unwrap_or_else(|err| panic!("{err}"));
        for n in 0..400_000u128 {
            view.persons.key(uuid::Uuid::from_u128(n + 1));
        }
        // 400,000 persons × 19 steps × 8 bytes × 21 rows: about 1.2 GiB.
        let wide = query(20, BreakdownAttribution::AllEvents);
        assert!(funnel(&view, &wide, 2, false).is_err());
        let narrow = query(4, BreakdownAttribution::FirstTouch);
        assert_eq!(funnel(&view, &narrow, 2, true), Ok(()));
        assert_eq!(
            retention(&view, 400 * 100, Some(Dimension::Channel), 2),
            Ok(())
        );
    }

    #[test]
    fn only_bounds_over_the_budget_are_refused() {
        assert_eq!(check(QUERY_BUDGET_BYTES), Ok(()));
        assert_eq!(
            check(QUERY_BUDGET_BYTES + 1),
            Err(TooLarge {
                estimate: QUERY_BUDGET_BYTES + 1,
                budget: QUERY_BUDGET_BYTES
            })
        );
    }
}
