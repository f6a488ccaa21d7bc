//! Return on ad spend per channel for any model's credits: cost per attributed conversion and
//! attributed value per unit of cost.

use super::credits::{AttributionError, ChannelCredits};

/// What one channel's spend bought under one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelRoi {
    /// The channel's cost over the analysed period (0 when none was given).
    pub cost: f64,
    /// cost / attributed conversions; `None` when the cost is 0 or nothing was attributed.
    pub cost_per_conversion: Option<f64>,
    /// attributed value / cost; `None` when the cost is 0.
    pub return_on_spend: Option<f64>,
}

/// ROI per channel code; `costs` is indexed by channel code (missing entries mean no cost) and
/// every cost must be finite and non-negative.
pub fn channel_roi(
    credits: &ChannelCredits,
    costs: &[f64],
) -> Result<Vec<ChannelRoi>, AttributionError> {
    if costs.iter().any(|c| !(c.is_finite() && *c >= 0.0)) {
        return Err(AttributionError::InvalidParameter {
            field: "channel_costs",
            reason: "every cost must be a finite non-negative number".to_owned(),
        });
    }
    Ok((0..credits.channel_count())
        .map(|code| {
            let cost = costs.get(code).copied().unwrap_or(0.0);
            let conversions = credits.conversions[code];
            let has_cost = cost > 0.0;
            ChannelRoi {
                cost,
                cost_per_conversion: (has_cost && conversions > 0.0).then(|| cost / conversions),
                return_on_spend: has_cost.then(|| credits.value[code] / cost),
            }
        })
        .collect())
}
