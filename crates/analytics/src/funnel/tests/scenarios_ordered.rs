//! Ordered funnels: scenarios from PostHog's funnel tests, with PostHog's expected counts.

use super::support::{DAY, HOUR, Scenario, reached, seq};

struct Case {
    name: &'static str,
    scenario: Scenario,
    persons: Vec<Vec<(i64, &'static str)>>,
    counts: Vec<u64>,
}

/// Basic orders, any-event steps, skipped steps and windows.
fn cases() -> Vec<Case> {
    let signup_pay_movie = || Scenario::new(&["signup", "pay", "movie"]);
    vec![
        // Scenario from PostHog's funnel tests: test_funnel_events.
        Case {
            name: "basic three steps",
            scenario: signup_pay_movie(),
            persons: vec![
                seq(&["signup"]),
                seq(&["signup", "pay"]),
                seq(&["signup", "pay", "movie"]),
                seq(&["movie"]),
                seq(&["pay", "signup", "movie"]),
            ],
            counts: vec![4, 2, 1],
        },
        // Scenario from PostHog's funnel tests: test_funnel_with_messed_up_order.
        Case {
            name: "steps out of order",
            scenario: Scenario::new(&["signup", "movie"]),
            persons: vec![
                seq(&["signup"]),
                seq(&["signup"]),
                seq(&["movie", "signup", "movie"]),
                seq(&["movie"]),
                seq(&["movie", "signup"]),
            ],
            counts: vec![4, 1],
        },
        // Scenario from PostHog's funnel tests: test_funnel_with_any_event.
        Case {
            name: "any event steps",
            scenario: Scenario::new(&["*", "*", "*"]),
            persons: vec![
                seq(&["signup"]),
                seq(&["signup", "movie"]),
                seq(&["signup", "movie"]),
                seq(&["movie"]),
                seq(&["movie", "signup", "movie"]),
            ],
            counts: vec![5, 3, 1],
        },
        // Scenario from PostHog's funnel tests: test_funnel_skipped_step.
        Case {
            name: "skipped step",
            scenario: signup_pay_movie(),
            persons: vec![seq(&["signup", "movie"])],
            counts: vec![1, 0, 0],
        },
    ]
}

/// Repeated steps and steps refined by properties.
fn repeat_cases() -> Vec<Case> {
    let signup_pv4 = || Scenario::new(&["signup", "pv", "pv", "pv", "pv"]);
    vec![
        // Scenario from PostHog's funnel tests: test_basic_funnel_with_repeat_steps.
        Case {
            name: "repeated step",
            scenario: Scenario::new(&["signup", "signup"]),
            persons: vec![seq(&["signup", "signup"]), seq(&["signup"])],
            counts: vec![2, 1],
        },
        // Scenario from PostHog's funnel tests: test_advanced_funnel_with_repeat_steps.
        Case {
            name: "four repeated pageviews",
            scenario: signup_pv4(),
            persons: vec![
                seq(&["signup"]),
                seq(&["signup", "pv"]),
                seq(&["signup", "pv", "other", "pv"]),
                seq(&["signup", "pv", "other", "pv", "pv", "other"]),
                seq(&["signup", "pv", "pv", "pv", "pv"]),
            ],
            counts: vec![5, 4, 3, 2, 1],
        },
        // Scenario from PostHog's funnel tests:
        // test_advanced_funnel_with_repeat_steps_out_of_order_events.
        Case {
            name: "repeated pageviews out of order",
            scenario: signup_pv4(),
            persons: vec![
                seq(&["pv", "signup"]),
                seq(&["signup", "pv"]),
                seq(&["pv", "signup", "other", "pv"]),
                seq(&["other", "pv", "other", "pv", "signup", "pv"]),
                seq(&["signup", "pv", "other", "pv", "pv", "pv"]),
                seq(&["pv", "other", "pv", "pv", "pv"]),
            ],
            counts: vec![5, 4, 1, 1, 1],
        },
        // Scenario from PostHog's funnel tests: test_funnel_with_matching_properties.
        Case {
            name: "steps refined by properties",
            scenario: Scenario::new(&["signup", "pv:aloha", "pv:aloha2", "pv:aloha2", "pv"]),
            persons: vec![
                seq(&["signup"]),
                seq(&["signup", "pv:aloha"]),
                seq(&["signup", "pv:aloha", "other", "pv:aloha2"]),
                seq(&["signup", "pv:aloha", "pv:aloha2", "pv:aloha2", "other"]),
                seq(&[
                    "signup",
                    "pv:aloha",
                    "other",
                    "pv:aloha2",
                    "pv:aloha",
                    "pv:aloha2",
                ]),
            ],
            counts: vec![5, 4, 3, 2, 0],
        },
        // Scenario from PostHog's funnel tests: test_funnel_multiple_actions.
        Case {
            name: "same event with different filters",
            scenario: Scenario::new(&["event1", "event2:a", "event2:c"]),
            persons: vec![seq(&["event1", "event2:a"])],
            counts: vec![1, 1, 0],
        },
        // Scenario from PostHog's funnel tests: test_basic_funnel_default_funnel_days
        // (8 days apart, default 14-day window).
        Case {
            name: "default window",
            scenario: Scenario::new(&["signup", "paid"]),
            persons: vec![vec![(0, "signup"), (8 * DAY, "paid")]],
            counts: vec![1, 1],
        },
    ]
}

#[test]
fn ordered_scenarios_match_posthog_counts() {
    for case in cases().into_iter().chain(repeat_cases()) {
        let counts = case.scenario.counts(&case.persons);
        assert_eq!(counts, case.counts, "{}", case.name);
    }
}

#[test]
fn conversion_window_in_days_and_seconds() {
    // Scenario from PostHog's funnel tests: test_funnel_conversion_window (7 days) and
    // test_funnel_conversion_window_seconds (15 seconds).
    let cases = [(7 * DAY, DAY, 9 * DAY), (15, 10, 20)];
    for (window, fast, slow) in cases {
        let scenario = Scenario::new(&["one", "two", "three"]).window(window);
        let mut persons = Vec::new();
        for i in 0..25 {
            let gap = if i < 10 { fast } else { slow };
            persons.push(vec![(0, "one"), (gap, "two")]);
        }
        let (report, index) = scenario.run(&persons);
        let counts: Vec<u64> = report.overall.iter().map(|s| s.count).collect();
        assert_eq!(counts, vec![25, 10, 0], "window {window}");
        assert_eq!(reached(&index, 2), (1..=10).collect::<Vec<u64>>());
    }
}

#[test]
fn window_end_is_inclusive() {
    let scenario = Scenario::new(&["a", "b"]).window(HOUR);
    assert_eq!(scenario.counts(&[vec![(0, "a"), (HOUR, "b")]]), vec![1, 1]);
    assert_eq!(
        scenario.counts(&[vec![(0, "a"), (HOUR + 1, "b")]]),
        vec![1, 0]
    );
}

#[test]
fn repeated_steps_list_the_right_persons() {
    // Scenario from PostHog's funnel tests: test_advanced_funnel_with_repeat_steps
    // (the persons at each step).
    let scenario = Scenario::new(&["signup", "pv", "pv", "pv", "pv"]);
    let persons = vec![
        seq(&["signup"]),
        seq(&["signup", "pv"]),
        seq(&["signup", "pv", "other", "pv"]),
        seq(&["signup", "pv", "other", "pv", "pv", "other"]),
        seq(&["signup", "pv", "pv", "pv", "pv"]),
    ];
    let (_, index) = scenario.run(&persons);
    assert_eq!(reached(&index, 1), vec![1, 2, 3, 4, 5]);
    assert_eq!(reached(&index, 3), vec![3, 4, 5]);
    assert_eq!(reached(&index, 5), vec![5]);
}

#[test]
fn equal_timestamps_of_different_events_do_not_convert() {
    // Scenario from PostHog's funnel tests:
    // test_funnel_with_different_actions_at_same_time_count_as_converted. PostHog counts
    // [2, 1]; the contract says events of different canonical events at one instant never
    // complete a step transition, so we deliberately count [2, 0].
    let scenario = Scenario::new(&["signup", "pageview"]);
    let persons = vec![vec![(0, "signup"), (0, "pageview")], vec![(0, "signup")]];
    assert_eq!(scenario.counts(&persons), vec![2, 0]);
    // Whatever the clean-log order: the pageview first does not help either.
    let reversed = vec![vec![(0, "pageview"), (0, "signup")]];
    assert_eq!(scenario.counts(&reversed), vec![1, 0]);
}

#[test]
fn equal_timestamps_of_the_same_event_convert_in_sequence_order() {
    let scenario = Scenario::new(&["signup", "signup", "signup"]);
    assert_eq!(
        scenario.counts(&[vec![(5, "signup"), (5, "signup")]]),
        vec![1, 1, 0]
    );
    assert_eq!(
        scenario.counts(&[vec![(5, "signup"), (5, "signup"), (5, "signup")]]),
        vec![1, 1, 1]
    );
    // Same canonical event with different filters at one instant: sequence order decides.
    let refined = Scenario::new(&["pv:a", "pv:b"]);
    assert_eq!(
        refined.counts(&[vec![(5, "pv:a"), (5, "pv:b")]]),
        vec![1, 1]
    );
    assert_eq!(
        refined.counts(&[vec![(5, "pv:b"), (5, "pv:a")]]),
        vec![1, 0]
    );
}

#[test]
fn one_event_never_fills_two_steps_unlike_window_funnel() {
    // ClickHouse's windowFunnel lets one event that matches two steps fill both, so a single
    // `*` event would reach step 2 there. Here one event fills one step of an attempt.
    let scenario = Scenario::new(&["*", "*"]);
    assert_eq!(scenario.counts(&[vec![(0, "anything")]]), vec![1, 0]);
    let twice = Scenario::new(&["signup", "signup"]);
    assert_eq!(twice.counts(&[vec![(0, "signup")]]), vec![1, 0]);
}

#[test]
fn latest_started_attempt_gives_the_conversion_times() {
    // Two complete attempts: 0→10h and 20h→21h. The later one counts.
    let scenario = Scenario::new(&["a", "b"]);
    let persons = vec![vec![
        (0, "a"),
        (10 * HOUR, "b"),
        (20 * HOUR, "a"),
        (21 * HOUR, "b"),
    ]];
    let (report, index) = scenario.run(&persons);
    assert_eq!(report.overall[1].median_conversion_ms, Some(HOUR * 1_000));
    let page = index.list(&crate::funnel::PersonQuery {
        selection: crate::funnel::PersonSelection::Reached(2),
        value: None,
        after: None,
        limit: 10,
    });
    assert_eq!(page.persons[0].start_time, 20 * HOUR * 1_000);
    assert_eq!(page.persons[0].furthest_step_time, 21 * HOUR * 1_000);
}
