//! Aggregated paths: each distinct channel sequence once, with its converting journeys, their
//! value and its non-converting journeys. Every model except time decay reads this table.

use super::credits::AttributionError;
use super::journey::Journey;
use super::path_index::{PathIndex, name_hash, sequence_hash};

/// Distinct channel sequences with their journey counts, and the channel names behind the codes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathTable {
    channels: Vec<String>,
    codes: Vec<u32>,
    offsets: Vec<usize>,
    conversions: Vec<f64>,
    value: Vec<f64>,
    nulls: Vec<f64>,
    direct_conversions: f64,
    direct_value: f64,
}

/// One distinct path of a [`PathTable`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathRow<'a> {
    /// Channel codes in order; never empty.
    pub channels: &'a [u32],
    /// Journeys along this path that converted (may be fractional).
    pub conversions: f64,
    /// Their total conversion value.
    pub value: f64,
    /// Journeys along this path that did not convert.
    pub nulls: f64,
}

impl PathTable {
    /// Channel names, indexed by code.
    pub fn channel_names(&self) -> &[String] {
        &self.channels
    }

    /// The number of channels (codes are `0..channel_count`).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The number of distinct paths.
    pub fn len(&self) -> usize {
        self.conversions.len()
    }

    /// Whether there is no path at all.
    pub fn is_empty(&self) -> bool {
        self.conversions.is_empty()
    }

    /// The `index`-th distinct path (in first-seen order).
    pub fn row(&self, index: usize) -> PathRow<'_> {
        PathRow {
            channels: &self.codes[self.offsets[index]..self.offsets[index + 1]],
            conversions: self.conversions[index],
            value: self.value[index],
            nulls: self.nulls[index],
        }
    }

    /// Every distinct path in first-seen order.
    pub fn rows(&self) -> impl Iterator<Item = PathRow<'_>> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// Converting journeys over all paths (direct conversions excluded).
    pub fn total_conversions(&self) -> f64 {
        self.conversions.iter().sum()
    }

    /// Conversion value over all paths (direct conversions excluded).
    pub fn total_value(&self) -> f64 {
        self.value.iter().sum()
    }

    /// Non-converting journeys over all paths.
    pub fn total_nulls(&self) -> f64 {
        self.nulls.iter().sum()
    }

    /// Conversions that had no touch at all: reported, credited to no channel.
    pub fn direct_conversions(&self) -> f64 {
        self.direct_conversions
    }

    /// The value of the direct conversions.
    pub fn direct_value(&self) -> f64 {
        self.direct_value
    }
}

impl PathTable {
    /// A table from its columns: `offsets` has one more entry than there are paths (or none
    /// when there are no paths), path `i` being `codes[offsets[i]..offsets[i + 1]]`.
    pub(crate) fn from_columns(
        channels: Vec<String>,
        codes: Vec<u32>,
        offsets: Vec<usize>,
        [conversions, value, nulls]: [Vec<f64>; 3],
    ) -> Self {
        Self {
            channels,
            codes,
            offsets,
            conversions,
            value,
            nulls,
            direct_conversions: 0.0,
            direct_value: 0.0,
        }
    }

