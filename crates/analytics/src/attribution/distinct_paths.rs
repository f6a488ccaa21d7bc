//! The table side of the paths-text parser: distinct paths in first-seen order with their
//! sums, looked up by a hash the reader computed from the channel names, so adding a row costs
//! one probe of the index and no hashing.

use super::path_index::PathIndex;
use super::path_table::PathTable;
use super::paths_scan::ChannelCodes;

/// How many paths ahead [`DistinctPaths::touch`] reads: enough misses in flight to hide most
/// of their latency, few enough that the slots are still cached when their paths come.
pub(super) const TOUCH_AHEAD: usize = 16;

/// Distinct paths over globally coded channels; becomes a [`PathTable`].
#[derive(Debug, Default)]
pub(super) struct DistinctPaths {
    channels: ChannelCodes,
    index: PathIndex,
    codes: Vec<u32>,
    offsets: Vec<usize>,
    conversions: Vec<f64>,
    value: Vec<f64>,
    nulls: Vec<f64>,
}

impl DistinctPaths {
    /// Makes room for `paths` more paths of `codes` channel entries in all.
    pub(super) fn reserve(&mut self, paths: usize, codes: usize) {
        self.index.reserve(paths);
        self.codes.reserve(codes);
        self.offsets.reserve(paths + 1);
        for column in [&mut self.conversions, &mut self.value, &mut self.nulls] {
            column.reserve(paths);
        }
    }

    /// The code of a channel name, adding it when new.
    pub(super) fn channel_code(&mut self, name: String) -> u32 {
        self.channels.code_owned(name)
    }

    /// Brings the index slots of up to [`TOUCH_AHEAD`] coming paths into cache.
    pub(super) fn touch(&mut self, hashes: &[u64]) {
        self.index.touch(&hashes[..hashes.len().min(TOUCH_AHEAD)]);
    }

    /// Adds journeys along a path given in a part's own channel codes, `global` giving each
    /// its code here. `hash` must come from the same function for every path (the names' hash
    /// of `ChannelCodes::path_hash`), so equal paths have equal hashes. Mapping the codes while
    /// comparing and copying saves a pass (and a mispredicted loop exit) per row.
    pub(super) fn add(
        &mut self,
        local: &[u32],
        global: &[u32],
        hash: u64,
        [conversions, value, nulls]: [f64; 3],
    ) {
        let (stored, offsets) = (&self.codes, &self.offsets);
        let same = |row: usize| {
            let path = &stored[offsets[row]..offsets[row + 1]];
            path.len() == local.len()
                && path
                    .iter()
                    .zip(local)
                    .all(|(&code, &own)| global.get(own as usize) == Some(&code))
        };
        if let Some(row) = self.index.find(hash, same) {
            self.conversions[row] += conversions;
            self.value[row] += value;
            self.nulls[row] += nulls;
            return;
        }
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let mapped = local
            .iter()
            .map(|&own| global.get(own as usize).copied().unwrap_or_default());
        self.codes.extend(mapped);
        self.offsets.push(self.codes.len());
        self.conversions.push(conversions);
        self.value.push(value);
        self.nulls.push(nulls);
        self.index.insert_next(hash);
    }

    /// The table; paths in first-seen order.
    pub(super) fn finish(mut self) -> PathTable {
        PathTable::from_columns(
            self.channels.take_names(),
            self.codes,
            self.offsets,
            [self.conversions, self.value, self.nulls],
        )
    }
}
