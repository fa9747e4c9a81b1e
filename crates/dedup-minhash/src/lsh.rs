//! LSH banding: choosing (bands, rows), band keys, and the candidate-pair index.

use rayon::prelude::*;

use crate::config::LshParams;
use crate::minhash::fmix64;

/// Chooses (bands, rows) for a Jaccard `threshold` and `num_perm` slots by minimizing
/// `fp_weight * FP + fn_weight * FN`, where `FP = ∫₀ᵗ P(s) ds`, `FN = ∫ₜ¹ (1 - P(s)) ds` and
/// `P(s) = 1 - (1 - s^r)^b` (datasketch's `_optimal_param`, same search order and tie rule:
/// the first minimum over b = 1..n, r = 1..n/b wins).
#[must_use]
pub fn optimal_params(threshold: f64, num_perm: usize, fp_weight: f64, fn_weight: f64) -> LshParams {
    type Memo = std::sync::Mutex<std::collections::HashMap<(u64, usize, u64, u64), LshParams>>;
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    let key = (threshold.to_bits(), num_perm, fp_weight.to_bits(), fn_weight.to_bits());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(p) = memo.lock().ok().and_then(|m| m.get(&key).copied()) {
        return p;
    }
    let p = compute_optimal_params(threshold, num_perm, fp_weight, fn_weight);
    if let Ok(mut m) = memo.lock() {
        m.insert(key, p);
    }
    p
}

fn compute_optimal_params(threshold: f64, num_perm: usize, fp_weight: f64, fn_weight: f64) -> LshParams {
    let mut best = LshParams { bands: 1, rows: num_perm.max(1) };
    let mut min_error = f64::INFINITY;
    for b in 1..=num_perm {
        let max_r = num_perm / b;
        for r in 1..=max_r {
            let p = LshParams { bands: b, rows: r };
            let fp = integrate(|s| p.candidate_probability(s), 0.0, threshold);
            let fneg = integrate(|s| 1.0 - p.candidate_probability(s), threshold, 1.0);
            let error = fp * fp_weight + fneg * fn_weight;
            if error < min_error {
                min_error = error;
                best = p;
            }
        }
    }
    best
}

/// Adaptive Simpson quadrature (absolute tolerance 1e-10).
fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    fn simpson(fa: f64, fm: f64, fb: f64, a: f64, b: f64) -> f64 {
        (b - a) / 6.0 * (fa + 4.0 * fm + fb)
    }
    #[allow(clippy::too_many_arguments)]
    fn rec(f: &dyn Fn(f64) -> f64, a: f64, b: f64, fa: f64, fm: f64, fb: f64, whole: f64, eps: f64, depth: u32) -> f64 {
        let m = 0.5 * (a + b);
        let (lm, rm) = (0.5 * (a + m), 0.5 * (m + b));
        let (flm, frm) = (f(lm), f(rm));
        let left = simpson(fa, flm, fm, a, m);
        let right = simpson(fm, frm, fb, m, b);
        let delta = left + right - whole;
        if depth == 0 || delta.abs() <= 15.0 * eps {
            return left + right + delta / 15.0;
        }
        rec(f, a, m, fa, flm, fm, left, eps / 2.0, depth - 1) + rec(f, m, b, fm, frm, fb, right, eps / 2.0, depth - 1)
    }
    if b <= a {
        return 0.0;
    }
    // Split the interval first so narrow steep regions of the S-curve are not missed.
    let pieces = 4;
    let h = (b - a) / f64::from(pieces);
    (0..pieces)
        .map(|i| {
            let (x0, x1) = (a + h * f64::from(i), a + h * f64::from(i + 1));
            let (f0, f1, fm) = (f(x0), f(x1), f(0.5 * (x0 + x1)));
            rec(&f, x0, x1, f0, fm, f1, simpson(f0, fm, f1, x0, x1), 1e-10 / f64::from(pieces), 40)
        })
        .sum()
}

/// Odd multipliers of the band-key polynomial (SplitMix64 outputs), one per slot position.
const fn band_multipliers() -> [u64; 64] {
    let mut out = [0u64; 64];
    let mut state = 0x6261_6e64_6b65_7973u64; // "bandkeys"
    let mut i = 0;
    while i < 64 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out[i] = (z ^ (z >> 31)) | 1;
        i += 1;
    }
    out
}
static BAND_MULS: [u64; 64] = band_multipliers();

