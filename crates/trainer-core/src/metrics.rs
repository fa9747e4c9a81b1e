//! `metrics.jsonl` (one JSON object per optimizer step and per evaluation) and process memory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One optimizer step, as written to `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Mean loss per target token over the step's micro-batches.
    pub loss: f64,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Input tokens (without padding) per second of this step.
    pub tokens_per_s: f64,
    /// Target tokens in the step (the loss denominator).
    pub target_tokens: u64,
    /// Input tokens in the step.
    pub tokens: u64,
    /// Epochs of the main data completed (fractional).
    pub epoch: f64,
    /// Seconds the step took.
    pub step_time_s: f64,
    /// Resident memory after the step, bytes (Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Peak resident memory so far, bytes (Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// One evaluation, as written to `metrics.jsonl` (it has `eval_loss` instead of `loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Optimizer steps done when evaluating.
    pub step: u64,
    /// Mean loss per target token on the held-out data.
    pub eval_loss: f64,
    /// `exp(eval_loss)`.
    pub eval_perplexity: f64,
    /// Target tokens evaluated.
    pub eval_tokens: u64,
}

/// A line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricsLine {
    /// An evaluation.
    Eval(EvalMetrics),
    /// A training step.
    Step(StepMetrics),
}

impl MetricsLine {
    /// The step of the line.
    pub fn step(&self) -> u64 {
        match self {
            MetricsLine::Eval(e) => e.step,
            MetricsLine::Step(s) => s.step,
        }
    }
}

/// Appends lines to `metrics.jsonl`, flushing each.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Open `path` for appending. With `keep_until = Some(k)` (resume from step `k`), lines of
    /// later steps are removed first so the file reads as one uninterrupted run.
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self> {
        match keep_until {
            Some(k) if path.exists() => {
                let kept: Vec<String> = read_lines(path)?
                    .into_iter()
                    .filter(|(line, _)| line.as_ref().is_some_and(|l| l.step() <= k))
                    .map(|(_, raw)| raw)
                    .collect();
                let mut text = kept.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                infuse_llama_model::write_atomic(path, text.as_bytes())?;
            }
            None => {
                if path.exists() {
                    std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                }
            }
            Some(_) => {}
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// Append one line.
    pub fn write(&mut self, line: &MetricsLine) -> Result<()> {
        let mut text = serde_json::to_string(line).map_err(|e| Error::Tensor(e.to_string()))?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

fn read_lines(path: &Path) -> Result<Vec<(Option<MetricsLine>, String)>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push((serde_json::from_str(&line).ok(), line));
    }
    Ok(out)
}

/// Read every parsable line of a `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>> {
    Ok(read_lines(path)?.into_iter().filter_map(|(l, _)| l).collect())
}

/// `(current, peak)` resident set size of this process in bytes (Linux `/proc/self/status`).
pub fn memory_usage() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else { return (None, None) };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
