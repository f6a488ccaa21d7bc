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
        let mut builder = ChainBuilder::new(table.channel_count(), order);
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

/// Largest window space (all windows of length 1..=k over the channels) indexed by a direct
/// table; beyond it windows are hashed.
const DENSE_WINDOW_SPACE: u64 = 1 << 21;

/// Accumulates states and transition counts. Window states are found by a direct table when
/// the window space is small (always for the usual dozen channels) and by hashing otherwise;
/// each state's transitions are a short list searched linearly (a window state moves to at
/// most channels + 2 states), and the start state's are a dense array by target.
struct ChainBuilder {
    channel_count: u64,
    windows: Vec<Window>,
    dense_states: Vec<u32>,
    hashed_states: FxHashMap<u128, u32>,
    start_counts: Vec<f64>,
    rows: Vec<Vec<(u32, f64)>>,
    /// Conversion value leaving each state.
    value_out: Vec<f64>,
}

const NO_STATE: u32 = u32::MAX;

impl ChainBuilder {
    fn new(channel_count: usize, order: usize) -> Self {
        let c = channel_count as u64;
        let space =
            (1..=order as u32).try_fold(0u64, |sum, len| sum.checked_add(c.checked_pow(len)?));
        let dense_states = match space {
            Some(space) if space <= DENSE_WINDOW_SPACE => vec![NO_STATE; space as usize],
            _ => Vec::new(),
        };
        Self {
            channel_count: c,
            windows: Vec::new(),
            dense_states,
            hashed_states: FxHashMap::default(),
            start_counts: Vec::new(),
            rows: vec![Vec::new(); FIRST_WINDOW as usize],
            value_out: vec![0.0; FIRST_WINDOW as usize],
        }
    }

    /// Position of a window in the direct table: windows of length 1 first, then 2, then 3.
    fn dense_slot(&self, channels: &[u32]) -> usize {
        let c = self.channel_count;
        let offset = match channels.len() {
            1 => 0,
            2 => c,
            _ => c + c * c,
        };
        let within = channels
            .iter()
            .fold(0u64, |acc, &code| acc * c + u64::from(code));
        (offset + within) as usize
    }

    fn state(&mut self, channels: &[u32]) -> u32 {
        let next = FIRST_WINDOW + self.windows.len() as u32;
        let state = if self.dense_states.is_empty() {
            let mut window = Window {
                len: channels.len() as u8,
                codes: [0; 3],
            };
            window.codes[..channels.len()].copy_from_slice(channels);
            *self.hashed_states.entry(window.key()).or_insert(next)
        } else {
            let slot = self.dense_slot(channels);
            if self.dense_states[slot] == NO_STATE {
                self.dense_states[slot] = next;
            }
            self.dense_states[slot]
        };
        if state == next {
            let mut window = Window {
                len: channels.len() as u8,
                codes: [0; 3],
            };
            window.codes[..channels.len()].copy_from_slice(channels);
            self.windows.push(window);
            self.rows.push(Vec::new());
            self.value_out.push(0.0);
        }
        state
    }

    fn add(&mut self, from: u32, to: u32, count: f64) {
        if count <= 0.0 {
            return;
        }
        if from == START {
            let needed = to as usize + 1;
            if self.start_counts.len() < needed {
                self.start_counts.resize(needed, 0.0);
            }
            self.start_counts[to as usize] += count;
            return;
        }
        let row = &mut self.rows[from as usize];
        match row.iter_mut().find(|(target, _)| *target == to) {
            Some((_, total)) => *total += count,
            None => row.push((to, count)),
        }
    }

    fn finish(mut self) -> Chain {
        let state_count = self.windows.len() + FIRST_WINDOW as usize;
        let start_row: Vec<(u32, f64)> = self
            .start_counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0.0)
            .map(|(to, &count)| (to as u32, count))
            .collect();
        self.rows[START as usize] = start_row;
        self.value_out[START as usize] = 0.0;
        let mut chain = Chain {
            windows: self.windows,
            row_start: Vec::with_capacity(state_count + 1),
            value_reward: vec![0.0; state_count],
            ..Chain::default()
        };
        chain.row_start.push(0);
        for (s, row) in self.rows.iter_mut().enumerate() {
            row.sort_unstable_by_key(|&(to, _)| to);
            let out_total: f64 = row.iter().map(|&(_, count)| count).sum();
            for &(to, count) in row.iter() {
                chain.targets.push(to);
                chain.counts.push(count);
                chain.probabilities.push(count / out_total);
            }
            chain.row_start.push(chain.targets.len());
            if out_total > 0.0 {
                chain.value_reward[s] = self.value_out[s] / out_total;
            }
        }
        chain
    }
}
