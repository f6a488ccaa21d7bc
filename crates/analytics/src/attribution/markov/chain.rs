//! Builds the order-k chain from aggregated paths: states are windows of k consecutive
//! channels (a path shorter than k is one state), consecutive identical states collapse, and
//! every transition is weighted by the path's journeys (conversions + nulls).

use crate::attribution::fxhash::FxHashMap;
use crate::attribution::path_table::PathTable;

/// State index of `(start)`.
pub(crate) const START: u32 = 0;
/// State index of the absorbing `(conversion)`.
pub(crate) const CONVERSION: u32 = 1;
/// State index of the absorbing `(null)`.
pub(crate) const NULL: u32 = 2;
/// Index of the first window state.
pub(crate) const FIRST_WINDOW: u32 = 3;

/// Up to three channel codes; `len` of them are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) len: u8,
    pub(crate) codes: [u32; 3],
}

impl Window {
    pub(crate) fn channels(&self) -> &[u32] {
        &self.codes[..usize::from(self.len)]
    }

    fn key(&self) -> u128 {
        u128::from(self.codes[0])
            | u128::from(self.codes[1]) << 32
            | u128::from(self.codes[2]) << 64
            | u128::from(self.len) << 96
    }
}

/// The chain in compressed rows: row `s` lists the states `s` moves to with counts and
/// probabilities, targets ascending. Absorbing states have empty rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chain {
    /// Window of state `FIRST_WINDOW + i`.
    pub(crate) windows: Vec<Window>,
    pub(crate) row_start: Vec<usize>,
    pub(crate) targets: Vec<u32>,
    pub(crate) counts: Vec<f64>,
    pub(crate) probabilities: Vec<f64>,
    /// Expected conversion value collected on leaving each state: the value of the
    /// conversions leaving it divided by all journeys leaving it.
    pub(crate) value_reward: Vec<f64>,
}

impl Chain {
    /// The number of states, absorbing ones included.
    pub(crate) fn state_count(&self) -> usize {
        self.windows.len() + FIRST_WINDOW as usize
    }

    /// The window of a window state, `None` for start, conversion and null.
    pub(crate) fn window(&self, state: u32) -> Option<&Window> {
        state
            .checked_sub(FIRST_WINDOW)
            .and_then(|i| self.windows.get(i as usize))
    }

    /// The range of `targets`/`probabilities` holding the row of `state`.
    pub(crate) fn row(&self, state: usize) -> std::ops::Range<usize> {
        self.row_start[state]..self.row_start[state + 1]
    }

    /// Builds the chain of order `order` (1–3, checked by the caller).
    pub(crate) fn build(table: &PathTable, order: usize) -> Chain {
        let mut builder = ChainBuilder::default();
        for row in table.rows() {
            let weight = row.conversions + row.nulls;
            if weight <= 0.0 {
                continue;
            }
            let mut from = START;
            let window_count = row.channels.len().saturating_sub(order) + 1;
            for i in 0..window_count {
                let end = (i + order).min(row.channels.len());
                let to = builder.state(&row.channels[i..end]);
                if to != from {
                    builder.add(from, to, weight);
                    from = to;
                }
            }
            builder.add(from, CONVERSION, row.conversions);
            builder.add(from, NULL, row.nulls);
            builder.value_out[from as usize] += row.value;
        }
        builder.finish()
    }
}

#[derive(Default)]
struct ChainBuilder {
    windows: Vec<Window>,
    state_index: FxHashMap<u128, u32>,
    edge_index: FxHashMap<u64, usize>,
    edges: Vec<(u32, u32, f64)>,
    value_out: Vec<f64>,
}

impl ChainBuilder {
    fn state(&mut self, channels: &[u32]) -> u32 {
        let mut window = Window {
            len: channels.len() as u8,
            codes: [0; 3],
        };
        window.codes[..channels.len()].copy_from_slice(channels);
        let next = FIRST_WINDOW + self.windows.len() as u32;
        let state = *self.state_index.entry(window.key()).or_insert(next);
        if state == next {
            self.windows.push(window);
        }
        state
    }

    fn add(&mut self, from: u32, to: u32, count: f64) {
        if count <= 0.0 {
            return;
        }
        let key = u64::from(from) << 32 | u64::from(to);
        let next = self.edges.len();
        let index = *self.edge_index.entry(key).or_insert(next);
        if index == next {
            self.edges.push((from, to, 0.0));
        }
        self.edges[index].2 += count;
        let needed = from as usize + 1;
        if self.value_out.len() < needed {
            self.value_out.resize(needed, 0.0);
        }
    }

    fn finish(mut self) -> Chain {
        let state_count = self.windows.len() + FIRST_WINDOW as usize;
        self.edges.sort_unstable_by_key(|&(from, to, _)| (from, to));
        self.value_out.resize(state_count, 0.0);
        let mut chain = Chain {
            windows: self.windows,
            row_start: vec![0; state_count + 1],
            value_reward: vec![0.0; state_count],
            ..Chain::default()
        };
        let mut out_total = vec![0.0; state_count];
        for &(from, _, count) in &self.edges {
            chain.row_start[from as usize + 1] += 1;
            out_total[from as usize] += count;
        }
        for s in 0..state_count {
            chain.row_start[s + 1] += chain.row_start[s];
        }
        for &(from, to, count) in &self.edges {
            chain.targets.push(to);
            chain.counts.push(count);
            chain.probabilities.push(count / out_total[from as usize]);
        }
        for (s, reward) in chain.value_reward.iter_mut().enumerate() {
            if out_total[s] > 0.0 {
                *reward = self.value_out[s] / out_total[s];
            }
        }
        chain
    }
}
