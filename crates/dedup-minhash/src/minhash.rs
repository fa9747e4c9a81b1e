//! MinHash signatures: the three [`Family`] implementations behind one [`MinHasher`].

use crate::config::{BaseHash, DedupConfig, Family, Shingle};
use crate::numpy_rng::Mt19937;
use crate::shingle::Shingler;

/// The Mersenne prime 2^61 - 1.
pub const MERSENNE_61: u64 = (1 << 61) - 1;

/// MurmurHash3's 32-bit finalizer (a bijection on u32).
#[inline]
#[must_use]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3's 64-bit finalizer (a bijection on u64).
#[inline]
#[must_use]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// SplitMix64 step (used to derive keys and probe sequences from the seed).
#[inline]
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Computes MinHash signatures (`num_perm` u32 slots) of texts or of raw 64-bit hash sets.
///
/// Identical sets always get identical signatures, and for each slot
/// P[slot(A) == slot(B)] ≈ Jaccard(A, B), so [`estimate_jaccard`] estimates the Jaccard
/// similarity. Cheap to share between threads (`&self` methods only).
#[derive(Debug, Clone)]
pub struct MinHasher {
    family: Family,
    base: BaseHash,
    shingle: Shingle,
    num_perm: usize,
    /// Affine32: odd multipliers and offsets (numpy draws).
    a32: Vec<u32>,
    b32: Vec<u32>,
    /// Mersenne61: multipliers in [1, p) and offsets in [0, p) (numpy draws).
    a64: Vec<u64>,
    b64: Vec<u64>,
    /// One-permutation hashing: mixing key and, per bin, the probe order of the other bins.
    oph_key: u64,
    probes: Vec<u16>,
    /// `64 - log2(num_perm)` when `num_perm` is a power of two (> 1).
    bin_shift: Option<u32>,
}

impl MinHasher {
    /// A hasher for the MinHash settings of `config` (`num_perm`, `family`, `base_hash`, `seed`,
    /// `shingle`). The config should have passed [`DedupConfig::validate`].
    #[must_use]
    pub fn new(config: &DedupConfig) -> Self {
        Self::with_params(config.num_perm, config.family, config.base_hash, config.seed, config.shingle)
    }

    /// A hasher from explicit parameters (`num_perm` in 1..=2048; `seed` < 2^32 for the
    /// datasketch families, whose numpy seed is the low 32 bits).
    #[must_use]
    pub fn with_params(num_perm: usize, family: Family, base: BaseHash, seed: u64, shingle: Shingle) -> Self {
        let num_perm = num_perm.clamp(1, crate::config::MAX_NUM_PERM);
        let mut h = Self {
            family,
            base,
            shingle,
            num_perm,
            a32: Vec::new(),
            b32: Vec::new(),
            a64: Vec::new(),
            b64: Vec::new(),
            oph_key: 0,
            probes: Vec::new(),
            bin_shift: (num_perm.is_power_of_two() && num_perm > 1).then(|| 64 - num_perm.trailing_zeros()),
        };
        match family {
            Family::Affine32 => {
                // datasketch: a = randint(0, 2^31, n, uint32) * 2 + 1; b = randint(0, 2^32, n, uint32).
                let mut rng = Mt19937::new(seed as u32);
                h.a32 = (0..num_perm).map(|_| rng.randint_u32(0, 1 << 31).wrapping_mul(2).wrapping_add(1)).collect();
                h.b32 = (0..num_perm).map(|_| rng.randint_u32(0, 1 << 32)).collect();
            }
            Family::Mersenne61 => {
                // datasketch legacy: per permutation, a = randint(1, p), then b = randint(0, p).
                let mut rng = Mt19937::new(seed as u32);
                for _ in 0..num_perm {
                    h.a64.push(rng.randint_u64_wide(1, MERSENNE_61));
                    h.b64.push(rng.randint_u64_wide(0, MERSENNE_61));
                }
            }
            Family::OnePermutation => {
                let mut state = seed ^ 0x6f70_685f_6465_6475; // "oph_dedu"
                h.oph_key = splitmix64(&mut state);
                let k = num_perm;
                h.probes = Vec::with_capacity(k * k.saturating_sub(1));
                let mut order: Vec<u16> = Vec::with_capacity(k);
                for bin in 0..k {
                    order.clear();
                    order.extend((0..k as u16).filter(|&j| usize::from(j) != bin));
                    // Fisher-Yates with a per-bin SplitMix64 stream.
                    let mut s = h.oph_key ^ (bin as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    for i in (1..order.len()).rev() {
                        let j = ((u128::from(splitmix64(&mut s)) * (i as u128 + 1)) >> 64) as usize;
                        order.swap(i, j);
                    }
                    h.probes.extend_from_slice(&order);
                }
            }
        }
        h
    }

    /// Number of slots.
    #[must_use]
    pub fn num_perm(&self) -> usize {
        self.num_perm
    }

    /// The family.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// The permutation parameters `(a, b)` of the datasketch families, widened to u64
    /// (empty for one-permutation hashing).
    #[must_use]
    pub fn permutations(&self) -> (Vec<u64>, Vec<u64>) {
        match self.family {
            Family::Affine32 => (self.a32.iter().map(|&x| u64::from(x)).collect(), self.b32.iter().map(|&x| u64::from(x)).collect()),
            Family::Mersenne61 => (self.a64.clone(), self.b64.clone()),
            Family::OnePermutation => (Vec::new(), Vec::new()),
        }
    }

    /// The signature of `text` (its shingles under the configured [`Shingle`] and base hash).
    #[must_use]
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let mut out = vec![0; self.num_perm];
        self.signature_into(text, &mut out);
        out
    }

