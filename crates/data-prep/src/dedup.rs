//! The near-duplicate removal step, behind a small adapter over `infuse-dedup-minhash`.
//!
//! The pipeline writes cleaned records as JSON lines into one directory and asks a
//! [`Deduplicator`] for a decision per (file, line); only this module knows the dedup crate's API.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use infuse_dedup_minhash::{
    DedupConfig, DedupOutcome, FieldNames, Granularity, JsonlSource, Method, RecordDecision,
    Shingle, dedup_source,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Dedup step settings (a subset of the dedup crate's configuration with prep-friendly names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupStepConfig {
    /// Run dedup.
    pub enabled: bool,
    /// Remove near-duplicate documents.
    pub document: bool,
    /// Cut duplicate paragraphs out of documents (after document dedup).
    pub paragraph: bool,
    /// Detector: `minhash`, `simhash` or `exact`.
    pub method: Method,
    /// Jaccard similarity threshold (word shingles).
    pub threshold: f64,
    /// MinHash slots.
    pub num_perm: usize,
    /// Word n-gram size of the shingles.
    pub shingle_words: usize,
    /// Paragraphs with fewer words are never removed.
    pub min_paragraph_words: usize,
    /// Seed of the hash family.
    pub seed: u64,
    /// Worker threads (default: all cores); results do not depend on it.
    pub threads: Option<usize>,
}

impl Default for DedupStepConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            document: true,
            paragraph: false,
            method: Method::MinHash,
            threshold: 0.8,
            num_perm: 128,
            shingle_words: 5,
            min_paragraph_words: 5,
            seed: 1,
            threads: None,
        }
    }
}

impl DedupStepConfig {
    fn to_dedup(&self, granularity: Granularity) -> DedupConfig {
        DedupConfig {
            method: self.method,
            granularity,
            shingle: Shingle::Words(self.shingle_words.max(1)),
            threshold: self.threshold,
            num_perm: self.num_perm,
            seed: self.seed,
            min_span_words: self.min_paragraph_words,
            threads: self.threads,
            ..DedupConfig::default()
        }
    }
}

/// Counts of the dedup step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupSummary {
    /// Records examined.
    pub records_in: u64,
    /// Documents removed as near-duplicates.
    pub documents_removed: u64,
    /// Duplicate clusters at document level.
    pub document_clusters: u64,
    /// Paragraphs cut out.
    pub paragraphs_removed: u64,
    /// Documents that lost paragraphs.
    pub documents_edited: u64,
    /// Documents removed because all their paragraphs were duplicates.
    pub documents_emptied: u64,
}

/// What happens to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied<'t> {
    /// Keep (possibly with duplicate paragraphs cut out).
    Keep(Cow<'t, str>),
    /// Remove: a near-duplicate of the record with this id (or emptied by paragraph removal).
    Drop {
        /// The surviving member of its cluster, if known.
        duplicate_of: Option<String>,
    },
}

/// Decisions for every line of every file of a directory.
#[derive(Debug, Clone, Default)]
pub struct DedupDecisions {
    files: Vec<PathBuf>,
    doc: Option<(DedupOutcome, HashMap<u64, String>)>,
    para: Option<DedupOutcome>,
    /// Counts.
    pub summary: DedupSummary,
}

impl DedupDecisions {
    /// The files, in the order their indices refer to.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Decide about the record at 0-based `line` of file `file` with this text.
    pub fn apply<'t>(&self, file: usize, line: u64, text: &'t str) -> Applied<'t> {
        let key = infuse_dedup_minhash::RecordKey {
            part: file as u32,
            index: line,
        };
        if let Some((outcome, kept)) = &self.doc
            && let Some(RecordDecision::Drop { cluster, .. }) = outcome.decision(key)
        {
            return Applied::Drop {
                duplicate_of: kept.get(cluster).cloned(),
            };
        }
        if let Some(outcome) = &self.para
            && let Some(d) = outcome.decision(key)
        {
            return match d.apply(text, Granularity::Paragraph) {
                Some(t) => Applied::Keep(t),
                None => Applied::Drop { duplicate_of: None },
            };
        }
        Applied::Keep(Cow::Borrowed(text))
    }
}

