//! MBG/NBD's likelihood, P(alive) and expected purchases against two references that share no
//! code with the model: the model's individual-level story integrated numerically over the
//! beta distribution of dropout probabilities, and lifetimes' closed forms typed out term by
//! term (Γ as plain products, ₂F₁ as its defining series).

use proptest::prelude::*;

use crate::churn::bgnbd::{BetaGeoModel, BgNbdParams, CustomerSummary};
use crate::churn::{bgnbd, mbgnbd};

fn params(r: f64, alpha: f64, a: f64, b: f64) -> BgNbdParams {
    BgNbdParams { r, alpha, a, b }
}

fn customer(x: u64, recency: f64, age: f64) -> CustomerSummary {
    CustomerSummary::new(x, recency, age).unwrap()
}

/// `ln(1 + e^v)`, written out again here so the reference owns all its arithmetic.
fn log_one_plus_exp(v: f64) -> f64 {
    if v > 0.0 {
        v + (-v).exp().ln_1p()
    } else {
        v.exp().ln_1p()
    }
}

/// `∫₀¹ p^(a−1) (1−p)^(b−1) g(p) dp` by the tanh-sinh rule: `p = 1/(1 + e^(−π sinh s))`, whose
/// nodes crowd both ends double-exponentially, so the singular ends of the beta weight (a or
/// b below 1) cost nothing. The weight is taken in logs, so nodes far closer to 0 than f64's
/// smallest number still count. `g` gets p and 1 − p (each accurate where it is small).
fn beta_integral(a: f64, b: f64, g: impl Fn(f64, f64) -> f64) -> f64 {
    let step = 1.0 / 32.0;
    let mut sum = 0.0;
    for k in -256..=256 {
        let s = f64::from(k) * step;
        let u = std::f64::consts::PI * s.sinh();
        let (ln_p, ln_q) = (-log_one_plus_exp(-u), -log_one_plus_exp(u));
        // dp/ds = p (1 − p) π cosh s, folded into the exponents.
        let weight = (a * ln_p + b * ln_q).exp() * std::f64::consts::PI * s.cosh();
        let (p, q) = (ln_p.exp(), ln_q.exp());
        // Where p or 1 − p underflows the weight is far below the sum's last digit.
        if p > 0.0 && q > 0.0 {
            sum += weight * g(p, q);
        }
    }
    sum * step
}

/// `E[λ^x e^(−λt)]` over λ ~ Gamma(r, α): `Γ(r+x)/Γ(r) · α^r / (α+t)^(r+x)`, with the gamma
/// ratio as the product `r (r+1) … (r+x−1)`.
fn rate_moment(p: &BgNbdParams, x: u64, t: f64) -> f64 {
    let mut value = (p.alpha / (p.alpha + t)).powf(p.r);
    for k in 0..x {
        value *= (p.r + k as f64) / (p.alpha + t);
    }
    value
}

/// What the story says about one customer, integrated over p ~ Beta(a, b): the coin is tossed
/// after the first purchase and after each of the x repeat purchases. Alive: all x + 1 tosses
/// spared them and nothing was bought in (t_x, T]. Gone: the first x tosses spared them and the
/// last one took them, right after the purchase at t_x. Returns the two parts of the
/// likelihood.
fn story(p: &BgNbdParams, c: &CustomerSummary) -> (f64, f64) {
    let x = c.repeat_purchases;
    let xf = x as f64;
    let norm = beta_integral(p.a, p.b, |_, _| 1.0);
    let alive = beta_integral(p.a, p.b, |_, q| q.powf(xf + 1.0)) / norm;
    let gone = beta_integral(p.a, p.b, |prob, q| prob * q.powf(xf)) / norm;
    (
        alive * rate_moment(p, x, c.age),
        gone * rate_moment(p, x, c.recency),
    )
}

