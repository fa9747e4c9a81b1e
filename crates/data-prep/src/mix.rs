//! Mixing sources by token proportions, and ordering documents: seeded shuffle, curriculum, or
//! In-Context Pretraining (similar documents next to each other).

use std::collections::HashMap;

use infuse_dedup_minhash::{BaseHash, Family, MinHasher, Shingle, estimate_jaccard};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::{Error, Result};

/// One source's available tokens and its wishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceBudget {
    /// Source name.
    pub name: String,
    /// Tokens available (after cleaning, train split).
    pub tokens: u64,
    /// Relative weight (normalized over all sources).
    pub weight: f64,
    /// Maximum number of passes over this source (up-sampling limit; 1 = no repetition).
    pub max_epochs: f64,
}

/// The plan for one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixEntry {
    /// Source name.
    pub name: String,
    /// Tokens available.
    pub available_tokens: u64,
    /// Target fraction of the mix (normalized weight).
    pub target_fraction: f64,
    /// Target tokens.
    pub target_tokens: u64,
    /// target / available: above 1 up-samples (repeats), below 1 down-samples.
    pub epochs: f64,
    /// Tokens actually selected (documents are not cut, so this differs slightly).
    pub achieved_tokens: u64,
    /// achieved / total achieved.
    pub achieved_fraction: f64,
    /// Documents selected (repeats counted).
    pub documents: u64,
}

/// The mix over all sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MixPlan {
    /// Per source, in configuration order.
    pub sources: Vec<MixEntry>,
    /// Total target tokens.
    pub total_target_tokens: u64,
    /// Total selected tokens.
    pub total_achieved_tokens: u64,
    /// Notes (e.g. a target capped by `max_epochs`).
    pub notes: Vec<String>,
}

/// Compute target tokens per source. Without `total_tokens`, the largest total is used for which
/// no source exceeds its `max_epochs` (so the scarcest source, relative to its weight, is used
/// `max_epochs` times and the others are down-sampled to keep the proportions).
pub fn plan_mix(sources: &[SourceBudget], total_tokens: Option<u64>) -> Result<MixPlan> {
    let wsum: f64 = sources.iter().map(|s| s.weight.max(0.0)).sum();
    if sources.iter().any(|s| {
        !s.weight.is_finite() || s.weight < 0.0 || !s.max_epochs.is_finite() || s.max_epochs <= 0.0
    }) {
        return Err(Error::Config(
            "mix: weights must be >= 0 and max_epochs > 0".into(),
        ));
    }
    if wsum <= 0.0 {
        return Err(Error::Config(
            "mix: at least one source needs a positive weight".into(),
        ));
    }
    let mut notes = Vec::new();
    // A source left without tokens (everything filtered, or no input) cannot take its share:
    // the others are renormalized rather than shrinking the whole mix to nothing.
    for s in sources.iter().filter(|s| s.tokens == 0 && s.weight > 0.0) {
        notes.push(format!(
            "source `{}` has no tokens left; its weight {} is ignored",
            s.name, s.weight
        ));
    }
    let effective = |s: &SourceBudget| if s.tokens == 0 { 0.0 } else { s.weight };
    let esum: f64 = sources.iter().map(effective).sum();
    let fractions: Vec<f64> = sources
        .iter()
        .map(|s| if esum > 0.0 { effective(s) / esum } else { 0.0 })
        .collect();
    let total = match total_tokens {
        Some(t) => t as f64,
        None => sources
            .iter()
            .zip(&fractions)
            .filter(|(_, f)| **f > 0.0)
            .map(|(s, f)| s.tokens as f64 * s.max_epochs / f)
            .fold(f64::INFINITY, f64::min),
    };
    let total = if total.is_finite() { total } else { 0.0 };
    let mut entries = Vec::new();
    for (s, f) in sources.iter().zip(&fractions) {
        let mut target = (f * total).round();
        let cap = s.tokens as f64 * s.max_epochs;
        if target > cap + 0.5 {
            notes.push(format!(
                "source `{}`: target {} tokens capped at {} ({} available x max_epochs {})",
                s.name, target as u64, cap as u64, s.tokens, s.max_epochs
            ));
            target = cap.floor();
        }
        let epochs = if s.tokens == 0 {
            0.0
        } else {
            target / s.tokens as f64
        };
        entries.push(MixEntry {
            name: s.name.clone(),
            available_tokens: s.tokens,
            target_fraction: *f,
            target_tokens: target as u64,
            epochs,
            achieved_tokens: 0,
            achieved_fraction: 0.0,
            documents: 0,
        });
    }
    let total_target_tokens = entries.iter().map(|e| e.target_tokens).sum();
    Ok(MixPlan {
        sources: entries,
        total_target_tokens,
        total_achieved_tokens: 0,
        notes,
    })
}

