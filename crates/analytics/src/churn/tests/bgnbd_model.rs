//! The BG/NBD likelihood, P(alive) and the expected-purchases forecast against naive references.

use proptest::prelude::*;

use crate::churn::bgnbd::likelihood::FitData;
use crate::churn::bgnbd::special::{digamma, digamma_ratio, ln_gamma_ratio};
use crate::churn::bgnbd::*;

fn params(r: f64, alpha: f64, a: f64, b: f64) -> BgNbdParams {
    BgNbdParams { r, alpha, a, b }
}

fn customer(x: u64, recency: f64, age: f64) -> CustomerSummary {
    CustomerSummary::new(x, recency, age).unwrap()
}

/// The paper's CDNOW estimates (weeks).
const CDNOW: BgNbdParams = BgNbdParams {
    r: 0.243,
    alpha: 4.414,
    a: 0.793,
    b: 2.426,
};

/// Equation (6) of the paper, term by term, straight from Γ and powers: no logs, no tricks.
fn naive_likelihood(p: &BgNbdParams, c: &CustomerSummary) -> f64 {
    let gamma = libm::tgamma;
    let beta = |u: f64, v: f64| gamma(u) * gamma(v) / gamma(u + v);
    let x = c.repeat_purchases as f64;
    let rate_part =
        |t: f64| gamma(p.r + x) * p.alpha.powf(p.r) / (gamma(p.r) * (p.alpha + t).powf(p.r + x));
    let alive = beta(p.a, p.b + x) / beta(p.a, p.b) * rate_part(c.age);
    if c.repeat_purchases == 0 {
        return alive;
    }
    alive + beta(p.a + 1.0, p.b + x - 1.0) / beta(p.a, p.b) * rate_part(c.recency)
}

fn arbitrary_params() -> impl Strategy<Value = BgNbdParams> {
    (0.05f64..5.0, 0.1f64..20.0, 0.05f64..5.0, 0.05f64..5.0)
        .prop_map(|(r, alpha, a, b)| params(r, alpha, a, b))
}

