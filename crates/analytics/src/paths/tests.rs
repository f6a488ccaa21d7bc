#![allow(clippy::unwrap_used, reason = "tests")]

//! Table-driven path scenarios: each lists timelines, options and the expected graph.

use super::*;

const MIN: i64 = 60_000;
const A: u32 = 1;
const B: u32 = 2;
const C: u32 = 3;
const D: u32 = 4;
const E: u32 = 5;
const X: u32 = 9;

/// A timeline from (minute, item) pairs, sequence numbers in order.
fn timeline(steps: &[(i64, u32)]) -> Vec<PathEvent> {
    steps
        .iter()
        .enumerate()
        .map(|(seq, &(minute, item))| PathEvent {
            time_ms: minute * MIN,
            seq: seq as u64,
            item,
        })
        .collect()
}

fn graph(persons: &[Vec<PathEvent>], options: &PathOptions) -> PathGraph {
    let slices: Vec<&[PathEvent]> = persons.iter().map(Vec::as_slice).collect();
    let one = run(&slices, options, 1).unwrap().graph();
    assert_eq!(one, run(&slices, options, 2).unwrap().graph());
    one
}

/// Edges as (source position, source, target, transitions, persons).
fn edges(graph: &PathGraph) -> Vec<(u8, u32, u32, u64, u64)> {
    graph
        .edges
        .iter()
        .map(|e| {
            (
                e.key.position,
                e.key.source_item,
                e.key.target_item,
                e.stats.transitions,
                e.stats.persons,
            )
        })
        .collect()
}

/// Nodes as (position, item, sessions, persons, drop-offs).
fn nodes(graph: &PathGraph) -> Vec<(u8, u32, u64, u64, u64)> {
    graph
        .nodes
        .iter()
        .map(|n| {
            (
                n.key.position,
                n.key.item,
                n.stats.sessions,
                n.stats.persons,
                n.stats.drop_offs,
            )
        })
        .collect()
}

struct Scenario {
    name: &'static str,
    persons: Vec<Vec<(i64, u32)>>,
    options: PathOptions,
    edges: Vec<(u8, u32, u32, u64, u64)>,
    sessions: u64,
    persons_counted: u64,
}

/// Session cutting, repeats and the step limit.
fn session_scenarios() -> Vec<Scenario> {
    let base = PathOptions::default();
    vec![
        Scenario {
            name: "sessions cut at a gap longer than 30 minutes",
            persons: vec![
                vec![(0, A), (1, B), (2, C)],
                vec![(0, A), (5, B), (36, C), (37, D)],
            ],
            options: base.clone(),
            edges: vec![(1, A, B, 2, 2), (1, C, D, 1, 1), (2, B, C, 1, 1)],
            sessions: 3,
            persons_counted: 2,
        },
        Scenario {
            name: "a gap of exactly 30 minutes keeps the session",
            persons: vec![vec![(0, A), (30, B)]],
            options: base.clone(),
            edges: vec![(1, A, B, 1, 1)],
            sessions: 1,
            persons_counted: 1,
        },
        Scenario {
            name: "repeats kept",
            persons: vec![vec![(0, A), (1, A), (2, B)]],
            options: base.clone(),
            edges: vec![(1, A, A, 1, 1), (2, A, B, 1, 1)],
            sessions: 1,
            persons_counted: 1,
        },
        Scenario {
            name: "repeats collapsed, and a repeat extends the session",
            persons: vec![vec![(0, A), (25, A), (50, B)]],
            options: PathOptions {
                collapse_repeats: true,
                ..base.clone()
            },
            edges: vec![(1, A, B, 1, 1)],
            sessions: 1,
            persons_counted: 1,
        },
        Scenario {
            name: "first five items per session",
            persons: vec![vec![(0, A), (1, B), (2, C), (3, D), (4, E), (5, X), (6, A)]],
            options: base.clone(),
            edges: vec![
                (1, A, B, 1, 1),
                (2, B, C, 1, 1),
                (3, C, D, 1, 1),
                (4, D, E, 1, 1),
            ],
            sessions: 1,
            persons_counted: 1,
        },
    ]
}

