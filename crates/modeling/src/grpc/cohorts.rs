//! Conversions of the retention and lifecycle calls.

use touchline_analytics::calendar::Interval;
use touchline_analytics::lifecycle::{LifecycleStage, LifecycleStatus};
use touchline_analytics::retention::{CohortType, RetentionCell, ReturnMode};
use touchline_proto::modeling::v1 as pb;

use super::journeys::{computation, matcher, ms, scope, timestamp_ms};
use crate::journeys::lifecycle::{
    LifecycleFigures, LifecycleOptions, LifecycleQuery, PersonLifecycle, PersonLifecycleQuery,
};
use crate::journeys::retention::{RetentionFigures, RetentionQuery};

fn interval(number: i32) -> Option<Interval> {
    match pb::Interval::try_from(number) {
        Ok(pb::Interval::Hour) => Some(Interval::Hour),
        Ok(pb::Interval::Day) => Some(Interval::Day),
        Ok(pb::Interval::Week) => Some(Interval::Week),
        Ok(pb::Interval::Month) => Some(Interval::Month),
        _ => None,
    }
}

pub(super) fn retention_query(request: &pb::RunRetentionRequest) -> RetentionQuery {
    RetentionQuery {
        start: matcher(request.start_event.as_ref()),
        returning: matcher(request.return_event.as_ref()),
        cohort_type: match pb::RetentionCohortType::try_from(request.cohort_type) {
            Ok(pb::RetentionCohortType::Recurring) => CohortType::Recurring,
            _ => CohortType::FirstTime,
        },
        return_mode: match pb::RetentionReturnMode::try_from(request.return_mode) {
            Ok(pb::RetentionReturnMode::OnOrAfter) => ReturnMode::OnOrAfter,
            _ => ReturnMode::On,
        },
        interval: interval(request.interval),
        periods: request.periods,
        breakdown: request
            .breakdown
            .as_ref()
            .map(|b| (b.field.clone(), b.limit)),
        scope: scope(request.scope.as_ref()),
    }
}

fn cells(cells: &[RetentionCell]) -> Vec<pb::RetentionCell> {
    cells
        .iter()
        .map(|cell| pb::RetentionCell {
            period: i32::try_from(cell.period).unwrap_or(i32::MAX),
            retained: i64::try_from(cell.retained).unwrap_or(i64::MAX),
            rate: cell.rate,
            partial: cell.partial,
        })
        .collect()
}

pub(super) fn retention_reply(figures: RetentionFigures) -> pb::RunRetentionResponse {
    pb::RunRetentionResponse {
        tables: figures
            .tables
            .into_iter()
            .map(|(value, table)| pb::RetentionTable {
                breakdown_value: value,
                cohorts: table
                    .cohorts
                    .iter()
                    .map(|cohort| pb::RetentionCohort {
                        start_time: Some(timestamp_ms(cohort.start_ms)),
                        size: i64::try_from(cohort.size).unwrap_or(i64::MAX),
                        cells: cells(&cohort.cells),
                    })
                    .collect(),
                average: cells(&table.average),
            })
            .collect(),
        omitted_breakdown_values: i32::try_from(figures.omitted_values).unwrap_or(i32::MAX),
        computation: Some(computation(figures.computation)),
    }
}

fn options(options: Option<&pb::LifecycleOptions>) -> LifecycleOptions {
    let Some(options) = options else {
        return LifecycleOptions::default();
    };
    LifecycleOptions {
        interval: interval(options.interval),
        qualifying: options
            .qualifying_events
            .iter()
            .filter_map(|m| matcher(Some(m)))
            .collect(),
        churn_intervals: options.churn_intervals,
    }
}

pub(super) fn lifecycle_query(request: &pb::RunLifecycleRequest) -> LifecycleQuery {
    LifecycleQuery {
        options: options(request.options.as_ref()),
        scope: scope(request.scope.as_ref()),
    }
}

