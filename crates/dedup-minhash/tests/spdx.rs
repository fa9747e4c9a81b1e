//! Real near-duplicates: 25 SPDX license texts (npm `spdx-license-list` 6.12.0, see
//! tests/fixtures/README.md). Python computed the exact word-5-gram Jaccard similarity of every
//! pair above 0.2 (tests/fixtures/spdx_jaccard.json); the clusters found must be exactly the
//! pairs at or above the threshold, with the same similarities.

use std::collections::BTreeSet;
use std::path::PathBuf;

use infuse_dedup_minhash::{BaseHash, DedupConfig, Family, JsonlJob, Method, Record, Verify, dedup_jsonl, dedup_records};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn licenses() -> Vec<Record> {
    let text = std::fs::read_to_string(fixture("spdx_licenses.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Record::new(v["id"].as_str().unwrap_or_default(), v["text"].as_str().unwrap_or_default()))
        .collect()
}

/// (a, b, jaccard) with a < b.
fn python_pairs() -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(fixture("spdx_jaccard.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["pairs_above_0.2"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let (x, y) = (p[0].as_str().unwrap_or_default().to_owned(), p[1].as_str().unwrap_or_default().to_owned());
                    let (x, y) = if x < y { (x, y) } else { (y, x) };
                    (x, y, p[2].as_f64().unwrap_or(0.0))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn found_pairs(config: &DedupConfig) -> Vec<(String, String, f64)> {
    let out = dedup_records(config, licenses()).unwrap_or_else(|e| panic!("dedup: {e}"));
    let mut v: Vec<(String, String, f64)> = out
        .report
        .verified_id_pairs()
        .map(|(a, b, s)| if a < b { (a.to_owned(), b.to_owned(), s) } else { (b.to_owned(), a.to_owned(), s) })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

fn expected(threshold: f64) -> Vec<(String, String, f64)> {
    let mut v: Vec<_> = python_pairs().into_iter().filter(|p| p.2 >= threshold).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

fn assert_same(got: &[(String, String, f64)], want: &[(String, String, f64)], what: &str) {
    let g: Vec<(&str, &str)> = got.iter().map(|p| (p.0.as_str(), p.1.as_str())).collect();
    let w: Vec<(&str, &str)> = want.iter().map(|p| (p.0.as_str(), p.1.as_str())).collect();
    assert_eq!(g, w, "{what}");
    for (a, b) in got.iter().zip(want) {
        assert!((a.2 - b.2).abs() < 1e-12, "{what}: {} ~ {}: {} vs python {}", a.0, a.1, a.2, b.2);
    }
}

#[test]
fn known_license_pairs_cluster_and_unrelated_do_not() {
    let want = expected(0.8);
    let names: BTreeSet<(&str, &str)> = want.iter().map(|p| (p.0.as_str(), p.1.as_str())).collect();
    assert!(names.contains(&("GFDL-1.2-only", "GFDL-1.3-only")));
    assert!(names.contains(&("AFL-2.0", "AFL-2.1")));
    assert_eq!(want.len(), 4, "fixture sanity: 4 pairs at >= 0.8");
    assert_same(&found_pairs(&DedupConfig::default()), &want, "default config at 0.8");
}

#[test]
fn lower_thresholds_find_exactly_the_python_pairs() {
    for t in [0.5, 0.7, 0.9] {
        let config = DedupConfig { threshold: t, ..DedupConfig::default() };
        assert_same(&found_pairs(&config), &expected(t), &format!("threshold {t}"));
    }
}

#[test]
fn every_family_and_simhash_agree_at_0_8() {
    let want = expected(0.8);
    for (family, base) in [(Family::Affine32, BaseHash::Sha1), (Family::Mersenne61, BaseHash::Xxh3), (Family::OnePermutation, BaseHash::Sha1)] {
        let config = DedupConfig { family, base_hash: base, ..DedupConfig::default() };
        assert_same(&found_pairs(&config), &want, &format!("{family:?}/{base:?}"));
    }
    // SimHash finds only very close pairs (Hamming <= 3 of 64); with exact verification whatever
    // it finds must be a true pair at >= 0.8.
    let config = DedupConfig { method: Method::SimHash, ..DedupConfig::default() };
    let got = found_pairs(&config);
    for p in &got {
        assert!(want.iter().any(|w| w.0 == p.0 && w.1 == p.1), "simhash pair {p:?} not a true pair");
    }
}

#[test]
fn jsonl_pipeline_on_the_fixture_keeps_first_of_each_pair() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut job = JsonlJob::new(fixture("spdx_licenses.jsonl"), dir.path().join("out.jsonl"));
    job.clusters = Some(dir.path().join("clusters.jsonl"));
    job.report = Some(dir.path().join("report.json"));
    let report = dedup_jsonl(&DedupConfig::default(), &job).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.records_in, report.records_out, report.clusters), (25, 21, 4));
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap_or_default();
    let ids: Vec<String> = out.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).map(|v| v["id"].as_str().unwrap_or_default().to_owned()).collect();
    for dropped in ["GFDL-1.3-only", "AFL-2.1", "OSL-3.0", "BSD-3-Clause"] {
        assert!(!ids.iter().any(|i| i == dropped), "{dropped} should be removed");
    }
    for kept in ["GFDL-1.2-only", "AFL-2.0", "AFL-3.0", "BSD-2-Clause", "MIT", "Apache-2.0"] {
        assert!(ids.iter().any(|i| i == kept), "{kept} should be kept");
    }
    // Kept lines are the input lines byte for byte (the `name` field survives).
    let input = std::fs::read_to_string(fixture("spdx_licenses.jsonl")).unwrap_or_default();
    for line in out.lines() {
        assert!(input.lines().any(|l| l == line));
    }
    let clusters = std::fs::read_to_string(dir.path().join("clusters.jsonl")).unwrap_or_default();
    assert_eq!(clusters.lines().count(), 4);
    let report_json: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(report_json["records_removed"], 4);
}

#[test]
fn signature_only_verification_is_close_on_real_text() {
    // Estimated-Jaccard verification (no second read): the clearly similar pairs are found.
    let config = DedupConfig { verify: Verify::Signature, num_perm: 256, ..DedupConfig::default() };
    let got = found_pairs(&config);
    for name in [("AFL-2.0", "AFL-2.1"), ("AFL-3.0", "OSL-3.0")] {
        assert!(got.iter().any(|p| p.0 == name.0 && p.1 == name.1), "{name:?} not found: {got:?}");
    }
}
