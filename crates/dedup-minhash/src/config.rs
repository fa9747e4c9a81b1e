//! What to deduplicate and how: [`DedupConfig`] and its enums.

use serde::{Deserialize, Serialize};

use crate::error::{DedupError, Result};

/// Which near-duplicate detector produces candidate pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// MinHash signatures + LSH banding; candidates verified against `threshold` (Jaccard).
    #[default]
    MinHash,
    /// 64-bit Charikar SimHash with blocked tables; candidates within
    /// [`SimHashConfig::max_hamming`] bits, then verified like MinHash.
    SimHash,
    /// Exact duplicates of the normalized text (lowercased words, see [`crate::shingle`]),
    /// by a 128-bit xxh3 hash. `threshold` is ignored.
    Exact,
}

/// The unit that is compared and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Whole records: a duplicate record is dropped.
    #[default]
    Document,
    /// Paragraphs (separated by blank lines): duplicate paragraphs are cut out of the records that
    /// contain them; the rest of the record is kept (dolma `dedupe.paragraphs` style).
    Paragraph,
    /// Lines (separated by `\n`): duplicate lines are cut out, the rest is kept.
    Line,
    /// Sentences (ending in `.`, `!`, `?` followed by white space, or a line end).
    Sentence,
}

/// How a text is cut into the set of features compared by Jaccard similarity.
///
/// Both kinds work on the *normalized word stream*: the text lowercased (full Unicode mapping),
/// split on runs of non-word characters (`\W+`), and the words joined by single spaces; see
/// [`crate::shingle`] for the exact character classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shingle {
    /// Word n-grams (text-dedup / datasketch convention; a text with fewer than n words is one
    /// shingle made of all its words).
    Words(usize),
    /// Character n-grams (Unicode scalar values) of the normalized word stream.
    Chars(usize),
}

impl Default for Shingle {
    fn default() -> Self {
        Self::Words(5)
    }
}

/// The MinHash hash family, i.e. how the `num_perm` slots are computed from the shingle hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// One-permutation hashing with optimal densification (Li et al. 2012; Shrivastava 2017):
    /// each shingle's 64-bit hash is xored with a key derived from `seed`; its top bits choose
    /// one of `num_perm` bins and its low 32 bits are the value (the minimum per bin is kept);
    /// an empty bin copies the first non-empty bin of its own fixed pseudo-random probe order.
    /// Same estimator as classic MinHash (P[slot equal] = Jaccard), O(1) per shingle.
    #[default]
    OnePermutation,
    /// datasketch 2.0 `scheme="affine32"`: the low 32 bits of the base hash are pre-mixed with the
    /// MurmurHash3 32-bit finalizer, then `a_k * h + b_k mod 2^32` with odd `a_k`. Permutation
    /// parameters come from numpy `RandomState(seed)`, so with [`BaseHash::Sha1`] the signatures
    /// are bit-identical to `datasketch.MinHash(num_perm, seed)`.
    Affine32,
    /// The classic family `(a_k * h + b_k) mod (2^61 - 1)` truncated to 32 bits, exactly as numpy
    /// computes it (the `a_k * h` product wraps modulo 2^64 before the `% p`), i.e. datasketch
    /// `scheme="legacy"` (and text-dedup / BigCode / RedPajama): bit-identical with
    /// [`BaseHash::Sha1`]. Slow (one 64-bit multiply and modulo per slot and shingle).
    Mersenne61,
}

/// The 64-bit hash of a shingle's UTF-8 bytes. 32-bit families use its low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseHash {
    /// `xxh3_64` with seed 0 (fast).
    #[default]
    Xxh3,
    /// The first 8 bytes of SHA-1, little-endian (datasketch `sha1_hash64`; its low 32 bits are
    /// `sha1_hash32`, datasketch's default). Slow; for bit-compatibility only.
    Sha1,
}

