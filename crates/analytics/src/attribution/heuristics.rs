//! The rule-based models: first touch, last touch, linear, position based (on paths) and time
//! decay (on journeys, which carry touch times). Credit is given by conversions and by value;
//! non-converting journeys earn nothing.

use super::credits::{AttributionError, ChannelCredits};
use super::journey::Journey;
use super::path_table::PathTable;

/// Default time-decay half-life: 7 days.
pub const DEFAULT_HALF_LIFE_MS: i64 = 7 * 24 * 3600 * 1000;
/// Shortest accepted time-decay half-life: 1 minute.
pub const MIN_HALF_LIFE_MS: i64 = 60 * 1000;

/// A rule-based model that needs only the channel order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeuristicModel {
    /// All credit to the first touch.
    FirstTouch,
    /// All credit to the last touch.
    LastTouch,
    /// Equal shares per touch occurrence, or per distinct channel when `distinct_channels`.
    Linear {
        /// One share per distinct channel instead of per occurrence.
        distinct_channels: bool,
    },
    /// `first_share` to the first touch, `last_share` to the last, the rest spread evenly over
    /// the middle touches; one touch gets everything, two split in proportion to the shares.
    PositionBased {
        /// The first touch's share, 0–1 (usually 0.4).
        first_share: f64,
        /// The last touch's share, 0–1 (usually 0.4); first + last ≤ 1.
        last_share: f64,
    },
}

impl HeuristicModel {
    /// The 40/20/40 position-based model.
    pub const POSITION_BASED_DEFAULT: Self = Self::PositionBased {
        first_share: 0.4,
        last_share: 0.4,
    };

    fn validate(self) -> Result<(), AttributionError> {
        if let Self::PositionBased {
            first_share,
            last_share,
        } = self
        {
            let share_ok = |s: f64| (0.0..=1.0).contains(&s);
            if !share_ok(first_share) {
                return Err(invalid_share(
                    "position_first_share",
                    "must be between 0 and 1",
                ));
            }
            if !share_ok(last_share) {
                return Err(invalid_share(
                    "position_last_share",
                    "must be between 0 and 1",
                ));
            }
            if first_share + last_share > 1.0 + 1e-12 {
                return Err(invalid_share(
                    "position_last_share",
                    "first plus last exceeds 1",
                ));
            }
        }
        Ok(())
    }
}

fn invalid_share(field: &'static str, reason: &str) -> AttributionError {
    AttributionError::InvalidParameter {
        field,
        reason: reason.to_owned(),
    }
}

/// Credits every path's conversions and value to its channels by `model`.
pub fn heuristic_credits(
    table: &PathTable,
    model: HeuristicModel,
) -> Result<ChannelCredits, AttributionError> {
    model.validate()?;
    let mut credits = ChannelCredits::zeros(table.channel_count());
    let mut seen = vec![false; table.channel_count()];
    for row in table.rows() {
        if row.conversions == 0.0 && row.value == 0.0 {
            continue;
        }
        let mut give = |code: u32, weight: f64| {
            credits.conversions[code as usize] += row.conversions * weight;
            credits.value[code as usize] += row.value * weight;
        };
        let path = row.channels;
        let Some((&first, &last)) = path.first().zip(path.last()) else {
            continue;
        };
        match model {
            HeuristicModel::FirstTouch => give(first, 1.0),
            HeuristicModel::LastTouch => give(last, 1.0),
            HeuristicModel::Linear {
                distinct_channels: false,
            } => {
                let share = 1.0 / path.len() as f64;
                path.iter().for_each(|&c| give(c, share));
            }
            HeuristicModel::Linear {
                distinct_channels: true,
            } => {
                let distinct = path
                    .iter()
                    .filter(|&&c| !std::mem::replace(&mut seen[c as usize], true))
                    .count();
                let share = 1.0 / distinct as f64;
                for &c in path {
                    if std::mem::replace(&mut seen[c as usize], false) {
                        give(c, share);
                    }
                }
            }
            HeuristicModel::PositionBased {
                first_share,
                last_share,
            } => {
                position_shares(path.len(), first_share, last_share)
                    .zip(path)
                    .for_each(|(share, &c)| give(c, share));
            }
        }
    }
    Ok(credits)
}

/// The share of each position of a path of `len` touches.
fn position_shares(len: usize, first: f64, last: f64) -> impl Iterator<Item = f64> {
    let (first, middle, last) = match len {
        1 => (1.0, 0.0, 0.0),
        2 if first + last > 0.0 => (first / (first + last), 0.0, last / (first + last)),
        2 => (0.5, 0.0, 0.5),
        // Shares summing to 1 within 1e-12 must not leave a negative middle.
        _ => (
            first,
            (1.0 - first - last).max(0.0) / (len - 2) as f64,
            last,
        ),
    };
    (0..len).map(move |i| {
        if i == 0 {
            first
        } else if i + 1 == len {
            last
        } else {
            middle
        }
    })
}

/// Time decay: each touch of a converting journey weighs `2^(−Δt / half_life)`, Δt the
/// continuous time from the touch to the conversion, weights normalised to 1 per conversion.
/// Journeys are validated against `channel_count`; results merge across partitions with
/// [`ChannelCredits::merge`].
pub fn time_decay_credits(
    journeys: &[Journey<'_>],
    channel_count: usize,
    half_life_ms: i64,
) -> Result<ChannelCredits, AttributionError> {
    if half_life_ms < MIN_HALF_LIFE_MS {
        return Err(AttributionError::InvalidParameter {
            field: "time_decay_half_life",
            reason: "must be at least 1 minute".to_owned(),
        });
    }
    let mut credits = ChannelCredits::zeros(channel_count);
    let mut weights = Vec::new();
    for (index, journey) in journeys.iter().enumerate() {
        journey.validate(index, channel_count)?;
        let Some(&latest) = journey.touch_times_ms.last() else {
            continue;
        };
        if !journey.converted {
            continue;
        }
        // Relative to the latest touch, so the largest weight is exactly 1 and the sum never
        // underflows to 0; normalising cancels the common factor 2^(−(end − latest)/h).
        weights.clear();
        weights.extend(journey.touch_times_ms.iter().map(|&t| {
            let delta = (latest as f64 - t as f64) / half_life_ms as f64;
            libm::exp2(-delta)
        }));
        let total: f64 = weights.iter().sum();
        for (&code, &weight) in journey.channels.iter().zip(&weights) {
            credits.conversions[code as usize] += weight / total;
            credits.value[code as usize] += journey.value * weight / total;
        }
    }
    Ok(credits)
}