/// The expected purchases in the next t by the story: an alive customer with (λ, p) lives on
/// for an exponential time of rate λp, so buys `(1 − e^(−λpt))/p` times on average; over
/// λ ~ Gamma(r+x, α+T) (λ's posterior) that is `(1 − ((α+T)/(α+T+pt))^(r+x))/p`, then
/// averaged over p's posterior given alive, Beta(a, b+x+1), and weighted by P(alive).
fn story_expected(p: &BgNbdParams, c: &CustomerSummary, t: f64) -> f64 {
    let (alive, gone) = story(p, c);
    let rx = p.r + c.repeat_purchases as f64;
    let b = p.b + c.repeat_purchases as f64 + 1.0;
    let shifted = p.alpha + c.age;
    let mean = beta_integral(p.a, b, |prob, _| {
        -(-rx * (prob * t / shifted).ln_1p()).exp_m1() / prob
    }) / beta_integral(p.a, b, |_, _| 1.0);
    mean * alive / (alive + gone)
}

/// ₂F₁(A, B; C; z) summed from its definition.
fn hypergeometric(ha: f64, hb: f64, hc: f64, z: f64) -> f64 {
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 0..200_000 {
        let n = f64::from(n);
        term *= (ha + n) * (hb + n) / ((hc + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-18 * sum.abs() {
            break;
        }
    }
    sum
}

/// lifetimes' `ModifiedBetaGeoFitter.conditional_expected_number_of_purchases_up_to_time`, as
/// written there.
fn lifetimes_expected(p: &BgNbdParams, c: &CustomerSummary, t: f64) -> f64 {
    let x = c.repeat_purchases as f64;
    let hyp = hypergeometric(
        p.r + x,
        p.b + x + 1.0,
        p.a + p.b + x,
        t / (p.alpha + c.age + t),
    );
    let first = (p.a + p.b + x) / (p.a - 1.0);
    let second = 1.0 - hyp * ((p.alpha + c.age) / (p.alpha + t + c.age)).powf(p.r + x);
    let denominator =
        1.0 + p.a / (p.b + x) * ((p.alpha + c.age) / (p.alpha + c.recency)).powf(p.r + x);
    first * second / denominator
}

fn arbitrary_params() -> impl Strategy<Value = BgNbdParams> {
    (0.05f64..5.0, 0.1f64..20.0, 0.05f64..5.0, 0.05f64..5.0)
        .prop_map(|(r, alpha, a, b)| params(r, alpha, a, b))
}

fn arbitrary_customer() -> impl Strategy<Value = CustomerSummary> {
    (0u64..20, 0.0f64..=1.0, 0.0f64..60.0).prop_map(|(x, share, age)| {
        let recency = if x == 0 { 0.0 } else { share * age };
        customer(x, recency, age)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn likelihood_and_probability_alive_match_the_story(
        p in arbitrary_params(),
        c in arbitrary_customer(),
    ) {
        let (alive, gone) = story(&p, &c);
        let naive = (alive + gone).ln();
        let fast = mbgnbd::customer_log_likelihood(&p, &c);
        prop_assert!((fast - naive).abs() <= 1e-9 * naive.abs().max(1.0), "fast {} naive {}", fast, naive);
        let naive_alive = alive / (alive + gone);
        let got = mbgnbd::probability_alive(&p, &c);
        prop_assert!((got - naive_alive).abs() <= 1e-10, "fast {} naive {}", got, naive_alive);
        let score = mbgnbd::churn_score(&p, &c);
        prop_assert!((score - gone / (alive + gone)).abs() <= 1e-10);
        prop_assert!(got > 0.0 && got < 1.0, "MBG/NBD never gives certainty: {}", got);
    }

    #[test]
    fn probability_alive_is_lifetimes_closed_form(p in arbitrary_params(), c in arbitrary_customer()) {
        let x = c.repeat_purchases as f64;
        let closed = 1.0 / (1.0 + p.a / (p.b + x) * ((p.alpha + c.age) / (p.alpha + c.recency)).powf(p.r + x));
        prop_assert!((mbgnbd::probability_alive(&p, &c) - closed).abs() <= 1e-12);
        prop_assert!((mbgnbd::churn_score(&p, &c) - (1.0 - closed)).abs() <= 1e-12);
    }

    /// Every a, including a ≤ 1 and a = 1, where the closed form's factor 1/(a−1) is singular.
    #[test]
    fn expected_purchases_match_the_story(
        p in arbitrary_params(),
        c in arbitrary_customer(),
        horizon in 0.1f64..60.0,
        exactly_one in prop::bool::weighted(0.1),
    ) {
        let p = if exactly_one { BgNbdParams { a: 1.0, ..p } } else { p };
        let fast = mbgnbd::expected_purchases(&p, &c, horizon).unwrap();
        let naive = story_expected(&p, &c, horizon);
        prop_assert!((fast - naive).abs() <= 1e-8 * naive.abs().max(1e-3), "fast {} naive {}", fast, naive);
        prop_assert!(fast >= 0.0);
    }

    #[test]
    fn expected_purchases_match_lifetimes_closed_form(
        p in arbitrary_params().prop_filter("a away from 1", |p| (p.a - 1.0).abs() > 0.05),
        c in arbitrary_customer(),
        horizon in 0.1f64..60.0,
    ) {
        let fast = mbgnbd::expected_purchases(&p, &c, horizon).unwrap();
        let closed = lifetimes_expected(&p, &c, horizon);
        prop_assert!((fast - closed).abs() <= 1e-8 * closed.abs().max(1e-3), "fast {} closed {}", fast, closed);
    }

    /// The generalised BG/NBD forecast still is BG/NBD's, also checked against the story
    /// (coins after repeat purchases only: λ's posterior as before, p's Beta(a, b+x)).
    #[test]
    fn bgnbd_expected_purchases_match_its_story(
        p in arbitrary_params(),
        c in arbitrary_customer(),
        horizon in 0.1f64..60.0,
    ) {
        let x = c.repeat_purchases as f64;
        let (rx, shifted) = (p.r + x, p.alpha + c.age);
        let b = p.b + x;
        let mean = beta_integral(p.a, b, |prob, _| {
            -(-rx * (prob * horizon / shifted).ln_1p()).exp_m1() / prob
        }) / beta_integral(p.a, b, |_, _| 1.0);
        let naive = mean * bgnbd::probability_alive(&p, &c);
        let fast = bgnbd::expected_purchases(&p, &c, horizon).unwrap();
        prop_assert!((fast - naive).abs() <= 1e-8 * naive.abs().max(1e-3), "fast {} naive {}", fast, naive);
    }
}

#[test]
fn probability_alive_by_hand() {
    // (params, customer, P(alive)) worked out on paper.
    let cases = [
        // Bought once just now: a/b = 1 and (α+T)/(α+t_x) = 1, even odds.
        (params(1.0, 1.0, 1.0, 1.0), customer(0, 0.0, 0.0), 0.5),
        // a/(b+x) = 2/4 and ((1+3)/(1+1))^(1+1) = 4: 1/(1 + 2).
        (params(1.0, 1.0, 2.0, 3.0), customer(1, 1.0, 3.0), 1.0 / 3.0),
        // Bought once 6 units ago: a/b = 1, ((2+6)/2)^0.5 = 2: 1/(1 + 2).
        (params(0.5, 2.0, 1.0, 1.0), customer(0, 0.0, 6.0), 1.0 / 3.0),
        // a/(b+x) = 1/4 and a last purchase just now: 1/(1 + 1/4).
        (params(0.5, 2.0, 1.0, 1.0), customer(3, 5.0, 5.0), 0.8),
    ];
    for (p, c, expected) in cases {
        let alive = mbgnbd::probability_alive(&p, &c);
        assert!((alive - expected).abs() < 1e-15, "{c:?}: {alive}");
        let score = mbgnbd::churn_score(&p, &c);
        assert!((score - (1.0 - expected)).abs() < 1e-15, "{c:?}");
    }
}

#[test]
fn one_time_buyers_are_ranked_by_how_long_ago_they_bought() {
    let p = params(0.25, 4.0, 0.8, 2.5);
    let mut previous = 0.0;
    for age in [0.0, 1.0, 7.0, 30.0, 90.0, 365.0] {
        let one_time = customer(0, 0.0, age);
        assert_eq!(
            bgnbd::churn_score(&p, &one_time),
            0.0,
            "BG/NBD: certainly alive"
        );
        let score = mbgnbd::churn_score(&p, &one_time);
        assert!(
            score > previous,
            "older first purchase, higher score: {age} {score}"
        );
        previous = score;
    }
    // At age 0 the only evidence is the first purchase: the prior chance of the first toss.
    let fresh = mbgnbd::churn_score(&p, &customer(0, 0.0, 0.0));
    assert!((fresh - p.a / (p.a + p.b)).abs() < 1e-15);
    // A repeat buyer who just bought is safer than a one-time buyer of the same age; with the
    // same parameters, the one more toss they survived makes them safer still under MBG/NBD
    // (odds a/(b+x) against a/(b+x−1)).
    let repeat = customer(4, 20.0, 20.0);
    assert!(mbgnbd::churn_score(&p, &repeat) < mbgnbd::churn_score(&p, &customer(0, 0.0, 20.0)));
    assert!(mbgnbd::churn_score(&p, &repeat) < bgnbd::churn_score(&p, &repeat));
}

#[test]
fn the_unconditional_expectation_is_lifetimes() {
    // A customer at age 0 with no repeat purchase is a newcomer: the conditional expectation
    // is lifetimes' `expected_number_of_purchases_up_to_time`,
    // b/(a−1) · (1 − ₂F₁(r, b+1; a+b; t/(α+t)) · (α/(α+t))^r).
    for p in [
        params(0.243, 4.414, 0.793, 2.426),
        params(1.5, 10.0, 3.0, 0.7),
    ] {
        for t in [1.0, 10.0, 52.0] {
            let hyp = hypergeometric(p.r, p.b + 1.0, p.a + p.b, t / (p.alpha + t));
            let theirs = p.b / (p.a - 1.0) * (1.0 - hyp * (p.alpha / (p.alpha + t)).powf(p.r));
            let ours = mbgnbd::expected_purchases(&p, &customer(0, 0.0, 0.0), t).unwrap();
            assert!(
                (ours - theirs).abs() < 1e-12 * theirs,
                "{p:?} {t}: {ours} vs {theirs}"
            );
        }
    }
}

#[test]
fn edges_stay_finite_and_refuse_what_they_should() {
    let c = customer(4, 20.0, 30.0);
    let at = |a: f64| mbgnbd::expected_purchases(&params(0.8, 5.0, a, 2.5), &c, 20.0).unwrap();
    let (below, exact, above) = (at(1.0 - 1e-7), at(1.0), at(1.0 + 1e-7));
    assert!(
        exact.is_finite() && (below - exact).abs() < 1e-6 && (above - exact).abs() < 1e-6,
        "{below} {exact} {above}"
    );
    assert_eq!(
        mbgnbd::expected_purchases(&params(0.8, 5.0, 0.5, 2.5), &c, 0.0).unwrap(),
        0.0
    );
    let heavy = mbgnbd::expected_purchases(
        &params(0.243, 4.414, 0.793, 2.426),
        &customer(5_000, 300.0, 300.0),
        52.0,
    )
    .unwrap();
    assert!(heavy.is_finite() && heavy > 100.0, "{heavy}");
    assert!(mbgnbd::expected_purchases(&params(0.8, 5.0, 0.5, 2.5), &c, -1.0).is_err());
    let extreme = [
        params(1e-8, 1e-8, 1e-8, 1e-8),
        params(1e8, 1e8, 1e8, 1e8),
        params(0.01, 1e6, 50.0, 1e-3),
    ];
    let customers = [
        customer(0, 0.0, 0.0),
        customer(0, 0.0, 1e9),
        customer(1_000_000, 1e6, 1e6),
        customer(3, 0.0, 1e9),
    ];
    for p in &extreme {
        for c in &customers {
            let model = BetaGeoModel::MbgNbd;
            assert!(!model.customer_log_likelihood(p, c).is_nan(), "{p:?} {c:?}");
            let alive = model.probability_alive(p, c);
            assert!((0.0..=1.0).contains(&alive), "{p:?} {c:?}");
        }
    }
}
