//! numpy's legacy `RandomState` (MT19937 + masked bounded integers), enough to reproduce the
//! permutation parameters datasketch draws with `np.random.RandomState(seed).randint(...)`.

const N: usize = 624;
const M: usize = 397;

/// MT19937 seeded like numpy's `RandomState(seed)` (`init_genrand`).
pub(crate) struct Mt19937 {
    mt: [u32; N],
    idx: usize,
}

impl Mt19937 {
    pub(crate) fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Self { mt, idx: N }
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
            let mut v = self.mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.idx = 0;
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            self.twist();
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's legacy `next_uint64`: high word first.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        let lo = u64::from(self.next_u32());
        (hi << 32) | lo
    }

    /// `randint(low, high, dtype=uint64)` for one value (masked rejection sampling, as the legacy
    /// `RandomState` does). Requires `high - 1 - low > 0xFFFF_FFFF`.
    pub(crate) fn randint_u64_wide(&mut self, low: u64, high: u64) -> u64 {
        let rng = high - 1 - low;
        debug_assert!(rng > 0xFFFF_FFFF);
        let mask = gen_mask(rng);
        loop {
            let v = self.next_u64() & mask;
            if v <= rng {
                return low + v;
            }
        }
    }

    /// `randint(low, high, dtype=uint32)` for one value of an array draw (masked; a full 2^32
    /// range takes the raw 32-bit output).
    pub(crate) fn randint_u32(&mut self, low: u64, high: u64) -> u32 {
        let rng = high - 1 - low;
        if rng == 0xFFFF_FFFF {
            return (low as u32).wrapping_add(self.next_u32());
        }
        let mask = gen_mask(rng) as u32;
        loop {
            let v = self.next_u32() & mask;
            if u64::from(v) <= rng {
                return low as u32 + v;
            }
        }
    }
}

/// Smallest `2^k - 1 >= rng`.
fn gen_mask(rng: u64) -> u64 {
    let mut mask = rng;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask | (mask >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_output() {
        // First outputs of init_genrand(5489), the reference MT19937 test vector.
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        assert_eq!(mt.next_u32(), 581_869_302);
        assert_eq!(mt.next_u32(), 3_890_346_734);
    }

    #[test]
    fn mask() {
        assert_eq!(gen_mask((1 << 61) - 3), (1 << 61) - 1);
        assert_eq!(gen_mask(0x7fff_ffff), 0x7fff_ffff);
        assert_eq!(gen_mask(5), 7);
    }
}
