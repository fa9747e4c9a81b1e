//! Real near-duplicates at the sentence / paragraph scale: Debian `fortunes` (see
//! tests/fixtures/README.md). Short texts (8 to a few hundred words) with word 3-grams; the
//! verified pairs must be exactly the pairs Python finds by exact Jaccard.

use std::path::PathBuf;

use infuse_dedup_minhash::{DedupConfig, Granularity, Record, Shingle, dedup_records};
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap_or_default()
}

fn entries() -> Vec<Record> {
    fixture("fortunes_extract.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Record::new(v["id"].as_str().unwrap_or_default(), v["text"].as_str().unwrap_or_default()))
        .collect()
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a < b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
}

fn python_pairs(t: f64) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&fixture("fortunes_jaccard.json")).unwrap_or(Value::Null);
    let mut out: Vec<(String, String)> = v["pairs_above_0.3"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p[2].as_f64().unwrap_or(0.0) >= t)
                .map(|p| ordered(p[0].as_str().unwrap_or_default(), p[1].as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn fortune_pairs_match_exact_jaccard() {
    let records = entries();
    assert_eq!(records.len(), 226);
    for t in [0.5, 0.7, 0.9] {
        let config = DedupConfig { shingle: Shingle::Words(3), threshold: t, ..DedupConfig::default() };
        let out = dedup_records(&config, records.clone()).unwrap_or_else(|e| panic!("{e}"));
        let mut got: Vec<(String, String)> = out.report.verified_id_pairs().map(|(a, b, _)| ordered(a, b)).collect();
        got.sort();
        let want = python_pairs(t);
        assert!(!want.is_empty());
        assert_eq!(got, want, "threshold {t}");
    }
}

#[test]
fn repeated_quotes_are_cut_out_of_documents() {
    // Documents made of fortunes as paragraphs; the second document repeats two of the first
    // document's quotes (one of them as its near-identical variant from another file).
    let records = entries();
    let by_id = |id: &str| records.iter().find(|r| r.id == id).map(|r| r.text.clone()).unwrap_or_default();
    let pair = python_pairs(0.9).into_iter().find(|(a, b)| by_id(a) != by_id(b)).unwrap_or_default();
    let (q1, q1_variant) = (by_id(&pair.0), by_id(&pair.1));
    let (q2, q3, q4) = (records[3].text.clone(), records[10].text.clone(), records[20].text.clone());
    let doc_a = format!("{q1}\n\n{q2}");
    let doc_b = format!("{q3}\n\n{q1_variant}\n\n{q2}\n\n{q4}");
    let config = DedupConfig { shingle: Shingle::Words(3), threshold: 0.8, granularity: Granularity::Paragraph, ..DedupConfig::default() };
    let out = dedup_records(&config, vec![Record::new("a", doc_a.clone()), Record::new("b", doc_b)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.kept.len(), 2);
    assert_eq!(out.kept[0].text, doc_a);
    assert_eq!(out.kept[1].text, format!("{q3}\n\n{q4}"));
    assert_eq!(out.report.units_removed, 2);
}
