//! Seeded randomness: one ChaCha stream per person (and per aggregate cell), so a record's
//! content depends only on the seed and the person's index, never on generation order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator's random stream type.
pub type SimRng = ChaCha8Rng;

/// SplitMix64 finaliser: a cheap bijective mixer used to derive independent seeds.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a stream for `(seed, domain, index)`; domains keep persons and aggregate cells apart.
pub fn stream(seed: u64, domain: u64, index: u64) -> SimRng {
    let key = mix(mix(seed ^ mix(domain)) ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    ChaCha8Rng::seed_from_u64(key)
}

/// FNV-1a over bytes, then mixed: a stable hash for deriving ids from keys.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Formats 128 random bits as a version-4 UUID string.
pub fn uuid_from(hi: u64, lo: u64) -> String {
    let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// A random version-4 UUID string drawn from `rng`.
pub fn uuid(rng: &mut SimRng) -> String {
    let hi: u64 = rng.random();
    let lo: u64 = rng.random();
    uuid_from(hi, lo)
}

/// A random string of `len` characters from the URL-safe base64 alphabet (WeChat-style ids).
pub fn token(rng: &mut SimRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A standard normal draw (Box–Muller); `rand_distr` is not in the workspace table.
pub fn normal(rng: &mut SimRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Poisson draw by Knuth's product method; fine for the small means used here.
pub fn poisson(rng: &mut SimRng, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let mut k = 0u32;
    let mut p: f64 = rng.random();
    while p > limit && k < 1000 {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

/// An exponential draw with the given mean.
pub fn exponential(rng: &mut SimRng, mean: f64) -> f64 {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    -mean * u.ln()
}

/// Picks an index with probability proportional to `weights` (all non-negative, not all zero).
pub fn weighted(rng: &mut SimRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

/// A bijection on `0..10^digits` keyed by the seed, so per-person numbers (phones, cards) are
/// unique by construction instead of by luck.
pub fn permute_decimal(index: u64, seed: u64, digits: u32) -> u64 {
    let modulus = 10u64.pow(digits);
    // An odd multiplier not divisible by 5 is a unit modulo 10^k, so the affine map is a bijection.
    let mut a = mix(seed) % modulus;
    a = a - a % 10 + 7;
    let b = mix(seed ^ 0x5555) % modulus;
    ((u128::from(index % modulus) * u128::from(a) + u128::from(b)) % u128::from(modulus)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_injective_on_a_small_range() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000 {
            assert!(seen.insert(permute_decimal(i, 42, 4)));
        }
    }

    #[test]
    fn streams_differ_by_index_and_repeat_by_key() {
        let a: u64 = stream(1, 2, 3).random();
        let b: u64 = stream(1, 2, 3).random();
        let c: u64 = stream(1, 2, 4).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_from(u64::MAX, 0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(&u[19..20], "8");
    }
}