pub(super) fn lifecycle_reply(figures: LifecycleFigures) -> pb::RunLifecycleResponse {
    let now = figures.now_ms;
    pb::RunLifecycleResponse {
        intervals: figures
            .intervals
            .iter()
            .map(|interval| {
                let counts = interval.counts;
                let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                pb::LifecycleInterval {
                    start_time: Some(timestamp_ms(interval.start_ms)),
                    end_time: Some(timestamp_ms(interval.end_ms)),
                    new_count: count(counts.new),
                    returning_count: count(counts.returning),
                    resurrecting_count: count(counts.resurrecting),
                    dormant_count: count(counts.dormant),
                    churned_count: count(counts.churned),
                    partial: interval.start_ms <= now && now < interval.end_ms,
                }
            })
            .collect(),
        computation: Some(computation(figures.computation)),
    }
}

/// The parent (`tenants/{tenant}`) and the person id of a person's resource name.
pub(super) fn person_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("tenants/")?;
    let slash = rest.find('/')?;
    let person = rest[slash..].strip_prefix("/persons/")?;
    let parent = &name[..name.len() - rest.len() + slash];
    (!person.is_empty() && !person.contains('/')).then_some((parent, person))
}

/// The service's query of a person's lifecycle request.
pub(super) fn person_query(
    request: &pb::GetPersonLifecycleRequest,
    person: &str,
) -> PersonLifecycleQuery {
    let mut scope = scope(None);
    scope.time_zone.clone_from(&request.time_zone);
    scope.week_start = request.week_start;
    PersonLifecycleQuery {
        person: person.to_owned(),
        options: options(request.options.as_ref()),
        scope,
        as_of_ms: request.as_of.as_ref().map(ms),
        history_intervals: request.history_intervals,
    }
}

fn stage(stage: Option<LifecycleStage>) -> pb::LifecycleStage {
    match stage {
        Some(LifecycleStage::New) => pb::LifecycleStage::New,
        Some(LifecycleStage::Active) => pb::LifecycleStage::Active,
        Some(LifecycleStage::Returning) => pb::LifecycleStage::Returning,
        Some(LifecycleStage::Dormant) => pb::LifecycleStage::Dormant,
        Some(LifecycleStage::Churned) => pb::LifecycleStage::Churned,
        None => pb::LifecycleStage::Unspecified,
    }
}

fn status(status: LifecycleStatus) -> pb::LifecycleStatus {
    match status {
        LifecycleStatus::New => pb::LifecycleStatus::New,
        LifecycleStatus::Returning => pb::LifecycleStatus::Returning,
        LifecycleStatus::Resurrecting => pb::LifecycleStatus::Resurrecting,
        LifecycleStatus::Dormant => pb::LifecycleStatus::Dormant,
        LifecycleStatus::Churned => pb::LifecycleStatus::Churned,
        LifecycleStatus::Inactive => pb::LifecycleStatus::Inactive,
    }
}

pub(super) fn person_reply(figures: PersonLifecycle) -> pb::GetPersonLifecycleResponse {
    pb::GetPersonLifecycleResponse {
        person_id: figures.person_id.to_string(),
        current_stage: stage(figures.stage.map(|s| s.stage)) as i32,
        stage_since: figures.stage.map(|s| timestamp_ms(s.since_ms)),
        first_seen_time: figures.first_seen_ms.map(timestamp_ms),
        last_active_time: figures.stage.map(|s| timestamp_ms(s.last_active_ms)),
        history: figures
            .history
            .iter()
            .map(|interval| pb::PersonLifecycleInterval {
                start_time: Some(timestamp_ms(interval.start_ms)),
                status: status(interval.status) as i32,
                event_count: i64::try_from(interval.event_count).unwrap_or(i64::MAX),
            })
            .collect(),
        computation: Some(computation(figures.computation)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_name_splits_into_parent_and_id() {
        assert_eq!(
            person_name("tenants/acme/persons/p-1"),
            Some(("tenants/acme", "p-1"))
        );
        assert_eq!(person_name("tenants/acme/persons/"), None);
        assert_eq!(person_name("tenants/acme/segments/s"), None);
        assert_eq!(person_name("persons/p-1"), None);
        assert_eq!(person_name("tenants/acme/persons/p/x"), None);
    }
}
