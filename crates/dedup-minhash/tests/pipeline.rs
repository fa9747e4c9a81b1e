//! The JSONL pipeline end to end: malformed lines, field preservation, span granularities,
//! clusters file, shards + merge, thread-count independence, gzip, keep rules, methods.

use std::io::Write;
use std::path::{Path, PathBuf};

use infuse_dedup_minhash::{
    DedupConfig, DedupError, FieldNames, Granularity, JsonlJob, JsonlSource, KeepRule, Method, ShardSpec, SimHashConfig, dedup_jsonl, find_signature_files,
    merge_jsonl_shards, sign_jsonl_shard, signatures_file_name,
};
use serde_json::{Value, json};

/// Deterministic pseudo-random words.
fn words(seed: u64, n: usize) -> Vec<String> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let len = 3 + (s % 6) as usize;
            (0..len).map(|i| (b'a' + ((s >> (i * 5)) % 26) as u8) as char).collect()
        })
        .collect()
}

fn doc(seed: u64, n: usize) -> String {
    words(seed, n).join(" ")
}

/// `base` with every `every`-th word replaced.
fn edit(base: &str, every: usize) -> String {
    base.split(' ').enumerate().map(|(i, w)| if i % every == every - 1 { "zzz" } else { w }).collect::<Vec<_>>().join(" ")
}

fn write(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
    for l in lines {
        writeln!(f, "{l}").unwrap_or_else(|e| panic!("{e}"));
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn ids(path: &Path) -> Vec<String> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::Null)["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A corpus of 40 records: 30 distinct documents, 10 near-duplicates of some of them.
fn corpus() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..30u64 {
        lines.push(json!({"id": format!("d{i}"), "text": doc(i, 120), "meta": {"src": i, "tags": ["a", "b"]}}).to_string());
        if i % 3 == 0 {
            lines.push(json!({"id": format!("d{i}-dup"), "text": edit(&doc(i, 120), 40), "meta": {"src": i}}).to_string());
        }
    }
    lines
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn run(config: &DedupConfig, input: &Path, out_dir: &Path) -> (infuse_dedup_minhash::DedupReport, PathBuf) {
    let mut job = JsonlJob::new(input, out_dir.join("out.jsonl"));
    job.clusters = Some(out_dir.join("clusters.jsonl"));
    job.report = Some(out_dir.join("report.json"));
    let report = dedup_jsonl(config, &job).unwrap_or_else(|e| panic!("{e}"));
    (report, out_dir.join("out.jsonl"))
}

#[test]
fn near_duplicates_removed_and_fields_preserved() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    let lines = corpus();
    write(&input, &lines);
    let (report, out) = run(&DedupConfig::default(), &input, dir.path());
    assert_eq!(report.records_in, 40);
    assert_eq!(report.records_removed, 10);
    assert_eq!(report.clusters, 10);
    let got = read_lines(&out);
    let expect: Vec<String> = lines.iter().filter(|l| !l.contains("-dup\"")).cloned().collect();
    assert_eq!(got, expect, "kept lines are the input lines, in order, byte for byte");
    let clusters = read_lines(&dir.path().join("clusters.jsonl"));
    assert_eq!(clusters.len(), 10);
    let c0: Value = serde_json::from_str(&clusters[0]).unwrap_or(Value::Null);
    assert_eq!(c0["cluster"], 0);
    assert_eq!(c0["kept"], "d0");
    assert_eq!(c0["members"][1]["id"], "d0-dup");
    let sim = c0["pairs"][0]["similarity"].as_f64().unwrap_or(0.0);
    assert!(sim > 0.8 && sim < 1.0, "{sim}");
    assert_eq!(c0["members"][1]["similarity_to_kept"].as_f64(), Some(sim));
}

#[test]
fn malformed_lines_are_skipped_with_line_numbers() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    let mut raw: Vec<u8> = Vec::new();
    let good = json!({"id": "a", "text": doc(1, 50)}).to_string();
    raw.extend_from_slice(good.as_bytes());
    raw.extend_from_slice(b"\n{not json\n\n{\"id\": \"b\"}\n{\"id\": \"c\", \"text\": 5}\n[1, 2]\n");
    raw.extend_from_slice(b"{\"id\": \"d\", \"text\": \"bad \xff utf8\"}\n");
    raw.extend_from_slice(json!({"id": "e", "text": doc(2, 50)}).to_string().as_bytes());
    raw.extend_from_slice(b"\r\n   \n");
    raw.extend_from_slice(json!({"id": "f", "text": doc(3, 50)}).to_string().as_bytes()); // no final newline
    std::fs::write(&input, &raw).unwrap_or_else(|e| panic!("{e}"));
    let (report, out) = run(&DedupConfig::default(), &input, dir.path());
    assert_eq!(report.records_in, 3);
    assert_eq!(report.records_skipped, 5);
    let lines: Vec<(u64, &str)> = report.skipped.iter().map(|s| (s.line, s.reason.as_str())).collect();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![2, 4, 5, 6, 7]);
    assert!(lines[0].1.starts_with("invalid JSON"), "{}", lines[0].1);
    assert!(lines[1].1.contains("missing field `text`"));
    assert!(lines[2].1.contains("is a number, not a string"));
    assert!(lines[3].1.starts_with("invalid JSON"));
    assert!(lines[4].1.contains("invalid UTF-8"));
    assert!(report.skipped.iter().all(|s| s.file.ends_with("in.jsonl")));
    assert_eq!(ids(&out), vec!["a", "e", "f"]);
    // Kept lines are copied byte for byte, CRLF included; a missing final newline is added.
    let bytes = std::fs::read(&out).unwrap_or_default();
    assert_eq!(bytes.iter().filter(|&&b| b == b'\r').count(), 1);
    assert!(bytes.ends_with(b"}\n"));
    // The JSON report lists them too.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(json["skipped"][0]["line"], 2);
    assert_eq!(json["records_skipped"], 5);
}

