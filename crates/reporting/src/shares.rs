//! Turning counts into report rows with shares of the total.

/// A count row with its share of `total` (0 when the total is 0).
pub fn share(part: i64, total: i64) -> f64 {
    if total <= 0 {
        0.0
    } else {
        // Counts stay far below 2^52, where f64 is exact.
        part as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_fractions_and_safe_on_empty_totals() {
        assert!((share(1, 4) - 0.25).abs() < f64::EPSILON);
        assert_eq!(share(3, 0), 0.0);
    }
}
