//! Journeys and the true conversion model.
//!
//! A journey is a run of touches over hours or days. Its conversion probability is
//! `σ(intercept + propensity + Σ_{c touched} β_c)` over the distinct channels touched; the
//! generator draws the conversion from exactly that, and adds to the truth both the removal
//! effect `p(S) − p(S∖{c})` and the exact Shapley share of `p(S) − p(∅)` of every channel.
//! Under the chain model ([`super::chain`]) the touches walk a chain instead; what follows the
//! touches (the order, its channel, what comes after a purchase) is the same for both.

use rand::Rng;

use super::Gen;
use super::sdk::Surface;
use crate::DAY_MS;
use crate::config::ConversionModel;
use crate::layout::referrer;
use crate::rng;
use crate::template::{ConvChannel, Touch};

const HOUR_MS: i64 = 3_600_000;

/// Truth about one journey.
#[derive(Debug, Clone)]
pub struct JourneyTruth {
    /// Journey number within the person.
    pub n: u32,
    /// First touch instant.
    pub start_ms: i64,
    /// Touch channels in order.
    pub touches: Vec<Touch>,
    /// Conversion probability under the true model.
    pub p: f64,
    /// Whether a conversion was drawn (and fell inside the period).
    pub converted: bool,
    /// Conversion channel, instant, order id and value.
    pub conversion: Option<(ConvChannel, i64, String, i64)>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Exact Shapley values of `v(T) = σ(base + Σ_{c∈T} β_c) − σ(base)` over `betas`.
pub fn shapley(base: f64, betas: &[f64]) -> Vec<f64> {
    let n = betas.len();
    let mut fact = vec![1.0f64; n + 1];
    for i in 1..=n {
        fact[i] = fact[i - 1] * i as f64;
    }
    let value = |mask: usize| {
        let s: f64 = (0..n)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| betas[i])
            .sum();
        sigmoid(base + s)
    };
    let mut phi = vec![0.0; n];
    for (i, slot) in phi.iter_mut().enumerate() {
        for mask in 0..(1usize << n) {
            if mask & (1 << i) != 0 {
                continue;
            }
            let k = mask.count_ones() as usize;
            let w = fact[k] * fact[n - k - 1] / fact[n];
            *slot += w * (value(mask | (1 << i)) - value(mask));
        }
    }
    phi
}

