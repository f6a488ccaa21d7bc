//! The settings' rules: defaults, every problem named.

use super::*;

fn fields(problems: &Violations) -> Vec<String> {
    problems.0.iter().map(|v| v.field.clone()).collect()
}

#[test]
fn the_defaults_are_valid_and_filled_in() {
    let effective = ModelSettings::default().validate("model_settings.");
    let Ok(effective) = effective else {
        panic!("defaults must be valid");
    };
    assert_eq!(effective.time_zone, Tz::UTC);
    assert_eq!(effective.rules, [EffectiveRule::suggested_default()]);
    assert_eq!(
        effective.rules[0].suggestion_percentile,
        DEFAULT_SUGGESTION_PERCENTILE
    );
    assert_eq!(effective.rfm.lookback_secs, DEFAULT_LOOKBACK_SECS);
    assert_eq!(effective.rfm.levels, ScoreLevels::FIVE);
    assert_eq!(effective.rfm.rules, None);
    assert_eq!(effective.model, DEFAULT_CHURN_MODEL);
}

#[test]
fn the_churn_model_is_the_chosen_one_and_unknown_numbers_are_named() {
    let with = |model: i32| ModelSettings {
        churn: ChurnSettings {
            model,
            ..ChurnSettings::default()
        },
        ..ModelSettings::default()
    };
    let chosen = |model: i32| with(model).validate("").map(|e| e.model).ok();
    assert_eq!(chosen(0), Some(DEFAULT_CHURN_MODEL));
    assert_eq!(chosen(CHURN_MODEL_BG_NBD), Some(BetaGeoModel::BgNbd));
    assert_eq!(chosen(CHURN_MODEL_MBG_NBD), Some(BetaGeoModel::MbgNbd));
    for model in [BetaGeoModel::BgNbd, BetaGeoModel::MbgNbd] {
        assert_eq!(churn_model(churn_model_number(model)), Some(model));
    }
    for unknown in [3, -1] {
        let problems = with(unknown).validate("model_settings.").err();
        assert_eq!(
            problems.map(|p| fields(&p)),
            Some(vec!["model_settings.churn.model".to_owned()])
        );
    }
}

#[test]
fn the_model_events_are_the_chosen_ones_and_unknown_numbers_are_named() {
    let with = |model_events: i32| ModelSettings {
        churn: ChurnSettings {
            model_events,
            ..ChurnSettings::default()
        },
        ..ModelSettings::default()
    };
    let chosen = |number: i32| with(number).validate("").map(|e| e.model_events).ok();
    assert_eq!(chosen(0), Some(DEFAULT_MODEL_EVENTS));
    assert_eq!(
        chosen(CHURN_MODEL_EVENTS_PURCHASES),
        Some(ModelEvents::Purchases)
    );
    assert_eq!(
        chosen(CHURN_MODEL_EVENTS_ANY_EVENT),
        Some(ModelEvents::AnyEvent)
    );
    for events in [ModelEvents::Purchases, ModelEvents::AnyEvent] {
        assert_eq!(model_events(model_events_number(events)), Some(events));
    }
    let problems = with(3).validate("model_settings.").err();
    assert_eq!(
        problems.map(|p| fields(&p)),
        Some(vec!["model_settings.churn.model_events".to_owned()])
    );
}

#[test]
fn every_problem_is_named() {
    let settings = ModelSettings {
        time_zone: "Mars/Olympus".to_owned(),
        churn: ChurnSettings {
            inactivity_rules: vec![RuleSettings {
                threshold: Some((-86_400, 0)),
                suggestion_percentile: 1.5,
                ..RuleSettings::default()
            }],
            bg_nbd: BgNbdSettings {
                refit_interval: Some((60, 0)),
                fixed_parameters: Some([1.0, -2.0, 1.0, 1.0]),
                ..BgNbdSettings::default()
            },
            ..ChurnSettings::default()
        },
        rfm: RfmSettings {
            score_levels: 11,
            segment_rules: vec![SegmentRuleSettings {
                segment: 1,
                bounds: [4, 2, 0, 0, 0, 0],
            }],
            ..RfmSettings::default()
        },
        ..ModelSettings::default()
    };
    let problems = settings
        .validate("model_settings.")
        .err()
        .unwrap_or_default();
    assert_eq!(
        fields(&problems),
        [
            "model_settings.time_zone",
            "model_settings.churn.inactivity_rules[0].suggestion_percentile",
            "model_settings.churn.inactivity_rules[0].threshold",
            "model_settings.churn.bg_nbd.refit_interval",
            "model_settings.churn.bg_nbd.fixed_parameters.alpha",
            "model_settings.rfm.score_levels",
            "model_settings.rfm.segment_rules[0].min_recency_score",
        ]
    );
    let negative = ModelSettings {
        churn: ChurnSettings {
            inactivity_rules: vec![RuleSettings {
                threshold: Some((-86_400, 0)),
                ..RuleSettings::default()
            }],
            ..ChurnSettings::default()
        },
        ..ModelSettings::default()
    };
    let problems = negative.validate("").err().unwrap_or_default();
    assert_eq!(fields(&problems), ["churn.inactivity_rules[0].threshold"]);
}

