//! The update mask of the model settings: which paths a caller may name and how each takes
//! its field from the incoming settings.

use super::ModelSettings;
use crate::journeys::query::Violations;

/// Paths the update mask may name; `*` replaces every one of them.
pub const MASK_PATHS: &[&str] = &[
    "time_zone",
    "week_start",
    "purchase_event",
    "value_field",
    "lifecycle",
    "lifecycle.interval",
    "lifecycle.qualifying_events",
    "lifecycle.churn_intervals",
    "churn",
    "churn.inactivity_rules",
    "churn.qualifying_events",
    "churn.model",
    "churn.model_events",
    "churn.bg_nbd",
    "churn.bg_nbd.fit_window",
    "churn.bg_nbd.refit_interval",
    "churn.bg_nbd.fixed_parameters",
    "churn.bg_nbd.prediction_period",
    "rfm",
    "rfm.lookback",
    "rfm.score_levels",
    "rfm.segment_rules",
    "analysable_properties",
];

/// `current` with the fields `paths` name taken from `incoming`; every unknown path is a
/// violation of `update_mask.paths[i]`.
pub fn apply_mask(
    current: &ModelSettings,
    incoming: &ModelSettings,
    paths: &[String],
) -> Result<ModelSettings, Violations> {
    let mut problems = Violations::default();
    if paths.is_empty() {
        problems.add(
            "update_mask",
            "REQUIRED",
            "name the fields to change, or * for all",
        );
        return Err(problems);
    }
    let mut next = current.clone();
    for (index, path) in paths.iter().enumerate() {
        let path = path.trim();
        match path {
            "*" => next = incoming.clone(),
            "time_zone" => next.time_zone.clone_from(&incoming.time_zone),
            "week_start" => next.week_start = incoming.week_start,
            "purchase_event" => next.purchase_event.clone_from(&incoming.purchase_event),
            "value_field" => next.value_field.clone_from(&incoming.value_field),
            "lifecycle" => next.lifecycle.clone_from(&incoming.lifecycle),
            "lifecycle.interval" => next.lifecycle.interval = incoming.lifecycle.interval,
            "lifecycle.qualifying_events" => next
                .lifecycle
                .qualifying
                .clone_from(&incoming.lifecycle.qualifying),
            "lifecycle.churn_intervals" => {
                next.lifecycle.churn_intervals = incoming.lifecycle.churn_intervals;
            }
            "churn" => next.churn.clone_from(&incoming.churn),
            "churn.inactivity_rules" => next
                .churn
                .inactivity_rules
                .clone_from(&incoming.churn.inactivity_rules),
            "churn.qualifying_events" => {
                next.churn.qualifying.clone_from(&incoming.churn.qualifying)
            }
            "churn.model" => next.churn.model = incoming.churn.model,
            "churn.model_events" => next.churn.model_events = incoming.churn.model_events,
            "churn.bg_nbd" => next.churn.bg_nbd.clone_from(&incoming.churn.bg_nbd),
            "churn.bg_nbd.fit_window" => {
                next.churn.bg_nbd.fit_window = incoming.churn.bg_nbd.fit_window;
            }
            "churn.bg_nbd.refit_interval" => {
                next.churn.bg_nbd.refit_interval = incoming.churn.bg_nbd.refit_interval;
            }
            "churn.bg_nbd.prediction_period" => {
                next.churn.bg_nbd.prediction_period = incoming.churn.bg_nbd.prediction_period;
            }
            "churn.bg_nbd.fixed_parameters" => {
                next.churn.bg_nbd.fixed_parameters = incoming.churn.bg_nbd.fixed_parameters;
            }
            "rfm" => next.rfm.clone_from(&incoming.rfm),
            "rfm.lookback" => next.rfm.lookback = incoming.rfm.lookback,
            "rfm.score_levels" => next.rfm.score_levels = incoming.rfm.score_levels,
            "rfm.segment_rules" => next
                .rfm
                .segment_rules
                .clone_from(&incoming.rfm.segment_rules),
            "analysable_properties" => next
                .analysable_properties
                .clone_from(&incoming.analysable_properties),
            other => problems.add(
                format!("update_mask.paths[{index}]"),
                "UNKNOWN_FIELD",
                format!(
                    "{other:?} is not a field that can be changed; use one of {} or *",
                    MASK_PATHS.join(", ")
                ),
            ),
        }
    }
    if problems.is_empty() {
        Ok(next)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(problems: &Violations) -> Vec<String> {
        problems.0.iter().map(|v| v.field.clone()).collect()
    }

    #[test]
    fn the_mask_takes_only_the_named_fields_and_names_unknown_paths() {
        let current = ModelSettings::default();
        let incoming = ModelSettings {
            time_zone: "Asia/Shanghai".to_owned(),
            week_start: 7,
            ..ModelSettings::default()
        };
        let next = apply_mask(&current, &incoming, &["time_zone".to_owned()]);
        assert_eq!(
            next.ok().map(|s| (s.time_zone, s.week_start)),
            Some(("Asia/Shanghai".to_owned(), 0))
        );
        let bad = apply_mask(
            &current,
            &incoming,
            &["time_zone".to_owned(), "etag".to_owned()],
        );
        assert_eq!(
            bad.err().map(|p| fields(&p)),
            Some(vec!["update_mask.paths[1]".to_owned()])
        );
        let empty = apply_mask(&current, &incoming, &[]);
        assert_eq!(
            empty.err().map(|p| fields(&p)),
            Some(vec!["update_mask".to_owned()])
        );
    }
}
