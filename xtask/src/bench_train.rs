//! `cargo xtask bench train`: training tokens/s and peak memory of infuse (full fine-tune and
//! LoRA) next to PyTorch on the same CPU, in the same run.
//!
//! Model: SmolLM2-135M-Instruct (f32 HF directory converted from the fetched GGUF), batch 4 × seq
//! 256, seeded random token ids, AdamW lr 1e-5. Peers: `../shared/bench/torch_reference.py` (full
//! fine-tune tokens/s, the reference figure) and `xtask/peers/torch_train.py` (one mode per
//! process: full fine-tune and peft LoRA r = 8 on the seven projections, tokens/s and peak RSS).
//! infuse runs one mode per process too, so each peak RSS is that mode's.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::bench::{print_table, python, run_json, smollm2_hf_dir, torch_reference};
use crate::{cargo, repo_root};

/// Options of `cargo xtask bench train`.
#[derive(Args, Debug)]
pub(crate) struct BenchTrainOpts {
    /// Python with torch + transformers (+ peft for the LoRA column).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Timed optimizer steps per mode (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Micro-batch size.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Sequence length.
    #[arg(long, default_value_t = 256)]
    seq: usize,
}

fn get(v: Option<&Value>, k: &str) -> Option<f64> {
    v.and_then(|v| v.get(k)).and_then(Value::as_f64)
}

fn mib(v: Option<f64>) -> Option<f64> {
    v.map(|b| b / (1024.0 * 1024.0))
}

/// Run the benchmark and print the table.
pub(crate) fn run(opts: BenchTrainOpts) -> Result<()> {
    let dir = smollm2_hf_dir()?;
    let py = python(opts.python.as_deref());
    let (steps, batch, seq) = (opts.steps.to_string(), opts.batch.to_string(), opts.seq.to_string());
    let status = cargo().args(["build", "--release", "-q", "-p", "infuse-trainer-core", "--example", "bench_train"]).status()?;
    anyhow::ensure!(status.success(), "building bench_train failed");
    let ours = |mode: &str| -> Result<Value> {
        eprintln!("== infuse {mode}");
        run_json(
            cargo()
                .args(["run", "--release", "-q", "-p", "infuse-trainer-core", "--example", "bench_train", "--"])
                .arg(&dir)
                .args(["--mode", mode, "--steps", &steps, "--batch", &batch, "--seq", &seq]),
        )
    };
    let full = ours("full")?;
    let lora = ours("lora")?;
    eprintln!("== pytorch (shared/bench/torch_reference.py)");
    let reference = torch_reference(&py, &dir, &["--batch", &batch, "--seq", &seq, "--steps", &steps, "--gen", "8"])?;
    let peer = |mode: &str| -> Option<Value> {
        eprintln!("== pytorch {mode} (xtask/peers/torch_train.py)");
        let script = repo_root().join("xtask/peers/torch_train.py");
        match run_json(std::process::Command::new(&py).arg(script).arg(&dir).args(["--mode", mode, "--steps", &steps, "--batch", &batch, "--seq", &seq])) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("note: PyTorch {mode} peer skipped: {e:#}");
                None
            }
        }
    };
    let peer_full = reference.as_ref().and(peer("full"));
    let peer_lora = reference.as_ref().and(peer("lora"));
    print_table(
        &format!("SmolLM2-135M-Instruct, f32, CPU, AdamW, batch {batch} x seq {seq} (tokens/s: median step; memory: peak RSS MiB)"),
        &[
            ("full fine-tune tokens/s", get(Some(&full), "full_ft_tokens_per_s"), get(reference.as_ref(), "train_tokens_per_s")),
            ("  (peer script, same work)", get(Some(&full), "full_ft_tokens_per_s"), get(peer_full.as_ref(), "train_tokens_per_s")),
            ("LoRA r=8 tokens/s", get(Some(&lora), "lora_tokens_per_s"), get(peer_lora.as_ref(), "train_tokens_per_s")),
            ("full fine-tune peak MiB", mib(get(Some(&full), "peak_rss_bytes")), mib(get(peer_full.as_ref(), "peak_rss_bytes"))),
            ("LoRA peak MiB", mib(get(Some(&lora), "peak_rss_bytes")), mib(get(peer_lora.as_ref(), "peak_rss_bytes"))),
        ],
    );
    println!("(memory: a ratio below 1 means infuse uses less)");
    Ok(())
}