    /// Writes the signature of `text` into `out` (length `num_perm`); returns the word count.
    pub fn signature_into(&self, text: &str, out: &mut [u32]) -> usize {
        Shingler::with(self.shingle, self.base, |sh| {
            let mut acc = Accumulator::new(self, out);
            let n = sh.for_each_hash(text, |h| acc.push(h));
            acc.finish();
            n
        })
    }

    /// The signature of an arbitrary set given by its 64-bit base hashes (duplicates allowed).
    /// The hashes must be uniformly distributed (outputs of a good hash function, not raw ids):
    /// one-permutation hashing uses their bits directly. An empty set gives all slots `u32::MAX`.
    pub fn signature_of_hashes(&self, hashes: impl IntoIterator<Item = u64>, out: &mut [u32]) {
        let mut acc = Accumulator::new(self, out);
        for h in hashes {
            acc.push(h);
        }
        acc.finish();
    }
}

/// Estimated Jaccard similarity: the fraction of equal slots.
#[must_use]
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let equal = a.iter().zip(b).filter(|(x, y)| x == y).count();
    equal as f64 / a.len() as f64
}

/// Exact Jaccard similarity of two sorted, de-duplicated sets (1.0 for two empty sets).
#[must_use]
pub fn jaccard_sorted(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = intersection_size(a, b);
    inter as f64 / (a.len() + b.len() - inter) as f64
}

fn intersection_size(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        n += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    n
}

/// Streaming signature state for one set.
struct Accumulator<'a> {
    hasher: &'a MinHasher,
    out: &'a mut [u32],
    filled: [u64; crate::config::MAX_NUM_PERM / 64],
    any: bool,
}

impl<'a> Accumulator<'a> {
    fn new(hasher: &'a MinHasher, out: &'a mut [u32]) -> Self {
        out.fill(u32::MAX);
        Self { hasher, out, filled: [0; crate::config::MAX_NUM_PERM / 64], any: false }
    }

