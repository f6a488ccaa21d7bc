//! The total log-likelihood of either model and its gradient, fast enough for millions of
//! customers.
//!
//! Customers are sorted by (x, t_x, T) once and identical summaries are kept once with a weight
//! (summaries in whole days repeat a lot: a large tenant has far fewer distinct (x, t_x, T) than
//! customers). Every term that depends on x only (`A1`, `A2` — through d, the dropout chances —
//! and their derivatives, which need lnΓ and ψ) is then computed once per distinct x and
//! multiplied by the number of customers sharing it; per customer only `ln(α+T)`, `ln(α+t_x)` and one exponential
//! remain. Rows are cut into fixed-size chunks whose partial sums are added in chunk order, so
//! the result is the same whatever the number of threads that computed the chunks.
//!
//! Gradient of one customer with d > 0 chances to drop out (see `model`), where
//! `w = logistic(A4 − A3)` is its churn score and `D = ln(α+T) − ln(α+t_x)`:
//! `∂r = ψ(r+x) − ψ(r) + ln α − ln(α+T) + w·D`,
//! `∂α = r/α − (r+x)/(α+T) + w·(r+x)·(1/(α+T) − 1/(α+t_x))`,
//! `∂a = ψ(a+b) − ψ(a+b+d) + w/a`, `∂b = ψ(a+b) + ψ(b+d) − ψ(b) − ψ(a+b+d) − w/(b+d−1)`;
//! for d = 0 (BG/NBD, x = 0) the `w` terms vanish.

use super::model::{BetaGeoModel, BgNbdParams, CustomerSummary, softplus_and_logistic};
use super::special::{digamma_ratio, ln_gamma_ratio};

/// Rows per chunk: the unit of work of one thread and of the fixed summation order.
const CHUNK_ROWS: usize = 16_384;

/// Customers sharing one x (and so one d): rows `start..end` of the sorted columns.
#[derive(Debug, Clone, Copy)]
struct XGroup {
    x: f64,
    d: f64,
    start: usize,
    end: usize,
}

/// A log-likelihood and its gradient with respect to (r, α, a, b).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LikelihoodSum {
    pub(crate) value: f64,
    pub(crate) gradient: [f64; 4],
}

impl LikelihoodSum {
    /// Adds another partial sum.
    fn merge(&mut self, other: &Self) {
        self.value += other.value;
        for (mine, theirs) in self.gradient.iter_mut().zip(other.gradient) {
            *mine += theirs;
        }
    }
}

/// Customers in the layout the likelihood wants: distinct summaries with their counts, sorted
/// and grouped by x, for one model.
#[derive(Debug, Clone)]
pub(crate) struct FitData {
    groups: Vec<XGroup>,
    recency: Vec<f64>,
    age: Vec<f64>,
    weight: Vec<f64>,
    customer_count: usize,
}

impl FitData {
    /// Sorts customers the way `from_sorted` wants them.
    pub(crate) fn sort(customers: &mut [CustomerSummary]) {
        customers.sort_unstable_by(|p, q| {
            p.repeat_purchases
                .cmp(&q.repeat_purchases)
                .then(p.recency.total_cmp(&q.recency))
                .then(p.age.total_cmp(&q.age))
        });
    }

    /// Sorts, deduplicates and groups already validated customers.
    #[cfg(test)]
    pub(crate) fn new(model: BetaGeoModel, customers: &[CustomerSummary]) -> Self {
        let mut sorted = customers.to_vec();
        Self::sort(&mut sorted);
        Self::from_sorted(model, sorted.iter().copied())
    }

    /// Deduplicates and groups validated customers already in `sort` order.
    pub(crate) fn from_sorted(
        model: BetaGeoModel,
        sorted: impl Iterator<Item = CustomerSummary>,
    ) -> Self {
        let mut data = Self {
            groups: Vec::new(),
            recency: Vec::new(),
            age: Vec::new(),
            weight: Vec::new(),
            customer_count: 0,
        };
        let mut previous: Option<CustomerSummary> = None;
        for customer in sorted {
            data.customer_count += 1;
            if previous == Some(customer) {
                if let Some(weight) = data.weight.last_mut() {
                    *weight += 1.0;
                }
                continue;
            }
            previous = Some(customer);
            let row = data.age.len();
            data.recency.push(customer.recency);
            data.age.push(customer.age);
            data.weight.push(1.0);
            let x = customer.repeat_purchases as f64;
            match data.groups.last_mut() {
                Some(group) if group.x == x => group.end = row + 1,
                _ => data.groups.push(XGroup {
                    x,
                    d: model.dropout_chances(customer.repeat_purchases),
                    start: row,
                    end: row + 1,
                }),
            }
        }
        data
    }

    /// Distinct summaries held.
    fn len(&self) -> usize {
        self.age.len()
    }

    /// Customers held, duplicates included.
    pub(crate) fn customer_count(&self) -> usize {
        self.customer_count
    }

    /// The largest T, for scale-aware start values.
    pub(crate) fn max_age(&self) -> f64 {
        self.age.iter().copied().fold(0.0, f64::max)
    }

