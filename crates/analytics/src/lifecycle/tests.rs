#![allow(clippy::unwrap_used, reason = "tests")]

//! Table-driven scenarios. Most come from PostHog's lifecycle query tests (their person is
//! created at their first event unless said otherwise; their dormant counts are negative, ours
//! positive).

use super::*;
use chrono::{DateTime, Utc, Weekday};

/// `2020-01-11T12` → that hour in UTC, in ms.
fn t(hour: &str) -> i64 {
    format!("{hour}:00:00Z")
        .parse::<DateTime<Utc>>()
        .unwrap()
        .timestamp_millis()
}

enum Seen {
    /// First-seen at the person's first activity (PostHog creates the person then).
    FirstActivity,
    At(&'static str),
}

struct Scenario {
    name: &'static str,
    zone: &'static str,
    interval: Interval,
    week_start: Weekday,
    /// An instant in the first reported interval, and the number of intervals.
    first: &'static str,
    count: usize,
    k: u32,
    persons: Vec<(Seen, Vec<&'static str>)>,
    new: Vec<u64>,
    returning: Vec<u64>,
    resurrecting: Vec<u64>,
    dormant: Vec<u64>,
    churned: Option<Vec<u64>>,
}

fn run(scenario: &Scenario) -> Vec<LifecycleIntervalCounts> {
    let calendar =
        Calendar::from_zone_name(scenario.interval, scenario.zone, scenario.week_start).unwrap();
    let reported =
        IntervalGrid::from_instant(&calendar, t(scenario.first), scenario.count).unwrap();
    let model = LifecycleModel::new(&calendar, &reported, scenario.k).unwrap();
    let activity: Vec<Vec<i64>> = scenario
        .persons
        .iter()
        .map(|(_, hours)| hours.iter().map(|hour| t(hour)).collect())
        .collect();
    let persons: Vec<LifecyclePerson<'_>> = scenario
        .persons
        .iter()
        .zip(&activity)
        .map(|((seen, _), activity_ms)| LifecyclePerson {
            first_seen_ms: match seen {
                Seen::FirstActivity => activity_ms.iter().copied().min(),
                Seen::At(hour) => Some(t(hour)),
            },
            activity_ms,
        })
        .collect();
    let single = model.run(&persons, 1).intervals();
    assert_eq!(
        single,
        model.run(&persons, 2).intervals(),
        "{}",
        scenario.name
    );
    single
}

fn column(report: &[LifecycleIntervalCounts], pick: fn(&LifecycleCounts) -> u64) -> Vec<u64> {
    report
        .iter()
        .map(|interval| pick(&interval.counts))
        .collect()
}

/// PostHog's standard four persons, by day in January 2020.
fn posthog_persons() -> Vec<(Seen, Vec<&'static str>)> {
    vec![
        (
            Seen::FirstActivity,
            vec![
                "2020-01-11T12",
                "2020-01-12T12",
                "2020-01-13T12",
                "2020-01-15T12",
                "2020-01-17T12",
                "2020-01-19T12",
            ],
        ),
        (Seen::FirstActivity, vec!["2020-01-09T12", "2020-01-12T12"]),
        (Seen::FirstActivity, vec!["2020-01-12T12"]),
        (Seen::FirstActivity, vec!["2020-01-15T12"]),
    ]
}

fn daily(name: &'static str, first: &'static str, count: usize) -> Scenario {
    Scenario {
        name,
        zone: "UTC",
        interval: Interval::Day,
        week_start: Weekday::Mon,
        first,
        count,
        k: 3,
        persons: posthog_persons(),
        new: vec![],
        returning: vec![],
        resurrecting: vec![],
        dormant: vec![],
        churned: None,
    }
}

/// PostHog daily scenarios in UTC on their four standard persons (or a subset).
fn posthog_daily_scenarios() -> Vec<Scenario> {
    vec![
        // PostHog: test_lifecycle_trend (also _all_events and _action), 12th to 19th.
        Scenario {
            new: vec![1, 0, 0, 1, 0, 0, 0, 0],
            returning: vec![1, 1, 0, 0, 0, 0, 0, 0],
            resurrecting: vec![1, 0, 0, 1, 0, 1, 0, 1],
            dormant: vec![0, 2, 1, 0, 2, 0, 1, 0],
            // Ours: p2 and p3 (last active the 12th) on the 15th, p4 on the 18th.
            churned: Some(vec![0, 0, 0, 2, 0, 0, 1, 0]),
            ..daily("posthog trend", "2020-01-12T00", 8)
        },
        // PostHog: test_lifecycle_query_whole_range, 9th to 19th.
        Scenario {
            new: vec![1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0],
            returning: vec![0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0],
            resurrecting: vec![0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1],
            dormant: vec![0, 1, 0, 0, 2, 1, 0, 2, 0, 1, 0],
            ..daily("posthog whole range", "2020-01-09T00", 11)
        },
        // PostHog: test_lifecycle_trend_all_time (now = the 17th), 9th to 17th.
        Scenario {
            new: vec![1, 0, 1, 1, 0, 0, 1, 0, 0],
            returning: vec![0, 0, 0, 1, 1, 0, 0, 0, 0],
            resurrecting: vec![0, 0, 0, 1, 0, 0, 1, 0, 1],
            dormant: vec![0, 1, 0, 0, 2, 1, 0, 2, 0],
            ..daily("posthog all time", "2020-01-09T00", 9)
        },
        // PostHog: test_lifecycle_trend_prop_filtering — only p1's events qualify, and p1 was
        // created after all of them: creation is not in the first active period, so p1 is
        // never new. The others have no qualifying activity at all.
        Scenario {
            persons: {
                let mut persons = posthog_persons();
                persons[0].0 = Seen::At("2020-02-01T00");
                for person in persons.iter_mut().skip(1) {
                    person.1.clear();
                }
                persons
            },
            new: vec![0; 8],
            returning: vec![1, 1, 0, 0, 0, 0, 0, 0],
            resurrecting: vec![0, 0, 0, 1, 0, 1, 0, 1],
            dormant: vec![0, 0, 1, 0, 1, 0, 1, 0],
            ..daily("posthog creation after first activity", "2020-01-12T00", 8)
        },
        // PostHog: test_filter_test_accounts — p1 filtered out.
        Scenario {
            persons: posthog_persons().into_iter().skip(1).collect(),
            new: vec![1, 0, 0, 1, 0, 0, 0, 0],
            returning: vec![0; 8],
            resurrecting: vec![1, 0, 0, 0, 0, 0, 0, 0],
            dormant: vec![0, 2, 0, 0, 1, 0, 0, 0],
            ..daily("posthog without p1", "2020-01-12T00", 8)
        },
        // PostHog: test_lifecycle_trends_distinct_id_repeat (one person, two ids).
        Scenario {
            persons: vec![(
                Seen::At("2020-01-12T12"),
                vec![
                    "2020-01-12T12",
                    "2020-01-14T12",
                    "2020-01-15T12",
                    "2020-01-17T12",
                    "2020-01-19T12",
                ],
            )],
            new: vec![1, 0, 0, 0, 0, 0, 0, 0],
            returning: vec![0, 0, 0, 1, 0, 0, 0, 0],
            resurrecting: vec![0, 0, 1, 0, 0, 1, 0, 1],
            dormant: vec![0, 1, 0, 0, 1, 0, 1, 0],
            ..daily("posthog merged ids", "2020-01-12T00", 8)
        },
    ]
}

/// PostHog scenarios on other intervals and time zones.
#[expect(
    clippy::too_many_lines,
    reason = "a table of PostHog's scenarios, one row after another"
)]
fn posthog_calendar_scenarios() -> Vec<Scenario> {
    let weekly_persons = || {
        vec![
            (
                Seen::FirstActivity,
                vec![
                    "2020-02-01T12",
                    "2020-02-05T12",
                    "2020-02-10T12",
                    "2020-02-15T12",
                    "2020-02-27T12",
                    "2020-03-02T12",
                ],
            ),
            (Seen::FirstActivity, vec!["2020-02-11T12", "2020-02-18T12"]),
            (Seen::FirstActivity, vec!["2020-02-12T12"]),
            (Seen::FirstActivity, vec!["2020-02-27T12"]),
        ]
    };
    let weekly = |name, week_start| Scenario {
        name,
        interval: Interval::Week,
        week_start,
        first: "2020-02-05T00",
        count: 6,
        persons: weekly_persons(),
        new: vec![0, 2, 0, 1, 0, 0],
        returning: vec![1, 1, 1, 0, 1, 0],
        resurrecting: vec![0, 0, 0, 1, 0, 0],
        dormant: vec![0, 0, 2, 1, 1, 1],
        // Ours: the third empty week after p3 (active in week 1) and p2 (week 2).
        churned: Some(vec![0, 0, 0, 0, 1, 1]),
        ..daily("", "2020-02-05T00", 6)
    };
    vec![
        // PostHog: test_lifecycle_trend_weeks_sunday and _monday.
        weekly("posthog weeks sunday", Weekday::Sun),
        weekly("posthog weeks monday", Weekday::Mon),
        // PostHog: test_lifecycle_trend_months, February to September 2020.
        Scenario {
            interval: Interval::Month,
            persons: vec![
                (
                    Seen::FirstActivity,
                    vec![
                        "2020-01-11T12",
                        "2020-02-12T12",
                        "2020-03-13T12",
                        "2020-05-15T12",
                        "2020-07-17T12",
                        "2020-09-19T12",
                    ],
                ),
                (Seen::FirstActivity, vec!["2019-12-09T12", "2020-02-12T12"]),
                (Seen::FirstActivity, vec!["2020-02-12T12"]),
                (Seen::FirstActivity, vec!["2020-05-15T12"]),
            ],
            new: vec![1, 0, 0, 1, 0, 0, 0, 0],
            returning: vec![1, 1, 0, 0, 0, 0, 0, 0],
            resurrecting: vec![1, 0, 0, 1, 0, 1, 0, 1],
            dormant: vec![0, 2, 1, 0, 2, 0, 1, 0],
            ..daily("posthog months", "2020-02-01T00", 8)
        },
        // PostHog: test_timezones, the same range in US/Pacific (p1's first two events fall
        // on the 11th there).
        Scenario {
            zone: "US/Pacific",
            persons: {
                let mut persons = posthog_persons();
                persons[0].1[0] = "2020-01-11T23";
                persons[0].1[1] = "2020-01-12T01";
                persons
            },
            first: "2020-01-12T12",
            new: vec![1, 0, 0, 1, 0, 0, 0, 0],
            returning: vec![0; 8],
            resurrecting: vec![1, 1, 0, 1, 0, 1, 0, 1],
            dormant: vec![1, 2, 1, 0, 2, 0, 1, 0],
            ..daily("posthog pacific", "2020-01-12T12", 8)
        },
        // PostHog: test_dormant_on_dst — dormant on the day clocks change in US/Pacific.
        Scenario {
            zone: "US/Pacific",
            first: "2025-03-08T20",
            count: 4,
            persons: vec![(Seen::FirstActivity, vec!["2025-03-09T12"])],
            new: vec![0, 1, 0, 0],
            returning: vec![0; 4],
            resurrecting: vec![0; 4],
            dormant: vec![0, 0, 1, 0],
            churned: Some(vec![0; 4]),
            ..daily("posthog dormant on dst", "2025-03-08T20", 4)
        },
    ]
}

