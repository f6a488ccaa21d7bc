//! Totals of an RFM run: persons per named segment with their averages, and persons per
//! (R, F, M) score cell. Accumulated per partition and merged, so partitions can be scored on
//! separate threads.

use super::score::{RfmScores, RfmValues, ScoreLevels};
use super::segment::RfmSegment;

/// Running totals of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SegmentTotals {
    persons: u64,
    recency_secs: f64,
    frequency: f64,
    monetary: f64,
}

/// One named segment's size and averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSummary {
    /// The segment.
    pub segment: RfmSegment,
    /// Persons in it.
    pub person_count: u64,
    /// Share of scored persons, 0–1.
    pub share: f64,
    /// Mean recency, seconds.
    pub mean_recency_secs: f64,
    /// Mean frequency.
    pub mean_frequency: f64,
    /// Mean monetary value.
    pub mean_monetary: f64,
    /// Total monetary value.
    pub total_monetary: f64,
}

/// Persons with one score combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreCell {
    /// The scores.
    pub scores: RfmScores,
    /// Persons.
    pub person_count: u64,
}

/// Per-partition RFM totals; `merge` partitions, then `segments` and `cells`.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmReport {
    levels: ScoreLevels,
    segments: [SegmentTotals; RfmSegment::ALL.len()],
    cells: Vec<u64>,
}

impl RfmReport {
    /// Empty totals for scores on `levels` levels.
    pub fn new(levels: ScoreLevels) -> Self {
        let l = usize::from(levels.get());
        Self {
            levels,
            segments: [SegmentTotals::default(); RfmSegment::ALL.len()],
            cells: vec![0; l * l * l],
        }
    }

    /// Counts one scored person.
    pub fn add(&mut self, values: &RfmValues, scores: RfmScores, segment: RfmSegment) {
        let totals = &mut self.segments[usize::from(segment.code()) - 1];
        totals.persons += 1;
        totals.recency_secs += values.recency_secs as f64;
        totals.frequency += values.frequency as f64;
        totals.monetary += values.monetary;
        if let Some(cell) = self
            .cell_index(scores)
            .and_then(|index| self.cells.get_mut(index))
        {
            *cell += 1;
        }
    }

    /// Adds another partition's totals (same level count; otherwise its cells are ignored).
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.segments.iter_mut().zip(&other.segments) {
            mine.persons += theirs.persons;
            mine.recency_secs += theirs.recency_secs;
            mine.frequency += theirs.frequency;
            mine.monetary += theirs.monetary;
        }
        if self.levels == other.levels {
            for (mine, theirs) in self.cells.iter_mut().zip(&other.cells) {
                *mine += theirs;
            }
        }
    }

    /// Persons counted.
    pub fn person_count(&self) -> u64 {
        self.segments.iter().map(|totals| totals.persons).sum()
    }

    /// Non-empty segments, largest first (ties by segment code).
    pub fn segments(&self) -> Vec<SegmentSummary> {
        let scored = self.person_count() as f64;
        let mut summaries: Vec<SegmentSummary> = RfmSegment::ALL
            .iter()
            .zip(&self.segments)
            .filter(|(_, totals)| totals.persons > 0)
            .map(|(&segment, totals)| {
                let persons = totals.persons as f64;
                SegmentSummary {
                    segment,
                    person_count: totals.persons,
                    share: persons / scored,
                    mean_recency_secs: totals.recency_secs / persons,
                    mean_frequency: totals.frequency / persons,
                    mean_monetary: totals.monetary / persons,
                    total_monetary: totals.monetary,
                }
            })
            .collect();
        summaries.sort_by(|x, y| {
            y.person_count
                .cmp(&x.person_count)
                .then(x.segment.cmp(&y.segment))
        });
        summaries
    }

    /// Non-empty cells, ordered by (recency, frequency, monetary) score.
    pub fn cells(&self) -> Vec<ScoreCell> {
        let l = usize::from(self.levels.get());
        self.cells
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(index, &count)| {
                // Each digit is below 10, so the casts are exact.
                let digit = |place: usize| ((index / place) % l) as u8 + 1;
                ScoreCell {
                    scores: RfmScores {
                        recency: digit(l * l),
                        frequency: digit(l),
                        monetary: digit(1),
                    },
                    person_count: count,
                }
            })
            .collect()
    }

    /// The flat index of a score cell; `None` for scores outside 1..=levels.
    fn cell_index(&self, scores: RfmScores) -> Option<usize> {
        let l = self.levels.get();
        let digit = |score: u8| (1..=l).contains(&score).then(|| usize::from(score - 1));
        let l = usize::from(l);
        Some((digit(scores.recency)? * l + digit(scores.frequency)?) * l + digit(scores.monetary)?)
    }
}