/// Start and end items, exclusions and distinct persons.
fn shaping_scenarios() -> Vec<Scenario> {
    let base = PathOptions::default();
    vec![
        Scenario {
            name: "start item: sessions without it are left out",
            persons: vec![vec![(0, X), (1, A), (2, B)], vec![(0, C), (1, D)]],
            options: PathOptions {
                start_item: Some(A),
                ..base.clone()
            },
            edges: vec![(1, A, B, 1, 1)],
            sessions: 1,
            persons_counted: 1,
        },
        Scenario {
            name: "end item: positions count back from it",
            persons: vec![
                vec![(0, A), (1, B), (2, C), (3, D), (4, E), (5, X), (6, A)],
                vec![(0, B), (1, X)],
                vec![(0, A), (1, B)],
            ],
            options: PathOptions {
                end_item: Some(X),
                max_steps: 3,
                ..base.clone()
            },
            edges: vec![(1, B, X, 1, 1), (1, D, E, 1, 1), (2, E, X, 1, 1)],
            sessions: 2,
            persons_counted: 2,
        },
        Scenario {
            name: "start and end items together; the same item ends strictly after the start",
            persons: vec![
                vec![(0, C), (1, A), (2, B), (3, X), (4, C)],
                vec![(0, X), (1, A), (2, X), (3, B)],
            ],
            options: PathOptions {
                start_item: Some(X),
                end_item: Some(X),
                ..base.clone()
            },
            edges: vec![(1, X, A, 1, 1), (2, A, X, 1, 1)],
            sessions: 1,
            persons_counted: 1,
        },
        Scenario {
            name: "excluded items never happened, so they can neither split nor bridge a session",
            persons: vec![vec![(0, A), (1, X), (2, B)], vec![(0, A), (20, X), (40, B)]],
            options: PathOptions {
                exclude_items: vec![X],
                ..base.clone()
            },
            edges: vec![(1, A, B, 1, 1)],
            sessions: 3,
            persons_counted: 2,
        },
        Scenario {
            name: "a person repeating a transition counts once among persons",
            persons: vec![
                vec![(0, A), (1, B), (100, A), (101, B)],
                vec![(0, A), (1, B)],
            ],
            options: base.clone(),
            edges: vec![(1, A, B, 3, 2)],
            sessions: 3,
            persons_counted: 2,
        },
    ]
}

fn scenarios() -> Vec<Scenario> {
    let mut all = session_scenarios();
    all.extend(shaping_scenarios());
    all
}

#[test]
fn scenario_graphs() {
    for scenario in scenarios() {
        let persons: Vec<Vec<PathEvent>> = scenario.persons.iter().map(|p| timeline(p)).collect();
        let graph = graph(&persons, &scenario.options);
        assert_eq!(edges(&graph), scenario.edges, "{}", scenario.name);
        assert_eq!(graph.session_count, scenario.sessions, "{}", scenario.name);
        assert_eq!(
            graph.person_count, scenario.persons_counted,
            "{}",
            scenario.name
        );
    }
}

#[test]
fn nodes_count_sessions_persons_and_drop_offs() {
    let persons = vec![
        timeline(&[(0, A), (1, B), (100, A)]),
        timeline(&[(0, A), (1, C)]),
    ];
    let graph = graph(&persons, &PathOptions::default());
    assert_eq!(
        nodes(&graph),
        [(1, A, 3, 2, 1), (2, B, 1, 1, 1), (2, C, 1, 1, 1)]
    );
}

#[test]
fn mean_time_between_items() {
    let persons = vec![timeline(&[(0, A), (1, B)]), timeline(&[(0, A), (5, B)])];
    let graph = graph(&persons, &PathOptions::default());
    assert_eq!(graph.edges[0].stats.total_time_ms, i128::from(6 * MIN));
    assert_eq!(graph.edges[0].stats.mean_time_ms(), (3 * MIN) as f64);
    assert_eq!(EdgeStats::default().mean_time_ms(), 0.0);
}

#[test]
fn equal_times_follow_the_sequence() {
    let events = [
        PathEvent {
            time_ms: 0,
            seq: 1,
            item: A,
        },
        PathEvent {
            time_ms: 0,
            seq: 2,
            item: B,
        },
        PathEvent {
            time_ms: 0,
            seq: 3,
            item: C,
        },
    ];
    let graph = graph(&[events.to_vec()], &PathOptions::default());
    assert_eq!(edges(&graph), [(1, A, B, 1, 1), (2, B, C, 1, 1)]);
    let mut swapped = events;
    swapped.swap(0, 1);
    let error = run(&[&swapped[..]], &PathOptions::default(), 1).unwrap_err();
    assert!(matches!(
        error,
        PathsError::InvalidInput {
            field: "events",
            ..
        }
    ));
}