/// touchline's own scenarios for churn and the look-back.
fn touchline_scenarios() -> Vec<Scenario> {
    vec![
        // Ours: K = 1 counts a person entering inactivity both dormant and churned.
        Scenario {
            k: 1,
            persons: vec![(
                Seen::At("2019-06-01T00"),
                vec!["2020-01-12T12", "2020-01-14T12"],
            )],
            new: vec![0; 4],
            returning: vec![0; 4],
            resurrecting: vec![1, 0, 1, 0],
            dormant: vec![0, 1, 0, 1],
            churned: Some(vec![0, 1, 0, 1]),
            ..daily("k one", "2020-01-12T00", 4)
        },
        // Ours: activity K intervals before the range still churns inside it; activity
        // before the look-back is not seen.
        Scenario {
            persons: vec![
                (Seen::FirstActivity, vec!["2020-01-09T12"]),
                (Seen::FirstActivity, vec!["2020-01-08T12"]),
            ],
            new: vec![0; 3],
            returning: vec![0; 3],
            resurrecting: vec![0; 3],
            dormant: vec![0; 3],
            churned: Some(vec![1, 0, 0]),
            ..daily("look-back", "2020-01-12T00", 3)
        },
    ]
}

fn scenarios() -> Vec<Scenario> {
    let mut all = posthog_daily_scenarios();
    all.extend(posthog_calendar_scenarios());
    all.extend(touchline_scenarios());
    all
}

