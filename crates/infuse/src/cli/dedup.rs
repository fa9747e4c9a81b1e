//! `infuse dedup`: near-duplicate removal over JSONL and Parquet (a file or a directory).
//!
//! Parses the flags into an [`infuse_dedup_minhash::DedupConfig`] and a
//! [`infuse_dedup_minhash::JsonlJob`] and calls the library; when Parquet is read or written,
//! [`infuse_data_prep::dedup::dedup_files`] feeds the same engine. `--stage sign` / `--stage merge`
//! split the work across machines: every rank (from `RANK`/`WORLD_SIZE`, OpenMPI or Slurm
//! variables, or `--rank`/`--world`) signs its share into `--signatures DIR`, then one process
//! merges them and writes the outputs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use infuse_data_prep::dedup::{FileDedupJob, dedup_files, dedup_input_files, is_parquet};
use infuse_dedup_minhash::{
    DedupConfig, DedupReport, FieldNames, Granularity, JsonlJob, KeepRule, Method, Shingle, ShardSpec, dedup_jsonl, find_signature_files, merge_jsonl_shards,
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
    /// A JSONL or Parquet (`.parquet`) file, or a directory whose *.jsonl / *.json / *.ndjson
    /// (optionally .gz) and *.parquet files are read in path order (every field or column
    /// besides text and id is kept).
    #[arg(long)]
    input: PathBuf,
    /// The deduplicated output: JSONL (gzip if it ends in .gz) or Parquet (`.parquet`, data-prep's
    /// record layout); not needed for `--stage sign`.
    #[arg(long, required_unless_present = "stage")]
    output: Option<PathBuf>,
    /// Field (or Parquet column) holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field (or column) holding the record id (used in the clusters file; FILE:LINE or
    /// FILE:ROW when absent; `--id-field ''` for none).
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

/// Runs `infuse dedup`.
pub(crate) fn run(args: DedupArgs) -> Result<()> {
    if args.keep == KeepArg::Score && args.score_field.is_none() {
        bail!("--keep score needs --score-field");
    }
    let config = args.config();
    config.validate()?;
    let inputs = dedup_input_files(&args.input)?;
    let parquet_out = args.output.as_deref().is_some_and(is_parquet);
    if parquet_out || inputs.iter().any(|f| is_parquet(f)) {
        if args.stage.is_some_and(|s| s != StageArg::All) {
            bail!("{}: sharded stages (--stage sign/merge) read and write JSONL only; convert Parquet with `infuse prep` first", args.input.display());
        }
        let output = args.output.clone().context("--output is required")?;
        let job = FileDedupJob { inputs, output, fields: args.fields(), clusters: args.clusters.clone(), report: args.report.clone() };
        let s = dedup_files(&config, &job)?;
        tracing::info!(parquet_rows = s.parquet_rows, "Parquet rows read");
        log_report(&s.report);
        return Ok(());
    }
    match args.stage.unwrap_or(StageArg::All) {
        StageArg::All => {
            log_report(&dedup_jsonl(&config, &args.job()?)?);
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

/// The summary of a finished dedup run, and the first skipped records.
fn log_report(report: &DedupReport) {
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
