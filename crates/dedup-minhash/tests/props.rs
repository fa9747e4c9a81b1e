//! Property tests: the MinHash estimate converges to the true Jaccard similarity; identical
//! documents always cluster; the clusters do not depend on thread count or input order (only
//! which member is kept does, under the "first" rule).

use std::collections::{BTreeMap, BTreeSet};

use infuse_dedup_minhash::{BaseHash, DedupConfig, Family, Granularity, KeepRule, Method, MinHasher, Record, Shingle, dedup_records, estimate_jaccard};
use proptest::prelude::*;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two random hash sets with `shared` common elements and `only_a` / `only_b` private ones.
fn sets(seed: u64, shared: usize, only_a: usize, only_b: usize) -> (Vec<u64>, Vec<u64>) {
    let mut s = seed;
    let common: Vec<u64> = (0..shared).map(|_| splitmix(&mut s)).collect();
    let mut a = common.clone();
    a.extend((0..only_a).map(|_| splitmix(&mut s)));
    let mut b = common;
    b.extend((0..only_b).map(|_| splitmix(&mut s)));
    (a, b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// With k slots the estimate's standard deviation is about sqrt(J(1-J)/k) <= 0.5/sqrt(k):
    /// 512 slots -> <= 0.022; allow 5 sigma. Holds for every family.
    #[test]
    fn estimate_converges_to_jaccard(seed in any::<u64>(), shared in 50usize..1500, only_a in 0usize..800, only_b in 0usize..800) {
        let (a, b) = sets(seed, shared, only_a, only_b);
        let truth = shared as f64 / (shared + only_a + only_b) as f64;
        for family in [Family::OnePermutation, Family::Affine32, Family::Mersenne61] {
            let h = MinHasher::with_params(512, family, BaseHash::Xxh3, seed % 1000, Shingle::Words(5));
            let (mut sa, mut sb) = (vec![0; 512], vec![0; 512]);
            h.signature_of_hashes(a.iter().copied(), &mut sa);
            h.signature_of_hashes(b.iter().copied(), &mut sb);
            let est = estimate_jaccard(&sa, &sb);
            prop_assert!((est - truth).abs() < 0.11, "{family:?}: estimate {est} vs true {truth}");
        }
    }

    /// Averaged over many independent seeds the one-permutation estimate is unbiased.
    #[test]
    fn one_permutation_is_unbiased(shared in 20usize..400, only in 1usize..400) {
        let truth = shared as f64 / (shared + only) as f64;
        let mut sum = 0.0;
        let trials = 40u64;
        for t in 0..trials {
            let (a, b) = sets(t * 7919 + shared as u64, shared, only / 2, only - only / 2);
            let h = MinHasher::with_params(128, Family::OnePermutation, BaseHash::Xxh3, t, Shingle::Words(5));
            let (mut sa, mut sb) = (vec![0; 128], vec![0; 128]);
            h.signature_of_hashes(a.iter().copied(), &mut sa);
            h.signature_of_hashes(b.iter().copied(), &mut sb);
            sum += estimate_jaccard(&sa, &sb);
        }
        let mean = sum / trials as f64;
        // sd of the mean <= 0.5 / sqrt(128 * 40) = 0.007.
        prop_assert!((mean - truth).abs() < 0.035, "mean {mean} vs {truth}");
    }
}

/// A corpus of random documents over a small vocabulary with planted copies and near-copies.
fn corpus(seed: u64, n_docs: usize, copies: &[(usize, usize)]) -> Vec<Record> {
    let vocab: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
    let mut s = seed;
    let mut docs: Vec<Vec<String>> = (0..n_docs)
        .map(|_| (0..60 + (splitmix(&mut s) % 60) as usize).map(|_| vocab[(splitmix(&mut s) % 400) as usize].clone()).collect())
        .collect();
    for &(src, edits) in copies {
        let mut d = docs[src % n_docs].clone();
        for _ in 0..edits {
            let at = (splitmix(&mut s) % d.len() as u64) as usize;
            d[at] = format!("edit{}", splitmix(&mut s) % 1000);
        }
        docs.push(d);
    }
    docs.iter().enumerate().map(|(i, d)| Record::new(format!("r{i}"), d.join(" "))).collect()
}

/// Clusters as sets of member ids (order-free).
fn partition(config: &DedupConfig, records: Vec<Record>) -> BTreeSet<BTreeSet<String>> {
    let out = dedup_records(config, records).unwrap_or_else(|e| panic!("{e}"));
    out.report.cluster_list.iter().map(|c| c.members.iter().map(|m| m.id.clone()).collect()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn identical_documents_always_cluster(seed in any::<u64>(), n in 5usize..25, picks in proptest::collection::vec(0usize..1000, 1..6)) {
        let copies: Vec<(usize, usize)> = picks.iter().map(|&p| (p, 0)).collect();
        let records = corpus(seed, n, &copies);
        for method in [Method::MinHash, Method::SimHash, Method::Exact] {
            let config = DedupConfig { method, ..DedupConfig::default() };
            let out = dedup_records(&config, records.clone()).unwrap_or_else(|e| panic!("{e}"));
            let cluster_of: BTreeMap<String, u64> = out.report.cluster_list.iter().flat_map(|c| c.members.iter().map(move |m| (m.id.clone(), c.cluster))).collect();
            for (k, &(src, _)) in copies.iter().enumerate() {
                let copy = format!("r{}", n + k);
                let orig = format!("r{}", src % n);
                prop_assert!(cluster_of.contains_key(&copy) && cluster_of.get(&copy) == cluster_of.get(&orig), "{method:?}: {copy} not with {orig}");
                // The copy comes later, so under "keep first" it is never the survivor.
                prop_assert!(out.kept.iter().all(|r| r.id != copy));
            }
        }
    }

    #[test]
    fn clusters_do_not_depend_on_input_order(seed in any::<u64>(), n in 10usize..30, picks in proptest::collection::vec((0usize..1000, 0usize..8), 2..8), rot in 1usize..50) {
        let records = corpus(seed, n, &picks);
        let mut shuffled = records.clone();
        // A deterministic shuffle: reverse, then rotate.
        shuffled.reverse();
        let len = shuffled.len();
        shuffled.rotate_left(rot % len);
        for granularity in [Granularity::Document, Granularity::Sentence] {
            let config = DedupConfig { granularity, min_span_words: 1, ..DedupConfig::default() };
            prop_assert_eq!(partition(&config, records.clone()), partition(&config, shuffled.clone()));
        }
        // With a content-based keep rule the survivors do not depend on the order either (ties
        // aside: near-copies differ in length or content here only with low probability).
        let config = DedupConfig { keep: KeepRule::Longest, ..DedupConfig::default() };
        let a = dedup_records(&config, records.clone()).unwrap_or_else(|e| panic!("{e}"));
        let b = dedup_records(&config, shuffled).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(a.kept.len(), b.kept.len());
    }

    #[test]
    fn output_does_not_depend_on_thread_count(seed in any::<u64>(), n in 10usize..40, picks in proptest::collection::vec((0usize..1000, 0usize..6), 1..10)) {
        let records = corpus(seed, n, &picks);
        let run = |threads| {
            let config = DedupConfig { threads: Some(threads), granularity: Granularity::Document, ..DedupConfig::default() };
            let out = dedup_records(&config, records.clone()).unwrap_or_else(|e| panic!("{e}"));
            (out.kept, out.decisions, out.report.cluster_list, out.report.candidate_pairs)
        };
        prop_assert_eq!(run(1), run(4));
    }
}