#[test]
fn scenario_counts() {
    let all = scenarios();
    assert_eq!(all.len(), 13);
    for scenario in all {
        let report = run(&scenario);
        let name = scenario.name;
        assert_eq!(report.len(), scenario.count, "{name}");
        assert_eq!(column(&report, |c| c.new), scenario.new, "{name}: new");
        assert_eq!(
            column(&report, |c| c.returning),
            scenario.returning,
            "{name}: returning"
        );
        assert_eq!(
            column(&report, |c| c.resurrecting),
            scenario.resurrecting,
            "{name}: resurrecting"
        );
        assert_eq!(
            column(&report, |c| c.dormant),
            scenario.dormant,
            "{name}: dormant"
        );
        if let Some(churned) = &scenario.churned {
            assert_eq!(&column(&report, |c| c.churned), churned, "{name}: churned");
        }
    }
}

#[test]
fn weekly_interval_starts_follow_week_start() {
    // PostHog's weekly scenario lists these week starts.
    for (week_start, first_day) in [
        (Weekday::Sun, "2020-02-02T00"),
        (Weekday::Mon, "2020-02-03T00"),
    ] {
        let calendar = Calendar::new(Interval::Week, chrono_tz::Tz::UTC, week_start);
        let reported = IntervalGrid::from_instant(&calendar, t("2020-02-05T00"), 6).unwrap();
        let model = LifecycleModel::new(&calendar, &reported, 3).unwrap();
        let report = model.accumulator().intervals();
        assert_eq!(report[0].start_ms, t(first_day));
        assert_eq!(report[5].end_ms - report[0].start_ms, 42 * 24 * 3_600_000);
    }
}