/// Which member of a duplicate cluster survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepRule {
    /// The first in input order (lowest (file, line) / position), as text-dedup, BigCode and
    /// data-juicer do.
    #[default]
    First,
    /// The longest text (UTF-8 bytes); ties go to the first.
    Longest,
    /// The highest score (the record's score field; records without one rank lowest); ties go
    /// to the first.
    HighestScore,
}

/// How candidate pairs from the index are confirmed before they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Exact Jaccard similarity of the two shingle sets (64-bit shingle hashes) >= `threshold`.
    /// The candidates' texts are read again (a random read per record for plain JSONL).
    #[default]
    Exact,
    /// Use the signature only: MinHash estimated Jaccard (fraction of equal slots) >= `threshold`;
    /// SimHash: Hamming distance <= `max_hamming` (no Jaccard check). No second read of the texts.
    Signature,
}

/// LSH banding: `bands` bands of `rows` MinHash slots; a pair is a candidate when any band is
/// identical. `bands * rows` must not exceed `num_perm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LshParams {
    /// Number of bands (b).
    pub bands: usize,
    /// Slots per band (r).
    pub rows: usize,
}

impl LshParams {
    /// Probability that a pair with Jaccard similarity `s` becomes a candidate: `1 - (1 - s^r)^b`.
    #[must_use]
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }

    /// The S-curve midpoint `(1/b)^(1/r)`.
    #[must_use]
    pub fn midpoint(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }
}

/// SimHash parameters (used when `method = simhash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimHashConfig {
    /// Largest Hamming distance (of 64 bits) for a candidate pair (Manku et al.: 3).
    pub max_hamming: u32,
    /// Number of blocks the fingerprint is cut into; every choice of `blocks - max_hamming` blocks
    /// is one table (`blocks` must exceed `max_hamming`, at most 64).
    pub blocks: u32,
}

impl Default for SimHashConfig {
    fn default() -> Self {
        Self { max_hamming: 3, blocks: 6 }
    }
}

/// Everything that decides what counts as a duplicate and which copy survives.
///
/// The defaults are: MinHash (one-permutation family, 128 slots, xxh3), word 5-grams, Jaccard
/// threshold 0.8, (bands, rows) from [`crate::optimal_params`] with false-negative weight 0.98,
/// exact-Jaccard verification of every candidate, keep the first record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Detector.
    pub method: Method,
    /// Unit of comparison and removal.
    pub granularity: Granularity,
    /// Features compared by Jaccard similarity.
    pub shingle: Shingle,
    /// Jaccard similarity at or above which two units are duplicates (0 < t <= 1).
    pub threshold: f64,
    /// Number of MinHash slots ("permutations").
    pub num_perm: usize,
    /// MinHash family.
    pub family: Family,
    /// Base hash of a shingle.
    pub base_hash: BaseHash,
    /// Seed of the permutations / bin mixing (numpy `RandomState` seed for the datasketch
    /// families, so at most 2^32 - 1 there). datasketch's default is 1.
    pub seed: u64,
    /// Explicit (bands, rows); `None` chooses them with [`crate::optimal_params`].
    pub lsh: Option<LshParams>,
    /// Weight of the false-negative integral when choosing (bands, rows); the false-positive
    /// weight is `1 - w`. datasketch uses 0.5, which finds only 30-50% of the pairs *at* the
    /// threshold; since every candidate is verified, false positives only cost time.
    pub false_negative_weight: f64,
    /// SimHash parameters.
    pub simhash: SimHashConfig,
    /// Candidate verification.
    pub verify: Verify,
    /// Exact MinHash verification only: a candidate pair whose signatures agree on fewer slots
    /// than a pair *at* the threshold does with probability `1 - prefilter_probability`
    /// (binomial tail) is rejected without reading its texts. 0 verifies every candidate exactly.
    pub prefilter_probability: f64,
    /// Which member of a cluster survives.
    pub keep: KeepRule,
    /// Spans (paragraph / line / sentence granularity) with fewer words than this are never
    /// treated as duplicates (they are always kept).
    pub min_span_words: usize,
    /// LSH / SimHash buckets with at most this many members produce all their pairs as
    /// candidates; larger buckets are linked as a star around a content-chosen center plus a
    /// chain (linear, and independent of input order).
    pub max_bucket_size: usize,
    /// Worker threads (`None`: rayon's global pool, i.e. all cores). Outputs do not depend on it.
    pub threads: Option<usize>,
    /// At most this many skipped (malformed) records are listed in the report; all are counted.
    pub max_reported_skips: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            method: Method::MinHash,
            granularity: Granularity::Document,
            shingle: Shingle::Words(5),
            threshold: 0.8,
            num_perm: 128,
            family: Family::OnePermutation,
            base_hash: BaseHash::Xxh3,
            seed: 1,
            lsh: None,
            false_negative_weight: 0.98,
            simhash: SimHashConfig::default(),
            verify: Verify::Exact,
            prefilter_probability: 1e-12,
            keep: KeepRule::First,
            min_span_words: 5,
            max_bucket_size: 64,
            threads: None,
            max_reported_skips: 10_000,
        }
    }
}