    #[inline]
    fn push(&mut self, h: u64) {
        self.any = true;
        let hs = self.hasher;
        match hs.family {
            Family::OnePermutation => {
                // The base hash is already uniform (xxh3 / SHA-1); xor with the seeded key picks
                // a different bin partition per seed.
                let g = h ^ hs.oph_key;
                let bin = match hs.bin_shift {
                    // A power-of-two `num_perm`: the top bits (same as the general formula).
                    Some(shift) => (g >> shift) as usize,
                    None => (((g >> 32) * hs.num_perm as u64) >> 32) as usize,
                };
                let v = g as u32;
                if let Some(slot) = self.out.get_mut(bin) {
                    *slot = (*slot).min(v);
                }
                self.filled[bin >> 6] |= 1 << (bin & 63);
            }
            Family::Affine32 => affine32_update(&hs.a32, &hs.b32, fmix32(h as u32), self.out),
            Family::Mersenne61 => {
                let x = h & 0xffff_ffff;
                for ((slot, &a), &b) in self.out.iter_mut().zip(&hs.a64).zip(&hs.b64) {
                    let v = ((a.wrapping_mul(x).wrapping_add(b) % MERSENNE_61) & 0xffff_ffff) as u32;
                    *slot = (*slot).min(v);
                }
            }
        }
    }

    fn finish(self) {
        let hs = self.hasher;
        if hs.family != Family::OnePermutation || !self.any {
            return;
        }
        let k = hs.num_perm;
        let is_filled = |bin: usize| self.filled[bin >> 6] >> (bin & 63) & 1 == 1;
        for bin in 0..k {
            if is_filled(bin) {
                continue;
            }
            let probes = &hs.probes[bin * (k - 1)..(bin + 1) * (k - 1)];
            if let Some(&src) = probes.iter().find(|&&j| is_filled(usize::from(j))) {
                self.out[bin] = self.out[usize::from(src)];
            }
        }
    }
}

/// `out[k] = min(out[k], a[k] * x + b[k])` in wrapping u32 arithmetic (auto-vectorized).
#[inline]
fn affine32_update(a: &[u32], b: &[u32], x: u32, out: &mut [u32]) {
    for ((slot, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *slot = (*slot).min(a.wrapping_mul(x).wrapping_add(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(family: Family, k: usize) -> MinHasher {
        MinHasher::with_params(k, family, BaseHash::Xxh3, 1, Shingle::Words(1))
    }

    #[test]
    fn identical_sets_identical_signatures_and_order_free() {
        for family in [Family::OnePermutation, Family::Affine32, Family::Mersenne61] {
            let h = hasher(family, 64);
            let mut a = vec![0; 64];
            let mut b = vec![0; 64];
            h.signature_of_hashes([1u64, 2, 3, 99], &mut a);
            h.signature_of_hashes([99u64, 3, 3, 2, 1], &mut b);
            assert_eq!(a, b, "{family:?}");
            assert!((estimate_jaccard(&a, &b) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn oph_densification_fills_every_bin_from_a_real_value() {
        let h = hasher(Family::OnePermutation, 128);
        let mut sig = vec![0; 128];
        h.signature_of_hashes([42u64], &mut sig);
        assert!(sig.iter().all(|&v| v == sig[0]), "one element: all bins hold its value");
        let mut empty = vec![0; 128];
        h.signature_of_hashes(std::iter::empty(), &mut empty);
        assert!(empty.iter().all(|&v| v == u32::MAX));
    }

    #[test]
    fn probe_rows_are_permutations_of_the_other_bins() {
        let h = hasher(Family::OnePermutation, 16);
        for bin in 0..16 {
            let mut row: Vec<u16> = h.probes[bin * 15..(bin + 1) * 15].to_vec();
            row.sort_unstable();
            let expect: Vec<u16> = (0..16).filter(|&j| j != bin as u16).collect();
            assert_eq!(row, expect);
        }
    }

    #[test]
    fn exact_jaccard() {
        assert!((jaccard_sorted(&[1, 2, 3, 4], &[3, 4, 5]) - 0.4).abs() < 1e-12);
        assert!((jaccard_sorted(&[], &[]) - 1.0).abs() < 1e-12);
        assert!(jaccard_sorted(&[1], &[]).abs() < 1e-12);
    }
}
