//! The `infuse` command-line program: a thin layer over the infuse libraries.

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod cli;

#[derive(Parser)]
#[command(name = "infuse", version, about = "Turn a general Llama 3 base model into a domain model, on your own machines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a completion (or a chat answer with --chat).
    Generate(cli::model::GenerateArgs),
    /// Score a text: token ids, per-token log-probabilities and mean NLL as JSON.
    Score(cli::model::ScoreArgs),
    /// Convert a model (HF directory or GGUF) into a HF directory (safetensors + tokenizer).
    Convert(cli::model::ConvertArgs),
    /// Prepare data from a config file (readers, filters, dedup, PII, mixing, packing, report).
    Prep(cli::prep::PrepArgs),
    /// Replace PII in a JSONL file by typed placeholders, keeping every other field.
    Anonymize(cli::prep::AnonymizeArgs),
    /// Apply quality filters to a JSONL file, keeping every other field of kept records.
    Filter(cli::prep::FilterArgs),
    /// Evaluate: a TOML suite, or `perplexity`, `humaneval`, `choice` directly.
    Eval(cli::eval::EvalArgs),
    /// Remove near-duplicates (MinHash + LSH, SimHash or exact) from JSONL or Parquet.
    Dedup(cli::dedup::DedupArgs),
    /// Train from a recipe (`stage = "cpt"` or `"sft"`; full fine-tune or LoRA) with `key=value` overrides.
    Train(cli::train::TrainArgs),
}

/// Huge pages for large blocks: training and inference on the CPU allocate gigabytes per step.
#[global_allocator]
static ALLOC: infuse::model::HugePageAlloc = infuse::model::HugePageAlloc;

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Generate(args) => cli::model::generate(args),
        Command::Score(args) => cli::model::score(args),
        Command::Convert(args) => cli::model::convert(args),
        Command::Prep(args) => cli::prep::run_prep(args),
        Command::Anonymize(args) => cli::prep::run_anonymize(args),
        Command::Filter(args) => cli::prep::run_filter(args),
        Command::Dedup(args) => cli::dedup::run(args),
        Command::Eval(args) => cli::eval::run_eval(args),
        Command::Train(args) => cli::train::run(args),
    }
}
