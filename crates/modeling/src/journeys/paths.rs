//! Paths over a tenant's view: the request's rules, items named by text, and the heaviest
//! edges with their nodes rendered as `{position}_{item}` keys.

use std::collections::HashMap;

use touchline_analytics::paths::{
    DEFAULT_MAX_EDGES, DEFAULT_MAX_STEPS, DEFAULT_SESSION_GAP_MS, EdgeSelection, NodeKey, PathEdge,
    PathNode, PathOptions,
};
use touchline_projection::Projection;
use touchline_projection::query::{Dimension, PathSpec};

use super::RunContext;
use super::compile::{self, Known};
use super::funnel::{Computation, RunError};
use super::query::{DEFAULT_RANGE_MS, Matcher, OpenStart, Scope, Violations, resolve_range};
use super::view::TenantView;

/// Most items excluded.
const MAX_EXCLUDED: usize = 50;
/// The shortest session gap.
const MIN_SESSION_GAP_MS: i64 = 60_000;
/// The longest session gap.
const MAX_SESSION_GAP_MS: i64 = 7 * 86_400_000;

/// What a path's items are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ItemKind {
    /// Canonical events.
    #[default]
    Event,
    /// `{channel}/{touchpoint}`.
    Touchpoint,
}

/// Paths as a caller asked for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathsQuery {
    /// Events or touchpoints.
    pub kind: ItemKind,
    /// Which events become items (none: every event).
    pub include: Vec<Matcher>,
    /// The session gap in ms (`None`: 30 minutes).
    pub session_gap_ms: Option<i64>,
    /// Items per session (0: 5).
    pub max_steps: i32,
    /// The start item's text.
    pub start_item: String,
    /// The end item's text.
    pub end_item: String,
    /// Items removed first.
    pub exclude_items: Vec<String>,
    /// Collapse consecutive repeats.
    pub collapse_repeats: bool,
    /// Lightest edge kept (0: 1).
    pub min_edge_weight: i64,
    /// Most edges (0: 50).
    pub max_edges: i32,
    /// The scope.
    pub scope: Scope,
}

/// Paths whose every rule holds (items still as text).
#[derive(Debug, Clone)]
pub struct ValidPaths {
    query: PathsQuery,
    options: PathOptions,
    selection: EdgeSelection,
    range: (i64, i64),
}

/// One node, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFigures {
    /// `{position}_{item}`.
    pub key: String,
    /// 1-based position.
    pub position: usize,
    /// The item's text.
    pub item: String,
    /// Sessions, persons, drop-offs.
    pub node: PathNode,
}

/// One edge, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeFigures {
    /// The source node's key.
    pub source: String,
    /// The target node's key.
    pub target: String,
    /// Transitions, persons, total time.
    pub edge: PathEdge,
}

/// The path graph's heaviest part.
#[derive(Debug, Clone, PartialEq)]
pub struct PathFigures {
    /// Nodes of the returned edges, by position, then sessions, then item text.
    pub nodes: Vec<NodeFigures>,
    /// Heaviest edges first, ties by their keys' text.
    pub edges: Vec<EdgeFigures>,
    /// Sessions that contributed.
    pub sessions: u64,
    /// Distinct persons among them.
    pub persons: u64,
    /// What it was computed from.
    pub computation: Computation,
}

