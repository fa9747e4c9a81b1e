//! Deduplicates a JSONL file or directory and prints the report.
//!
//! ```text
//! cargo run --release -p infuse-dedup-minhash --example dedup_jsonl -- INPUT OUTPUT [THRESHOLD] [METHOD] [GRANULARITY]
//! ```
//! With no arguments it deduplicates the bundled SPDX license fixture into a temporary file.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use infuse_dedup_minhash::{DedupConfig, Granularity, JsonlJob, Method, dedup_jsonl};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spdx_licenses.jsonl");
    let input = args.first().map_or(fixture, PathBuf::from);
    let output = args.get(1).map_or_else(|| std::env::temp_dir().join("dedup_jsonl_example.jsonl"), PathBuf::from);
    let mut config = DedupConfig::default();
    if let Some(t) = args.get(2) {
        config.threshold = t.parse()?;
    }
    if let Some(m) = args.get(3) {
        config.method = match m.as_str() {
            "simhash" => Method::SimHash,
            "exact" => Method::Exact,
            _ => Method::MinHash,
        };
    }
    if let Some(g) = args.get(4) {
        config.granularity = match g.as_str() {
            "paragraph" => Granularity::Paragraph,
            "line" => Granularity::Line,
            "sentence" => Granularity::Sentence,
            _ => Granularity::Document,
        };
    }
    let mut job = JsonlJob::new(&input, &output);
    job.clusters = Some(output.with_extension("clusters.jsonl"));
    let start = Instant::now();
    let report = dedup_jsonl(&config, &job)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} -> {}: {} records in, {} out, {} clusters, {} candidate / {} verified pairs, {} skipped; lsh {:?}; {:.3} s ({:.0} docs/s)",
        input.display(),
        output.display(),
        report.records_in,
        report.records_out,
        report.clusters,
        report.candidate_pairs,
        report.verified_pairs,
        report.records_skipped,
        report.lsh,
        secs,
        report.records_in as f64 / secs
    );
    for c in report.cluster_list.iter().take(10) {
        let ids: Vec<&str> = c.members.iter().map(|m| m.id.as_str()).collect();
        let sims: Vec<String> = c.pairs.iter().map(|p| format!("{:.3}", p.similarity)).collect();
        println!("  cluster {}: kept {} of {:?}, similarities {:?}", c.cluster, c.kept, ids, sims);
    }
    Ok(())
}
