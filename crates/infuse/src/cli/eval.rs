//! `infuse eval CONFIG` and the quick `infuse eval perplexity | humaneval | choice` commands.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use infuse_eval::choice::{ChoiceConfig, evaluate_choice, general_knowledge, load_items};
use infuse_eval::code::{CodeEvalConfig, evaluate_code, load_humaneval, load_tasks};
use infuse_eval::llama::LlamaEvalModel;
use infuse_eval::perplexity::{PerplexityConfig, evaluate_perplexity, read_documents};
use infuse_eval::report::EvalReport;
use infuse_eval::suite::{EvalConfig, compare_reports, run};
use infuse_eval::DecodingParams;

use super::model::ModelArgs;

/// `infuse eval`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    suite: Option<SuiteArgs>,
}

/// Run the suites of a TOML config on a model.
#[derive(Args, Debug)]
pub(crate) struct SuiteArgs {
    /// Eval config (TOML: [[perplexity]], [[code]], [[choice]], [grid], [compare]).
    config: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Output directory for report.json and report.html.
    #[arg(long, default_value = "eval-out")]
    output: PathBuf,
    /// A report.json of the base model: compare against it (bootstrap CIs, regressions).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Window length for perplexity (default: the model's context length).
    #[arg(long)]
    max_length: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum EvalCommand {
    /// Token/word/byte perplexity and bits-per-byte of a text file or JSONL (lm-eval definitions).
    Perplexity(PerplexityArgs),
    /// pass@k on HumanEval (or a generic JSONL of unit-tested tasks) with sandboxed execution.
    Humaneval(HumanevalArgs),
    /// Multiple-choice accuracy (lm-eval MMLU format) on a JSONL or the bundled general-knowledge set.
    Choice(ChoiceArgs),
}

#[derive(Args, Debug)]
struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text file, or JSONL with a text field.
    #[arg(long)]
    input: PathBuf,
    /// JSONL text field.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Rolling window length (default: the model's context length).
    #[arg(long)]
    max_length: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct HumanevalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Task file (default: .cache/assets/data/HumanEval.jsonl.gz from `cargo xtask fetch-assets`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Only the first N problems.
    #[arg(long)]
    limit: Option<usize>,
    /// Samples per problem (n).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-p.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Most new tokens per sample.
    #[arg(long, default_value_t = 384)]
    max_new_tokens: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ChoiceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL with question/choices/answer (default: the bundled general-knowledge set).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Few-shot examples.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn load(model: &ModelArgs, max_length: Option<usize>) -> Result<LlamaEvalModel> {
    Ok(LlamaEvalModel::from_pretrained(model.load()?, max_length))
}

fn print(json: bool, value: &serde_json::Value, lines: &[(&str, String)]) -> Result<()> {
    let mut out = std::io::stdout();
    if json {
        writeln!(out, "{value}")?;
    } else {
        for (k, v) in lines {
            writeln!(out, "{k}: {v}")?;
        }
    }
    Ok(())
}

pub(crate) fn run_eval(args: EvalArgs) -> Result<()> {
    match (args.command, args.suite) {
        (Some(EvalCommand::Perplexity(a)), _) => perplexity(a),
        (Some(EvalCommand::Humaneval(a)), _) => humaneval(a),
        (Some(EvalCommand::Choice(a)), _) => choice(a),
        (None, Some(s)) => suite(s),
        (None, None) => anyhow::bail!("usage: infuse eval CONFIG --model M, or infuse eval perplexity|humaneval|choice ..."),
    }
}

fn suite(a: SuiteArgs) -> Result<()> {
    let cfg = EvalConfig::from_file(&a.config)?;
    let mut model = load(&a.model, a.max_length)?;
    let name = a.model.model.display().to_string();
    let mut report = run(&mut model, &name, &cfg)?;
    if let Some(base) = &a.baseline {
        let text = std::fs::read_to_string(base).with_context(|| format!("reading {}", base.display()))?;
        let before = EvalReport::from_json(&text).with_context(|| format!("parsing {}", base.display()))?;
        report.comparisons = compare_reports(&before, &report, &cfg.compare)?;
    }
    std::fs::create_dir_all(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    report.write_json(&a.output.join("report.json"))?;
    report.write_html(&a.output.join("report.html"))?;
    tracing::info!(output = %a.output.display(), "wrote report.json and report.html");
    Ok(())
}

fn perplexity(a: PerplexityArgs) -> Result<()> {
    let docs = read_documents(&a.input, &a.text_field)?;
    let mut model = load(&a.model, a.max_length)?;
    let r = evaluate_perplexity(&mut model, &docs, &PerplexityConfig { max_length: a.max_length })?;
    let opt = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.4}"));
    print(
        a.json,
        &serde_json::to_value(&r)?,
        &[
            ("token_perplexity", format!("{:.4}", r.token_perplexity)),
            ("word_perplexity", opt(r.word_perplexity)),
            ("byte_perplexity", opt(r.byte_perplexity)),
            ("bits_per_byte", opt(r.bits_per_byte)),
        ],
    )
}

fn humaneval(a: HumanevalArgs) -> Result<()> {
    let default = PathBuf::from(".cache/assets/data/HumanEval.jsonl.gz");
    let path = a.input.clone().unwrap_or(default);
    let mut tasks = if path.to_string_lossy().contains("HumanEval") { load_humaneval(&path)? } else { load_tasks(&path)? };
    if let Some(limit) = a.limit {
        tasks.truncate(limit);
    }
    let cfg = CodeEvalConfig {
        samples_per_problem: a.samples,
        decoding: DecodingParams {
            temperature: a.temperature,
            top_p: a.top_p,
            max_new_tokens: a.max_new_tokens,
            seed: a.seed,
            ..DecodingParams::default()
        },
        ..CodeEvalConfig::default()
    };
    let mut model = load(&a.model, None)?;
    let r = evaluate_code(&mut model, &tasks, &cfg)?;
    let mut lines: Vec<(&str, String)> = Vec::new();
    let labels: Vec<String> = r.pass_at_k.iter().map(|p| format!("pass@{}", p.k)).collect();
    for (p, label) in r.pass_at_k.iter().zip(&labels) {
        lines.push((label.as_str(), format!("{:.4}", p.value)));
    }
    lines.push(("problems", tasks.len().to_string()));
    lines.push(("generation_secs", format!("{:.1}", r.generation_secs)));
    lines.push(("execution_secs", format!("{:.1}", r.execution_secs)));
    print(a.json, &serde_json::to_value(&r)?, &lines)
}

fn choice(a: ChoiceArgs) -> Result<()> {
    let items = match &a.input {
        Some(p) => load_items(p)?,
        None => general_knowledge()?,
    };
    let mut model = load(&a.model, None)?;
    let cfg = ChoiceConfig { shots: a.shots, limit: a.limit, ..ChoiceConfig::default() };
    let r = evaluate_choice(&mut model, &items, None, &cfg)?;
    print(
        a.json,
        &serde_json::to_value(&r)?,
        &[
            ("acc", format!("{:.4} ± {:.4}", r.acc, r.acc_stderr)),
            ("acc_norm", format!("{:.4}", r.acc_norm)),
            ("n", r.n.to_string()),
        ],
    )
}
