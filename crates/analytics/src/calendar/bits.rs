//! Bitsets of grid intervals (one bit per interval index), as lifecycle and retention keep them.

/// The set bits of a bitset (interval indexes), in increasing order.
pub(crate) fn set_bits(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(word_index, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            Some(word_index * 64 + bit)
        })
    })
}
