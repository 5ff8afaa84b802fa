//! The deterministic randomness of curricula: SplitMix64 and a Fisher–Yates shuffle.
//!
//! Implemented here, not taken from `rand`, so that the random choices are part of rung's
//! format: the same seed gives the same sub-tasks and the same batch order on every platform
//! and with every version of the dependencies.

/// Mixes words into one seed (SplitMix64's finaliser over a running state).
pub fn mix(parts: &[u64]) -> u64 {
    let mut state: u64 = 0x243f_6a88_85a3_08d3;
    for &part in parts {
        state = finalise(state ^ finalise(part.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    state
}

/// A stable hash of text (FNV-1a, 64 bit).
pub fn hash_str(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        finalise(self.0)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (rejection sampling).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Shuffles in place (Fisher–Yates, from the back).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_streams() {
        // Part of the format: changing these changes every random curriculum and batch order.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut v: Vec<u32> = (0..8).collect();
        Rng::new(mix(&[1, 2])).shuffle(&mut v);
        let mut w: Vec<u32> = (0..8).collect();
        Rng::new(mix(&[1, 2])).shuffle(&mut w);
        assert_eq!(v, w);
        assert_ne!(v, (0..8).collect::<Vec<_>>());
        assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
        assert_eq!(hash_str(""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let x = rng.below(5) as usize;
            seen[x] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