impl PathsQuery {
    /// Applies defaults and checks every rule.
    pub fn validate(&self, now_ms: i64) -> Result<ValidPaths, Violations> {
        let mut problems = Violations::default();
        let options = PathOptions {
            session_gap_ms: self.session_gap_ms.unwrap_or(DEFAULT_SESSION_GAP_MS),
            max_steps: match self.max_steps {
                0 => DEFAULT_MAX_STEPS,
                n => usize::try_from(n).unwrap_or(0),
            },
            collapse_repeats: self.collapse_repeats,
            ..PathOptions::default()
        };
        // Each field on its own, so one answer names every problem (the model's own check
        // stops at the first).
        if !(MIN_SESSION_GAP_MS..=MAX_SESSION_GAP_MS).contains(&options.session_gap_ms) {
            problems.add("session_gap", "OUT_OF_RANGE", "from 1 minute to 7 days");
        }
        if !(2..=20).contains(&options.max_steps) {
            problems.add("max_steps", "OUT_OF_RANGE", "from 2 to 20, or 0 for 5");
        }
        if self.exclude_items.len() > MAX_EXCLUDED {
            problems.add(
                "exclude_items",
                "TOO_MANY_ITEMS",
                format!("at most {MAX_EXCLUDED}"),
            );
        }
        for (field, item) in [
            ("start_item", &self.start_item),
            ("end_item", &self.end_item),
        ] {
            if !item.is_empty() && self.exclude_items.contains(item) {
                problems.add(
                    field,
                    "EXCLUDED",
                    format!("{item:?} is also among exclude_items"),
                );
            }
        }
        let selection = EdgeSelection {
            min_edge_weight: u64::try_from(self.min_edge_weight.max(1)).unwrap_or(1),
            max_edges: match self.max_edges {
                0 => DEFAULT_MAX_EDGES,
                n => usize::try_from(n).unwrap_or(0),
            },
        };
        if selection.validate().is_err() {
            problems.add("max_edges", "OUT_OF_RANGE", "from 1 to 1000, or 0 for 50");
        }
        if self.min_edge_weight < 0 {
            problems.add("min_edge_weight", "OUT_OF_RANGE", "must not be negative");
        }
        let range = resolve_range(
            &self.scope,
            now_ms,
            DEFAULT_RANGE_MS,
            OpenStart::Earliest,
            "scope",
            &mut problems,
        );
        if problems.is_empty() {
            Ok(ValidPaths {
                query: self.clone(),
                options,
                selection,
                range,
            })
        } else {
            Err(problems)
        }
    }
}

impl ValidPaths {
    /// The event names it names.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.query
            .include
            .iter()
            .map(|m| m.event_name.as_str())
            .filter(|n| !n.is_empty())
    }
}

fn dimension(kind: ItemKind) -> Dimension {
    match kind {
        ItemKind::Event => Dimension::Event,
        ItemKind::Touchpoint => Dimension::ChannelTouchpoint,
    }
}

