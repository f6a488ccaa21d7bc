//! Cutting one person's timeline into sessions and folding their steps into node and edge
//! statistics, with no allocation per event (all buffers are reused across persons).

use std::collections::HashMap;

use super::hash::BuildIntHasher;
use super::{EdgeKey, NodeKey, PathEvent, PathOptions, PathsError, invalid};

/// Statistics of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Sessions passing through the node.
    pub sessions: u64,
    /// Distinct persons passing through it.
    pub persons: u64,
    /// Sessions ending at the node.
    pub drop_offs: u64,
}

/// Statistics of one edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Transitions (sessions making this step).
    pub transitions: u64,
    /// Distinct persons making it.
    pub persons: u64,
    /// Sum of the times between the two items (ms).
    pub total_time_ms: i128,
}

impl EdgeStats {
    /// Mean time between the two items (ms); 0 for an edge without transitions.
    pub fn mean_time_ms(&self) -> f64 {
        if self.transitions == 0 {
            0.0
        } else {
            self.total_time_ms as f64 / self.transitions as f64
        }
    }
}

/// Path statistics of one partition of persons; partitions merge by addition.
#[derive(Debug, Clone)]
pub struct PathAccumulator {
    options: PathOptions,
    excluded: Vec<u32>,
    pub(super) nodes: HashMap<NodeKey, NodeStats, BuildIntHasher>,
    pub(super) edges: HashMap<EdgeKey, EdgeStats, BuildIntHasher>,
    pub(super) sessions: u64,
    pub(super) persons: u64,
    /// The current session's items and their times.
    session: Vec<(u32, i64)>,
    /// The current person's node visits (with "the session ends here").
    person_nodes: Vec<(NodeKey, bool)>,
    /// The current person's transitions (with the time between the items).
    person_edges: Vec<(EdgeKey, i128)>,
}

impl PathAccumulator {
    /// An empty accumulator; `options` should have passed [`PathOptions::validate`].
    pub fn new(options: PathOptions) -> Self {
        let mut excluded = options.exclude_items.clone();
        excluded.sort_unstable();
        Self {
            options,
            excluded,
            nodes: HashMap::default(),
            edges: HashMap::default(),
            sessions: 0,
            persons: 0,
            session: Vec::new(),
            person_nodes: Vec::new(),
            person_edges: Vec::new(),
        }
    }

    /// Adds one person's timeline, which must be sorted by time, then sequence.
    pub fn add_person(&mut self, events: &[PathEvent]) -> Result<(), PathsError> {
        let sorted = events
            .windows(2)
            .all(|pair| (pair[0].time_ms, pair[0].seq) <= (pair[1].time_ms, pair[1].seq));
        if !sorted {
            return Err(invalid(
                "events",
                "a timeline is not sorted by time and sequence",
            ));
        }
        self.person_nodes.clear();
        self.person_edges.clear();
        let gap = i128::from(self.options.session_gap_ms);
        let mut session = std::mem::take(&mut self.session);
        session.clear();
        let mut last_time: Option<i64> = None;
        for event in events {
            if self.excluded.binary_search(&event.item).is_ok() {
                continue;
            }
            if last_time.is_some_and(|last| i128::from(event.time_ms) - i128::from(last) > gap) {
                self.add_session(&session);
                session.clear();
            }
            last_time = Some(event.time_ms);
            let repeat = session.last().is_some_and(|&(item, _)| item == event.item);
            if !(self.options.collapse_repeats && repeat) {
                session.push((event.item, event.time_ms));
            }
        }
        self.add_session(&session);
        self.session = session;
        self.flush_person();
        Ok(())
    }

    /// The steps a session contributes, under the start, end and length rules.
    fn steps<'s>(&self, session: &'s [(u32, i64)]) -> &'s [(u32, i64)] {
        let max_steps = self.options.max_steps;
        let start = match self.options.start_item {
            Some(start_item) => match session.iter().position(|&(item, _)| item == start_item) {
                Some(start) => start,
                None => return &[],
            },
            None => 0,
        };
        match self.options.end_item {
            Some(end_item) => {
                let search_from = start + usize::from(self.options.start_item == Some(end_item));
                let end = session
                    .iter()
                    .skip(search_from)
                    .position(|&(item, _)| item == end_item);
                match end {
                    Some(offset) => {
                        let end = search_from + offset;
                        let from = (end + 1).saturating_sub(max_steps).max(start);
                        &session[from..=end]
                    }
                    None => &[],
                }
            }
            None => &session[start..session.len().min(start + max_steps)],
        }
    }

    fn add_session(&mut self, session: &[(u32, i64)]) {
        let steps = self.steps(session);
        if steps.is_empty() {
            return;
        }
        self.sessions += 1;
        let last = steps.len() - 1;
        for (index, &(item, _)) in steps.iter().enumerate() {
            let position = index as u8 + 1;
            self.person_nodes
                .push((NodeKey { position, item }, index == last));
        }
        for (index, pair) in steps.windows(2).enumerate() {
            let key = EdgeKey {
                position: index as u8 + 1,
                source_item: pair[0].0,
                target_item: pair[1].0,
            };
            let between = i128::from(pair[1].1) - i128::from(pair[0].1);
            self.person_edges.push((key, between));
        }
    }

    /// Adds the current person's visits, counting each node and edge once for distinct persons.
    fn flush_person(&mut self) {
        if self.person_nodes.is_empty() {
            return;
        }
        self.persons += 1;
        // One session holds each position once, so its keys are already distinct: only a
        // person with several sessions needs sorting to group repeated keys.
        let sessions = self
            .person_nodes
            .iter()
            .filter(|(key, _)| key.position == 1);
        if sessions.count() > 1 {
            self.person_nodes.sort_unstable();
            self.person_edges.sort_unstable_by_key(|&(key, _)| key);
        }
        for group in self.person_nodes.chunk_by(|a, b| a.0 == b.0) {
            let stats = self.nodes.entry(group[0].0).or_default();
            stats.sessions += group.len() as u64;
            stats.persons += 1;
            stats.drop_offs += group.iter().filter(|(_, ends)| *ends).count() as u64;
        }
        for group in self.person_edges.chunk_by(|a, b| a.0 == b.0) {
            let stats = self.edges.entry(group[0].0).or_default();
            stats.transitions += group.len() as u64;
            stats.persons += 1;
            stats.total_time_ms += group.iter().map(|&(_, between)| between).sum::<i128>();
        }
    }

    /// Adds another partition's statistics (persons must not appear in both).
    pub fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.nodes {
            let mine = self.nodes.entry(*key).or_default();
            mine.sessions += theirs.sessions;
            mine.persons += theirs.persons;
            mine.drop_offs += theirs.drop_offs;
        }
        for (key, theirs) in &other.edges {
            let mine = self.edges.entry(*key).or_default();
            mine.transitions += theirs.transitions;
            mine.persons += theirs.persons;
            mine.total_time_ms += theirs.total_time_ms;
        }
        self.sessions += other.sessions;
        self.persons += other.persons;
    }
}