#[test]
fn the_prediction_period_is_whole_days_up_to_366() {
    let with = |span: Option<Span>| ModelSettings {
        churn: ChurnSettings {
            bg_nbd: BgNbdSettings {
                prediction_period: span,
                ..BgNbdSettings::default()
            },
            ..ChurnSettings::default()
        },
        ..ModelSettings::default()
    };
    let days = |span: Option<Span>| with(span).validate("").ok().map(|e| e.prediction_days);
    assert_eq!(days(None), Some(DEFAULT_PREDICTION_DAYS));
    assert_eq!(days(Some((7 * SECONDS_PER_DAY, 0))), Some(7));
    assert_eq!(days(Some((366 * SECONDS_PER_DAY, 0))), Some(366));
    for bad in [
        (0, 0),
        (367 * SECONDS_PER_DAY, 0),
        (SECONDS_PER_DAY + 1, 0),
        (SECONDS_PER_DAY, 5),
    ] {
        let problems = with(Some(bad)).validate("").err().unwrap_or_default();
        assert_eq!(
            fields(&problems),
            ["churn.bg_nbd.prediction_period"],
            "{bad:?}"
        );
    }
}

#[test]
fn segment_rules_come_first_in_order_and_the_default_closes_the_list() {
    let rule = |segment: &str, days: Option<i64>, percentile: f64| RuleSettings {
        segment: segment.to_owned(),
        threshold: days.map(|d| (d * SECONDS_PER_DAY, 0)),
        suggestion_percentile: percentile,
    };
    let with = |rules: Vec<RuleSettings>| ModelSettings {
        churn: ChurnSettings {
            inactivity_rules: rules,
            ..ChurnSettings::default()
        },
        ..ModelSettings::default()
    };
    let vip = "tenants/t/segments/vip";
    let days = |d: u32| InactivityThreshold::from_days(d).ok();
    // Without a default rule, the implicit one closes the list.
    let rules_of = |rules| with(rules).validate("").map(|e| e.rules).ok();
    assert_eq!(
        rules_of(vec![rule(vip, Some(30), 0.0)]),
        Some(vec![
            EffectiveRule {
                segment: Some(vip.to_owned()),
                threshold: days(30),
                suggestion_percentile: DEFAULT_SUGGESTION_PERCENTILE,
            },
            EffectiveRule::suggested_default(),
        ])
    );
    // With one, it is kept as set.
    assert_eq!(
        rules_of(vec![rule(vip, None, 0.75), rule("", Some(120), 0.0)]),
        Some(vec![
            EffectiveRule {
                segment: Some(vip.to_owned()),
                threshold: None,
                suggestion_percentile: 0.75,
            },
            EffectiveRule {
                segment: None,
                threshold: days(120),
                suggestion_percentile: DEFAULT_SUGGESTION_PERCENTILE,
            },
        ])
    );
    // A malformed name, a segment named twice, a default rule before the last: each named.
    let problems = with(vec![
        rule("vip", None, 0.0),
        rule(vip, None, 0.0),
        rule("", None, 0.0),
        rule(vip, None, 0.0),
    ])
    .validate("model_settings.")
    .err()
    .unwrap_or_default();
    let reasons: Vec<(String, &str)> = problems
        .0
        .iter()
        .map(|v| (v.field.clone(), v.reason))
        .collect();
    let at = |i: usize| format!("model_settings.churn.inactivity_rules[{i}].segment");
    assert_eq!(
        reasons,
        [
            (at(0), "INVALID_NAME"),
            (at(2), "DEFAULT_RULE_NOT_LAST"),
            (at(3), "DUPLICATE_SEGMENT"),
        ]
    );
    let many = with(vec![rule("", None, 0.0); MAX_INACTIVITY_RULES + 1]);
    let problems = many.validate("").err().unwrap_or_default();
    assert!(
        problems
            .0
            .iter()
            .any(|v| v.field == "churn.inactivity_rules" && v.reason == "TOO_MANY"),
        "{problems:?}"
    );
}
