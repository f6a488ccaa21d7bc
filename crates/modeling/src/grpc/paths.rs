//! Conversions of the paths call.

use touchline_proto::modeling::v1 as pb;

use super::journeys::{computation, duration_ms, matcher, scope, span_ms};
use crate::journeys::paths::{ItemKind, PathFigures, PathsQuery};

pub(super) fn paths_query(request: &pb::RunPathsRequest) -> PathsQuery {
    PathsQuery {
        kind: match pb::PathItemKind::try_from(request.item_kind) {
            Ok(pb::PathItemKind::Touchpoint) => ItemKind::Touchpoint,
            _ => ItemKind::Event,
        },
        include: request
            .include_events
            .iter()
            .filter_map(|m| matcher(Some(m)))
            .collect(),
        session_gap_ms: request.session_gap.as_ref().map(span_ms),
        max_steps: request.max_steps,
        start_item: request.start_item.clone(),
        end_item: request.end_item.clone(),
        exclude_items: request.exclude_items.clone(),
        collapse_repeats: request.collapse_repeats,
        min_edge_weight: request.min_edge_weight,
        max_edges: request.max_edges,
        scope: scope(request.scope.as_ref()),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn paths_reply(figures: PathFigures) -> pb::RunPathsResponse {
    pb::RunPathsResponse {
        nodes: figures
            .nodes
            .into_iter()
            .map(|node| pb::PathNode {
                key: node.key,
                position: i32::try_from(node.position).unwrap_or(i32::MAX),
                item: node.item,
                session_count: count(node.node.stats.sessions),
                person_count: count(node.node.stats.persons),
                drop_off_count: count(node.node.stats.drop_offs),
            })
            .collect(),
        edges: figures
            .edges
            .into_iter()
            .map(|edge| pb::PathEdge {
                source_key: edge.source,
                target_key: edge.target,
                transition_count: count(edge.edge.stats.transitions),
                person_count: count(edge.edge.stats.persons),
                mean_time_between: Some(duration_ms(edge.edge.stats.mean_time_ms())),
            })
            .collect(),
        session_count: count(figures.sessions),
        person_count: count(figures.persons),
        computation: Some(computation(figures.computation)),
    }
}