/// The key of band `band` (slots `band*rows .. band*rows+rows` of a signature):
/// `fmix64(seed(band) + Σ slot[i] · K[i])` with fixed random odd multipliers `K[i]`, so that
/// the products are independent (fast) and any slot difference changes the key except with
/// probability ~2^-64. Keys of different bands never mean the same bucket: the band index
/// seeds the sum.
#[inline]
#[must_use]
pub fn band_key(band: usize, slots: &[u32]) -> u64 {
    let mut h = fmix64((band as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for (i, &v) in slots.iter().enumerate() {
        let k = BAND_MULS[i % 64].wrapping_add(((i / 64) as u64) << 1);
        h = h.wrapping_add(u64::from(v).wrapping_mul(k));
    }
    fmix64(h)
}

/// Packs an unordered pair of unit numbers into one sortable u64 (`lo << 32 | hi`).
#[inline]
pub(crate) fn pack_pair(a: u32, b: u32) -> u64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    (u64::from(lo) << 32) | u64::from(hi)
}

/// Unpacks [`pack_pair`].
#[inline]
pub(crate) fn unpack_pair(p: u64) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// Turns `(bucket key, member)` entries into candidate pairs.
///
/// Entries are sorted; every run of equal keys is a bucket. A bucket of at most `max_bucket`
/// members yields all its pairs; a larger one yields a star around the member with the smallest
/// `content_key` (ties: smaller member number) plus the chain of consecutive members in
/// `content_key` order, which connects the bucket with a linear number of pairs. Output: sorted,
/// de-duplicated packed pairs.
pub(crate) fn bucket_pairs(entries: &mut Vec<(u64, u32)>, max_bucket: usize, content_key: &(dyn Fn(u32) -> u64 + Sync)) -> Vec<u64> {
    sort_hashed(entries);
    // Find bucket boundaries.
    let mut starts = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && entries[j].0 == entries[i].0 {
            j += 1;
        }
        if j - i >= 2 {
            starts.push((i, j));
        }
        i = j;
    }
    let mut pairs: Vec<u64> = starts
        .par_iter()
        .flat_map_iter(|&(s, e)| {
            let members: Vec<u32> = entries[s..e].iter().map(|x| x.1).collect();
            let mut out = Vec::new();
            if members.len() <= max_bucket {
                for x in 0..members.len() {
                    for y in x + 1..members.len() {
                        if members[x] != members[y] {
                            out.push(pack_pair(members[x], members[y]));
                        }
                    }
                }
            } else {
                let mut keyed: Vec<(u64, u32)> = members.iter().map(|&m| (content_key(m), m)).collect();
                keyed.sort_unstable();
                keyed.dedup_by_key(|x| x.1);
                let center = keyed[0].1;
                for w in keyed.windows(2) {
                    out.push(pack_pair(w[0].1, w[1].1));
                    if w[1].1 != center {
                        out.push(pack_pair(center, w[1].1));
                    }
                }
            }
            out
        })
        .collect();
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs
}

