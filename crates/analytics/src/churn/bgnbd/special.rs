//! Special functions the BG/NBD fit needs and `libm` lacks: the digamma function ψ.

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
    let inv2 = 1.0 / (v * v);
    let series = inv2
        * (1.0 / 12.0
            - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 / 132.0))));
    shift + v.ln() - 0.5 / v - series
}