fn arbitrary_customer() -> impl Strategy<Value = CustomerSummary> {
    (0u64..25, 0.0f64..=1.0, 0.0f64..60.0).prop_map(|(x, share, age)| {
        let recency = if x == 0 { 0.0 } else { share * age };
        customer(x, recency, age)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn log_likelihood_matches_the_paper_formula(p in arbitrary_params(), c in arbitrary_customer()) {
        let fast = customer_log_likelihood(&p, &c);
        let naive = naive_likelihood(&p, &c).ln();
        prop_assert!((fast - naive).abs() <= 1e-9 * naive.abs().max(1.0), "fast {} naive {}", fast, naive);
    }

    #[test]
    fn grouped_likelihood_and_gradient_match_per_customer_sums(
        p in arbitrary_params(),
        customers in prop::collection::vec(arbitrary_customer(), 1..30),
        mbg in any::<bool>(),
    ) {
        let model = if mbg { BetaGeoModel::MbgNbd } else { BetaGeoModel::BgNbd };
        let log_likelihood = |p: &BgNbdParams, c: &[CustomerSummary]| model.log_likelihood(p, c);
        let data = FitData::new(model, &customers);
        let sum = data.evaluate(&p, 1);
        let direct = log_likelihood(&p, &customers);
        prop_assert!((sum.value - direct).abs() <= 1e-9 * direct.abs().max(1.0));
        // Duplicated customers are kept once with a weight: twice the data, twice the sums.
        let doubled = FitData::new(model, &[customers.clone(), customers.clone()].concat()).evaluate(&p, 2);
        prop_assert!((doubled.value - 2.0 * direct).abs() <= 1e-9 * direct.abs().max(1.0));
        for i in 0..4 {
            prop_assert!((doubled.gradient[i] - 2.0 * sum.gradient[i]).abs() <= 1e-9 * sum.gradient[i].abs().max(1.0));
        }
        // Central differences of the naive per-customer sum, in each parameter.
        let values = [p.r, p.alpha, p.a, p.b];
        for i in 0..4 {
            let h = 1e-6 * values[i];
            let shifted = |sign: f64| {
                let mut v = values;
                v[i] += sign * h;
                log_likelihood(&params(v[0], v[1], v[2], v[3]), &customers)
            };
            let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
            let tolerance = 1e-5 * numeric.abs().max(1.0) + 1e-6 * direct.abs() / values[i];
            prop_assert!((sum.gradient[i] - numeric).abs() <= tolerance, "parameter {}: {} vs {}", i, sum.gradient[i], numeric);
        }
    }

    #[test]
    fn probability_alive_is_the_closed_form(p in arbitrary_params(), c in arbitrary_customer()) {
        let x = c.repeat_purchases as f64;
        let closed = if c.repeat_purchases == 0 {
            1.0
        } else {
            1.0 / (1.0 + p.a / (p.b + x - 1.0) * ((p.alpha + c.age) / (p.alpha + c.recency)).powf(p.r + x))
        };
        let alive = probability_alive(&p, &c);
        prop_assert!((alive - closed).abs() <= 1e-12, "{} vs {}", alive, closed);
        prop_assert!((churn_score(&p, &c) - (1.0 - closed)).abs() <= 1e-12);
        prop_assert!((0.0..=1.0).contains(&alive));
    }

    #[test]
    fn expected_purchases_match_the_direct_series(
        p in arbitrary_params().prop_filter("a away from 1", |p| (p.a - 1.0).abs() > 0.05),
        c in arbitrary_customer(),
        horizon in 0.1f64..60.0,
    ) {
        let fast = expected_purchases(&p, &c, horizon).unwrap();
        let naive = naive_expected_purchases(&p, &c, horizon);
        prop_assert!((fast - naive).abs() <= 1e-8 * naive.abs().max(1e-3), "fast {} naive {}", fast, naive);
        prop_assert!(fast >= 0.0);
    }
}

/// Equation (10) with ₂F₁ summed term by term from its definition.
fn naive_expected_purchases(p: &BgNbdParams, c: &CustomerSummary, t: f64) -> f64 {
    let x = c.repeat_purchases as f64;
    let (ha, hb, hc) = (p.r + x, p.b + x, p.a + p.b + x - 1.0);
    let z = t / (p.alpha + c.age + t);
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 0..200_000 {
        let n = f64::from(n);
        term *= (ha + n) * (hb + n) / ((hc + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-18 * sum.abs() {
            break;
        }
    }
    let bracket = 1.0 - ((p.alpha + c.age) / (p.alpha + c.age + t)).powf(p.r + x) * sum;
    let denominator = if c.repeat_purchases == 0 {
        1.0
    } else {
        1.0 + p.a / (p.b + x - 1.0) * ((p.alpha + c.age) / (p.alpha + c.recency)).powf(p.r + x)
    };
    (p.a + p.b + x - 1.0) / (p.a - 1.0) * bracket / denominator
}

#[test]
fn probability_alive_by_hand() {
    // (params, customer, P(alive)) worked out on paper.
    let cases = [
        // a/(b+x−1) = 1 and (α+T)/(α+t_x) = 1: even odds.
        (params(1.0, 1.0, 1.0, 1.0), customer(1, 1.0, 1.0), 0.5),
        // a/(b+x−1) = 2/4 and ((1+3)/(1+1))^(1+2) = 8: 1/(1 + 4).
        (params(1.0, 1.0, 2.0, 3.0), customer(2, 1.0, 3.0), 0.2),
        // Last purchase just now: 1/(1 + 1/3).
        (params(0.5, 2.0, 1.0, 1.0), customer(3, 5.0, 5.0), 0.75),
        // No repeat purchase: alive for sure.
        (params(0.5, 2.0, 1.0, 1.0), customer(0, 0.0, 50.0), 1.0),
    ];
    for (p, c, expected) in cases {
        assert!(
            (probability_alive(&p, &c) - expected).abs() < 1e-15,
            "{c:?}"
        );
        assert!(
            (churn_score(&p, &c) - (1.0 - expected)).abs() < 1e-15,
            "{c:?}"
        );
    }
}

#[test]
fn cdnow_scenarios_from_the_paper() {
    // Scenario from the paper's CDNOW example: a customer with 2 repeat purchases, the last at
    // week 30.43 of 38.86, expects 1.226 purchases in the next 39 weeks.
    let expected = expected_purchases(&CDNOW, &customer(2, 30.43, 38.86), 39.0).unwrap();
    assert!((expected - 1.226).abs() < 5e-4, "{expected}");
    // The paper's log-likelihood at its estimates for a customer who never came back is
    // the x = 0 term alone.
    let ll = customer_log_likelihood(&CDNOW, &customer(0, 0.0, 38.86));
    assert!((ll - naive_likelihood(&CDNOW, &customer(0, 0.0, 38.86)).ln()).abs() < 1e-12);
}

#[test]
fn expected_purchases_edges() {
    let c = customer(4, 20.0, 30.0);
    assert_eq!(expected_purchases(&CDNOW, &c, 0.0).unwrap(), 0.0);
    // Smooth through a = 1, where the paper's formula divides by zero.
    let at = |a: f64| expected_purchases(&params(0.8, 5.0, a, 2.5), &c, 20.0).unwrap();
    let (below, exact, above) = (at(1.0 - 1e-7), at(1.0), at(1.0 + 1e-7));
    assert!(
        exact.is_finite() && (below - exact).abs() < 1e-6 && (above - exact).abs() < 1e-6,
        "{below} {exact} {above}"
    );
    // Grows with the horizon; huge histories stay finite.
    let mut previous = 0.0;
    for horizon in [1.0, 5.0, 25.0, 125.0, 625.0] {
        let value = expected_purchases(&CDNOW, &c, horizon).unwrap();
        assert!(value > previous);
        previous = value;
    }
    let heavy = expected_purchases(&CDNOW, &customer(5_000, 300.0, 300.0), 52.0).unwrap();
    assert!(heavy.is_finite() && heavy > 100.0, "{heavy}");
    // Refusals.
    assert!(expected_purchases(&CDNOW, &c, -1.0).is_err());
    assert!(expected_purchases(&CDNOW, &c, f64::INFINITY).is_err());
    assert!(expected_purchases(&params(0.0, 1.0, 1.0, 1.0), &c, 1.0).is_err());
    assert!(matches!(
        expected_purchases(&params(0.5, 1e-3, 2.0, 1.0), &customer(0, 0.0, 0.0), 1e12),
        Err(crate::churn::ChurnError::SeriesDidNotConverge { .. })
    ));
}

/// The forecast by its definition, integrated numerically: given alive, the customer buys
/// `(1 − ((α+T)/(α+T+pt))^(r+x)) / p` on average over λ ~ Gamma(r+x, α+T), and p ~ Beta(a, b+d)
/// is averaged over a fine grid of its density (normalised on the grid).
fn integrated_expected_purchases(
    model: BetaGeoModel,
    p: &BgNbdParams,
    c: &CustomerSummary,
    t: f64,
) -> f64 {
    let x = c.repeat_purchases as f64;
    let d = x + if model == BetaGeoModel::MbgNbd {
        1.0
    } else {
        0.0
    };
    let (shape_a, shape_b) = (p.a, p.b + d);
    let mean = shape_a / (shape_a + shape_b);
    let sd = (mean * (1.0 - mean) / (shape_a + shape_b + 1.0)).sqrt();
    let (lo, hi) = (
        (mean - 14.0 * sd).max(1e-12),
        (mean + 14.0 * sd).min(1.0 - 1e-12),
    );
    let steps = 20_000;
    let log_density = |q: f64| (shape_a - 1.0) * q.ln() + (shape_b - 1.0) * (1.0 - q).ln();
    let peak = log_density(mean);
    let (mut weights, mut total) = (0.0, 0.0);
    for i in 0..=steps {
        let q = lo + (hi - lo) * f64::from(i) / f64::from(steps);
        let w = (log_density(q) - peak).exp();
        let bought = 1.0 - ((p.alpha + c.age) / (p.alpha + c.age + q * t)).powf(p.r + x);
        weights += w;
        total += w * bought / q;
    }
    total / weights * model.probability_alive(p, c)
}

#[test]
fn large_beta_parameters_match_the_integral_without_overflow() {
    // Fits on buyers who hardly drop out push a and b up (a retail fit gave about 10^12). The
    // series then overflows or would need some a·z terms: the sigma points of the Beta take
    // over where its sum would pass e^600, and from a+b+d = 10^6. Against the
    // integral of the definition, every regime is within 1e-6 relative, and never NaN.
    let mut worst: f64 = 0.0;
    for model in [BetaGeoModel::BgNbd, BetaGeoModel::MbgNbd] {
        for scale in [10.0, 1e2, 1e3, 1e4, 1e5, 9e5, SIGMA_POINTS_FROM, 4.4e12] {
            let p = params(0.9, 30.0, 0.4 * scale, 0.6 * scale);
            for c in [customer(0, 0.0, 20.0), customer(3, 40.0, 90.0)] {
                for horizon in [1.5, 30.0, 366.0] {
                    let got = model.expected_purchases(&p, &c, horizon).unwrap();
                    let want = integrated_expected_purchases(model, &p, &c, horizon);
                    let error = (got - want).abs() / want;
                    assert!(
                        error <= 1e-6,
                        "{model:?} a+b {scale:e} {c:?} t {horizon}: {got} vs {want}"
                    );
                    worst = worst.max(error);
                }
            }
        }
    }
    assert!(worst > 0.0, "the regimes are computed, not copied");
}

#[test]
fn likelihood_edges_never_give_nan() {
    let extreme = [
        params(1e-8, 1e-8, 1e-8, 1e-8),
        params(1e8, 1e8, 1e8, 1e8),
        params(0.01, 1e6, 50.0, 1e-3),
    ];
    let customers = [
        customer(0, 0.0, 0.0),
        customer(1, 0.0, 0.0),
        customer(1_000_000, 1e6, 1e6),
        customer(3, 0.0, 1e9),
    ];
    for p in &extreme {
        for c in &customers {
            assert!(!customer_log_likelihood(p, c).is_nan(), "{p:?} {c:?}");
            assert!(!probability_alive(p, c).is_nan(), "{p:?} {c:?}");
        }
    }
    assert!(CustomerSummary::new(1, 5.0, 4.0).is_err());
    assert!(CustomerSummary::new(1, f64::NAN, 4.0).is_err());
    assert!(CustomerSummary::new(1, -1.0, 4.0).is_err());
    assert!(CustomerSummary::new(0, 0.0, f64::INFINITY).is_err());
    // Without a repeat purchase the last purchase is the first: t_x is 0.
    assert!(CustomerSummary::new(0, 1.0, 4.0).is_err());
}

#[test]
fn digamma_known_values() {
    let euler = 0.577_215_664_901_532_9;
    // ψ(0.001) from the series ψ(1+v) = −γ + ζ(2)v − ζ(3)v² + ζ(4)v³ − …, less 1/v.
    let cases = [
        (1.0, -euler),
        (0.5, -euler - 2.0 * std::f64::consts::LN_2),
        (10.0, 2.251_752_589_066_721),
        (1e-3, -1_000.575_571_931_810_3),
    ];
    for (v, expected) in cases {
        assert!(
            (digamma(v) - expected).abs() < 1e-12 * expected.abs().max(1.0),
            "ψ({v}) = {}",
            digamma(v)
        );
    }
}

#[test]
fn gamma_and_digamma_ratios_stay_exact_for_large_arguments() {
    // For whole d, lnΓ(z+d) − lnΓ(z) = Σ ln(z+k) and ψ(z+d) − ψ(z) = Σ 1/(z+k), k < d: plain
    // sums that lose nothing however large z is.
    for z in [0.05, 0.7, 3.0, 9.999, 10.0, 12.5, 1e3, 6.7e7, 1e12] {
        for d in [0u32, 1, 2, 7, 40] {
            let (mut logs, mut inverses) = (0.0, 0.0);
            for k in 0..d {
                logs += (z + f64::from(k)).ln();
                inverses += 1.0 / (z + f64::from(k));
            }
            let d = f64::from(d);
            let got = ln_gamma_ratio(z, d);
            assert!(
                (got - logs).abs() <= 1e-13 * logs.abs().max(1.0),
                "lnΓ ratio at {z}, {d}: {got} vs {logs}"
            );
            let got = digamma_ratio(z, d);
            assert!(
                (got - inverses).abs() <= 1e-12 * inverses.abs() + 1e-300,
                "ψ ratio at {z}, {d}: {got} vs {inverses}"
            );
        }
    }
    // Fractional d against the plain differences where those are exact enough.
    for (z, d) in [(0.3, 2.5), (4.0, 0.25), (10.5, 3.75), (25.0, 100.5)] {
        let plain = libm::lgamma(z + d) - libm::lgamma(z);
        assert!((ln_gamma_ratio(z, d) - plain).abs() < 1e-12 * plain.abs().max(1.0));
        let plain = digamma(z + d) - digamma(z);
        assert!((digamma_ratio(z, d) - plain).abs() < 1e-12 * plain.abs().max(1.0));
    }
}
