//! 64-bit Charikar SimHash and the blocked-table index of Manku et al. (2007).

use crate::config::SimHashConfig;
use crate::lsh::bucket_pairs;
use crate::minhash::fmix64;

/// The SimHash of a multiset of 64-bit feature hashes: bit `i` is set when more features have
/// bit `i` set than clear (each occurrence votes once; ties give 0).
#[must_use]
pub fn simhash(hashes: impl IntoIterator<Item = u64>) -> u64 {
    let mut acc = SimHashAccumulator::default();
    for h in hashes {
        acc.push(h);
    }
    acc.finish()
}

/// Streaming [`simhash`]: push feature hashes, then [`SimHashAccumulator::finish`].
#[derive(Debug, Clone)]
pub struct SimHashAccumulator {
    counts: [i32; 64],
}

impl Default for SimHashAccumulator {
    fn default() -> Self {
        Self { counts: [0; 64] }
    }
}

impl SimHashAccumulator {
    /// Adds one feature occurrence.
    #[inline]
    pub fn push(&mut self, h: u64) {
        for (bit, c) in self.counts.iter_mut().enumerate() {
            *c += (((h >> bit) & 1) as i32) * 2 - 1;
        }
    }

    /// The fingerprint.
    #[must_use]
    pub fn finish(&self) -> u64 {
        self.counts.iter().enumerate().fold(0u64, |fp, (bit, &c)| if c > 0 { fp | (1 << bit) } else { fp })
    }
}

/// Hamming distance of two fingerprints.
#[inline]
#[must_use]
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Bit masks of the `blocks` contiguous blocks (sizes differ by at most one bit).
fn block_masks(blocks: u32) -> Vec<u64> {
    let blocks = blocks.clamp(1, 64);
    let mut out = Vec::with_capacity(blocks as usize);
    let mut start = 0u32;
    for i in 0..blocks {
        let width = 64 / blocks + u32::from(i < 64 % blocks);
        let mask = if width == 64 { u64::MAX } else { ((1u64 << width) - 1) << start };
        out.push(mask);
        start += width;
    }
    out
}

/// The table masks: one per choice of `blocks - max_hamming` blocks. Any two fingerprints within
/// `max_hamming` bits agree on all bits of at least one table mask.
#[must_use]
pub fn table_masks(config: SimHashConfig) -> Vec<u64> {
    let masks = block_masks(config.blocks);
    let keep = (config.blocks - config.max_hamming.min(config.blocks - 1)) as usize;
    let mut out = Vec::new();
    let mut combo: Vec<usize> = (0..keep).collect();
    loop {
        out.push(combo.iter().fold(0u64, |m, &i| m | masks[i]));
        // Next combination in lexicographic order.
        let n = masks.len();
        let mut i = keep;
        loop {
            if i == 0 {
                return out;
            }
            i -= 1;
            if combo[i] < n - keep + i {
                break;
            }
        }
        combo[i] += 1;
        for j in i + 1..keep {
            combo[j] = combo[j - 1] + 1;
        }
    }
}

/// Candidate pairs `(lo, hi)` (indices into `fingerprints`) within `max_hamming` bits, found
/// through the blocked tables and then checked; ascending.
#[must_use]
pub fn simhash_pairs(fingerprints: &[u64], config: SimHashConfig, max_bucket: usize) -> Vec<(u32, u32)> {
    let masks = table_masks(config);
    let mut entries = Vec::with_capacity(fingerprints.len() * masks.len());
    for (t, &mask) in masks.iter().enumerate() {
        let seed = fmix64((t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        entries.extend(fingerprints.iter().enumerate().map(|(i, &fp)| (fmix64((fp & mask) ^ seed), i as u32)));
    }
    let key = |m: u32| fingerprints.get(m as usize).copied().unwrap_or(0);
    bucket_pairs(&mut entries, max_bucket.max(2), &key)
        .into_iter()
        .map(crate::lsh::unpack_pair)
        .filter(|&(a, b)| hamming(fingerprints[a as usize], fingerprints[b as usize]) <= config.max_hamming)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes() {
        assert_eq!(simhash([0b101u64, 0b100, 0b001]), 0b101);
        assert_eq!(simhash(std::iter::empty()), 0);
    }

    #[test]
    fn tables_cover_all_close_pairs() {
        let cfg = SimHashConfig { max_hamming: 3, blocks: 6 };
        assert_eq!(table_masks(cfg).len(), 20);
        let base = 0x0123_4567_89ab_cdefu64;
        // Flip 3 bits anywhere: always found.
        let fps = vec![base, base ^ (1 << 0) ^ (1 << 20) ^ (1 << 63), base ^ 0xf, !base];
        let pairs = simhash_pairs(&fps, cfg, 64);
        assert_eq!(pairs, vec![(0, 1)]);
    }
}
