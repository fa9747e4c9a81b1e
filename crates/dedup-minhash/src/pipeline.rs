//! End-to-end entry points: in-memory records, any [`RecordSource`], JSONL files, and the
//! sign-shards / merge split for running across machines.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::engine::{DedupOutcome, Deduper, RecordDecision};
use crate::error::{DedupError, Result};
use crate::jsonl::{FieldNames, JsonlSource, write_jsonl};
use crate::persist::ShardSummary;
use crate::report::{DedupReport, write_clusters, write_report};
use crate::source::{MemorySource, Record, RecordSource, ShardSpec};

/// Scans all of `source` and deduplicates it.
///
/// # Errors
/// Config, source and verification errors.
pub fn dedup_source(config: &DedupConfig, source: &dyn RecordSource) -> Result<DedupOutcome> {
    let mut outcome = with_threads(config, |config| {
        let mut d = Deduper::new(config.clone())?;
        d.set_parts(source.parts().to_vec());
        source.scan(ShardSpec::SINGLE, &mut |batch| d.add_batch(batch))?;
        d.finish(source)
    })?;
    outcome.report.config = config.clone();
    Ok(outcome)
}

/// Runs `f` on the rayon pool that `config.threads` asks for (the current pool when unset), so
/// that all parallel work (parsing, signing, verification) uses it; `f` gets a copy of the config
/// whose `threads` is cleared so that no second pool is built.
fn with_threads<R: Send>(config: &DedupConfig, f: impl FnOnce(&DedupConfig) -> Result<R> + Send) -> Result<R> {
    match config.threads {
        None => f(config),
        Some(n) => {
            config.validate()?;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| DedupError::ThreadPool(e.to_string()))?;
            let inner = DedupConfig { threads: None, ..config.clone() };
            pool.install(|| f(&inner))
        }
    }
}

/// Signs the `shard` share of `source` and writes the signature file `path` (see
/// [`signatures_file_name`]); run once per rank, then [`merge_shards`].
///
/// # Errors
/// Config, source and I/O errors.
pub fn sign_shard(config: &DedupConfig, source: &dyn RecordSource, shard: ShardSpec, path: &Path) -> Result<ShardSummary> {
    with_threads(config, |config| {
        let mut d = Deduper::new(config.clone())?;
        d.set_parts(source.parts().to_vec());
        source.scan(shard, &mut |batch| d.add_batch(batch))?;
        d.write_signatures(path, shard, &source.fingerprint())
    })
}

/// The conventional name of rank `rank`'s signature file: `signatures-RRRRR-of-WWWWW.sig`.
#[must_use]
pub fn signatures_file_name(shard: ShardSpec) -> String {
    format!("signatures-{:05}-of-{:05}.sig", shard.rank, shard.world)
}

/// The `*.sig` files of a directory, sorted.
///
/// # Errors
/// [`DedupError::Io`], or [`DedupError::NoInput`] when there are none.
pub fn find_signature_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DedupError::io("listing", dir, e))? {
        let path = entry.map_err(|e| DedupError::io("listing", dir, e))?.path();
        if path.extension().is_some_and(|e| e == "sig") {
            out.push(path);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(DedupError::NoInput(dir.to_path_buf()));
    }
    Ok(out)
}

/// Reads the signature files of all ranks (each rank exactly once) and deduplicates them
/// together; `source` is the same input the ranks signed (read again for verification).
///
/// # Errors
/// [`DedupError::Signatures`] when files are missing, duplicated or inconsistent; others as
/// [`Deduper::finish`].
pub fn merge_shards(config: &DedupConfig, source: &dyn RecordSource, files: &[PathBuf]) -> Result<DedupOutcome> {
    let mut outcome = with_threads(config, |config| merge_shards_inner(config, source, files))?;
    outcome.report.config = config.clone();
    Ok(outcome)
}

fn merge_shards_inner(config: &DedupConfig, source: &dyn RecordSource, files: &[PathBuf]) -> Result<DedupOutcome> {
    let mut d = Deduper::new(config.clone())?;
    d.set_parts(source.parts().to_vec());
    let fingerprint = source.fingerprint();
    let mut seen: Vec<Option<PathBuf>> = Vec::new();
    let mut world = None;
    for path in files {
        let shard = d.read_signatures(path, &fingerprint)?;
        let bad = |m: String| DedupError::Signatures { path: path.clone(), message: m };
        match world {
            None => {
                world = Some(shard.world);
                seen = vec![None; shard.world];
            }
            Some(w) if w != shard.world => return Err(bad(format!("world size {} but other shards have {w}", shard.world))),
            Some(_) => {}
        }
        match seen.get_mut(shard.rank) {
            Some(slot @ None) => *slot = Some(path.clone()),
            Some(Some(other)) => return Err(bad(format!("rank {} is also in {}", shard.rank, other.display()))),
            None => return Err(bad(format!("rank {} out of range", shard.rank))),
        }
    }
    if let Some(missing) = seen.iter().position(Option::is_none) {
        return Err(DedupError::Signatures {
            path: files.first().cloned().unwrap_or_default(),
            message: format!("no signature file for rank {missing} of {}", seen.len()),
        });
    }
    if files.is_empty() {
        return Err(DedupError::config("signatures", "no signature files given"));
    }
    d.finish(source)
}

