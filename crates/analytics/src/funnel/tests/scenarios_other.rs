//! Strict and unordered funnels, breakdown attributions and conversion times: scenarios from
//! PostHog's funnel tests with PostHog's expected numbers (differences are marked).

use super::support::{DAY, HOUR, Scenario, code, list, reached, seq};
use crate::funnel::{Attribution, FunnelOrder, FunnelReport, PersonSelection};

#[test]
fn strict_funnel_basic() {
    // Scenario from PostHog's strict funnel tests: test_basic_strict_funnel.
    let scenario = Scenario::new(&["signup", "pageview", "insight"]).order(FunnelOrder::Strict);
    let persons = vec![
        seq(&["signup"]),
        seq(&["pageview", "signup"]),
        seq(&["signup", "pageview", "blah", "insight"]),
        seq(&["insight", "blah", "pageview", "signup"]),
        seq(&["pageview", "signup", "blah", "pageview", "insight"]),
        seq(&["blah", "signup", "blah", "pageview"]),
        seq(&["blah", "signup", "pageview", "insight", "blah"]),
        seq(&["insight", "pageview"]),
    ];
    let (report, index) = scenario.run(&persons);
    assert_eq!(report.overall[0].count, 7);
    assert_eq!(reached(&index, 2), vec![3, 7]);
    assert_eq!(reached(&index, 3), vec![7]);
}

#[test]
fn strict_funnel_with_filtered_steps() {
    // Scenario from PostHog's strict funnel tests: test_advanced_strict_funnel.
    let scenario = Scenario::new(&["signup", "sign_up:val", "pageview", "pv_action:val"])
        .order(FunnelOrder::Strict);
    let persons = vec![
        seq(&["signup"]),
        seq(&["signup", "pageview"]),
        seq(&[
            "signup",
            "sign_up:val",
            "sign_up:val2",
            "pageview",
            "blah",
            "insight",
        ]),
        seq(&["blah", "signup", "sign_up:val", "pageview", "blah"]),
        seq(&["blah", "signup", "sign_up:val", "pageview", "blah"]),
        seq(&[
            "blah",
            "signup",
            "sign_up:val",
            "pageview",
            "pv_action:val1",
        ]),
        seq(&[
            "blah",
            "signup",
            "sign_up:val",
            "pageview",
            "signup",
            "pv_action:val",
        ]),
        seq(&[
            "blah",
            "signup",
            "signup",
            "sign_up:val",
            "pageview",
            "pv_action:val",
        ]),
    ];
    let (report, index) = scenario.run(&persons);
    assert_eq!(report.overall[0].count, 8);
    assert_eq!(reached(&index, 2), vec![3, 4, 5, 6, 7, 8]);
    assert_eq!(reached(&index, 3), vec![4, 5, 6, 7, 8]);
    assert_eq!(reached(&index, 4), vec![8]);
}

#[test]
fn strict_funnel_conversion_times() {
    // Scenario from PostHog's strict funnel tests: test_basic_strict_funnel_conversion_times.
    let scenario = Scenario::new(&["signup", "pageview", "insight"]).order(FunnelOrder::Strict);
    let persons = vec![
        vec![(0, "signup")],
        vec![(0, "signup"), (HOUR, "pageview")],
        vec![(0, "signup"), (2 * HOUR, "pageview"), (4 * HOUR, "insight")],
    ];
    let (report, _) = scenario.run(&persons);
    assert_eq!(report.overall[0].count, 3);
    assert_eq!(report.overall[1].mean_conversion_ms, Some(5_400_000.0));
    assert_eq!(report.overall[2].mean_conversion_ms, Some(7_200_000.0));
    assert_eq!(report.overall[2].mean_from_start_ms, Some(14_400_000.0));
    assert_eq!(report.overall[0].mean_conversion_ms, None);
}

fn unordered_persons() -> Vec<Vec<(i64, &'static str)>> {
    vec![
        seq(&["signup"]),
        seq(&["pageview", "signup"]),
        seq(&["signup", "pageview", "blah", "insight"]),
        seq(&["insight", "pageview", "signup"]),
        seq(&["pageview", "signup", "blah", "insight"]),
        seq(&["blah", "insight"]),
        seq(&["pageview", "blah"]),
        seq(&["insight", "pageview"]),
    ]
}