/// The text of an item code.
fn item_text(projection: &Projection, kind: ItemKind, code: u32) -> String {
    let dictionaries = projection.dictionaries();
    match kind {
        ItemKind::Event => dictionaries
            .events
            .text(code)
            .unwrap_or_default()
            .to_owned(),
        ItemKind::Touchpoint => projection
            .channel_touchpoint(code)
            .map(|(channel, touchpoint)| {
                format!(
                    "{}/{}",
                    dictionaries.channels.text(channel).unwrap_or_default(),
                    dictionaries
                        .touchpoints
                        .text(touchpoint)
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default(),
    }
}

/// The code of an item's text; `None` when no stored event has it.
fn item_code(projection: &Projection, kind: ItemKind, text: &str) -> Option<u32> {
    match kind {
        ItemKind::Event => projection.dictionaries().events.code(text),
        ItemKind::Touchpoint => {
            // `{channel}/{touchpoint}`; either may hold a '/', so every split is tried, and
            // pairs are compared by codes rather than rendered.
            let dictionaries = projection.dictionaries();
            let count = projection
                .dimension_size(Dimension::ChannelTouchpoint)
                .ok()?;
            text.match_indices('/').find_map(|(at, _)| {
                let channel = dictionaries.channels.code(&text[..at])?;
                let touchpoint = dictionaries.touchpoints.code(&text[at + 1..])?;
                (1..count as u32).find(|&code| {
                    projection.channel_touchpoint(code) == Some((channel, touchpoint))
                })
            })
        }
    }
}

fn key(projection: &Projection, kind: ItemKind, node: NodeKey) -> String {
    format!(
        "{}_{}",
        node.position,
        item_text(projection, kind, node.item)
    )
}

/// The options with the start, end and excluded items as codes; an unknown start or end
/// item is a violation (it would silently leave every session out), an unknown excluded
/// item is nothing to exclude.
fn bind_items(
    projection: &Projection,
    paths: &ValidPaths,
    problems: &mut Violations,
) -> PathOptions {
    let query = &paths.query;
    let kind = query.kind;
    let mut options = paths.options.clone();
    for (field, text, slot) in [
        ("start_item", &query.start_item, &mut options.start_item),
        ("end_item", &query.end_item, &mut options.end_item),
    ] {
        if text.is_empty() {
            continue;
        }
        match item_code(projection, kind, text) {
            Some(code) => *slot = Some(code),
            None => problems.add(
                field,
                "UNKNOWN_ITEM",
                format!("no stored event has the item {text:?}"),
            ),
        }
    }
    options.exclude_items = query
        .exclude_items
        .iter()
        .filter_map(|text| item_code(projection, kind, text))
        .collect();
    options
}

/// Runs `paths` over `view` on up to `threads` threads.
pub fn run(
    view: &TenantView,
    paths: &ValidPaths,
    run: &RunContext,
) -> Result<PathFigures, RunError> {
    let projection = &view.projection;
    let query = &paths.query;
    let kind = query.kind;
    let known = Known::new(view, &run.defined);
    let mut problems = Violations::default();
    let events = (!query.include.is_empty())
        .then(|| compile::any_of(known, &query.include, "include_events", &mut problems));
    let options = bind_items(projection, paths, &mut problems);
    if !problems.is_empty() {
        return Err(RunError::Invalid(problems));
    }
    let spec = PathSpec {
        item: dimension(kind),
        events,
    };
    let scope = compile::ScopeFor::new(known, Some(paths.range), &query.scope.event_filters, run)
        .map_err(RunError::Invalid)?;
    let accumulator = projection
        .paths(&options, &spec, &scope.scope(), run.threads)
        .map_err(RunError::Projection)?;
    let graph = accumulator.graph();
    // Every node's key rendered once: the sort below compares keys many times. Ties go by
    // the rendered keys, never by codes (codes follow arrival order).
    let keys: HashMap<NodeKey, String> = graph
        .nodes
        .iter()
        .map(|node| (node.key, key(projection, kind, node.key)))
        .collect();
    let render = |node: NodeKey| keys.get(&node).map_or("", String::as_str);
    let edges = graph.top_edges_by(paths.selection, |a, b| {
        (render(a.source()), render(a.target())).cmp(&(render(b.source()), render(b.target())))
    });
    let mut nodes: Vec<NodeFigures> = graph
        .nodes_of(&edges)
        .into_iter()
        .map(|node| NodeFigures {
            key: render(node.key).to_owned(),
            position: usize::from(node.key.position),
            item: item_text(projection, kind, node.key.item),
            node,
        })
        .collect();
    nodes.sort_by(|a, b| {
        a.position
            .cmp(&b.position)
            .then(b.node.stats.sessions.cmp(&a.node.stats.sessions))
            .then_with(|| a.item.cmp(&b.item))
    });
    let edges = edges
        .into_iter()
        .map(|edge| EdgeFigures {
            source: render(edge.key.source()).to_owned(),
            target: render(edge.key.target()).to_owned(),
            edge,
        })
        .collect();
    Ok(PathFigures {
        nodes,
        edges,
        sessions: graph.session_count,
        persons: graph.person_count,
        computation: Computation {
            positions: view.positions,
            range: paths.range,
            persons_considered: graph.person_count,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use prost::Message as _;

    use super::*;
    use crate::store::journal::JournalEvent;

    #[test]
    fn touchpoint_items_are_found_by_their_text_even_with_a_slash_inside() {
        let stored: Vec<JournalEvent> = [("app", "home"), ("web/shop", "cart/v2")]
            .iter()
            .enumerate()
            .map(|(i, (channel, touchpoint))| JournalEvent {
                sequence: i as i64 + 1,
                person_id: uuid::Uuid::from_u128(1),
                event_name: "view".to_owned(),
                channel: (*channel).to_owned(),
                event_time: chrono::Utc
                    .timestamp_millis_opt(1_000 * i as i64)
                    .single()
                    .unwrap_or_default(),
                payload: touchline_proto::governance::v1::CleanEvent {
                    touchpoint: (*touchpoint).to_owned(),
                    ..Default::default()
                }
                .encode_to_vec(),
            })
            .collect();
        let view = TenantView::build(std::iter::once(stored), Vec::new(), 1)
            .unwrap_or_else(|err| panic!("{err}"));
        let projection = &view.projection;
        for text in ["app/home", "web/shop/cart/v2"] {
            let code = item_code(projection, ItemKind::Touchpoint, text);
            assert!(code.is_some(), "{text}");
            let rendered = code.map(|c| item_text(projection, ItemKind::Touchpoint, c));
            assert_eq!(rendered.as_deref(), Some(text));
        }
        assert_eq!(
            item_code(projection, ItemKind::Touchpoint, "app/cart/v2"),
            None
        );
        assert_eq!(item_code(projection, ItemKind::Touchpoint, "apphome"), None);
    }
}