#[test]
fn paragraphs_are_cut_out_and_records_otherwise_kept() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    let (p1, p2, p3, p4) = (doc(10, 30), doc(11, 30), doc(12, 30), doc(13, 30));
    let lines = vec![
        json!({"id": "x", "text": format!("{p1}\n\n{p2}"), "keep": true}).to_string(),
        format!(r#"{{"id":"y", "text":{}, "n":[1, 2.50]}}"#, json!(format!("{p3}\n\n{}\n\n{p4}", p2.to_uppercase()))),
        json!({"id": "z", "text": format!("{p1}\n\n{p2}\n\nshort"), "k": null}).to_string(),
        json!({"id": "w", "text": format!("{p1}\n\n  \n{p2}")}).to_string(),
    ];
    write(&input, &lines);
    let config = DedupConfig { granularity: Granularity::Paragraph, ..DedupConfig::default() };
    let (report, out) = run(&config, &input, dir.path());
    let got = read_lines(&out);
    // x keeps both; y loses the (case-different) copy of p2; z keeps only the short paragraph
    // (too few words to be compared); w had only duplicates and is dropped.
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], lines[0]);
    // Only the text value changes; the other values keep their spelling (2.50) and order.
    assert_eq!(got[1], format!(r#"{{"id":"y","text":{},"n":[1, 2.50]}}"#, json!(format!("{p3}\n\n{p4}"))));
    assert_eq!(got[2], json!({"id": "z", "text": "short", "k": null}).to_string());
    assert_eq!((report.records_edited, report.records_emptied, report.records_out), (2, 1, 3));
    assert_eq!(report.units_removed, 5);
}

#[test]
fn lines_granularity_and_exact_method() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    let (l1, l2) = (doc(20, 8), doc(21, 8));
    let lines = vec![
        json!({"id": "a", "text": format!("{l1}\n{l2}\nunique line one two three")}).to_string(),
        json!({"id": "b", "text": format!("{}!!\nanother unique line four five six\n{l2}", l1.to_uppercase())}).to_string(),
    ];
    write(&input, &lines);
    let config = DedupConfig { granularity: Granularity::Line, method: Method::Exact, ..DedupConfig::default() };
    let (report, out) = run(&config, &input, dir.path());
    let texts: Vec<String> = read_lines(&out).iter().map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::Null)["text"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(texts, vec![format!("{l1}\n{l2}\nunique line one two three"), "another unique line four five six".to_owned()]);
    assert_eq!(report.clusters, 2);
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    write(&input, &corpus());
    let mut outputs = Vec::new();
    for threads in [1, 3] {
        let sub = dir.path().join(format!("t{threads}"));
        let config = DedupConfig { threads: Some(threads), ..DedupConfig::default() };
        run(&config, &input, &sub);
        let report = std::fs::read_to_string(sub.join("report.json")).unwrap_or_default();
        // The config echo differs in `threads` only.
        let report = report.replace(&format!("\"threads\": {threads}"), "\"threads\": N");
        outputs.push((std::fs::read(sub.join("out.jsonl")).unwrap_or_default(), std::fs::read(sub.join("clusters.jsonl")).unwrap_or_default(), report));
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn shards_then_merge_equal_a_single_run() {
    let dir = tmp();
    // A directory of 4 files (sharded by file) and a single file (sharded by line).
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    let lines = corpus();
    for (i, chunk) in lines.chunks(10).enumerate() {
        let p = if i == 3 { data.join("sub").join("part3.jsonl") } else { data.join(format!("part{i}.jsonl")) };
        write(&p, chunk);
    }
    std::fs::write(data.join("ignored.txt"), "not jsonl").unwrap_or_else(|e| panic!("{e}"));
    let single = dir.path().join("single.jsonl");
    write(&single, &lines);
    let config = DedupConfig::default();
    for (input, world) in [(&data, 2usize), (&single, 3usize)] {
        let base = dir.path().join(format!("base-{world}"));
        let (want, _) = run(&config, input, &base);
        let sigs = dir.path().join(format!("sigs-{world}"));
        for rank in 0..world {
            let shard = ShardSpec::new(rank, world).unwrap_or_else(|e| panic!("{e}"));
            let summary = sign_jsonl_shard(&config, input, &FieldNames::default(), shard, &sigs.join(signatures_file_name(shard)))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(summary.records > 0);
        }
        let files = find_signature_files(&sigs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(files.len(), world);
        let merged_dir = dir.path().join(format!("merged-{world}"));
        let mut job = JsonlJob::new(input, merged_dir.join("out.jsonl"));
        job.clusters = Some(merged_dir.join("clusters.jsonl"));
        let got = merge_jsonl_shards(&config, &job, &files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, want, "merged report, world {world}");
        assert_eq!(std::fs::read(merged_dir.join("out.jsonl")).ok(), std::fs::read(base.join("out.jsonl")).ok());
        assert_eq!(std::fs::read(merged_dir.join("clusters.jsonl")).ok(), std::fs::read(base.join("clusters.jsonl")).ok());
        // A missing rank is an error naming it.
        let err = merge_jsonl_shards(&config, &job, &files[1..]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("no signature file for rank 0"), "{err}");
        // A duplicated rank too.
        let twice = vec![files[0].clone(), files[0].clone()];
        let err = merge_jsonl_shards(&config, &job, &twice).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("rank 0 is also in"), "{err}");
        // A truncated file is reported as such.
        let cut = dir.path().join(format!("cut-{world}"));
        std::fs::create_dir_all(&cut).unwrap_or_else(|e| panic!("{e}"));
        for (i, f) in files.iter().enumerate() {
            let bytes = std::fs::read(f).unwrap_or_default();
            let keep = if i == 0 { bytes.len() - 20 } else { bytes.len() };
            std::fs::write(cut.join(f.file_name().unwrap_or_default()), &bytes[..keep]).unwrap_or_else(|e| panic!("{e}"));
        }
        let cut_files = find_signature_files(&cut).unwrap_or_else(|e| panic!("{e}"));
        let err = merge_jsonl_shards(&config, &job, &cut_files).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("truncated"), "{err}");
        // Signatures made with another config are refused.
        let other = DedupConfig { num_perm: 64, ..DedupConfig::default() };
        assert!(matches!(merge_jsonl_shards(&other, &job, &files), Err(DedupError::Signatures { .. })));
    }
    assert_eq!(JsonlSource::open(&data, FieldNames::default()).map(|s| s.files().len()).unwrap_or(0), 4);
}

#[test]
fn gzip_in_and_out() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl.gz");
    {
        let f = std::fs::File::create(&input).unwrap_or_else(|e| panic!("{e}"));
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        for l in corpus() {
            writeln!(gz, "{l}").unwrap_or_else(|e| panic!("{e}"));
        }
        gz.finish().unwrap_or_else(|e| panic!("{e}"));
    }
    let job = JsonlJob::new(&input, dir.path().join("out.jsonl.gz"));
    let report = dedup_jsonl(&DedupConfig::default(), &job).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.records_in, report.records_out), (40, 30));
    let plain = dir.path().join("plain.jsonl");
    write(&plain, &corpus());
    let (_, out) = run(&DedupConfig::default(), &plain, dir.path());
    let mut unzipped = String::new();
    let f = std::fs::File::open(dir.path().join("out.jsonl.gz")).unwrap_or_else(|e| panic!("{e}"));
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(f), &mut unzipped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unzipped, std::fs::read_to_string(out).unwrap_or_default());
}

