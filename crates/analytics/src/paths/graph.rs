//! The finished path graph: every node and edge in a canonical order, and the selection of
//! the heaviest edges with their nodes.

use std::cmp::Ordering;

use super::accumulate::{EdgeStats, NodeStats};
use super::{DEFAULT_MAX_EDGES, EdgeKey, NodeKey, PathAccumulator, PathsError, invalid};

/// A node with its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNode {
    /// Position and item.
    pub key: NodeKey,
    /// Sessions, persons, drop-offs.
    pub stats: NodeStats,
}

/// An edge with its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathEdge {
    /// Source position and the two items.
    pub key: EdgeKey,
    /// Transitions, persons, total time.
    pub stats: EdgeStats,
}

/// Which edges to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSelection {
    /// Edges with fewer transitions are dropped.
    pub min_edge_weight: u64,
    /// Most edges returned (1 to 1,000).
    pub max_edges: usize,
}

impl Default for EdgeSelection {
    fn default() -> Self {
        Self {
            min_edge_weight: 1,
            max_edges: DEFAULT_MAX_EDGES,
        }
    }
}

impl EdgeSelection {
    /// Checks the bounds, naming the field out of them.
    pub fn validate(&self) -> Result<(), PathsError> {
        if !(1..=1000).contains(&self.max_edges) {
            return Err(invalid("max_edges", "must be from 1 to 1000"));
        }
        Ok(())
    }
}

/// Every node and edge, in canonical order (by key), with the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGraph {
    /// All nodes, by position then item.
    pub nodes: Vec<PathNode>,
    /// All edges, by position then items.
    pub edges: Vec<PathEdge>,
    /// Sessions that contributed.
    pub session_count: u64,
    /// Distinct persons among them.
    pub person_count: u64,
}

impl PathAccumulator {
    /// The graph of everything added so far.
    pub fn graph(&self) -> PathGraph {
        let mut nodes: Vec<PathNode> = self
            .nodes
            .iter()
            .map(|(&key, &stats)| PathNode { key, stats })
            .collect();
        nodes.sort_unstable_by_key(|node| node.key);
        let mut edges: Vec<PathEdge> = self
            .edges
            .iter()
            .map(|(&key, &stats)| PathEdge { key, stats })
            .collect();
        edges.sort_unstable_by_key(|edge| edge.key);
        PathGraph {
            nodes,
            edges,
            session_count: self.sessions,
            person_count: self.persons,
        }
    }
}

impl PathGraph {
    /// The heaviest edges with at least `min_edge_weight` transitions, at most `max_edges`;
    /// ties by position, then source item code, then target item code.
    pub fn top_edges(&self, selection: EdgeSelection) -> Vec<PathEdge> {
        self.top_edges_by(selection, |a, b| a.cmp(b))
    }

    /// Like [`Self::top_edges`], with ties ordered by `tie_break` (e.g. by rendered keys).
    pub fn top_edges_by(
        &self,
        selection: EdgeSelection,
        mut tie_break: impl FnMut(&EdgeKey, &EdgeKey) -> Ordering,
    ) -> Vec<PathEdge> {
        let mut kept: Vec<PathEdge> = self
            .edges
            .iter()
            .filter(|edge| edge.stats.transitions >= selection.min_edge_weight)
            .copied()
            .collect();
        kept.sort_by(|a, b| {
            b.stats
                .transitions
                .cmp(&a.stats.transitions)
                .then_with(|| tie_break(&a.key, &b.key))
        });
        kept.truncate(selection.max_edges);
        kept
    }

    /// The nodes the given edges touch, by position, then sessions (most first), then item.
    pub fn nodes_of(&self, edges: &[PathEdge]) -> Vec<PathNode> {
        let mut keys: Vec<NodeKey> = edges
            .iter()
            .flat_map(|edge| [edge.key.source(), edge.key.target()])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut nodes: Vec<PathNode> = keys
            .into_iter()
            .filter_map(|key| {
                self.nodes
                    .binary_search_by_key(&key, |node| node.key)
                    .ok()
                    .map(|index| self.nodes[index])
            })
            .collect();
        nodes.sort_by(|a, b| {
            a.key
                .position
                .cmp(&b.key.position)
                .then(b.stats.sessions.cmp(&a.stats.sessions))
                .then(a.key.item.cmp(&b.key.item))
        });
        nodes
    }
}
