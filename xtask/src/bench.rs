//! `cargo xtask bench ...`: infuse and a peer measured in the same run, printed as ratios.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{assets, cargo, repo_root};

/// Python used for peers: `--python`, else `$PYTHON`, else `python3`.
pub(crate) fn python(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Run a command and parse the last line of its stdout as JSON.
pub(crate) fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON line in output")?;
    serde_json::from_str(line).with_context(|| format!("parsing {line}"))
}

/// The SmolLM2-135M-Instruct GGUF converted to an f32 HF directory (cached under .cache/bench).
pub(crate) fn smollm2_hf_dir() -> Result<PathBuf> {
    assets::fetch_all()?;
    let dir = repo_root().join(".cache/bench/smollm2-135m-instruct-f32");
    if !dir.join("config.json").is_file() {
        let gguf = assets::assets_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let status = cargo()
            .args(["run", "--release", "-q", "-p", "infuse-llama-model", "--example", "convert", "--"])
            .arg(&gguf)
            .arg(&dir)
            .arg("f32")
            .status()?;
        anyhow::ensure!(status.success(), "infuse convert failed");
    }
    Ok(dir)
}

/// PyTorch figures from shared/bench/torch_reference.py, or `None` (with a note) when torch is missing.
pub(crate) fn torch_reference(py: &Path, model_dir: &Path, extra: &[&str]) -> Result<Option<Value>> {
    let probe = Command::new(py).args(["-c", "import torch, transformers"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("note: {} has no torch+transformers; PyTorch column skipped (pass --python VENV/bin/python)", py.display());
        return Ok(None);
    }
    let script = repo_root().join("../shared/bench/torch_reference.py");
    anyhow::ensure!(script.is_file(), "{} not found", script.display());
    Ok(Some(run_json(Command::new(py).arg(&script).arg(model_dir).args(extra))?))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1}"))
}

/// Print `name | infuse | pytorch | ratio` rows.
pub(crate) fn print_table(title: &str, rows: &[(&str, Option<f64>, Option<f64>)]) {
    println!("\n{title}");
    println!("{:<28} {:>12} {:>12} {:>8}", "metric", "infuse", "pytorch", "ratio");
    for (name, ours, theirs) in rows {
        println!("{:<28} {:>12} {:>12} {:>8}", name, fmt(*ours), fmt(*theirs), ratio(*ours, *theirs));
    }
}

/// `cargo xtask bench model`.
pub(crate) fn model(py: Option<&Path>) -> Result<()> {
    let dir = smollm2_hf_dir()?;
    eprintln!("== infuse (release build)");
    let ours = run_json(
        cargo()
            .args(["run", "--release", "-q", "-p", "infuse-llama-model", "--example", "bench_model", "--"])
            .arg(&dir)
            .args(["--batch", "4", "--seq", "256", "--gen", "64"]),
    )?;
    eprintln!("== pytorch");
    let theirs = torch_reference(&python(py), &dir, &["--batch", "4", "--seq", "256", "--gen", "64", "--steps", "3"])?;
    let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let t = theirs.as_ref();
    print_table(
        "SmolLM2-135M-Instruct, f32, CPU (forward: batch 4 x 256; decode: 32-token prompt + 64 greedy tokens)",
        &[
            ("forward tokens/s", get(&ours, "forward_tokens_per_s"), t.and_then(|v| get(v, "forward_tokens_per_s"))),
            ("decode tokens/s", get(&ours, "decode_tokens_per_s"), t.and_then(|v| get(v, "decode_tokens_per_s"))),
        ],
    );
    Ok(())
}