#[test]
fn unordered_funnel_basic() {
    // Scenario from PostHog's unordered funnel tests: test_basic_unordered_funnel.
    let scenario = Scenario::new(&["signup", "pageview", "insight"]).order(FunnelOrder::Unordered);
    let (report, index) = scenario.run(&unordered_persons());
    let counts: Vec<u64> = report.overall.iter().map(|s| s.count).collect();
    assert_eq!(counts, vec![8, 5, 3]);
    assert_eq!(reached(&index, 2), vec![2, 3, 4, 5, 8]);
    assert_eq!(
        list(&index, PersonSelection::DroppedAt(2), None),
        vec![1, 6, 7]
    );
    assert_eq!(
        list(&index, PersonSelection::DroppedAt(3), None),
        vec![2, 8]
    );
}

#[test]
fn unordered_funnel_four_steps() {
    // Scenario from PostHog's unordered funnel tests: test_big_multi_step_unordered_funnel.
    let scenario =
        Scenario::new(&["signup", "pageview", "insight", "crying"]).order(FunnelOrder::Unordered);
    let persons = vec![
        seq(&["signup"]),
        seq(&["pageview", "crying"]),
        seq(&["signup", "pageview", "blah", "insight"]),
        seq(&["insight", "crying", "signup"]),
        seq(&["pageview", "signup", "crying", "insight"]),
        seq(&["blah", "insight"]),
        seq(&["pageview", "blah"]),
        seq(&["insight", "pageview"]),
    ];
    assert_eq!(scenario.counts(&persons), vec![8, 5, 3, 1]);
}

#[test]
fn unordered_conversion_times_follow_the_latest_attempt() {
    // Scenario from PostHog's unordered funnel tests:
    // test_basic_unordered_funnel_conversion_times (1-day window). PostHog's UDF takes the
    // first conversion (means 5400 s and 7200 s); we count the latest-started attempt that
    // reaches the furthest step, as the analytics definitions say: person 3's second run,
    // 3 h + 3 h, so the means are (1 h + 3 h) / 2 and 3 h.
    let scenario = Scenario::new(&["signup", "pageview", "insight"])
        .order(FunnelOrder::Unordered)
        .window(DAY);
    let persons = vec![
        vec![(DAY, "signup")],
        vec![(DAY, "pageview"), (DAY + HOUR, "signup")],
        vec![
            (DAY, "insight"),
            (DAY + 2 * HOUR, "signup"),
            (DAY + 4 * HOUR, "pageview"),
            (2 * DAY, "pageview"),
            (2 * DAY + 3 * HOUR, "insight"),
            (2 * DAY + 6 * HOUR, "signup"),
        ],
    ];
    let (report, _) = scenario.run(&persons);
    assert_eq!(report.overall[0].count, 3);
    assert_eq!(report.overall[1].mean_conversion_ms, Some(7_200_000.0));
    assert_eq!(report.overall[2].mean_conversion_ms, Some(10_800_000.0));
}

fn attribution_persons(with_fifth: bool) -> Vec<Vec<(i64, &'static str)>> {
    let d = |day: i64, hour: i64| day * DAY + hour * HOUR;
    let mut persons = vec![
        vec![(d(1, 12), "sign up@Chrome"), (d(1, 13), "buy")],
        vec![(d(1, 13), "sign up"), (d(2, 13), "buy@Safari")],
        vec![(d(2, 14), "sign up@Mac"), (d(2, 15), "buy")],
        vec![(d(2, 15), "sign up@0"), (d(2, 16), "buy@alakazam")],
    ];
    if with_fifth {
        persons.push(vec![(d(2, 15), "sign up"), (d(2, 16), "buy")]);
    }
    persons
}

