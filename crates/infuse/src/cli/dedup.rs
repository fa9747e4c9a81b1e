//! `infuse dedup`: near-duplicate removal over JSONL (a file or a directory of them).
//!
//! Parses the flags into an [`infuse_dedup_minhash::DedupConfig`] and a
//! [`infuse_dedup_minhash::JsonlJob`] and calls the library. `--stage sign` / `--stage merge`
//! split the work across machines: every rank (from `RANK`/`WORLD_SIZE`, OpenMPI or Slurm
//! variables, or `--rank`/`--world`) signs its share into `--signatures DIR`, then one process
//! merges them and writes the outputs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use infuse_data_prep::dedup::{ParquetDedupJob, dedup_parquet, jsonl_to_parquet};
use infuse_dedup_minhash::{
    DedupConfig, FieldNames, Granularity, JsonlJob, KeepRule, Method, Shingle, ShardSpec, dedup_jsonl, find_signature_files, merge_jsonl_shards,
    sign_jsonl_shard, signatures_file_name,
};

/// Detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MethodArg {
    /// MinHash + LSH, candidates verified by exact Jaccard.
    Minhash,
    /// 64-bit SimHash with blocked tables, then verified like MinHash.
    Simhash,
    /// Exact duplicates of the normalized text.
    Exact,
}

/// Unit that is compared and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GranularityArg {
    /// Whole records.
    Document,
    /// Paragraphs (blank-line separated), cut out of records that keep the rest.
    Paragraph,
    /// Lines, cut out of records that keep the rest.
    Line,
}

/// Which member of a duplicate cluster survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeepArg {
    /// The first in input order.
    First,
    /// The longest text.
    Longest,
    /// The highest `--score-field` value.
    Score,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StageArg {
    /// Everything in this process.
    All,
    /// Sign this rank's share into `--signatures DIR`.
    Sign,
    /// Merge the signature files of all ranks and write the outputs.
    Merge,
}

/// `infuse dedup`: remove near-duplicate records (or paragraphs / lines) from JSONL or Parquet.
#[derive(Args, Debug)]
pub(crate) struct DedupArgs {
    /// A JSONL file or a directory of *.jsonl / *.json / *.ndjson files (optionally .gz), or a
    /// Parquet file or a directory of *.parquet files (every column besides text and id is kept).
    #[arg(long)]
    input: PathBuf,
    /// The deduplicated output: JSONL (gzip if it ends in .gz) or Parquet (`.parquet`, data-prep's
    /// record layout); not needed for `--stage sign`.
    #[arg(long, required_unless_present = "stage")]
    output: Option<PathBuf>,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the record id (used in the clusters file; FILE:LINE when absent).
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Jaccard similarity at or above which two units are duplicates.
    #[arg(long, default_value_t = 0.8)]
    threshold: f64,
    /// Detector.
    #[arg(long, value_enum, default_value_t = MethodArg::Minhash)]
    method: MethodArg,
    /// Unit of comparison and removal.
    #[arg(long, value_enum, default_value_t = GranularityArg::Document)]
    granularity: GranularityArg,
    /// Write counts (and skipped malformed lines) as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the clusters (id, members, similarities) as JSONL here.
    #[arg(long)]
    clusters: Option<PathBuf>,
    /// Which member of a cluster survives.
    #[arg(long, value_enum, default_value_t = KeepArg::First)]
    keep: KeepArg,
    /// Numeric field used by `--keep score`.
    #[arg(long)]
    score_field: Option<String>,
    /// MinHash slots.
    #[arg(long, default_value_t = 128)]
    num_perm: usize,
    /// Word n-gram size of the shingles.
    #[arg(long, default_value_t = 5)]
    ngram: usize,
    /// Use character n-grams of this size instead of word n-grams.
    #[arg(long)]
    char_ngram: Option<usize>,
    /// Seed of the hash permutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: all cores); the output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Run everything, or only one side of a multi-machine run.
    #[arg(long, value_enum)]
    stage: Option<StageArg>,
    /// Directory of the per-rank signature files (`--stage sign` / `--stage merge`).
    #[arg(long)]
    signatures: Option<PathBuf>,
    /// This process's rank for `--stage sign` (default: from the environment).
    #[arg(long, requires = "world")]
    rank: Option<usize>,
    /// Number of ranks for `--stage sign` (default: from the environment).
    #[arg(long, requires = "rank")]
    world: Option<usize>,
}

