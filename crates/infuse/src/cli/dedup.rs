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

/// Stream Parquet rows into a JSONL file the dedup engine reads: one object per row with the
/// text and id fields and every other column (data-prep's Parquet reader keeps them as metadata).
/// Rows the reader cannot use are counted and logged with file and row. Returns (rows, skipped).
fn parquet_to_jsonl(files: Vec<PathBuf>, fields: &FieldNames, out: &std::path::Path) -> Result<(u64, u64)> {
    use std::io::Write;
    use infuse_data_prep::parquet::{ParquetOptions, ParquetReader};
    use infuse_data_prep::ReadItem;
    let opts = ParquetOptions { text_field: fields.text.clone(), id_field: fields.id.clone(), ..ParquetOptions::default() };
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?);
    let (mut rows, mut skipped) = (0u64, 0u64);
    for item in ParquetReader::new(files, opts) {
        match item {
            ReadItem::Record(r) => {
                let mut obj = r.metadata;
                obj.insert(fields.text.clone(), serde_json::Value::String(r.text));
                if let Some(id) = &fields.id {
                    obj.insert(id.clone(), serde_json::Value::String(r.id));
                }
                serde_json::to_writer(&mut w, &obj)?;
                w.write_all(b"\n")?;
                rows += 1;
            }
            ReadItem::Issue(i) => {
                skipped += 1;
                tracing::warn!(file = %i.path.display(), row = i.line, kind = i.kind.as_str(), message = %i.message, "skipped Parquet row");
            }
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((rows, skipped))
}

/// Convert the kept JSONL records into a Parquet file (data-prep's record layout: `id`, `text`,
/// `source`, `metadata` holding every other field as JSON), written atomically.
fn jsonl_to_parquet(jsonl: &std::path::Path, fields: &FieldNames, out: &std::path::Path) -> Result<usize> {
    use std::io::BufRead;
    use infuse_data_prep::parquet::ParquetRecordWriter;
    use infuse_data_prep::Record;
    let mut writer = ParquetRecordWriter::create(out)?;
    let file = std::fs::File::open(jsonl).with_context(|| format!("opening {}", jsonl.display()))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let mut obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).with_context(|| format!("{}:{}", jsonl.display(), n + 1))?;
        let text = match obj.remove(&fields.text) {
            Some(serde_json::Value::String(t)) => t,
            _ => bail!("{}:{}: no string field `{}`", jsonl.display(), n + 1, fields.text),
        };
        let id = match fields.id.as_ref().and_then(|f| obj.remove(f)) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => format!("{}", n + 1),
        };
        let mut record = Record::new(id, text, "dedup");
        record.metadata = obj;
        writer.write(&record)?;
    }
    Ok(writer.finish()?)
}

/// `infuse dedup` over Parquet input (and/or output): rows are streamed through a temporary JSONL
/// file beside the output, so texts are never held in memory and the JSONL engine (streaming,
/// byte-for-byte output, clusters, report) is used unchanged.
fn run_parquet(args: &DedupArgs, config: &DedupConfig, files: Vec<PathBuf>) -> Result<()> {
    let output = args.output.clone().context("--output is required")?;
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new().prefix(".infuse-dedup-").tempdir_in(&dir).with_context(|| format!("temporary folder in {}", dir.display()))?;
    let fields = args.fields();
    let input_jsonl = tmp.path().join("input.jsonl");
    let (rows, skipped) = parquet_to_jsonl(files, &fields, &input_jsonl)?;
    let parquet_out = is_parquet(&output);
    let kept = if parquet_out { tmp.path().join("kept.jsonl") } else { output.clone() };
    let job = JsonlJob { input: input_jsonl, output: kept.clone(), fields: fields.clone(), clusters: args.clusters.clone(), report: args.report.clone() };
    let report = dedup_jsonl(config, &job)?;
    if parquet_out {
        jsonl_to_parquet(&kept, &fields, &output)?;
    }
    tracing::info!(rows, skipped_rows = skipped, records_out = report.records_out, removed = report.records_removed, clusters = report.clusters, "dedup finished (Parquet)");
    Ok(())
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
        return run_parquet(&args, &config, files);
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