/// A selected document: its index in the caller's list and which pass over its source it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// Document index (global, as given to [`select_documents`]).
    pub doc: usize,
    /// 0 for the first pass, 1 for the first repeat, ...
    pub epoch: u32,
}

/// Pick documents per source to meet the plan: whole passes over the source for the integer part
/// of its epochs, then a seeded random subset for the fraction (documents added while that brings
/// the selected tokens closer to the target). Fills in the achieved numbers of `plan`.
///
/// `docs[i]` lists `(global document index, tokens)` of source `i`.
pub fn select_documents(
    docs: &[Vec<(usize, u64)>],
    plan: &mut MixPlan,
    seed: u64,
) -> Vec<Instance> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for (si, (entry, list)) in plan.sources.iter_mut().zip(docs).enumerate() {
        let available: u64 = list.iter().map(|d| d.1).sum();
        if available == 0 || entry.target_tokens == 0 {
            continue;
        }
        let full = (entry.target_tokens / available) as u32;
        let mut got = 0u64;
        let mut n = 0u64;
        for epoch in 0..full {
            for &(d, t) in list {
                out.push(Instance { doc: d, epoch });
                got += t;
                n += 1;
            }
        }
        let remainder = entry.target_tokens - u64::from(full) * available;
        if remainder > 0 {
            let mut order: Vec<usize> = (0..list.len()).collect();
            SplitMix64::new(
                seed ^ (si as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(full),
            )
            .shuffle(&mut order);
            let mut part = 0u64;
            for i in order {
                let (d, t) = list[i];
                // Add while it brings us closer to the remainder.
                if part + t / 2 >= remainder {
                    break;
                }
                out.push(Instance {
                    doc: d,
                    epoch: full,
                });
                part += t;
                n += 1;
            }
            got += part;
        }
        entry.achieved_tokens = got;
        entry.documents = n;
        total += got;
    }
    for e in &mut plan.sources {
        e.achieved_fraction = if total == 0 {
            0.0
        } else {
            e.achieved_tokens as f64 / total as f64
        };
    }
    plan.total_achieved_tokens = total;
    out
}

/// How documents are ordered before packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Seeded random order.
    #[default]
    Shuffle,
    /// By difficulty: best (highest) quality score first, pass by pass.
    Curriculum,
    /// In-Context Pretraining: each document followed by its most similar unvisited neighbour
    /// (MinHash similarity), pass by pass.
    Icp,
    /// Input order (source by source, file by file).
    Input,
}

/// Order instances. `scores[doc]` is used by [`Order::Curriculum`] (higher first), `chain` (a
/// permutation of document indices from [`icp_chain`]) by [`Order::Icp`].
pub fn order_instances(
    mut inst: Vec<Instance>,
    order: Order,
    seed: u64,
    scores: &[f64],
    chain: &[usize],
) -> Vec<Instance> {
    match order {
        Order::Input => inst.sort_by_key(|i| (i.epoch, i.doc)),
        Order::Shuffle => SplitMix64::new(seed).shuffle(&mut inst),
        Order::Curriculum => inst.sort_by(|a, b| {
            a.epoch.cmp(&b.epoch).then_with(|| {
                let sa = scores.get(a.doc).copied().unwrap_or(f64::NEG_INFINITY);
                let sb = scores.get(b.doc).copied().unwrap_or(f64::NEG_INFINITY);
                sb.total_cmp(&sa).then(a.doc.cmp(&b.doc))
            })
        }),
        Order::Icp => {
            let mut rank = vec![usize::MAX; chain.iter().copied().max().map_or(0, |m| m + 1)];
            for (r, &d) in chain.iter().enumerate() {
                rank[d] = r;
            }
            inst.sort_by_key(|i| {
                (
                    i.epoch,
                    rank.get(i.doc).copied().unwrap_or(usize::MAX),
                    i.doc,
                )
            });
        }
    }
    inst
}

/// Settings of the In-Context Pretraining similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcpConfig {
    /// Word n-gram size of the shingles (2: topical overlap rather than near-duplication).
    pub shingle_words: usize,
    /// MinHash slots.
    pub num_perm: usize,
    /// Slots per LSH band (bands = num_perm / rows); small rows find weakly similar pairs.
    pub rows: usize,
    /// At most this many candidates are compared per step.
    pub max_candidates: usize,
}