/// Finds near-duplicates among the JSONL files of a directory.
pub trait Deduplicator: Send + Sync {
    /// Decide about every record of `dir` (records have `id` and `text` fields).
    fn run(&self, dir: &Path) -> Result<DedupDecisions>;
}

/// [`Deduplicator`] backed by `infuse-dedup-minhash` (document pass, then paragraph pass).
#[derive(Debug, Clone)]
pub struct MinHashDeduplicator {
    cfg: DedupStepConfig,
}

impl MinHashDeduplicator {
    /// With these settings.
    pub fn new(cfg: DedupStepConfig) -> Self {
        Self { cfg }
    }
}

fn derr(e: infuse_dedup_minhash::DedupError) -> Error {
    Error::Dedup(e.to_string())
}

impl Deduplicator for MinHashDeduplicator {
    fn run(&self, dir: &Path) -> Result<DedupDecisions> {
        let fields = FieldNames {
            text: "text".into(),
            id: Some("id".into()),
            score: None,
        };
        let source = JsonlSource::open(dir, fields).map_err(derr)?;
        let mut out = DedupDecisions {
            files: source.files().to_vec(),
            ..DedupDecisions::default()
        };
        if self.cfg.document {
            let outcome =
                dedup_source(&self.cfg.to_dedup(Granularity::Document), &source).map_err(derr)?;
            let kept: HashMap<u64, String> = outcome
                .report
                .cluster_list
                .iter()
                .map(|c| (c.cluster, c.kept.clone()))
                .collect();
            out.summary.records_in = outcome.report.records_in;
            out.summary.documents_removed = outcome.report.records_removed;
            out.summary.document_clusters = outcome.report.clusters;
            out.doc = Some((outcome, kept));
        }
        if self.cfg.paragraph {
            let outcome =
                dedup_source(&self.cfg.to_dedup(Granularity::Paragraph), &source).map_err(derr)?;
            out.summary.records_in = outcome.report.records_in;
            out.summary.paragraphs_removed = outcome.report.units_removed;
            out.summary.documents_edited = outcome.report.records_edited;
            out.summary.documents_emptied = outcome.report.records_emptied;
            out.para = Some(outcome);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_marks_duplicates_and_cuts_paragraphs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base =
            "the quick brown fox jumps over the lazy dog while the farmer watches from the gate";
        let shared = "this paragraph about the weather in the mountains appears in two different documents today";
        let lines = [
            serde_json::json!({"id": "a", "text": format!("{base} and then it rains.\n\n{shared}")}),
            serde_json::json!({"id": "b", "text": format!("{base} and then it rains!\n\n{shared}!")}),
            serde_json::json!({"id": "c", "text": format!("a completely different opening paragraph with its own words here\n\n{shared}")}),
        ];
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join("x.jsonl"), body).expect("write");
        let cfg = DedupStepConfig {
            paragraph: true,
            ..DedupStepConfig::default()
        };
        let d = MinHashDeduplicator::new(cfg)
            .run(dir.path())
            .expect("dedup");
        assert_eq!(d.summary.documents_removed, 1);
        let t = |i: usize| lines[i]["text"].as_str().expect("text").to_owned();
        assert_eq!(
            d.apply(0, 0, &t(0)),
            Applied::Keep(Cow::Borrowed(t(0).as_str()))
        );
        assert_eq!(
            d.apply(0, 1, &t(1)),
            Applied::Drop {
                duplicate_of: Some("a".into())
            }
        );
        match d.apply(0, 2, &t(2)) {
            Applied::Keep(text) => {
                assert!(!text.contains("weather"), "shared paragraph cut: {text}")
            }
            other => panic!("expected edit, got {other:?}"),
        }
    }
}