fn day_model(first: &str, count: usize, k: u32) -> LifecycleModel {
    let calendar = Calendar::new(Interval::Day, chrono_tz::Tz::UTC, Weekday::Mon);
    let reported = IntervalGrid::from_instant(&calendar, t(first), count).unwrap();
    LifecycleModel::new(&calendar, &reported, k).unwrap()
}

#[test]
fn person_history_shows_one_status_per_interval() {
    let model = day_model("2020-01-12T00", 8, 3);
    let activity = [
        t("2020-01-11T12"),
        t("2020-01-12T08"),
        t("2020-01-12T12"),
        t("2020-01-17T12"),
    ];
    let person = LifecyclePerson {
        first_seen_ms: Some(t("2020-01-11T12")),
        activity_ms: &activity,
    };
    let history = model.person_history(&person);
    use LifecycleStatus::*;
    let statuses: Vec<_> = history.iter().map(|interval| interval.status).collect();
    assert_eq!(
        statuses,
        [
            Returning,
            Dormant,
            Inactive,
            Churned,
            Inactive,
            Resurrecting,
            Dormant,
            Inactive
        ]
    );
    let events: Vec<_> = history
        .iter()
        .map(|interval| interval.event_count)
        .collect();
    assert_eq!(events, [2, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(history[0].start_ms, t("2020-01-12T00"));
}

/// (first seen, activity, as of, expected stage, since, last active)
type StageCase = (
    &'static str,
    Vec<&'static str>,
    &'static str,
    Option<(LifecycleStage, &'static str, &'static str)>,
);

fn stage_cases() -> Vec<StageCase> {
    use LifecycleStage::*;
    vec![
        (
            "2020-01-10T09",
            vec!["2020-01-10T09"],
            "2020-01-10T20",
            Some((New, "2020-01-10T00", "2020-01-10T09")),
        ),
        // Judged on the last complete day when today has no activity yet.
        (
            "2020-01-10T09",
            vec!["2020-01-10T09"],
            "2020-01-11T05",
            Some((New, "2020-01-10T00", "2020-01-10T09")),
        ),
        (
            "2020-01-08T09",
            vec!["2020-01-08T09", "2020-01-09T09", "2020-01-10T09"],
            "2020-01-10T20",
            Some((Active, "2020-01-09T00", "2020-01-10T09")),
        ),
        (
            "2020-01-05T09",
            vec!["2020-01-05T09", "2020-01-09T09"],
            "2020-01-09T20",
            Some((Returning, "2020-01-09T00", "2020-01-09T09")),
        ),
        (
            "2020-01-05T09",
            vec!["2020-01-05T09"],
            "2020-01-07T20",
            Some((Dormant, "2020-01-06T00", "2020-01-05T09")),
        ),
        (
            "2020-01-05T09",
            vec!["2020-01-05T09"],
            "2020-01-09T20",
            Some((Churned, "2020-01-08T00", "2020-01-05T09")),
        ),
        // Active only long before the model's grid: churned K days after that activity.
        (
            "2019-12-01T09",
            vec!["2019-12-01T09"],
            "2020-01-09T20",
            Some((Churned, "2019-12-04T00", "2019-12-01T09")),
        ),
        // Activity after as-of is ignored; no activity at all gives no stage.
        (
            "2020-01-05T09",
            vec!["2020-01-12T09"],
            "2020-01-09T20",
            None,
        ),
        ("2020-01-05T09", vec![], "2020-01-09T20", None),
    ]
}

#[test]
fn person_stages() {
    let model = day_model("2020-01-01T00", 20, 3);
    let stage = |first_seen: &str, activity: &[&str], as_of: &str| {
        let activity: Vec<i64> = activity.iter().map(|hour| t(hour)).collect();
        let person = LifecyclePerson {
            first_seen_ms: Some(t(first_seen)),
            activity_ms: &activity,
        };
        model
            .person_stage(&person, t(as_of))
            .unwrap()
            .map(|s| (s.stage, s.since_ms, s.last_active_ms))
    };
    let cases = stage_cases();
    for (first_seen, activity, as_of, expected) in cases {
        let expected = expected.map(|(stage, since, last)| (stage, t(since), t(last)));
        assert_eq!(
            stage(first_seen, &activity, as_of),
            expected,
            "{activity:?} as of {as_of}"
        );
    }
    let person = LifecyclePerson {
        first_seen_ms: None,
        activity_ms: &[],
    };
    assert!(model.person_stage(&person, t("2019-01-01T00")).is_err());

    // All persons at once, in input order, on any number of threads.
    let activity: Vec<Vec<i64>> = stage_cases()
        .iter()
        .map(|case| case.1.iter().map(|hour| t(hour)).collect())
        .collect();
    let persons: Vec<LifecyclePerson<'_>> = stage_cases()
        .iter()
        .zip(&activity)
        .map(|(case, activity_ms)| LifecyclePerson {
            first_seen_ms: Some(t(case.0)),
            activity_ms,
        })
        .collect();
    let as_of = t("2020-01-09T20");
    let one_by_one: Vec<_> = persons
        .iter()
        .map(|person| model.person_stage(person, as_of).unwrap())
        .collect();
    assert_eq!(model.stages(&persons, as_of, 3).unwrap(), one_by_one);
    assert!(one_by_one.iter().any(Option::is_some) && one_by_one.iter().any(Option::is_none));
    assert!(model.stages(&persons, t("2019-01-01T00"), 2).is_err());
}

#[test]
fn invalid_options_name_their_field() {
    let calendar = Calendar::new(Interval::Day, chrono_tz::Tz::UTC, Weekday::Mon);
    let reported = IntervalGrid::from_instant(&calendar, 0, 5).unwrap();
    let field = |result: Result<LifecycleModel, LifecycleError>| match result {
        Err(LifecycleError::InvalidInput { field, .. }) => field,
        other => panic!("expected an invalid input, got {other:?}"),
    };
    assert_eq!(
        field(LifecycleModel::new(&calendar, &reported, 0)),
        "options.churn_intervals"
    );
    assert_eq!(
        field(LifecycleModel::new(&calendar, &reported, 53)),
        "options.churn_intervals"
    );
    let hourly = Calendar::new(Interval::Hour, chrono_tz::Tz::UTC, Weekday::Mon);
    assert_eq!(
        field(LifecycleModel::new(&hourly, &reported, 3)),
        "options.interval"
    );
    let empty = IntervalGrid::starting_in(&calendar, 5, 5, 10).unwrap();
    assert_eq!(
        field(LifecycleModel::new(&calendar, &empty, 3)),
        "scope.time_range"
    );
}

#[test]
fn empty_and_extreme_inputs() {
    let model = day_model("2020-01-12T00", 5, 3);
    let extremes = [i64::MIN, i64::MAX, 0];
    let persons = [
        LifecyclePerson {
            first_seen_ms: None,
            activity_ms: &[],
        },
        LifecyclePerson {
            first_seen_ms: Some(i64::MAX),
            activity_ms: &extremes,
        },
    ];
    let accumulator = model.run(&persons, 2);
    assert_eq!(accumulator.persons_considered(), 2);
    assert!(
        accumulator
            .intervals()
            .iter()
            .all(|i| i.counts == LifecycleCounts::default())
    );
    let none = model.run(&[], 2);
    assert_eq!(none.persons_considered(), 0);
    assert_eq!(none.intervals().len(), 5);
}