/// Sorts `(hash, id)` entries whose hashes are uniformly distributed: one counting-sort pass on
/// the top bits (O(n)), then each small bucket is sorted. Same result as a full sort.
pub(crate) fn sort_hashed(entries: &mut Vec<(u64, u32)>) {
    let n = entries.len();
    if n < 4096 {
        entries.sort_unstable();
        return;
    }
    // About 4 entries per bucket.
    let bits = (usize::BITS - (n / 4).leading_zeros()).clamp(8, 24);
    let shift = 64 - bits;
    let mut counts = vec![0usize; (1 << bits) + 1];
    for e in entries.iter() {
        counts[(e.0 >> shift) as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let starts = counts.clone();
    let mut out = vec![(0u64, 0u32); n];
    for &e in entries.iter() {
        let b = (e.0 >> shift) as usize;
        out[counts[b]] = e;
        counts[b] += 1;
    }
    for w in starts.windows(2) {
        if w[1] - w[0] > 1 {
            out[w[0]..w[1]].sort_unstable();
        }
    }
    *entries = out;
}

/// An in-memory MinHash LSH index: insert signatures, then list candidate pairs or query.
///
/// ```
/// use infuse_dedup_minhash::{LshIndex, LshParams};
/// let mut index = LshIndex::new(LshParams { bands: 2, rows: 2 });
/// index.insert(7, &[1, 2, 3, 4]);
/// index.insert(9, &[1, 2, 5, 6]); // shares band 0
/// index.insert(11, &[8, 8, 8, 8]);
/// assert_eq!(index.candidate_pairs(64), vec![(7, 9)]);
/// assert_eq!(index.query(&[0, 0, 3, 4]), vec![7]);
/// ```
#[derive(Debug, Clone)]
pub struct LshIndex {
    params: LshParams,
    /// Per band: (key, id), sorted lazily.
    bands: Vec<Vec<(u64, u32)>>,
    sorted: bool,
}

impl LshIndex {
    /// An empty index.
    #[must_use]
    pub fn new(params: LshParams) -> Self {
        Self { params, bands: vec![Vec::new(); params.bands], sorted: true }
    }

    /// The banding.
    #[must_use]
    pub fn params(&self) -> LshParams {
        self.params
    }

    /// Adds `id` with `signature` (at least `bands * rows` slots; extra slots are ignored).
    ///
    /// # Panics
    /// Never; a too-short signature is indexed only in the bands it covers.
    pub fn insert(&mut self, id: u32, signature: &[u32]) {
        let r = self.params.rows;
        for (band, entries) in self.bands.iter_mut().enumerate() {
            if let Some(slots) = signature.get(band * r..band * r + r) {
                entries.push((band_key(band, slots), id));
            }
        }
        self.sorted = false;
    }

    fn ensure_sorted(&mut self) {
        if !self.sorted {
            for b in &mut self.bands {
                b.sort_unstable();
            }
            self.sorted = true;
        }
    }

    /// Ids sharing at least one band with `signature`, ascending.
    pub fn query(&mut self, signature: &[u32]) -> Vec<u32> {
        self.ensure_sorted();
        let r = self.params.rows;
        let mut out = Vec::new();
        for (band, entries) in self.bands.iter().enumerate() {
            let Some(slots) = signature.get(band * r..band * r + r) else { continue };
            let key = band_key(band, slots);
            let start = entries.partition_point(|e| e.0 < key);
            out.extend(entries[start..].iter().take_while(|e| e.0 == key).map(|e| e.1));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// All candidate pairs `(lo, hi)`, ascending (see [`crate::DedupConfig::max_bucket_size`] for
    /// how buckets larger than `max_bucket` are linked; their center is the smallest id here).
    pub fn candidate_pairs(&mut self, max_bucket: usize) -> Vec<(u32, u32)> {
        let mut entries: Vec<(u64, u32)> = self.bands.iter().flatten().copied().collect();
        bucket_pairs(&mut entries, max_bucket.max(2), &|id| u64::from(id)).into_iter().map(unpack_pair).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_table_values() {
        // dataprep.md §4.2 (datasketch 2.0.0 `_optimal_param`).
        assert_eq!(optimal_params(0.8, 128, 0.5, 0.5), LshParams { bands: 9, rows: 13 });
        assert_eq!(optimal_params(0.9, 128, 0.5, 0.5), LshParams { bands: 5, rows: 25 });
        assert_eq!(optimal_params(0.8, 128, 0.1, 0.9), LshParams { bands: 14, rows: 9 });
        assert_eq!(optimal_params(0.9, 256, 0.1, 0.9), LshParams { bands: 13, rows: 19 });
        assert_eq!(optimal_params(0.7, 250, 0.5, 0.5), LshParams { bands: 25, rows: 10 });
    }

    #[test]
    fn hashed_sort_equals_sort() {
        let mut state = 7u64;
        let mut v: Vec<(u64, u32)> = (0..20_000u32)
            .map(|i| (crate::minhash::splitmix64(&mut state) >> (i % 3 * 20), i % 17))
            .chain((0..100).map(|i| (42, i)))
            .collect();
        let mut expect = v.clone();
        expect.sort_unstable();
        sort_hashed(&mut v);
        assert_eq!(v, expect);
    }

    #[test]
    fn big_buckets_are_linked_linearly() {
        let mut entries: Vec<(u64, u32)> = (0..100u32).map(|i| (7, i)).collect();
        let pairs = bucket_pairs(&mut entries, 10, &|m| u64::from(99 - m));
        // Star around member 99 (smallest content key) + chain: 99 + 98 pairs, one shared.
        assert_eq!(pairs.len(), 99 + 98);
        assert!(pairs.contains(&pack_pair(99, 0)));
    }
}
