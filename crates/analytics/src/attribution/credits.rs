//! What every model returns (credit per channel code) and the errors the models share.

use thiserror::Error;

/// Credit per channel, indexed by channel code: attributed conversions and attributed value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelCredits {
    /// Attributed conversions per channel code (fractional).
    pub conversions: Vec<f64>,
    /// Attributed conversion value per channel code.
    pub value: Vec<f64>,
}

impl ChannelCredits {
    /// Zero credit for `channel_count` channels.
    pub fn zeros(channel_count: usize) -> Self {
        Self {
            conversions: vec![0.0; channel_count],
            value: vec![0.0; channel_count],
        }
    }

    /// The number of channels credited.
    pub fn channel_count(&self) -> usize {
        self.conversions.len()
    }

    /// Adds another partition's credits (same channel codes); a shorter side is padded.
    pub fn merge(&mut self, other: &ChannelCredits) {
        let count = self.channel_count().max(other.channel_count());
        self.conversions.resize(count, 0.0);
        self.value.resize(count, 0.0);
        for (mine, theirs) in self.conversions.iter_mut().zip(&other.conversions) {
            *mine += theirs;
        }
        for (mine, theirs) in self.value.iter_mut().zip(&other.value) {
            *mine += theirs;
        }
    }

    /// Sum of attributed conversions over all channels.
    pub fn total_conversions(&self) -> f64 {
        self.conversions.iter().sum()
    }

    /// Each channel's share of all attributed conversions (0 when nothing is attributed).
    pub fn shares(&self) -> Vec<f64> {
        let total = self.total_conversions();
        self.conversions
            .iter()
            .map(|&c| if total != 0.0 { c / total } else { 0.0 })
            .collect()
    }

    /// Channel codes ordered as results are shown: most attributed conversions first, ties by
    /// code, so the order never depends on anything but the numbers.
    pub fn ranked_channels(&self) -> Vec<u32> {
        let mut codes: Vec<u32> = (0..self.conversions.len() as u32).collect();
        codes.sort_by(|&a, &b| {
            self.conversions[b as usize]
                .total_cmp(&self.conversions[a as usize])
                .then(a.cmp(&b))
        });
        codes
    }
}

/// Why a model refused its input; `field` names the offending request field so the service
/// can report a field violation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AttributionError {
    /// A model parameter is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidParameter {
        /// The parameter, e.g. `markov_order`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// One journey is malformed.
    #[error("journey {journey}: invalid {field}: {reason}")]
    InvalidJourney {
        /// Index of the journey in the input.
        journey: usize,
        /// The journey field, e.g. `touch_times_ms`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An aggregated path (structured input) is malformed.
    #[error("path {path}: invalid {field}: {reason}")]
    InvalidPath {
        /// Index of the path in the input.
        path: usize,
        /// The path field, e.g. `conversions`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The exact Markov solve could not reach its precision (only for chains far larger than
    /// any journey data produces).
    #[error("markov chain of {states} states did not converge (gap {gap})")]
    MarkovNotConverged {
        /// Size of the strongly connected block that did not converge.
        states: usize,
        /// The remaining bracket width on the conversion probability.
        gap: f64,
    },
}
