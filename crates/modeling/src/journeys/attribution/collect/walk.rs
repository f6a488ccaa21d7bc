//! One person's events walked into journeys: touches gathered into visits, cut at
//! conversions, at pauses longer than the journey gap and to the lookback window.

use touchline_projection::PersonEvents;

use super::{NO_CHANNEL, Plan, VISIT_GAP_MS};

/// One touch: a visit to a channel.
#[derive(Debug, Clone, Copy)]
pub(in crate::journeys::attribution) struct Touch {
    /// Its channel code.
    pub(in crate::journeys::attribution) channel: u32,
    /// Its first event.
    pub(in crate::journeys::attribution) first_ms: i64,
    /// Its latest event.
    pub(super) last_ms: i64,
}

/// Walks one person's events: `on_journey` gets each journey's touches (cut to the lookback
/// window before its end), its end, whether it converted and the conversion's value — one
/// per conversion in the range, one per pause longer than the journey gap that ends in the
/// range, then the non-converting journey of the touches after the last conversion or
/// pause, if any. `touches` is the walker's buffer.
pub(in crate::journeys::attribution) fn walk<E>(
    plan: &Plan,
    person: PersonEvents<'_>,
    touches: &mut Vec<Touch>,
    mut on_journey: impl FnMut(&[Touch], i64, bool, f64) -> Result<(), E>,
) -> Result<(), E> {
    let (start, end) = plan.range;
    let cut = |touches: &[Touch], end_ms: i64| {
        let from = end_ms.saturating_sub(plan.lookback_ms);
        touches.partition_point(|t| t.first_ms < from)
    };
    touches.clear();
    // The keys of the person's conversions so far (a handful; allocated only for a person
    // with a keyed conversion).
    let mut counted: Vec<u32> = Vec::new();
    for event in person.iter() {
        let time = event.time_ms();
        if time >= end {
            break;
        }
        if plan.scope.as_ref().is_some_and(|s| !s.holds(&event)) {
            continue;
        }
        if let Some(ended) = paused(plan, touches, time) {
            if ended >= start {
                let first = cut(touches, ended);
                on_journey(&touches[first..], ended, false, 0.0)?;
            }
            touches.clear();
        }
        if plan.conversion.holds(&event) {
            if let Some(key) = plan.conversion_key(&event) {
                // Another report of a conversion already counted: neither a conversion nor
                // a touch.
                if counted.contains(&key) {
                    continue;
                }
                counted.push(key);
            }
            if time >= start {
                // A conversion's value is never negative: a refund is not a conversion.
                let value = event.value().filter(|v| *v > 0.0).unwrap_or(0.0);
                if plan.conversion_touch {
                    let channel = plan.channel(&event);
                    if channel != NO_CHANNEL {
                        touches.push(Touch {
                            channel,
                            first_ms: time,
                            last_ms: time,
                        });
                    }
                }
                let first = cut(touches, time);
                on_journey(&touches[first..], time, true, value)?;
            }
            touches.clear();
            continue;
        }
        if !plan.touches.iter().any(|p| p.holds(&event)) {
            continue;
        }
        let channel = plan.channel(&event);
        if channel == NO_CHANNEL {
            continue;
        }
        match touches.last_mut() {
            Some(last) if last.channel == channel && time - last.last_ms <= VISIT_GAP_MS => {
                last.last_ms = time;
            }
            _ => touches.push(Touch {
                channel,
                first_ms: time,
                last_ms: time,
            }),
        }
    }
    if !touches.is_empty() {
        // A journey the gap ended before the range did is no journey of the range.
        let ended = paused(plan, touches, end).unwrap_or(end);
        if ended >= start {
            let first = cut(touches, ended);
            on_journey(&touches[first..], ended, false, 0.0)?;
        }
    }
    Ok(())
}

/// When a pause longer than the plan's journey gap separates the last of `touches` from
/// `time`: the instant the journey ended (its last touch event plus the gap).
fn paused(plan: &Plan, touches: &[Touch], time: i64) -> Option<i64> {
    let gap = plan.journey_gap_ms?;
    let last = touches.last()?.last_ms;
    (time - last > gap).then(|| last.saturating_add(gap))
}