impl Default for IcpConfig {
    fn default() -> Self {
        Self {
            shingle_words: 2,
            num_perm: 64,
            rows: 2,
            max_candidates: 512,
        }
    }
}

/// Computes MinHash signatures for ICP ordering.
#[derive(Debug)]
pub struct IcpHasher {
    hasher: MinHasher,
}

impl IcpHasher {
    /// A hasher for these settings.
    pub fn new(cfg: &IcpConfig, seed: u64) -> Self {
        let shingle = Shingle::Words(cfg.shingle_words.max(1));
        Self {
            hasher: MinHasher::with_params(
                cfg.num_perm,
                Family::OnePermutation,
                BaseHash::Xxh3,
                seed,
                shingle,
            ),
        }
    }

    /// Signature of one text.
    pub fn signature(&self, text: &str) -> Vec<u32> {
        self.hasher.signature(text)
    }
}

/// MinHash signatures for ICP ordering, in parallel.
pub fn icp_signatures(texts: &[&str], cfg: &IcpConfig, seed: u64) -> Vec<Vec<u32>> {
    use rayon::prelude::*;
    let h = IcpHasher::new(cfg, seed);
    texts.par_iter().map(|t| h.signature(t)).collect()
}

/// Greedy nearest-unvisited-neighbour walk over documents (In-Context Pretraining, Shi et al.
/// 2024, with MinHash similarity instead of embeddings): start at the first unvisited document in
/// a seeded order, repeatedly move to the most similar unvisited candidate sharing an LSH band
/// (ties: lowest index), and jump to the next unvisited document when there is none. Returns a
/// permutation of `0..sigs.len()`.
pub fn icp_chain(sigs: &[Vec<u32>], cfg: &IcpConfig, seed: u64) -> Vec<usize> {
    let n = sigs.len();
    let rows = cfg.rows.max(1);
    let bands = sigs.first().map_or(0, |s| s.len() / rows);
    let mut buckets: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    let band_key = |sig: &[u32], b: usize| -> u64 {
        let slice = &sig[b * rows..(b + 1) * rows];
        xxhash_rust::xxh3::xxh3_64(bytemuck::cast_slice(slice))
    };
    for (i, s) in sigs.iter().enumerate() {
        for b in 0..bands.min(s.len() / rows) {
            buckets.entry((b, band_key(s, b))).or_default().push(i);
        }
    }
    let mut start_order: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut start_order);
    let mut visited = vec![false; n];
    let mut chain = Vec::with_capacity(n);
    let mut next_start = 0usize;
    let mut current: Option<usize> = None;
    while chain.len() < n {
        let cur = match current {
            Some(c) => c,
            None => {
                while visited[start_order[next_start]] {
                    next_start += 1;
                }
                start_order[next_start]
            }
        };
        visited[cur] = true;
        chain.push(cur);
        let mut best: Option<(f64, usize)> = None;
        let mut seen = 0usize;
        'bands: for b in 0..bands.min(sigs[cur].len() / rows) {
            if let Some(list) = buckets.get(&(b, band_key(&sigs[cur], b))) {
                for &j in list {
                    if visited[j] {
                        continue;
                    }
                    let sim = estimate_jaccard(&sigs[cur], &sigs[j]);
                    if best.is_none_or(|(bs, bj)| sim > bs || (sim == bs && j < bj)) {
                        best = Some((sim, j));
                    }
                    seen += 1;
                    if seen >= cfg.max_candidates {
                        break 'bands;
                    }
                }
            }
        }
        current = best.map(|(_, j)| j);
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(name: &str, tokens: u64, weight: f64, max_epochs: f64) -> SourceBudget {
        SourceBudget {
            name: name.into(),
            tokens,
            weight,
            max_epochs,
        }
    }

    #[test]
    fn natural_total_keeps_proportions_without_exceeding_epochs() {
        // 70/30 with 10k domain tokens and 100k general: domain used once, general down-sampled.
        let plan = plan_mix(
            &[
                budget("domain", 10_000, 0.7, 1.0),
                budget("general", 100_000, 0.3, 1.0),
            ],
            None,
        )
        .expect("plan");
        assert_eq!(plan.sources[0].target_tokens, 10_000);
        assert_eq!(plan.sources[1].target_tokens, 4_286);
        // Allowing 4 epochs of domain data up-samples it.
        let plan = plan_mix(
            &[
                budget("domain", 10_000, 0.7, 4.0),
                budget("general", 100_000, 0.3, 1.0),
            ],
            None,
        )
        .expect("plan");
        assert_eq!(plan.sources[0].target_tokens, 40_000);
        assert!((plan.sources[0].epochs - 4.0).abs() < 1e-9);
        assert_eq!(plan.sources[1].target_tokens, 17_143);
        // An explicit total beyond what max_epochs allows is capped, with a note.
        let plan = plan_mix(&[budget("a", 100, 1.0, 2.0)], Some(1000)).expect("plan");
        assert_eq!(plan.sources[0].target_tokens, 200);
        assert_eq!(plan.notes.len(), 1);
        assert!(plan_mix(&[budget("a", 1, 0.0, 1.0)], None).is_err());
        // An empty source does not shrink the mix to nothing.
        let plan = plan_mix(
            &[budget("a", 0, 0.5, 1.0), budget("b", 1000, 0.5, 1.0)],
            None,
        )
        .expect("plan");
        assert_eq!(
            (plan.sources[0].target_tokens, plan.sources[1].target_tokens),
            (0, 1000)
        );
        assert_eq!(plan.notes.len(), 1);
        let plan = plan_mix(&[budget("a", 0, 1.0, 1.0)], None).expect("plan");
        assert_eq!(plan.total_target_tokens, 0);
    }

    #[test]
    fn selection_hits_targets_and_reports_achieved() {
        // Source 0: 10 docs of 100 tokens; source 1: 100 docs of 100 tokens.
        let docs = vec![
            (0..10).map(|i| (i, 100)).collect::<Vec<_>>(),
            (10..110).map(|i| (i, 100)).collect::<Vec<_>>(),
        ];
        let mut plan = plan_mix(
            &[budget("a", 1000, 0.5, 2.5), budget("b", 10_000, 0.5, 1.0)],
            None,
        )
        .expect("plan");
        assert_eq!(plan.sources[0].target_tokens, 2500);
        let inst = select_documents(&docs, &mut plan, 1);
        assert_eq!(plan.sources[0].achieved_tokens, 2500); // 2 full passes + 5 docs
        assert_eq!(plan.sources[1].achieved_tokens, 2500);
        assert_eq!(
            inst.iter().filter(|i| i.doc < 10 && i.epoch == 2).count(),
            5
        );
        assert!((plan.sources[0].achieved_fraction - 0.5).abs() < 1e-9);
        // Deterministic.
        let mut plan2 = plan_mix(
            &[budget("a", 1000, 0.5, 2.5), budget("b", 10_000, 0.5, 1.0)],
            None,
        )
        .expect("plan");
        assert_eq!(select_documents(&docs, &mut plan2, 1), inst);
    }

    #[test]
    fn orders() {
        let inst: Vec<Instance> = (0..4)
            .map(|d| Instance { doc: d, epoch: 0 })
            .chain([Instance { doc: 0, epoch: 1 }])
            .collect();
        let scores = [0.1, 0.9, 0.5, 0.7];
        let cur = order_instances(inst.clone(), Order::Curriculum, 0, &scores, &[]);
        assert_eq!(
            cur.iter().map(|i| i.doc).collect::<Vec<_>>(),
            vec![1, 3, 2, 0, 0]
        );
        let icp = order_instances(inst.clone(), Order::Icp, 0, &[], &[2, 0, 3, 1]);
        assert_eq!(
            icp.iter().map(|i| i.doc).collect::<Vec<_>>(),
            vec![2, 0, 3, 1, 0]
        );
        let sh = order_instances(inst.clone(), Order::Shuffle, 3, &[], &[]);
        assert_eq!(sh.len(), 5);
        assert_eq!(sh, order_instances(inst, Order::Shuffle, 3, &[], &[]));
    }

    #[test]
    fn icp_chains_similar_documents() {
        let topics = [
            "the cat sat on the mat and the cat purred while the cat slept on the warm mat by the fire",
            "rust ownership borrowing lifetimes and the borrow checker make rust memory safe without a garbage collector",
            "interest rates inflation and central bank policy shape the bond market and the price of money",
        ];
        // Two variants of each topic, interleaved.
        let mut texts = Vec::new();
        for v in 0..2 {
            for t in topics {
                texts.push(format!(
                    "{t} variant {v} with a few more words of its own number {v}"
                ));
            }
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let cfg = IcpConfig::default();
        let sigs = icp_signatures(&refs, &cfg, 1);
        let chain = icp_chain(&sigs, &cfg, 7);
        let mut sorted = chain.clone();
        sorted.sort();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>());
        // Each document is next to its sibling (i and i + 3 share a topic).
        for pair in chain.chunks(2) {
            assert_eq!(pair[0] % 3, pair[1] % 3, "chain {chain:?}");
        }
    }
}
