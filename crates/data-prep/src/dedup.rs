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

/// `infuse dedup` over Parquet files: what to read and write.
#[derive(Debug, Clone)]
pub struct ParquetDedupJob {
    /// Parquet files, read in order.
    pub inputs: Vec<PathBuf>,
    /// Output: Parquet when it ends in `.parquet` (this crate's record layout: `id`, `text`,
    /// `source`, `metadata` with every other column), JSONL otherwise (every column a field).
    pub output: PathBuf,
    /// Text and id columns (`score` for the keep-best rule).
    pub fields: FieldNames,
    /// Optional clusters JSONL.
    pub clusters: Option<PathBuf>,
    /// Optional JSON report.
    pub report: Option<PathBuf>,
}

/// What [`dedup_parquet`] did.
#[derive(Debug, Clone)]
pub struct ParquetDedupSummary {
    /// Rows read.
    pub rows: u64,
    /// Rows the Parquet reader could not use (logged with file and row).
    pub skipped_rows: u64,
    /// The dedup engine's report.
    pub report: infuse_dedup_minhash::DedupReport,
}

/// Near-duplicate removal over Parquet files with the streaming JSONL engine of
/// `infuse-dedup-minhash`: rows are streamed (row slices, bounded memory) into a temporary JSONL
/// beside the output, deduplicated there (clusters, report, keep rule unchanged), and written as
/// JSONL or Parquet. Texts are never all in memory.
pub fn dedup_parquet(config: &DedupConfig, job: &ParquetDedupJob) -> Result<ParquetDedupSummary> {
    let dir = job.output.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let tmp = tempfile::Builder::new().prefix(".infuse-dedup-").tempdir_in(&dir).map_err(|e| Error::io("cannot create a temporary folder in", &dir, e))?;
    let input = tmp.path().join("input.jsonl");
    let (rows, skipped_rows) = parquet_to_jsonl(&job.inputs, &job.fields, &input)?;
    let parquet_out = job.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let kept = if parquet_out { tmp.path().join("kept.jsonl") } else { job.output.clone() };
    let jsonl_job = infuse_dedup_minhash::JsonlJob {
        input,
        output: kept.clone(),
        fields: job.fields.clone(),
        clusters: job.clusters.clone(),
        report: job.report.clone(),
    };
    let report = infuse_dedup_minhash::dedup_jsonl(config, &jsonl_job).map_err(|e| Error::Dedup(e.to_string()))?;
    if parquet_out {
        jsonl_to_parquet(&kept, &job.fields, &job.output)?;
    }
    Ok(ParquetDedupSummary { rows, skipped_rows, report })
}

/// Stream Parquet rows into JSONL: one object per row with the text and id fields and every other
/// column. Returns (rows written, rows skipped).
fn parquet_to_jsonl(files: &[PathBuf], fields: &FieldNames, out: &Path) -> Result<(u64, u64)> {
    use std::io::Write;
    let opts = crate::parquet::ParquetOptions { text_field: fields.text.clone(), id_field: fields.id.clone(), ..Default::default() };
    let file = std::fs::File::create(out).map_err(|e| Error::io("cannot create", out, e))?;
    let mut w = std::io::BufWriter::new(file);
    let (mut rows, mut skipped) = (0u64, 0u64);
    for item in crate::parquet::ParquetReader::new(files.to_vec(), opts) {
        match item {
            crate::ReadItem::Record(r) => {
                let mut obj = r.metadata;
                obj.insert(fields.text.clone(), serde_json::Value::String(r.text));
                if let Some(id) = &fields.id {
                    obj.insert(id.clone(), serde_json::Value::String(r.id));
                }
                serde_json::to_writer(&mut w, &obj)?;
                w.write_all(b"\n").map_err(|e| Error::io("cannot write", out, e))?;
                rows += 1;
            }
            crate::ReadItem::Issue(i) => {
                skipped += 1;
                tracing::warn!(target: "infuse_data_prep", "skipped Parquet row: {i}");
            }
        }
    }
    w.flush().map_err(|e| Error::io("cannot write", out, e))?;
    Ok((rows, skipped))
}

/// Convert JSONL records into a Parquet file in this crate's record layout (`id`, `text`,
/// `source = "dedup"`, `metadata` holding every other field), written atomically.
pub fn jsonl_to_parquet(jsonl: &Path, fields: &FieldNames, out: &Path) -> Result<usize> {
    use std::io::BufRead;
    let mut writer = crate::parquet::ParquetRecordWriter::create(out)?;
    let file = std::fs::File::open(jsonl).map_err(|e| Error::io("cannot open", jsonl, e))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io("cannot read", jsonl, e))?;
        let bad = |message: String| Error::Dedup(format!("{}:{}: {message}", jsonl.display(), n + 1));
        let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let text = match obj.remove(&fields.text) {
            Some(serde_json::Value::String(t)) => t,
            _ => return Err(bad(format!("no string field `{}`", fields.text))),
        };
        let id = match fields.id.as_ref().and_then(|f| obj.remove(f)) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => (n + 1).to_string(),
        };
        let mut record = crate::Record::new(id, text, "dedup");
        record.metadata = obj;
        writer.write(&record)?;
    }
    writer.finish()
}