impl Gen<'_> {
    pub(super) fn journeys(&mut self) {
        let ctx = self.ctx;
        let active_end = self.p.churn_ms.map_or(ctx.end_ms, |c| c.min(ctx.end_ms));
        if active_end <= ctx.start_ms {
            return;
        }
        let lambda = ctx.t.journeys_per_180d * f64::from(ctx.cfg.days) / 180.0
            * (self.p.propensity * 0.6).exp();
        let n = rng::poisson(&mut self.rng, lambda);
        let mut starts: Vec<i64> = (0..n)
            .map(|_| self.rng.random_range(ctx.start_ms..active_end))
            .collect();
        starts.sort_unstable();
        for (j, s) in starts.into_iter().enumerate() {
            self.journey(j as u32, s, active_end);
        }
    }

    /// Moves an instant to a waking hour of the same UTC+8 day.
    fn waking(&mut self, ms: i64) -> i64 {
        let day = (ms + 8 * HOUR_MS).div_euclid(DAY_MS) * DAY_MS - 8 * HOUR_MS;
        let hour = rng::weighted(&mut self.rng, &HOUR_WEIGHTS) as i64;
        day + hour * HOUR_MS + self.rng.random_range(0..HOUR_MS)
    }

    fn journey(&mut self, n: u32, start: i64, active_end: i64) {
        let first_touch = self.waking(start).max(self.ctx.start_ms);
        let drawn = match self.ctx.cfg.conversion_model {
            ConversionModel::Logistic => self.logistic_journey(first_touch, active_end),
            ConversionModel::Chain => self.chain_walk(first_touch, active_end),
        };
        let Some((touches, last_end, p, converts)) = drawn else {
            return;
        };
        self.stats.journeys += 1;
        self.stats.expected_conversions += p;
        let t_conv = last_end + 60_000 + rng::exponential(&mut self.rng, 40.0 * 60_000.0) as i64;
        let mut conversion = None;
        if converts && t_conv < active_end {
            let last = touches[touches.len() - 1];
            let ch = self.conversion_channel(last);
            let (order_id, value) = self.convert(ch, t_conv);
            self.stats.conversions += 1;
            self.stats.conv_by_channel[ch as usize] += 1;
            self.stats.revenue += value;
            self.after_purchase(ch, t_conv, active_end);
            conversion = Some((ch, t_conv, order_id, value));
        }
        self.out.journeys.push(JourneyTruth {
            n,
            start_ms: first_touch,
            touches,
            p,
            converted: conversion.is_some(),
            conversion,
        });
    }

    /// A journey of the logistic model: its touches, the end of the last one, its conversion
    /// probability and whether the conversion was drawn; none when it would start after the
    /// person's active period. Adds its removal effects and Shapley shares to the truth.
    fn logistic_journey(
        &mut self,
        first_touch: i64,
        active_end: i64,
    ) -> Option<(Vec<Touch>, i64, f64, bool)> {
        let mut t = first_touch;
        let k = 1 + rng::poisson(&mut self.rng, 1.8);
        let mut touches = Vec::new();
        let mut last_end = t;
        for _ in 0..k {
            if t >= active_end {
                break;
            }
            let weights = self.touch_weights(t);
            let touch = Touch::ALL[rng::weighted(&mut self.rng, &weights)];
            last_end = self.touch(touch, t);
            touches.push(touch);
            self.stats.touches[touch as usize] += 1;
            let gap = rng::exponential(&mut self.rng, 7.0 * HOUR_MS as f64) as i64;
            t = last_end + gap + 300_000;
        }
        if touches.is_empty() {
            return None;
        }
        let t_model = self.ctx.t;
        let base = t_model.intercept + self.p.propensity;
        let mut distinct: Vec<Touch> = touches.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let betas: Vec<f64> = distinct
            .iter()
            .map(|c| t_model.betas[*c as usize])
            .collect();
        let logit = base + betas.iter().sum::<f64>();
        let p = sigmoid(logit);
        for (c, b) in distinct.iter().zip(&betas) {
            self.stats.removal[*c as usize] += p - sigmoid(logit - b);
        }
        for (c, phi) in distinct.iter().zip(shapley(base, &betas)) {
            self.stats.shapley[*c as usize] += phi;
        }
        self.stats.baseline_conversions += sigmoid(base);
        let draw: f64 = self.rng.random();
        Some((touches, last_end, p, draw < p))
    }

    fn conversion_channel(&mut self, last: Touch) -> ConvChannel {
        let mut w = self.ctx.t.conv_weights;
        match last {
            Touch::App => w[0] *= 4.0,
            Touch::MiniProgram | Touch::WechatOa => w[1] *= 4.0,
            Touch::Web | Touch::PaidAds => {
                w[2] *= 2.5;
                w[1] *= 1.5;
            }
            Touch::StoreVisit => w[4] *= 6.0,
            Touch::CrmMessage | Touch::CustomerService => {}
        }
        if !self.p.has_app {
            w[0] = 0.0;
        }
        if !self.p.has_wechat {
            w[1] = 0.0;
        }
        const CH: [ConvChannel; 5] = [
            ConvChannel::App,
            ConvChannel::MiniProgram,
            ConvChannel::Web,
            ConvChannel::Marketplace,
            ConvChannel::Store,
        ];
        CH[rng::weighted(&mut self.rng, &w)]
    }

    pub(super) fn touch(&mut self, touch: Touch, t: i64) -> i64 {
        match touch {
            Touch::PaidAds => self.ad_click(t),
            Touch::WechatOa => {
                let end = self.oa_touch(t);
                if self.rng.random_bool(0.5) {
                    let referrer = Some(referrer::OFFICIAL_ACCOUNT);
                    self.session(Surface::Mini, end + 20_000, None, referrer, false)
                } else {
                    end
                }
            }
            Touch::CrmMessage => {
                self.crm_send(t);
                if self.rng.random_bool(0.35) {
                    let s = if self.p.has_app {
                        Surface::App
                    } else {
                        Surface::Web
                    };
                    let at = t + 60_000 + rng::exponential(&mut self.rng, 1_800_000.0) as i64;
                    self.session(s, at, None, Some(referrer::CRM), false)
                } else {
                    t
                }
            }
            Touch::MiniProgram => self.session(Surface::Mini, t, None, None, false),
            Touch::App => self.session(Surface::App, t, None, None, false),
            Touch::Web => self.session(Surface::Web, t, None, None, false),
            Touch::StoreVisit => self.store_visit(t),
            Touch::CustomerService => {
                let cats = self.ctx.t.ticket_pre;
                let cat = cats[self.rng.random_range(0..cats.len())];
                self.ticket(t, cat);
                t + 600_000
            }
        }
    }

    fn after_purchase(&mut self, ch: ConvChannel, t: i64, active_end: i64) {
        if matches!(ch, ConvChannel::Store | ConvChannel::MiniProgram)
            && !self.p.is_member(t)
            && self.rng.random_bool(0.3)
        {
            self.p.member_from = Some(t + 30_000);
            self.crm_join(t + 30_000);
            self.maybe_opt_out(t + 30_000);
        }
        if self.rng.random_bool(0.2) {
            let at = t + self.rng.random_range(DAY_MS..5 * DAY_MS);
            if at < active_end {
                self.survey(at, ch);
            }
        }
        if self.rng.random_bool(0.07) {
            let at = t + self.rng.random_range(DAY_MS..10 * DAY_MS);
            if at < active_end {
                let cats = self.ctx.t.ticket_post;
                let cat = cats[self.rng.random_range(0..cats.len())];
                self.ticket(at, cat);
            }
        }
    }

    /// Decides once, when a person becomes a member, whether and when they opt out.
    pub(super) fn maybe_opt_out(&mut self, member_from: i64) {
        if self.rng.random_bool(0.12) {
            let from = member_from.max(self.ctx.start_ms);
            if from < self.ctx.end_ms {
                let at = self.rng.random_range(from..self.ctx.end_ms);
                self.p.optout_ms = Some(at);
                self.stats.opted_out += 1;
                self.crm_opt_out(at);
            }
        }
    }
}

/// Activity by hour of the day (UTC+8): quiet at night, peaks at lunch and evening.
const HOUR_WEIGHTS: [f64; 24] = [
    0.3, 0.15, 0.1, 0.05, 0.05, 0.1, 0.4, 0.9, 1.3, 1.5, 1.6, 1.7, 2.0, 1.8, 1.5, 1.4, 1.4, 1.5,
    1.8, 2.2, 2.6, 2.8, 2.2, 1.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapley_values_sum_to_the_uplift() {
        let betas = [0.5, 1.1, 0.2];
        let phi = shapley(-3.0, &betas);
        let uplift = sigmoid(-3.0 + 1.8) - sigmoid(-3.0);
        assert!((phi.iter().sum::<f64>() - uplift).abs() < 1e-12);
        assert!(phi[1] > phi[0] && phi[0] > phi[2]);
    }
}