#[test]
fn keep_rules() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    let base = doc(5, 100);
    let lines = vec![
        json!({"id": "short", "text": base, "q": 0.1}).to_string(),
        json!({"id": "long", "text": format!("{base} extra words at the end"), "q": 0.2}).to_string(),
        json!({"id": "best", "text": edit(&base, 50), "q": 0.9}).to_string(),
    ];
    write(&input, &lines);
    for (keep, expect) in [(KeepRule::First, "short"), (KeepRule::Longest, "long"), (KeepRule::HighestScore, "best")] {
        let sub = dir.path().join(format!("{keep:?}"));
        let config = DedupConfig { keep, ..DedupConfig::default() };
        let mut job = JsonlJob::new(&input, sub.join("out.jsonl"));
        job.fields.score = Some("q".to_owned());
        let report = dedup_jsonl(&config, &job).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ids(&sub.join("out.jsonl")), vec![expect], "{keep:?}");
        assert_eq!(report.cluster_list[0].kept, expect);
    }
}

#[test]
fn simhash_method_finds_near_identical_documents() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    let base = doc(7, 300);
    let lines = vec![
        json!({"id": "a", "text": base}).to_string(),
        json!({"id": "b", "text": format!("{base}!")}).to_string(),
        json!({"id": "c", "text": edit(&base, 100)}).to_string(),
        json!({"id": "d", "text": doc(8, 300)}).to_string(),
    ];
    write(&input, &lines);
    // Default: at most 3 differing bits of 64: only the same normalized text.
    let config = DedupConfig { method: Method::SimHash, ..DedupConfig::default() };
    let (report, out) = run(&config, &input, dir.path());
    assert_eq!(ids(&out), vec!["a", "c", "d"]);
    assert_eq!(report.largest_cluster, 2);
    // A looser Hamming radius also catches the 1%-edited copy (verified at Jaccard >= 0.8).
    let config = DedupConfig { method: Method::SimHash, simhash: SimHashConfig { max_hamming: 12, blocks: 14 }, ..DedupConfig::default() };
    let sub = dir.path().join("loose");
    let (report, out) = run(&config, &input, &sub);
    assert_eq!(ids(&out), vec!["a", "d"]);
    assert_eq!(report.largest_cluster, 3);
}

#[test]
fn output_may_not_overwrite_an_input_and_errors_name_files() {
    let dir = tmp();
    let input = dir.path().join("in.jsonl");
    write(&input, &corpus());
    let job = JsonlJob::new(&input, &input);
    let err = dedup_jsonl(&DedupConfig::default(), &job).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("is also an input file"), "{err}");
    assert_eq!(read_lines(&input), corpus(), "input untouched");
    let missing = JsonlJob::new(dir.path().join("nope.jsonl"), dir.path().join("o.jsonl"));
    let err = dedup_jsonl(&DedupConfig::default(), &missing).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("nope.jsonl"), "{err}");
    let bad = DedupConfig { threshold: 1.5, ..DedupConfig::default() };
    let err = dedup_jsonl(&bad, &JsonlJob::new(&input, dir.path().join("o.jsonl"))).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("threshold"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(dedup_jsonl(&DedupConfig::default(), &JsonlJob::new(&empty, dir.path().join("o.jsonl"))), Err(DedupError::NoInput(_))));
}