/// Whether a path names a Parquet file (by its extension, any case).
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn is_jsonl_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".jsonl", ".json", ".ndjson"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The input files of `infuse dedup --input PATH`: the file itself (Parquet when it ends in
/// `.parquet`, JSONL otherwise), or every `.parquet`, `.jsonl`, `.json` and `.ndjson` file
/// (the JSONL ones optionally `.gz`) under a directory, recursively, sorted by path.
///
/// # Errors
/// [`Error::Io`] when the path or a directory cannot be read; [`Error::Dedup`] for a directory
/// without such files.
pub fn dedup_input_files(input: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(input).map_err(|e| Error::io("cannot read", input, e))?;
    if !meta.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
            let path = entry.path();
            let ft = entry
                .file_type()
                .map_err(|e| Error::io("cannot inspect", &path, e))?;
            if ft.is_dir() {
                walk(&path, out)?;
            } else if is_parquet(&path) || is_jsonl_name(&entry.file_name().to_string_lossy()) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(input, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(Error::Dedup(format!(
            "no .jsonl, .json, .ndjson or .parquet files under {}",
            input.display()
        )));
    }
    Ok(files)
}

/// `infuse dedup` over JSONL and Parquet files: what to read and write.
#[derive(Debug, Clone)]
pub struct FileDedupJob {
    /// Input files, read in this order: Parquet when the name ends in `.parquet`, JSON Lines
    /// (optionally `.gz`) otherwise. See [`dedup_input_files`].
    pub inputs: Vec<PathBuf>,
    /// Output: Parquet when it ends in `.parquet` (this crate's record layout: `id`, `text`,
    /// `source`, `metadata` holding every other field), JSONL otherwise (gzip when it ends in
    /// `.gz`; kept JSONL lines byte for byte, Parquet rows as objects with every column).
    pub output: PathBuf,
    /// Text, id and score fields (columns).
    pub fields: FieldNames,
    /// Optional clusters JSONL.
    pub clusters: Option<PathBuf>,
    /// Optional JSON report.
    pub report: Option<PathBuf>,
}

/// What [`dedup_files`] did.
#[derive(Debug, Clone)]
pub struct FileDedupSummary {
    /// Parquet rows converted (records the Parquet reader could use).
    pub parquet_rows: u64,
    /// Parquet rows or files the reader could not use; each is also in the report's `skipped`
    /// list (file, 1-based row or 0 for a whole file, reason) and `records_skipped` count.
    pub parquet_skipped: u64,
    /// The dedup engine's report (as written to [`FileDedupJob::report`]).
    pub report: infuse_dedup_minhash::DedupReport,
}

/// Near-duplicate removal over JSONL and Parquet files with the streaming engine of
/// `infuse-dedup-minhash` (which itself has no Parquet dependency).
///
/// Each Parquet file is streamed (row slices, bounded memory) into a temporary JSONL file
/// beside the output, one line per row (a blank line for a row the reader skips), with the text
/// and id fields and every other column; JSONL inputs are read in place. The engine sees all
/// of them as one ordered source whose parts are named by the original files, so generated ids
/// (`FILE:ROW`), skipped-record entries and the keep-first rule refer to the inputs, and Parquet
/// rows the reader could not use are added to the report's skipped list. Texts are never all
/// in memory. Outputs are written atomically; the temporary files are removed.
///
/// # Errors
/// No inputs, an output that is also an input, I/O, Parquet and dedup errors. Malformed
/// records are not errors: they are skipped and listed in the report.
pub fn dedup_files(config: &DedupConfig, job: &FileDedupJob) -> Result<FileDedupSummary> {
    if job.inputs.is_empty() {
        return Err(Error::Dedup("no input files".into()));
    }
    if let Ok(out) = job.output.canonicalize()
        && let Some(same) = job
            .inputs
            .iter()
            .find(|i| i.canonicalize().is_ok_and(|i| i == out))
    {
        return Err(Error::Dedup(format!(
            "output {} is also an input file",
            same.display()
        )));
    }
    let dir = job
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".infuse-dedup-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io("cannot create a temporary folder in", &dir, e))?;
    let mut parts = Vec::with_capacity(job.inputs.len());
    let mut skipped: Vec<(usize, infuse_dedup_minhash::SkippedRecord)> = Vec::new();
    let mut parquet_rows = 0u64;
    for (i, input) in job.inputs.iter().enumerate() {
        let name = input.display().to_string();
        if is_parquet(input) {
            let converted = tmp.path().join(format!("{i:06}.jsonl"));
            let (rows, issues) = parquet_to_jsonl(input, &job.fields, &converted)?;
            parquet_rows += rows;
            skipped.extend(issues.into_iter().map(|s| (i, s)));
            parts.push((converted, name));
        } else {
            parts.push((input.clone(), name));
        }
    }
    let parquet_skipped = skipped.len() as u64;
    let source = JsonlSource::with_names(parts, job.fields.clone()).map_err(derr)?;
    let mut outcome = dedup_source(config, &source).map_err(derr)?;
    if !skipped.is_empty() {
        let report = &mut outcome.report;
        report.records_skipped += parquet_skipped;
        let part_of: HashMap<&str, usize> = source
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut all: Vec<(usize, infuse_dedup_minhash::SkippedRecord)> = report
            .skipped
            .drain(..)
            .map(|s| (part_of.get(s.file.as_str()).copied().unwrap_or(usize::MAX), s))
            .chain(skipped)
            .collect();
        all.sort_by_key(|(part, s)| (*part, s.line));
        report.skipped = all
            .into_iter()
            .take(config.max_reported_skips)
            .map(|(_, s)| s)
            .collect();
    }
    let parquet_out = is_parquet(&job.output);
    let kept = if parquet_out {
        tmp.path().join("kept.jsonl")
    } else {
        job.output.clone()
    };
    infuse_dedup_minhash::write_jsonl_outputs(config, &source, &outcome, &kept, job.clusters.as_deref(), job.report.as_deref())
        .map_err(derr)?;
    if parquet_out {
        jsonl_to_parquet(&kept, &job.fields, &job.output)?;
    }
    Ok(FileDedupSummary {
        parquet_rows,
        parquet_skipped,
        report: outcome.report,
    })
}

/// Stream one Parquet file into JSONL: one line per row (an object with the text and id fields
/// and every other column; a blank line for a row the reader skipped, so line N is row N).
/// Returns the rows written and what the reader skipped.
fn parquet_to_jsonl(
    file: &Path,
    fields: &FieldNames,
    out: &Path,
) -> Result<(u64, Vec<infuse_dedup_minhash::SkippedRecord>)> {
    use std::io::Write;
    let opts = crate::parquet::ParquetOptions {
        text_field: fields.text.clone(),
        id_field: fields.id.clone(),
        ..Default::default()
    };
    let f = std::fs::File::create(out).map_err(|e| Error::io("cannot create", out, e))?;
    let mut w = std::io::BufWriter::new(f);
    let werr = |e| Error::io("cannot write", out, e);
    let (mut rows, mut lines) = (0u64, 0u64);
    let mut skipped = Vec::new();
    let mut reader = crate::parquet::ParquetReader::new(vec![file.to_path_buf()], opts);
    while let Some((row, item)) = reader.next_with_row() {
        match item {
            crate::ReadItem::Record(r) => {
                let row = row.unwrap_or(lines + 1);
                while lines + 1 < row {
                    w.write_all(b"\n").map_err(werr)?;
                    lines += 1;
                }
                let mut obj = r.metadata;
                obj.insert(fields.text.clone(), serde_json::Value::String(r.text));
                if let Some(id) = &fields.id {
                    obj.insert(id.clone(), serde_json::Value::String(r.id));
                }
                serde_json::to_writer(&mut w, &obj)?;
                w.write_all(b"\n").map_err(werr)?;
                lines += 1;
                rows += 1;
            }
            crate::ReadItem::Issue(i) => {
                tracing::warn!(target: "infuse_data_prep", "skipped Parquet input: {i}");
                let reason = match &i.field {
                    Some(f) => format!("{} (column `{f}`): {}", i.kind.as_str(), i.message),
                    None => format!("{}: {}", i.kind.as_str(), i.message),
                };
                skipped.push(infuse_dedup_minhash::SkippedRecord {
                    file: file.display().to_string(),
                    line: i.line.unwrap_or(0),
                    reason,
                });
            }
        }
    }
    w.flush().map_err(werr)?;
    Ok((rows, skipped))
}

/// Convert JSONL records into a Parquet file in this crate's record layout, written
/// atomically: `id` from the id field (the 1-based line number when absent), `text` from the
/// text field, `source` from a string `source` field (else `"dedup"`), and every other field
/// in `metadata`. Reading it back with [`crate::parquet::ParquetReader`] gives every field
/// again (`source` among the metadata).
///
/// # Errors
/// I/O and Parquet errors, a line that is not a JSON object or has no string text field.
pub fn jsonl_to_parquet(jsonl: &Path, fields: &FieldNames, out: &Path) -> Result<usize> {
    use std::io::BufRead;
    let mut writer = crate::parquet::ParquetRecordWriter::create(out)?;
    let file = std::fs::File::open(jsonl).map_err(|e| Error::io("cannot open", jsonl, e))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io("cannot read", jsonl, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| {
            Error::Dedup(format!("{}:{}: {message}", jsonl.display(), n + 1))
        };
        let mut obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let text = match obj.remove(&fields.text) {
            Some(serde_json::Value::String(t)) => t,
            _ => return Err(bad(format!("no string field `{}`", fields.text))),
        };
        let id = match fields.id.as_ref().and_then(|f| obj.remove(f)) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => (n + 1).to_string(),
        };
        let source = match obj.remove("source") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                obj.insert("source".into(), other);
                "dedup".to_owned()
            }
            None => "dedup".to_owned(),
        };
        let mut record = crate::Record::new(id, text, source);
        record.metadata = obj;
        writer.write(&record)?;
    }
    writer.finish()
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::parquet::{ParquetOptions, ParquetReader, ParquetRecordWriter};
    use crate::{ReadItem, Record};

    /// `n` pseudo-random words (independent texts per seed).
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

    /// One word changed: Jaccard of the word 5-grams about 0.92.
    fn near(text: &str) -> String {
        let mut w: Vec<&str> = text.split(' ').collect();
        w[60] = "changed";
        w.join(" ")
    }

    /// `dir/a.parquet`: a, b, (empty text), c ~ a, d; `dir/sub/b.jsonl`: e ~ b, a bad line, f.
    fn corpus(dir: &Path) -> (PathBuf, PathBuf, String) {
        let pq = dir.join("a.parquet");
        let mut w = ParquetRecordWriter::create(&pq).expect("writer");
        let rows = [
            ("a", words(1, 120)),
            ("b", words(2, 120)),
            ("x", String::new()),
            ("c", near(&words(1, 120))),
            ("d", words(3, 120)),
        ];
        for (id, text) in &rows {
            let mut r = Record::new(*id, text.clone(), "web");
            r.metadata.insert("lang".into(), serde_json::json!("en"));
            w.write(&r).expect("row");
        }
        w.finish().expect("finish");
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        let jl = dir.join("sub/b.jsonl");
        let f_line = format!(r#"{{"text": "{}", "id": "f", "n": [1, 2.50]}}"#, words(4, 80));
        let body = format!(
            "{}\nnot json\n{f_line}\n",
            serde_json::json!({"id": "e", "text": near(&words(2, 120)), "lang": "de"})
        );
        std::fs::write(&jl, body).expect("jsonl");
        (pq, jl, f_line)
    }

    #[test]
    fn parquet_and_jsonl_inputs_together() {
        let tmp = tempfile::tempdir().expect("tmp");
        let input = tmp.path().join("in");
        let (pq, jl, f_line) = corpus(&input);
        let inputs = dedup_input_files(&input).expect("list");
        assert_eq!(inputs, [pq.clone(), jl.clone()]);
        assert_eq!(dedup_input_files(&jl).expect("file"), std::slice::from_ref(&jl));
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).expect("dir");
        assert!(dedup_input_files(&empty).is_err());

        // JSONL out: Parquet rows become objects with every column, JSONL lines are copied.
        let out = tmp.path().join("out/kept.jsonl");
        let job = FileDedupJob {
            inputs: inputs.clone(),
            output: out.clone(),
            fields: FieldNames::default(),
            clusters: Some(tmp.path().join("out/clusters.jsonl")),
            report: Some(tmp.path().join("out/report.json")),
        };
        let s = dedup_files(&DedupConfig::default(), &job).expect("dedup");
        assert_eq!((s.parquet_rows, s.parquet_skipped), (4, 1));
        let text = std::fs::read_to_string(&out).expect("out");
        let lines: Vec<&str> = text.lines().collect();
        let ids: Vec<String> = lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["id"].as_str().unwrap_or("?").to_owned())
            .collect();
        assert_eq!(ids, ["a", "b", "d", "f"], "c ~ a and e ~ b removed, first kept");
        assert_eq!(lines[3], f_line, "JSONL lines are kept byte for byte");
        let a: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!((a["lang"].as_str(), a["source"].as_str()), (Some("en"), Some("web")));
        assert_eq!((s.report.records_in, s.report.records_removed), (6, 2));
        // Skipped: the Parquet row with empty text (file, row) and the bad JSONL line, in order.
        let skipped: Vec<(String, u64)> = s.report.skipped.iter().map(|k| (k.file.clone(), k.line)).collect();
        assert_eq!(skipped, [(pq.display().to_string(), 3), (jl.display().to_string(), 2)]);
        assert_eq!(s.report.records_skipped, 2);
        assert!(s.report.skipped[0].reason.contains("empty_text"), "{:?}", s.report.skipped);
        let report = std::fs::read_to_string(tmp.path().join("out/report.json")).expect("report");
        assert!(report.contains("empty_text"), "{report}");
        let clusters = std::fs::read_to_string(tmp.path().join("out/clusters.jsonl")).expect("clusters");
        let clusters: Vec<serde_json::Value> = clusters.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(clusters.len(), 2);
        assert_eq!((clusters[0]["kept"].as_str(), clusters[1]["kept"].as_str()), (Some("a"), Some("b")));
        assert!(clusters[0].to_string().contains("\"c\"") && clusters[1].to_string().contains("\"e\""), "{clusters:?}");
        // No temporary files are left beside the output.
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("out")).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left.len(), 3, "{left:?}");

        // Without an id field, ids are FILE:ROW of the original file (the skipped row keeps
        // the numbering), and Parquet out keeps every column.
        let out_pq = tmp.path().join("out/kept.parquet");
        let job = FileDedupJob {
            inputs,
            output: out_pq.clone(),
            fields: FieldNames { id: None, ..FieldNames::default() },
            clusters: Some(tmp.path().join("out/clusters2.jsonl")),
            report: None,
        };
        dedup_files(&DedupConfig::default(), &job).expect("dedup");
        let clusters = std::fs::read_to_string(tmp.path().join("out/clusters2.jsonl")).expect("clusters");
        assert!(clusters.contains(&format!("\"{}:4\"", pq.display())), "row 4 (c) named by row: {clusters}");
        assert!(clusters.contains(&format!("\"{}:1\"", jl.display())), "{clusters}");
        let kept: Vec<Record> = ParquetReader::new(vec![out_pq.clone()], ParquetOptions::default())
            .map(|i| match i {
                ReadItem::Record(r) => r,
                ReadItem::Issue(e) => panic!("unreadable output row: {e}"),
            })
            .collect();
        let texts: Vec<&str> = kept.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts.len(), 4);
        assert_eq!(texts[2], words(3, 120));
        assert_eq!(kept[0].metadata.get("lang"), Some(&serde_json::json!("en")));
        assert_eq!(kept[3].metadata.get("n"), Some(&serde_json::json!([1, 2.5])));
        use polars::prelude::SerReader as _;
        let df = polars::prelude::ParquetReader::new(std::fs::File::open(&out_pq).expect("open"))
            .finish()
            .expect("parquet");
        let sources: Vec<String> = df
            .column("source")
            .expect("source column")
            .str()
            .expect("strings")
            .iter()
            .map(|s| s.unwrap_or_default().to_owned())
            .collect();
        assert_eq!(sources, ["web", "web", "web", "dedup"]);

        // The output may not overwrite an input.
        let job = FileDedupJob { inputs: vec![pq.clone()], output: pq, fields: FieldNames::default(), clusters: None, report: None };
        assert!(dedup_files(&DedupConfig::default(), &job).expect_err("same file").to_string().contains("also an input"));
    }

    #[test]
    fn a_missing_text_column_is_one_issue_per_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let pq = tmp.path().join("a.parquet");
        let mut w = ParquetRecordWriter::create(&pq).expect("writer");
        for i in 0..5 {
            w.write(&Record::new(format!("{i}"), words(i, 20), "s")).expect("row");
        }
        w.finish().expect("finish");
        let opts = ParquetOptions { text_field: "body".into(), batch_rows: 2, ..ParquetOptions::default() };
        let items: Vec<ReadItem> = ParquetReader::new(vec![pq.clone(), pq], opts).collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items.iter().all(|i| matches!(i, ReadItem::Issue(x) if x.kind == crate::IssueKind::MissingField)));
    }
}