/// `(value, count(1), count(2), mean conversion seconds)` of a breakdown row.
type Row = (&'static str, u64, u64, i64);

/// The breakdown rows, by value text.
fn rows(report: &FunnelReport) -> Vec<Row> {
    let mut rows: Vec<_> = report
        .breakdown
        .iter()
        .map(|row| {
            let mean = row.steps[1].mean_conversion_ms.unwrap_or(0.0) as i64 / 1_000;
            let text = super::support::VALUES[row.value as usize];
            (text, row.steps[0].count, row.steps[1].count, mean)
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn breakdown_attributions() {
    // Scenarios from PostHog's breakdown tests: test_funnel_step_breakdown_with_first_touch_,
    // _last_touch_, _step_ (step 0) and _step_one_ attribution (7-day window).
    let h = 3_600;
    type Case = (Attribution, bool, Vec<Row>);
    let cases: [Case; 4] = [
        (
            Attribution::FirstTouch,
            true,
            vec![
                ("", 1, 1, h),
                ("0", 1, 1, h),
                ("Chrome", 1, 1, h),
                ("Mac", 1, 1, h),
                ("Safari", 1, 1, 24 * h),
            ],
        ),
        (
            Attribution::LastTouch,
            true,
            vec![
                ("", 1, 1, h),
                ("Alakazam", 1, 1, h),
                ("Chrome", 1, 1, h),
                ("Mac", 1, 1, h),
                ("Safari", 1, 1, 24 * h),
            ],
        ),
        (
            Attribution::Step(1),
            false,
            vec![
                ("", 1, 1, 24 * h),
                ("0", 1, 1, h),
                ("Chrome", 1, 1, h),
                ("Mac", 1, 1, h),
            ],
        ),
        (
            Attribution::Step(2),
            false,
            vec![
                ("", 2, 2, h),
                ("Safari", 1, 1, 24 * h),
                ("alakazam", 1, 1, h),
            ],
        ),
    ];
    for (attribution, with_fifth, expected) in cases {
        let scenario = Scenario::new(&["sign up", "buy"])
            .window(7 * DAY)
            .breakdown(attribution);
        let mut persons = attribution_persons(with_fifth);
        if attribution == Attribution::LastTouch {
            persons[3][1].1 = "buy@Alakazam";
        }
        let (report, index) = scenario.run(&persons);
        assert_eq!(rows(&report), expected, "{attribution:?}");
        if attribution == Attribution::Step(2) {
            let empty = list(&index, PersonSelection::Reached(1), Some(code("")));
            assert_eq!(empty, vec![1, 3]);
        }
    }
}

#[test]
fn all_events_attribution_counts_every_value_of_the_attempt() {
    // Scenario from PostHog's breakdown tests:
    // test_funnel_step_breakdown_event_single_person_events_with_multiple_properties.
    // PostHog runs the funnel per value and reports Chrome [1, 0] and Safari [1, 1]; the
    // contract takes the values of the counted attempt's events, and that attempt (the
    // later sign up → play movie) is all Safari, so only the Safari row appears.
    let scenario = Scenario::new(&["sign up", "play movie"])
        .window(7 * DAY)
        .breakdown(Attribution::AllEvents);
    let person = vec![
        (DAY + 12 * HOUR, "sign up@Chrome"),
        (2 * DAY + 12 * HOUR + 1_800, "play movie@Safari"),
        (2 * DAY + 13 * HOUR, "sign up@Safari"),
        (2 * DAY + 14 * HOUR, "play movie@Safari"),
    ];
    let (report, _) = scenario.run(&[person]);
    assert_eq!(rows(&report), vec![("Safari", 1, 1, 3_600)]);
    // A mixed attempt counts under both values, the overall row once.
    let mixed = vec![(0, "sign up@Chrome"), (60, "play movie@Safari")];
    let (report, _) = scenario.run(&[mixed]);
    assert_eq!(
        rows(&report),
        vec![("Chrome", 1, 1, 60), ("Safari", 1, 1, 60)]
    );
    assert_eq!(report.overall[0].count, 1);
}

#[test]
fn breakdown_top_values_fold_the_rest_into_other() {
    let scenario = Scenario::new(&["a", "b"]).breakdown(Attribution::FirstTouch);
    let persons = [
        vec![(0, "a@Chrome"), (1, "b")],
        vec![(0, "a@Chrome")],
        vec![(0, "a@Safari"), (1, "b")],
        vec![(0, "a@Mac")],
    ];
    let funnel = scenario.funnel();
    let mut accumulator = crate::funnel::FunnelAccumulator::new(2, false);
    let mut evaluator = crate::funnel::FunnelEvaluator::new(&funnel);
    let mut outcome = crate::funnel::PersonOutcome::default();
    for (id, person) in persons.iter().enumerate() {
        evaluator
            .evaluate(&scenario.events(person), &mut outcome)
            .expect("valid");
        accumulator.add(id as u64, &outcome);
    }
    let (report, index) = accumulator.finish(1);
    assert!(index.is_none());
    assert_eq!(report.breakdown.len(), 1);
    assert_eq!(report.breakdown[0].value, code("Chrome"));
    assert_eq!(report.omitted_values, 2);
    let other = report.other.expect("two values folded");
    assert_eq!((other[0].count, other[1].count), (2, 1));
    assert_eq!(other[1].step_conversion_rate, 0.5);
}
