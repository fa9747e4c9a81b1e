//! `infuse dedup` on Parquet: near-duplicate rows are removed, other columns survive, the
//! clusters file names the removed row, and Parquet or JSONL output both work.

use std::path::Path;
use std::process::Command;

use infuse_data_prep::Record;
use infuse_data_prep::parquet::{ParquetOptions, ParquetReader, ParquetRecordWriter};

/// `n` pseudo-random words from a seeded xorshift generator (independent texts per seed).
fn words(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("w{}", x % 5000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_corpus(path: &Path) {
    let base = words(1, 120);
    let mut near = base.split(' ').map(str::to_owned).collect::<Vec<_>>();
    near[60] = "changed".into();
    let near = near.join(" ");
    let mut w = ParquetRecordWriter::create(path).expect("writer");
    for (id, text, lang) in [("a", base.as_str(), "en"), ("b", words(2, 120).as_str(), "de"), ("c", near.as_str(), "en"), ("d", words(3, 120).as_str(), "fr")] {
        let mut r = Record::new(id, text, "test");
        r.metadata.insert("lang".into(), serde_json::Value::String(lang.into()));
        w.write(&r).expect("row");
    }
    w.finish().expect("finish");
}

fn dedup(input: &Path, output: &Path, clusters: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_infuse"))
        .args(["dedup", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--clusters")
        .arg(clusters)
        .args(["--threshold", "0.8"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run infuse");
    assert!(out.status.success(), "infuse dedup failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn parquet_input_to_parquet_and_jsonl_output() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("corpus.parquet");
    write_corpus(&input);

    let out_pq = tmp.path().join("kept.parquet");
    dedup(&input, &out_pq, &tmp.path().join("clusters.jsonl"));
    let kept: Vec<Record> = ParquetReader::new(vec![out_pq], ParquetOptions::default())
        .map(|i| match i {
            infuse_data_prep::ReadItem::Record(r) => r,
            infuse_data_prep::ReadItem::Issue(e) => panic!("unreadable output row: {e:?}"),
        })
        .collect();
    let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "d"], "the later near-duplicate `c` is removed, the first kept");
    assert!(kept.iter().all(|r| r.metadata.get("lang").is_some()), "other columns survive: {kept:?}");
    let clusters = std::fs::read_to_string(tmp.path().join("clusters.jsonl")).expect("clusters");
    assert!(clusters.contains("\"a\"") && clusters.contains("\"c\""), "{clusters}");

    // A folder of Parquet files, JSONL out: every other field is kept on each line.
    let folder = tmp.path().join("in");
    std::fs::create_dir_all(&folder).expect("dir");
    std::fs::rename(&input, folder.join("part-0.parquet")).expect("move");
    let out_jsonl = tmp.path().join("kept.jsonl");
    dedup(&folder, &out_jsonl, &tmp.path().join("clusters2.jsonl"));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out_jsonl).expect("out").lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let ids: Vec<&str> = lines.iter().map(|v| v["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["a", "b", "d"]);
    assert!(lines.iter().all(|v| v["lang"].is_string() && v["text"].is_string()), "{lines:?}");
}