    /// Aggregates journey partitions on one thread each and merges them in partition order, so
    /// the table (path order, channel codes, sums) is the same as adding every journey in
    /// order on one thread. A journey's error index counts across all partitions.
    pub fn from_journey_partitions(
        channel_names: &[String],
        partitions: &[&[Journey<'_>]],
    ) -> Result<PathTable, AttributionError> {
        let offsets: Vec<usize> = partitions
            .iter()
            .scan(0, |seen, p| {
                let offset = *seen;
                *seen += p.len();
                Some(offset)
            })
            .collect();
        let build = |partition: &[Journey<'_>], offset: usize| {
            let mut builder = PathTableBuilder::with_channels(channel_names.to_vec());
            for (i, journey) in partition.iter().enumerate() {
                builder.add_journey(offset + i, journey)?;
            }
            Ok::<_, AttributionError>(builder)
        };
        let built =
            crate::calendar::on_threads(partitions.iter().zip(&offsets), |(partition, &offset)| {
                build(partition, offset)
            });
        let mut merged = PathTableBuilder::with_channels(channel_names.to_vec());
        for builder in built {
            merged.merge(builder?);
        }
        Ok(merged.finish())
    }
}

/// Builds a [`PathTable`]: repeated identical paths add up. One builder per partition; merge
/// them with [`PathTableBuilder::merge`].
#[derive(Debug, Clone, Default)]
pub struct PathTableBuilder {
    table: PathTable,
    path_index: PathIndex,
    name_index: PathIndex,
}

impl PathTableBuilder {
    /// An empty builder whose channel codes are assigned in first-seen order.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder over a fixed channel list (code = position), for journeys already coded.
    /// A repeated name keeps its first code.
    pub fn with_channels(names: Vec<String>) -> Self {
        let mut builder = Self::new();
        for name in &names {
            builder.name_index.insert_next(name_hash(name));
        }
        builder.table.channels = names;
        builder
    }

    /// The code of a channel name, adding it when new.
    pub fn channel_code(&mut self, name: &str) -> u32 {
        let hash = name_hash(name);
        let channels = &self.table.channels;
        if let Some(code) = self.name_index.find(hash, |row| channels[row] == name) {
            return code as u32;
        }
        let code = self.table.channels.len() as u32;
        self.table.channels.push(name.to_owned());
        self.name_index.insert_next(hash);
        code
    }

    /// Adds journeys along a coded path; `index` names the path in errors.
    pub fn add_path(
        &mut self,
        index: usize,
        codes: &[u32],
        conversions: f64,
        value: f64,
        nulls: f64,
    ) -> Result<(), AttributionError> {
        let invalid = |field, reason| AttributionError::InvalidPath {
            path: index,
            field,
            reason,
        };
        if codes.is_empty() {
            return Err(invalid("channels", "a path needs at least one channel"));
        }
        if codes
            .iter()
            .any(|&c| c as usize >= self.table.channels.len())
        {
            return Err(invalid("channels", "channel code outside the channel list"));
        }
        for (field, number) in [
            ("conversions", conversions),
            ("value", value),
            ("nulls", nulls),
        ] {
            if !(number.is_finite() && number >= 0.0) {
                return Err(invalid(field, "must be a finite non-negative number"));
            }
        }
        if value > 0.0 && conversions == 0.0 {
            return Err(invalid("value", "a value without any conversion"));
        }
        self.add_checked(codes, conversions, value, nulls);
        Ok(())
    }

    /// Adds journeys along a path given by channel names (the structured paths input).
    pub fn add_named_path<S: AsRef<str>>(
        &mut self,
        index: usize,
        names: &[S],
        conversions: f64,
        value: f64,
        nulls: f64,
    ) -> Result<(), AttributionError> {
        if names.iter().any(|n| n.as_ref().trim().is_empty()) {
            return Err(AttributionError::InvalidPath {
                path: index,
                field: "channels",
                reason: "channel names must not be empty",
            });
        }
        let codes: Vec<u32> = names
            .iter()
            .map(|n| self.channel_code(n.as_ref().trim()))
            .collect();
        self.add_path(index, &codes, conversions, value, nulls)
    }

    /// Adds one journey (validated first); a journey without touches is a direct conversion
    /// (or nothing, when it did not convert).
    pub fn add_journey(
        &mut self,
        index: usize,
        journey: &Journey<'_>,
    ) -> Result<(), AttributionError> {
        journey.validate(index, self.table.channels.len())?;
        let (conversions, nulls) = if journey.converted {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        if journey.channels.is_empty() {
            if journey.converted {
                self.table.direct_conversions += 1.0;
                self.table.direct_value += journey.value;
            }
            return Ok(());
        }
        self.add_checked(
            journey.channels,
            conversions,
            journey.credited_value(),
            nulls,
        );
        Ok(())
    }

    /// A builder holding `table`'s channels and paths, to add more to.
    pub fn from_table(table: PathTable) -> Self {
        let mut builder = Self::with_channels(table.channels.clone());
        for row in table.rows() {
            builder.add_checked(row.channels, row.conversions, row.value, row.nulls);
        }
        builder.table.direct_conversions = table.direct_conversions;
        builder.table.direct_value = table.direct_value;
        builder
    }

    /// Folds another partition in; its channels are matched by name.
    pub fn merge(&mut self, other: PathTableBuilder) {
        let remap: Vec<u32> = other
            .table
            .channels
            .iter()
            .map(|n| self.channel_code(n))
            .collect();
        let mut codes = Vec::new();
        for row in other.table.rows() {
            codes.clear();
            codes.extend(row.channels.iter().map(|&c| remap[c as usize]));
            self.add_checked(&codes, row.conversions, row.value, row.nulls);
        }
        self.table.direct_conversions += other.table.direct_conversions;
        self.table.direct_value += other.table.direct_value;
    }

    /// The table; paths in first-seen order.
    pub fn finish(self) -> PathTable {
        self.table
    }

    /// Adds an already validated path: looks the slice up without allocating, allocates only
    /// for a path not seen before.
    pub(crate) fn add_checked(&mut self, codes: &[u32], conversions: f64, value: f64, nulls: f64) {
        let table = &mut self.table;
        let hash = sequence_hash(codes);
        let stored = |row: usize| &table.codes[table.offsets[row]..table.offsets[row + 1]] == codes;
        if let Some(index) = self.path_index.find(hash, stored) {
            table.conversions[index] += conversions;
            table.value[index] += value;
            table.nulls[index] += nulls;
            return;
        }
        if table.offsets.is_empty() {
            table.offsets.push(0);
        }
        table.codes.extend_from_slice(codes);
        table.offsets.push(table.codes.len());
        table.conversions.push(conversions);
        table.value.push(value);
        table.nulls.push(nulls);
        self.path_index.insert_next(hash);
    }
}
