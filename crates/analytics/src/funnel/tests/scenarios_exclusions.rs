//! Exclusions: scenarios from PostHog's funnel tests (PostHog numbers steps from 0 in
//! exclusions; ours are 1-based, so its `0 → 1` is our `1 → 2`).

use super::support::{DAY, HOUR, Scenario, reached};
use crate::funnel::FunnelOrder;

const T0: i64 = 10 * DAY;

fn at(hours: f64, name: &'static str) -> (i64, &'static str) {
    (T0 + (hours * HOUR as f64) as i64, name)
}

#[test]
fn exclusion_without_end_event_within_window_discards_the_person() {
    // Scenario from PostHog's funnel tests: test_funnel_exclusion_no_end_event (1-day window).
    let scenario = Scenario::new(&["signup", "paid"])
        .window(DAY)
        .exclude("x", 1, 2);
    let persons = vec![
        vec![at(1.0, "signup"), at(2.0, "paid")],
        vec![at(3.0, "signup"), at(3.5, "x"), at(4.0, "paid")],
        vec![at(5.0, "signup"), at(6.0, "x")],
        vec![at(7.0, "signup"), at(32.0, "x")],
    ];
    let (report, index) = scenario.run(&persons);
    let counts: Vec<u64> = report.overall.iter().map(|s| s.count).collect();
    assert_eq!(counts, vec![2, 1]);
    assert_eq!(reached(&index, 1), vec![1, 4]);
    assert_eq!(reached(&index, 2), vec![1]);
    assert_eq!(report.persons_excluded, 2);
}