impl DedupArgs {
    fn config(&self) -> DedupConfig {
        DedupConfig {
            method: match self.method {
                MethodArg::Minhash => Method::MinHash,
                MethodArg::Simhash => Method::SimHash,
                MethodArg::Exact => Method::Exact,
            },
            granularity: match self.granularity {
                GranularityArg::Document => Granularity::Document,
                GranularityArg::Paragraph => Granularity::Paragraph,
                GranularityArg::Line => Granularity::Line,
            },
            shingle: self.char_ngram.map_or(Shingle::Words(self.ngram), Shingle::Chars),
            threshold: self.threshold,
            num_perm: self.num_perm,
            seed: self.seed,
            keep: match self.keep {
                KeepArg::First => KeepRule::First,
                KeepArg::Longest => KeepRule::Longest,
                KeepArg::Score => KeepRule::HighestScore,
            },
            threads: self.threads,
            ..DedupConfig::default()
        }
    }

    fn fields(&self) -> FieldNames {
        FieldNames {
            text: self.text_field.clone(),
            id: (!self.id_field.is_empty()).then(|| self.id_field.clone()),
            score: self.score_field.clone(),
        }
    }

    fn job(&self) -> Result<JsonlJob> {
        let output = self.output.clone().context("--output is required")?;
        Ok(JsonlJob { input: self.input.clone(), output, fields: self.fields(), clusters: self.clusters.clone(), report: self.report.clone() })
    }
}

fn is_parquet(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// Parquet inputs of `--input`: the file itself, or the `.parquet` files of a folder (sorted);
/// `None` when the input is JSONL (a file or a folder without Parquet files).
fn parquet_inputs(input: &std::path::Path) -> Result<Option<Vec<PathBuf>>> {
    if input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .with_context(|| format!("reading {}", input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_parquet(p))
            .collect();
        files.sort();
        return Ok((!files.is_empty()).then_some(files));
    }
    Ok(is_parquet(input).then(|| vec![input.to_owned()]))
}

/// Runs `infuse dedup`.
pub(crate) fn run(args: DedupArgs) -> Result<()> {
    if args.keep == KeepArg::Score && args.score_field.is_none() {
        bail!("--keep score needs --score-field");
    }
    let config = args.config();
    config.validate()?;
    if let Some(files) = parquet_inputs(&args.input)? {
        if args.stage.is_some_and(|s| s != StageArg::All) {
            bail!("{}: sharded stages (--stage sign/merge) read JSONL; convert Parquet with `infuse prep` first", args.input.display());
        }
        let output = args.output.clone().context("--output is required")?;
        let job = ParquetDedupJob { inputs: files, output, fields: args.fields(), clusters: args.clusters.clone(), report: args.report.clone() };
        let s = dedup_parquet(&config, &job)?;
        tracing::info!(rows = s.rows, skipped_rows = s.skipped_rows, records_out = s.report.records_out, removed = s.report.records_removed, clusters = s.report.clusters, "dedup finished (Parquet)");
        return Ok(());
    }
    if is_parquet(&args.output.clone().unwrap_or_default()) {
        let tmp = tempfile::NamedTempFile::new_in(args.output.as_ref().and_then(|o| o.parent()).filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")))?;
        let mut job = args.job()?;
        let output = std::mem::replace(&mut job.output, tmp.path().to_owned());
        let report = dedup_jsonl(&config, &job)?;
        jsonl_to_parquet(tmp.path(), &args.fields(), &output)?;
        tracing::info!(records_out = report.records_out, removed = report.records_removed, "dedup finished (Parquet output)");
        return Ok(());
    }
    match args.stage.unwrap_or(StageArg::All) {
        StageArg::All => {
            let report = dedup_jsonl(&config, &args.job()?)?;
            tracing::info!(
                records_in = report.records_in,
                records_out = report.records_out,
                removed = report.records_removed,
                edited = report.records_edited,
                clusters = report.clusters,
                skipped = report.records_skipped,
                "dedup finished"
            );
            for s in report.skipped.iter().take(5) {
                tracing::warn!(file = %s.file, line = s.line, reason = %s.reason, "skipped malformed record");
            }
        }
        StageArg::Sign => {
            let dir = args.signatures.clone().context("--stage sign needs --signatures DIR")?;
            let shard = match (args.rank, args.world) {
                (Some(rank), Some(world)) => ShardSpec::new(rank, world)?,
                _ => ShardSpec::from_env()?,
            };
            let path = dir.join(signatures_file_name(shard));
            let summary = sign_jsonl_shard(&config, &args.input, &args.fields(), shard, &path)?;
            tracing::info!(rank = shard.rank, world = shard.world, records = summary.records, path = %path.display(), "signatures written");
        }
        StageArg::Merge => {
            let dir = args.signatures.clone().context("--stage merge needs --signatures DIR")?;
            let files = find_signature_files(&dir)?;
            let report = merge_jsonl_shards(&config, &args.job()?, &files)?;
            tracing::info!(shards = files.len(), records_in = report.records_in, records_out = report.records_out, clusters = report.clusters, "dedup merge finished");
        }
    }
    Ok(())
}
