//! Seed derivation: every seeded choice is a pure function of a seed and some names, so an
//! episode makes the same choices in any thread, process or environment.

/// Mixes `seed` with byte strings into a new seed (FNV-1a folded through SplitMix64).
pub(crate) fn derive(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ splitmix(seed);
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    splitmix(h)
}

/// SplitMix64's output function: a bijective scrambler of 64 bits.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from a seed.
pub(crate) fn unit(seed: u64) -> f64 {
    (seed >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_separates_parts() {
        assert_eq!(derive(1, &[b"a"]), derive(1, &[b"a"]));
        assert_ne!(derive(1, &[b"a"]), derive(2, &[b"a"]));
        assert_ne!(derive(1, &[b"ab"]), derive(1, &[b"a", b"b"]));
        let mean = (0..1000u64).map(|i| unit(derive(i, &[]))).sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