#[test]
fn heaviest_edges_with_deterministic_ties() {
    let persons = vec![
        timeline(&[(0, A), (1, B)]),
        timeline(&[(0, A), (1, B)]),
        timeline(&[(0, C), (1, D)]),
        timeline(&[(0, B), (1, A)]),
        timeline(&[(0, A), (1, C), (2, D)]),
    ];
    let graph = graph(&persons, &PathOptions::default());
    let keys = |edges: Vec<PathEdge>| -> Vec<(u8, u32, u32)> {
        edges
            .iter()
            .map(|e| (e.key.position, e.key.source_item, e.key.target_item))
            .collect()
    };
    let all = EdgeSelection {
        min_edge_weight: 1,
        max_edges: 10,
    };
    assert_eq!(
        keys(graph.top_edges(all)),
        [(1, A, B), (1, A, C), (1, B, A), (1, C, D), (2, C, D)]
    );
    let top_two = EdgeSelection {
        min_edge_weight: 1,
        max_edges: 2,
    };
    assert_eq!(keys(graph.top_edges(top_two)), [(1, A, B), (1, A, C)]);
    // Ties ordered by the caller, e.g. by names sorting items in reverse.
    let reversed = graph.top_edges_by(top_two, |a, b| b.source_item.cmp(&a.source_item));
    assert_eq!(keys(reversed), [(1, A, B), (1, C, D)]);
    let heavy = EdgeSelection {
        min_edge_weight: 2,
        max_edges: 10,
    };
    let heavy_edges = graph.top_edges(heavy);
    assert_eq!(keys(heavy_edges.clone()), [(1, A, B)]);
    let node_keys: Vec<(u8, u32)> = graph
        .nodes_of(&heavy_edges)
        .iter()
        .map(|n| (n.key.position, n.key.item))
        .collect();
    assert_eq!(node_keys, [(1, A), (2, B)]);
    assert!(
        EdgeSelection {
            min_edge_weight: 1,
            max_edges: 0
        }
        .validate()
        .is_err()
    );
    assert!(EdgeSelection::default().validate().is_ok());
}

#[test]
fn invalid_options_name_their_field() {
    let field = |options: PathOptions| match options.validate() {
        Err(PathsError::InvalidInput { field, .. }) => field,
        Ok(()) => "valid",
    };
    let base = PathOptions::default();
    assert_eq!(field(base.clone()), "valid");
    assert_eq!(
        field(PathOptions {
            session_gap_ms: 59_999,
            ..base.clone()
        }),
        "session_gap"
    );
    assert_eq!(
        field(PathOptions {
            max_steps: 1,
            ..base.clone()
        }),
        "max_steps"
    );
    assert_eq!(
        field(PathOptions {
            max_steps: 21,
            ..base.clone()
        }),
        "max_steps"
    );
    assert_eq!(
        field(PathOptions {
            exclude_items: (0..51).collect(),
            ..base.clone()
        }),
        "exclude_items"
    );
    assert_eq!(
        field(PathOptions {
            exclude_items: vec![A],
            start_item: Some(A),
            ..base.clone()
        }),
        "start_item"
    );
    assert_eq!(
        field(PathOptions {
            exclude_items: vec![A],
            end_item: Some(A),
            ..base
        }),
        "end_item"
    );
}

#[test]
fn empty_and_extreme_timelines() {
    let extreme = vec![
        PathEvent {
            time_ms: i64::MIN,
            seq: 0,
            item: A,
        },
        PathEvent {
            time_ms: i64::MAX,
            seq: 0,
            item: B,
        },
        PathEvent {
            time_ms: i64::MAX,
            seq: 1,
            item: C,
        },
    ];
    let graph = graph(&[Vec::new(), extreme], &PathOptions::default());
    assert_eq!(edges(&graph), [(1, B, C, 1, 1)]);
    assert_eq!((graph.session_count, graph.person_count), (2, 1));
    let empty = graph_of_nothing();
    assert!(empty.edges.is_empty() && empty.nodes.is_empty());
}

fn graph_of_nothing() -> PathGraph {
    run(&[], &PathOptions::default(), 2).unwrap().graph()
}

#[test]
fn posthog_path_scenarios() {
    // Scenario from PostHog's paths tests, test_current_url_paths_and_logic (pages `/` = 1,
    // `/about` = 2, `/pricing` = 3; minutes after 03:21:34 on the same day).
    let (home, about, pricing) = (1, 2, 3);
    let pages = vec![
        timeline(&[(0, home), (7, about)]),
        timeline(&[(0, home), (7, pricing), (8, about)]),
        timeline(&[(0, pricing), (7, home)]),
        timeline(&[(0, home), (7, pricing)]),
    ];
    // Scenario from test_custom_event_paths: custom events 1, 2 and 3, all created at the same
    // instant, so the sequence orders them.
    let (first, second, third) = (1, 2, 3);
    let custom = vec![
        timeline(&[(0, first), (0, third)]),
        timeline(&[(0, first), (0, second), (0, third)]),
        timeline(&[(0, second), (0, first)]),
        timeline(&[(0, first), (0, second)]),
    ];
    // Both expect: 1_a → 2_b twice, then three single edges in key order.
    for (persons, [a, b, c]) in [
        (pages, [home, pricing, about]),
        (custom, [first, second, third]),
    ] {
        let graph = graph(&persons, &PathOptions::default());
        let top: Vec<(u8, u32, u32, u64)> = graph
            .top_edges(EdgeSelection::default())
            .iter()
            .map(|e| {
                (
                    e.key.position,
                    e.key.source_item,
                    e.key.target_item,
                    e.stats.persons,
                )
            })
            .collect();
        assert_eq!(
            top,
            [(1, a, b, 2), (1, a, c, 1), (1, b, a, 1), (2, b, c, 1)]
        );
    }
}