    /// The total log-likelihood and its gradient, chunks spread over `threads` threads.
    pub(crate) fn evaluate(&self, params: &BgNbdParams, threads: usize) -> LikelihoodSum {
        let mut total = self.group_terms(params);
        let chunk_count = self.len().div_ceil(CHUNK_ROWS);
        let threads = threads.clamp(1, chunk_count.max(1));
        let partials: Vec<LikelihoodSum> = if threads == 1 {
            (0..chunk_count)
                .map(|chunk| self.chunk_terms(params, chunk))
                .collect()
        } else {
            let per_thread = chunk_count.div_ceil(threads);
            let thread_chunks =
                (0..threads).map(|t| (t * per_thread)..((t + 1) * per_thread).min(chunk_count));
            crate::calendar::on_threads(thread_chunks, |chunks| {
                chunks
                    .map(|chunk| self.chunk_terms(params, chunk))
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect()
        };
        for partial in &partials {
            total.merge(partial);
        }
        total
    }

    /// The x-only terms `A1 + A2` and their derivatives, times the group sizes.
    fn group_terms(&self, params: &BgNbdParams) -> LikelihoodSum {
        let BgNbdParams { r, alpha, a, b } = *params;
        let ln_alpha = alpha.ln();
        let mut sum = LikelihoodSum::default();
        for group in &self.groups {
            let count: f64 = self.weight[group.start..group.end].iter().sum();
            let (x, d) = (group.x, group.d);
            let a1 = ln_gamma_ratio(r, x) + r * ln_alpha;
            let d_r = digamma_ratio(r, x) + ln_alpha;
            let a2 = ln_gamma_ratio(b, d) - ln_gamma_ratio(a + b, d);
            let d_a = -digamma_ratio(a + b, d);
            let d_b = digamma_ratio(b, d) + d_a;
            sum.value += count * (a1 + a2);
            sum.gradient[0] += count * d_r;
            sum.gradient[1] += count * r / alpha;
            sum.gradient[2] += count * d_a;
            sum.gradient[3] += count * d_b;
        }
        sum
    }

    /// The per-customer terms `ln(e^A3 + [d>0] e^A4)` of one chunk of rows.
    fn chunk_terms(&self, params: &BgNbdParams, chunk: usize) -> LikelihoodSum {
        let rows = (chunk * CHUNK_ROWS)..((chunk + 1) * CHUNK_ROWS).min(self.len());
        let first_group = self.groups.partition_point(|group| group.end <= rows.start);
        let mut sum = LikelihoodSum::default();
        for group in self.groups[first_group..]
            .iter()
            .take_while(|group| group.start < rows.end)
        {
            let from = group.start.max(rows.start);
            let to = group.end.min(rows.end);
            let partial = if group.d == 0.0 {
                self.never_at_risk(params, from, to)
            } else {
                self.at_risk(params, group.x, group.d, from, to)
            };
            sum.merge(&partial);
        }
        sum
    }

    /// Rows with d = 0 (so x = 0): `A3 = −r ln(α+T)`.
    fn never_at_risk(&self, params: &BgNbdParams, from: usize, to: usize) -> LikelihoodSum {
        let (mut log_sum, mut inverse_sum) = (0.0, 0.0);
        for (&age, &weight) in self.age[from..to].iter().zip(&self.weight[from..to]) {
            let shifted = params.alpha + age;
            log_sum += weight * shifted.ln();
            inverse_sum += weight / shifted;
        }
        LikelihoodSum {
            value: -params.r * log_sum,
            gradient: [-log_sum, -params.r * inverse_sum, 0.0, 0.0],
        }
    }

    /// Rows with one x and d > 0: `A3 + softplus(A4 − A3)`.
    fn at_risk(
        &self,
        params: &BgNbdParams,
        x: f64,
        d: f64,
        from: usize,
        to: usize,
    ) -> LikelihoodSum {
        let BgNbdParams { r, alpha, a, b } = *params;
        let rx = r + x;
        let offset = a.ln() - (b + d - 1.0).ln();
        let (mut value, mut d_r, mut d_alpha, mut w_sum) = (0.0, 0.0, 0.0, 0.0);
        let rows = self.age[from..to]
            .iter()
            .zip(&self.recency[from..to])
            .zip(&self.weight[from..to]);
        for ((&age, &recency), &weight) in rows {
            let (shifted_age, shifted_recency) = (alpha + age, alpha + recency);
            let log_age = shifted_age.ln();
            let widening = log_age - shifted_recency.ln();
            let log_odds = offset + rx * widening;
            let (softplus, w) = softplus_and_logistic(log_odds);
            let inverse_age = 1.0 / shifted_age;
            value += weight * (softplus - rx * log_age);
            d_r += weight * (w * widening - log_age);
            d_alpha += weight * (w * (inverse_age - 1.0 / shifted_recency) - inverse_age);
            w_sum += weight * w;
        }
        LikelihoodSum {
            value,
            gradient: [d_r, rx * d_alpha, w_sum / a, -w_sum / (b + d - 1.0)],
        }
    }
}