#[test]
fn several_attempts_around_an_exclusion() {
    // Scenarios from PostHog's funnel tests: test_funnel_exclusion_multiple_possible_no_end_event
    // 1, 2 and 3 (10-second window).
    let scenario = Scenario::new(&["one", "two"])
        .window(10)
        .exclude("exclusion", 1, 2);
    type Case<'a> = (&'a [(i64, &'a str)], [u64; 2]);
    let cases: [Case<'_>; 3] = [
        (&[(0, "one"), (1, "exclusion"), (31, "one")], [1, 0]),
        (&[(0, "one"), (31, "one"), (32, "exclusion")], [1, 0]),
        (&[(0, "one"), (1, "one"), (2, "exclusion")], [0, 0]),
    ];
    for (person, expected) in cases {
        assert_eq!(
            scenario.counts(&[person.to_vec()]),
            expected.to_vec(),
            "{person:?}"
        );
    }
}

#[test]
fn exclusion_between_steps_invalidates_only_that_attempt() {
    // Scenario from PostHog's funnel tests: test_funnel_exclusions_full_window.
    let scenario = Scenario::new(&["signup", "paid"]).exclude("x", 1, 2);
    let persons = vec![
        vec![at(1.0, "signup"), at(2.0, "paid")],
        vec![at(3.0, "signup"), at(3.5, "x"), at(4.0, "paid")],
        vec![at(5.0, "signup"), at(6.0, "paid")],
    ];
    let (report, index) = scenario.run(&persons);
    assert_eq!(report.overall[0].count, 2);
    assert_eq!(report.overall[1].count, 2);
    assert_eq!(reached(&index, 2), vec![1, 3]);
}

fn five_step_persons() -> Vec<Vec<(i64, &'static str)>> {
    vec![
        vec![
            at(1.0, "signup"),
            at(2.0, "pageview"),
            at(3.0, "x"),
            at(4.0, "insight"),
            at(4.5, "x"),
            at(5.0, "invite"),
            at(5.5, "x"),
            at(6.0, "pageview2"),
        ],
        vec![
            at(1.0, "signup"),
            at(2.0, "pageview"),
            at(4.0, "insight"),
            at(4.5, "x"),
            at(5.0, "invite"),
            at(5.5, "x"),
            at(6.0, "pageview2"),
        ],
        vec![
            at(1.0, "signup"),
            at(1.5, "x"),
            at(2.0, "pageview"),
            at(4.0, "insight"),
            at(5.0, "invite"),
            at(5.5, "x"),
            at(6.0, "pageview2"),
        ],
    ]
}

#[test]
fn exclusion_ranges_between_steps() {
    // Scenario from PostHog's funnel tests: test_advanced_funnel_exclusions_between_steps.
    let steps = ["signup", "pageview", "insight", "invite", "pageview2"];
    type Case<'a> = ((usize, usize), [u64; 2], &'a [u64]);
    let cases: [Case<'_>; 5] = [
        ((1, 2), [2, 2], &[1, 2]),
        ((2, 3), [2, 2], &[2, 3]),
        ((3, 4), [1, 1], &[3]),
        ((4, 5), [0, 0], &[]),
        ((2, 4), [1, 1], &[3]),
    ];
    for ((from, to), [first, last], ids) in cases {
        let scenario = Scenario::new(&steps).exclude("x", from, to);
        let (report, index) = scenario.run(&five_step_persons());
        assert_eq!(report.overall[0].count, first, "{from}→{to}");
        assert_eq!(report.overall[4].count, last, "{from}→{to}");
        assert_eq!(reached(&index, 1), ids.to_vec(), "{from}→{to}");
    }
}

#[test]
fn two_exclusions_with_their_own_ranges() {
    // Scenario from PostHog's funnel tests: test_advanced_funnel_multiple_exclusions_between_steps
    // (first expectation: only the fourth person stays).
    let scenario = Scenario::new(&["signup", "pageview", "insight", "invite", "pageview2"])
        .exclude("x", 1, 2)
        .exclude("y", 3, 4);
    let full = |extra: &[(f64, &'static str)]| {
        let mut person = vec![
            at(1.0, "signup"),
            at(2.0, "pageview"),
            at(4.0, "insight"),
            at(5.0, "invite"),
            at(6.0, "pageview2"),
        ];
        person.extend(extra.iter().map(|&(h, n)| at(h, n)));
        person.sort_by_key(|e| e.0);
        person
    };
    let persons = vec![
        full(&[(1.5, "x"), (4.5, "y")]),
        full(&[(1.5, "y"), (4.5, "y"), (5.5, "x")]),
        full(&[(1.5, "x"), (5.5, "x")]),
        full(&[]),
    ];
    let (report, index) = scenario.run(&persons);
    assert_eq!(report.overall[0].count, 1);
    assert_eq!(report.overall[4].count, 1);
    assert_eq!(reached(&index, 1), vec![4]);
}

#[test]
fn invalidated_furthest_attempt_hides_a_shorter_clean_one() {
    // Attempt 1 reaches step 3 with an exclusion between steps 1 and 2; attempt 2 starts later
    // and reaches step 2 cleanly: the furthest step (3) has no clean attempt, so the person is
    // removed from every step.
    let scenario = Scenario::new(&["a", "b", "c"]).exclude("x", 1, 2);
    let person = vec![(0, "a"), (1, "x"), (2, "b"), (3, "a"), (4, "c"), (5, "b")];
    assert_eq!(scenario.counts(&[person]), vec![0, 0, 0]);
    // A later clean attempt that reaches step 3 too keeps the person.
    let person = vec![
        (0, "a"),
        (1, "x"),
        (2, "b"),
        (3, "c"),
        (4, "a"),
        (5, "b"),
        (6, "c"),
    ];
    assert_eq!(scenario.counts(&[person]), vec![1, 1, 1]);
}

#[test]
fn strict_funnel_exclusion_also_invalidates() {
    let scenario = Scenario::new(&["a", "b"])
        .order(FunnelOrder::Strict)
        .window(HOUR)
        .exclude("x", 1, 2);
    assert_eq!(scenario.counts(&[vec![(0, "a"), (1, "x")]]), vec![0, 0]);
    assert_eq!(
        scenario.counts(&[vec![(0, "a"), (1, "b"), (2, "x")]]),
        vec![1, 1]
    );
}

#[test]
fn unordered_exclusion_only_resets_progress() {
    let scenario = Scenario::new(&["a", "b", "c"])
        .order(FunnelOrder::Unordered)
        .exclude("x", 1, 3);
    // a, x, b, c: the attempt from `a` is cut at x; the one from b reaches b, c.
    let person = vec![(0, "a"), (1, "x"), (2, "b"), (3, "c")];
    assert_eq!(scenario.counts(&[person]), vec![1, 1, 0]);
}
