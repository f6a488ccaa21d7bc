//! One step's conversion-time samples, kept raw for the exact median, in half the memory when
//! they allow it.
//!
//! A conversion time is at most the window, and any window up to 49 days fits every sample in
//! a `u32` of milliseconds. Writing the samples is a good part of a funnel's cost (each time a
//! vector grows, its samples move to fresh pages the kernel zeroes first), so they are kept as
//! `u32` until one does not fit — a longer window, or times a caller put out of order — and
//! as `i64` from then on. Either way the values, their order, and so every figure, are the
//! same.

/// The samples, `u32` while every one fits.
#[derive(Clone, Debug)]
pub(crate) enum Samples {
    Narrow(Vec<u32>),
    Wide(Vec<i64>),
}

impl Default for Samples {
    fn default() -> Self {
        Samples::Narrow(Vec::new())
    }
}

impl PartialEq for Samples {
    /// Equal when the values are, whichever width holds them.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.values().eq(other.values())
    }
}

impl Eq for Samples {}

impl Samples {
    pub(crate) fn len(&self) -> usize {
        match self {
            Samples::Narrow(values) => values.len(),
            Samples::Wide(values) => values.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values in the order they were added.
    pub(crate) fn values(&self) -> impl Iterator<Item = i64> + '_ {
        let (narrow, wide) = match self {
            Samples::Narrow(values) => (values.as_slice(), &[][..]),
            Samples::Wide(values) => (&[][..], values.as_slice()),
        };
        narrow
            .iter()
            .map(|&v| i64::from(v))
            .chain(wide.iter().copied())
    }

    /// Adds a value; inlined into the per-person loop, with the rare widening out of line.
    #[inline(always)]
    pub(crate) fn push(&mut self, value: i64) {
        match self {
            Samples::Narrow(values) => match u32::try_from(value) {
                Ok(narrow) => values.push(narrow),
                Err(_) => self.push_wide(value),
            },
            Samples::Wide(values) => values.push(value),
        }
    }

    #[cold]
    fn push_wide(&mut self, value: i64) {
        let mut wide = self.widened();
        wide.push(value);
        *self = Samples::Wide(wide);
    }

    /// The values as `i64`, taken out of `self`.
    fn widened(&mut self) -> Vec<i64> {
        match std::mem::take(self) {
            Samples::Narrow(values) => values.into_iter().map(i64::from).collect(),
            Samples::Wide(values) => values,
        }
    }

    /// Appends `other`'s samples after these. An empty side takes the other's vector
    /// instead of copying it (the first partition's, always).
    pub(crate) fn append(&mut self, other: Samples) {
        if self.is_empty() {
            *self = other;
            return;
        }
        match (&mut *self, other) {
            (Samples::Narrow(mine), Samples::Narrow(theirs)) => mine.extend_from_slice(&theirs),
            (Samples::Wide(mine), Samples::Wide(theirs)) => mine.extend_from_slice(&theirs),
            (_, mut theirs) => {
                let mut wide = self.widened();
                wide.extend(theirs.widened());
                *self = Samples::Wide(wide);
            }
        }
    }

    /// The sum of the values as `f64`, added in order (a float sum depends on the order).
    pub(crate) fn sum_f64(&self) -> f64 {
        match self {
            Samples::Narrow(values) => {
                // Non-negative integers whose total is below 2^53 add up exactly in `f64` in
                // any order, so the integer sum (which vectorises; the float sum waits on each
                // addition, serially at the end of a query) is the same number. Fewer than
                // 2^32 values cannot overflow a `u64`; an empty float sum is −0.0, kept so.
                let exact = u64::try_from(values.len())
                    .is_ok_and(|n| (1..1 << 32).contains(&n))
                    .then(|| values.iter().map(|&v| u64::from(v)).sum::<u64>())
                    .filter(|&total| total < 1 << f64::MANTISSA_DIGITS);
                match exact {
                    Some(total) => total as f64,
                    None => values.iter().map(|&v| f64::from(v)).sum(),
                }
            }
            Samples::Wide(values) => values.iter().map(|&v| v as f64).sum(),
        }
    }

    /// The lower middle value (the contract's median for an even count), reordering the
    /// samples.
    pub(crate) fn lower_median(&mut self) -> Option<i64> {
        let middle = self.len().checked_sub(1)? / 2;
        match self {
            Samples::Narrow(values) => Some(i64::from(*values.select_nth_unstable(middle).1)),
            Samples::Wide(values) => Some(*values.select_nth_unstable(middle).1),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Samples;

    /// Mostly values that fit a `u32`, sometimes one that does not (either side).
    fn value() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => 0i64..5_000_000_000,
            1 => any::<i64>(),
            1 => 0i64..4,
        ]
    }

    fn filled(values: &[i64]) -> Samples {
        let mut samples = Samples::default();
        for &value in values {
            samples.push(value);
        }
        samples
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the widths of the two sides, appending keeps the values in order, and
        /// the sum and median are those of the plain `i64` values.
        #[test]
        fn samples_behave_as_plain_values(
            left in prop::collection::vec(value(), 0..40),
            right in prop::collection::vec(value(), 0..40),
        ) {
            let mut samples = filled(&left);
            samples.append(filled(&right));
            let all: Vec<i64> = left.iter().chain(&right).copied().collect();
            prop_assert_eq!(samples.values().collect::<Vec<_>>(), all.clone());
            prop_assert_eq!(&samples, &Samples::Wide(all.clone()));
            let plain_sum: f64 = all.iter().map(|&v| v as f64).sum();
            prop_assert_eq!(samples.sum_f64().to_bits(), plain_sum.to_bits());
            let mut sorted = all.clone();
            sorted.sort_unstable();
            let median = sorted.len().checked_sub(1).map(|last| sorted[last / 2]);
            prop_assert_eq!(samples.lower_median(), median);
        }
    }
}
