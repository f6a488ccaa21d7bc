#![allow(clippy::unwrap_used, reason = "tests")]

//! Paths checked against a deliberately naive reference: sessions materialised as vectors,
//! every rule applied in its own pass, statistics kept in ordered maps with person sets.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const MIN: i64 = 60_000;

type Session = Vec<(u32, i64)>;

fn naive_sessions(events: &[PathEvent], options: &PathOptions) -> Vec<Session> {
    let kept: Vec<&PathEvent> = events
        .iter()
        .filter(|e| !options.exclude_items.contains(&e.item))
        .collect();
    let mut sessions: Vec<Vec<&PathEvent>> = Vec::new();
    for (index, event) in kept.iter().enumerate() {
        let new_session = index == 0
            || (event.time_ms as i128 - kept[index - 1].time_ms as i128)
                > options.session_gap_ms as i128;
        if new_session {
            sessions.push(Vec::new());
        }
        sessions.last_mut().unwrap().push(event);
    }
    sessions
        .into_iter()
        .map(|session| {
            let mut items: Session = session.iter().map(|e| (e.item, e.time_ms)).collect();
            if options.collapse_repeats {
                items.dedup_by(|later, earlier| later.0 == earlier.0);
            }
            items
        })
        .collect()
}

fn naive_steps(session: &Session, options: &PathOptions) -> Session {
    let n = options.max_steps;
    let starts: Vec<usize> = match options.start_item {
        Some(item) => (0..session.len())
            .filter(|&i| session[i].0 == item)
            .collect(),
        None => vec![0],
    };
    let Some(&start) = starts.first() else {
        return Vec::new();
    };
    let Some(end_item) = options.end_item else {
        return session.iter().skip(start).take(n).copied().collect();
    };
    let ends: Vec<usize> = (0..session.len())
        .filter(|&i| session[i].0 == end_item)
        .filter(|&i| {
            if options.start_item == Some(end_item) {
                i > start
            } else {
                i >= start
            }
        })
        .collect();
    let Some(&end) = ends.first() else {
        return Vec::new();
    };
    let segment: Session = session[start..=end].to_vec();
    segment[segment.len().saturating_sub(n)..].to_vec()
}

#[derive(Default)]
struct NaiveGraph {
    nodes: BTreeMap<NodeKey, (u64, BTreeSet<usize>, u64)>,
    edges: BTreeMap<EdgeKey, (u64, BTreeSet<usize>, i128)>,
    sessions: u64,
    persons: BTreeSet<usize>,
}

fn naive_graph(persons: &[Vec<PathEvent>], options: &PathOptions) -> PathGraph {
    let mut graph = NaiveGraph::default();
    for (person, events) in persons.iter().enumerate() {
        for session in naive_sessions(events, options) {
            let steps = naive_steps(&session, options);
            if steps.is_empty() {
                continue;
            }
            graph.sessions += 1;
            graph.persons.insert(person);
            for (i, &(item, _)) in steps.iter().enumerate() {
                let node = graph
                    .nodes
                    .entry(NodeKey {
                        position: i as u8 + 1,
                        item,
                    })
                    .or_default();
                node.0 += 1;
                node.1.insert(person);
                node.2 += u64::from(i == steps.len() - 1);
            }
            for i in 1..steps.len() {
                let key = EdgeKey {
                    position: i as u8,
                    source_item: steps[i - 1].0,
                    target_item: steps[i].0,
                };
                let edge = graph.edges.entry(key).or_default();
                edge.0 += 1;
                edge.1.insert(person);
                edge.2 += steps[i].1 as i128 - steps[i - 1].1 as i128;
            }
        }
    }
    PathGraph {
        nodes: graph
            .nodes
            .into_iter()
            .map(|(key, (sessions, persons, drop_offs))| PathNode {
                key,
                stats: NodeStats {
                    sessions,
                    persons: persons.len() as u64,
                    drop_offs,
                },
            })
            .collect(),
        edges: graph
            .edges
            .into_iter()
            .map(|(key, (transitions, persons, total_time_ms))| PathEdge {
                key,
                stats: EdgeStats {
                    transitions,
                    persons: persons.len() as u64,
                    total_time_ms,
                },
            })
            .collect(),
        session_count: graph.sessions,
        person_count: graph.persons.len() as u64,
    }
}

fn any_options() -> impl Strategy<Value = PathOptions> {
    (
        1i64..60,
        2usize..7,
        proptest::option::of(0u32..5),
        proptest::option::of(0u32..5),
        proptest::collection::btree_set(0u32..5, 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(gap, max_steps, start_item, end_item, exclude, collapse_repeats)| {
                let exclude_items = exclude
                    .into_iter()
                    .filter(|item| Some(*item) != start_item && Some(*item) != end_item)
                    .collect();
                PathOptions {
                    session_gap_ms: gap * MIN,
                    max_steps,
                    start_item,
                    end_item,
                    exclude_items,
                    collapse_repeats,
                }
            },
        )
}

fn any_timeline() -> impl Strategy<Value = Vec<PathEvent>> {
    proptest::collection::vec((0i64..50 * MIN, 0u32..5), 0..25).prop_map(|steps| {
        let mut time = 0;
        steps
            .into_iter()
            .enumerate()
            .map(|(seq, (delta, item))| {
                // A third of the steps share the previous instant.
                time += if delta % 3 == 0 { 0 } else { delta };
                PathEvent {
                    time_ms: time,
                    seq: seq as u64,
                    item,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fast_paths_match_naive_reference(
        options in any_options(),
        persons in proptest::collection::vec(any_timeline(), 0..8),
        max_edges in 1usize..12,
        min_edge_weight in 1u64..3,
    ) {
        let slices: Vec<&[PathEvent]> = persons.iter().map(Vec::as_slice).collect();
        let fast = run(&slices, &options, 2).unwrap().graph();
        let naive = naive_graph(&persons, &options);
        prop_assert_eq!(&fast, &naive);

        let selection = EdgeSelection { min_edge_weight, max_edges };
        let mut expected: Vec<PathEdge> =
            naive.edges.iter().filter(|e| e.stats.transitions >= min_edge_weight).copied().collect();
        expected.sort_by_key(|e| (std::cmp::Reverse(e.stats.transitions), e.key));
        expected.truncate(max_edges);
        prop_assert_eq!(fast.top_edges(selection), expected);
    }
}