/// The largest `num_perm` accepted.
pub const MAX_NUM_PERM: usize = 2048;

impl DedupConfig {
    /// Checks every field; returns the first problem found.
    ///
    /// # Errors
    /// [`DedupError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(DedupError::config("threshold", format!("must be in (0, 1], got {}", self.threshold)));
        }
        match self.shingle {
            Shingle::Words(0) | Shingle::Chars(0) => {
                return Err(DedupError::config("shingle", "n-gram size must be at least 1"));
            }
            _ => {}
        }
        if self.num_perm == 0 || self.num_perm > MAX_NUM_PERM {
            return Err(DedupError::config("num_perm", format!("must be in 1..={MAX_NUM_PERM}, got {}", self.num_perm)));
        }
        if matches!(self.family, Family::Affine32 | Family::Mersenne61) && self.seed > u64::from(u32::MAX) {
            return Err(DedupError::config(
                "seed",
                format!("the datasketch families take a numpy seed in 0..2^32, got {}", self.seed),
            ));
        }
        if !(self.false_negative_weight >= 0.0 && self.false_negative_weight <= 1.0) {
            return Err(DedupError::config(
                "false_negative_weight",
                format!("must be in [0, 1], got {}", self.false_negative_weight),
            ));
        }
        if !(self.prefilter_probability >= 0.0 && self.prefilter_probability < 1.0) {
            return Err(DedupError::config(
                "prefilter_probability",
                format!("must be in [0, 1), got {}", self.prefilter_probability),
            ));
        }
        if let Some(p) = self.lsh
            && (p.bands == 0 || p.rows == 0 || p.bands * p.rows > self.num_perm)
        {
            return Err(DedupError::config(
                "lsh",
                format!("need bands >= 1, rows >= 1, bands * rows <= num_perm ({}), got {}x{}", self.num_perm, p.bands, p.rows),
            ));
        }
        let s = self.simhash;
        if s.blocks == 0 || s.blocks > 64 || s.max_hamming >= s.blocks {
            return Err(DedupError::config(
                "simhash",
                format!("need max_hamming < blocks <= 64, got max_hamming {} blocks {}", s.max_hamming, s.blocks),
            ));
        }
        if self.max_bucket_size < 2 {
            return Err(DedupError::config("max_bucket_size", "must be at least 2"));
        }
        if self.threads == Some(0) {
            return Err(DedupError::config("threads", "must be at least 1 (or unset for all cores)"));
        }
        Ok(())
    }

    /// The (bands, rows) used by the MinHash index: the explicit [`DedupConfig::lsh`] or
    /// [`crate::optimal_params`] for `threshold`, `num_perm` and the false-negative weight.
    #[must_use]
    pub fn lsh_params(&self) -> LshParams {
        self.lsh.unwrap_or_else(|| {
            crate::lsh::optimal_params(
                self.threshold,
                self.num_perm,
                1.0 - self.false_negative_weight,
                self.false_negative_weight,
            )
        })
    }
}
