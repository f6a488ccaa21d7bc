//! Special functions the fits need and `libm` lacks: the digamma function ψ, and differences
//! of lnΓ and ψ that stay exact when their argument is large.

/// ψ(v) = d/dv ln Γ(v) for v > 0.
///
/// Shifts v up to at least 10 with ψ(v) = ψ(v+1) − 1/v, then uses the asymptotic series
/// `ln v − 1/(2v) − Σ B₂ₖ/(2k v²ᵏ)` up to k = 5; the first omitted term is below 3e-14 at
/// v = 10. Used only for gradients, where this accuracy is ample.
pub(crate) fn digamma(v: f64) -> f64 {
    let mut v = v;
    let mut shift = 0.0;
    while v < 10.0 {
        shift -= 1.0 / v;
        v += 1.0;
    }
    shift + v.ln() - 0.5 / v - digamma_series(v)
}

/// From this argument on, the ratios below use Stirling's series instead of differences of
/// `lgamma` or `digamma` values.
const STIRLING_FROM: f64 = 10.0;

/// lnΓ(z+d) − lnΓ(z) for z > 0 and d ≥ 0.
///
/// The plain difference `lgamma(z+d) − lgamma(z)` loses digits as z grows: a fitted
/// beta or gamma shape can run off towards infinity (when the data look homogeneous), and at
/// z = 10⁷ the two values are near 1.5·10⁸, so a difference of order 1 keeps only eight digits
/// and the optimiser stalls on the noise. From z ≥ 10, Stirling's series is differenced term by
/// term: `(z−½)·ln(1 + d/z) + d·ln(z+d) − d + S(z+d) − S(z)`, with
/// `S(w) = 1/(12w) − 1/(360w³) + 1/(1260w⁵) − 1/(1680w⁷) + 1/(1188w⁹)`, whose first omitted term
/// is below 2e-14 at w = 10.
pub(crate) fn ln_gamma_ratio(z: f64, d: f64) -> f64 {
    if d == 0.0 {
        return 0.0;
    }
    if z < STIRLING_FROM {
        return libm::lgamma(z + d) - libm::lgamma(z);
    }
    let w = z + d;
    (z - 0.5) * (d / z).ln_1p() + d * w.ln() - d + stirling_tail(w) - stirling_tail(z)
}

/// ψ(z+d) − ψ(z) for z > 0 and d ≥ 0, without the cancellation of `ln_gamma_ratio`'s plain
/// difference: from z ≥ 10, `ln(1 + d/z) + d/(2z(z+d)) − (R(z+d) − R(z))` with R the series
/// of `digamma`.
pub(crate) fn digamma_ratio(z: f64, d: f64) -> f64 {
    if d == 0.0 {
        return 0.0;
    }
    if z < STIRLING_FROM {
        return digamma(z + d) - digamma(z);
    }
    let w = z + d;
    (d / z).ln_1p() + d / (2.0 * z * w) - (digamma_series(w) - digamma_series(z))
}

/// `Σ B₂ₖ/(2k v²ᵏ)` for k = 1..5.
fn digamma_series(v: f64) -> f64 {
    let inv2 = 1.0 / (v * v);
    inv2 * (1.0 / 12.0
        - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 / 132.0))))
}

/// The terms of Stirling's series for lnΓ(w) after `(w−½) ln w − w + ½ ln 2π`, up to w⁻⁹.
fn stirling_tail(w: f64) -> f64 {
    let inv = 1.0 / w;
    let inv2 = inv * inv;
    inv * (1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0))))
}