/// Inputs and outputs of a JSONL deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonlJob {
    /// A JSONL file or a directory of them.
    pub input: PathBuf,
    /// The deduplicated JSONL file (gzip when it ends in `.gz`).
    pub output: PathBuf,
    /// Field mapping.
    pub fields: FieldNames,
    /// Optional clusters file (JSONL).
    pub clusters: Option<PathBuf>,
    /// Optional JSON report.
    pub report: Option<PathBuf>,
}

impl JsonlJob {
    /// A job with default fields and no side outputs.
    #[must_use]
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        Self { input: input.into(), output: output.into(), fields: FieldNames::default(), clusters: None, report: None }
    }
}

/// Deduplicates JSONL: signatures in a first pass (texts are not kept), verification reads back
/// only the candidates, a last pass writes the kept records; then the clusters file and the report.
///
/// # Errors
/// Config, I/O and verification errors. Malformed lines are not errors: they are skipped and
/// listed in the report.
pub fn dedup_jsonl(config: &DedupConfig, job: &JsonlJob) -> Result<DedupReport> {
    let source = JsonlSource::open(&job.input, job.fields.clone())?;
    let outcome = dedup_source(config, &source)?;
    write_jsonl_outputs(config, &source, &outcome, &job.output, job.clusters.as_deref(), job.report.as_deref())?;
    Ok(outcome.report)
}

/// Signs this rank's share of a JSONL input (`shard` usually from [`ShardSpec::from_env`]).
///
/// # Errors
/// As [`sign_shard`].
pub fn sign_jsonl_shard(config: &DedupConfig, input: &Path, fields: &FieldNames, shard: ShardSpec, signatures: &Path) -> Result<ShardSummary> {
    let source = JsonlSource::open(input, fields.clone())?;
    sign_shard(config, &source, shard, signatures)
}

/// Merges the shard signature files of a JSONL input and writes the job's outputs.
///
/// # Errors
/// As [`merge_shards`] and [`dedup_jsonl`].
pub fn merge_jsonl_shards(config: &DedupConfig, job: &JsonlJob, signature_files: &[PathBuf]) -> Result<DedupReport> {
    let source = JsonlSource::open(&job.input, job.fields.clone())?;
    let outcome = merge_shards(config, &source, signature_files)?;
    write_jsonl_outputs(config, &source, &outcome, &job.output, job.clusters.as_deref(), job.report.as_deref())?;
    Ok(outcome.report)
}

/// Writes what a JSONL dedup run produces from its `outcome`: the kept records to `output`
/// (gzip when it ends in `.gz`, atomically), then, when given, the clusters file and the report.
/// For callers that build the [`JsonlSource`] themselves (other formats converted to JSONL) and
/// adjust the report before it is written.
///
/// # Errors
/// I/O errors, and a record count that differs from the report's (the input changed).
pub fn write_jsonl_outputs(config: &DedupConfig, source: &JsonlSource, outcome: &DedupOutcome, output: &Path, clusters: Option<&Path>, report: Option<&Path>) -> Result<()> {
    let counts = write_jsonl(source, outcome, config.granularity, output)?;
    if counts.written != outcome.report.records_out {
        return Err(DedupError::Source(format!(
            "wrote {} records but expected {} (input changed during the run?)",
            counts.written, outcome.report.records_out
        )));
    }
    if let Some(path) = clusters {
        write_clusters(path, &outcome.report.cluster_list)?;
    }
    if let Some(path) = report {
        write_report(path, &outcome.report)?;
    }
    tracing::info!(
        records_in = outcome.report.records_in,
        records_out = outcome.report.records_out,
        clusters = outcome.report.clusters,
        skipped = outcome.report.records_skipped,
        "dedup done"
    );
    Ok(())
}

/// The result of [`dedup_records`].
#[derive(Debug, Clone)]
pub struct InMemoryOutcome {
    /// Counts and clusters.
    pub report: DedupReport,
    /// The surviving records in input order (texts with duplicate spans cut out).
    pub kept: Vec<Record>,
    /// One decision per input record, in input order.
    pub decisions: Vec<RecordDecision>,
}

/// Deduplicates records held in memory.
///
/// ```
/// use infuse_dedup_minhash::{DedupConfig, Record, dedup_records};
/// let out = dedup_records(&DedupConfig::default(), vec![
///     Record::new("1", "It was the best of times, it was the worst of times, it was the age of wisdom"),
///     Record::new("2", "it was the best of times it was the worst of times it was the age of wisdom!"),
/// ])?;
/// assert_eq!(out.kept.len(), 1);
/// assert_eq!(out.report.clusters, 1);
/// # Ok::<(), infuse_dedup_minhash::DedupError>(())
/// ```
///
/// # Errors
/// Config errors.
pub fn dedup_records(config: &DedupConfig, records: impl IntoIterator<Item = Record>) -> Result<InMemoryOutcome> {
    let source = MemorySource::new(records.into_iter().collect());
    let outcome = dedup_source(config, &source)?;
    let decisions: Vec<RecordDecision> = outcome.decisions().map(|(_, d)| d.clone()).collect();
    let mut kept = Vec::with_capacity(outcome.report.records_out as usize);
    for (record, decision) in source.into_records().into_iter().zip(&decisions) {
        match decision {
            RecordDecision::Keep => kept.push(record),
            RecordDecision::Drop { .. } => {}
            RecordDecision::RemoveSpans(_) => {
                if let Some(text) = decision.apply(&record.text, config.granularity) {
                    let text = text.into_owned();
                    kept.push(Record { text, ..record });
                }
            }
        }
    }
    Ok(InMemoryOutcome { report: outcome.report, kept, decisions })
}
