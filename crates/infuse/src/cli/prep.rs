//! `infuse prep`, `infuse anonymize` and `infuse filter`: argument parsing only; the work is done
//! by `infuse-data-prep`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use infuse_data_prep::filters::FilterConfig;
use infuse_data_prep::normalize::NormalizeConfig;
use infuse_data_prep::pii::{PiiConfig, PiiKind};
use infuse_data_prep::{FilterJob, PrepConfig, StepIo, StepReport};

/// `infuse prep CONFIG [key=value...]`: raw corpora to cleaned records, token stores and a report.
#[derive(Args, Debug)]
pub(crate) struct PrepArgs {
    /// Configuration file: TOML, YAML (`.yaml`/`.yml`) or JSON (`.json`), one schema.
    pub(crate) config: PathBuf,
    /// Overrides such as `mix.order=icp`, `sources.0.weight=0.5`, `seed=7`, `stage=merge`.
    pub(crate) overrides: Vec<String>,
}

/// Run `infuse prep`.
pub(crate) fn run_prep(args: PrepArgs) -> Result<()> {
    let config = PrepConfig::load(&args.config, &args.overrides)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let report = infuse_data_prep::run_prep(&config).context("infuse prep")?;
    for s in &report.sources {
        println!(
            "{:<16} {:>9} in  {:>9} out  {:>7} removed  {:>6} bad input  {:>12} tokens",
            s.name,
            s.records_in,
            s.records_out,
            s.removed_total(),
            s.issues.values().sum::<u64>(),
            s.tokens_out
        );
    }
    for (name, store) in &report.stores {
        println!(
            "{:<20} {:>8} sequences {:>12} tokens",
            name, store.sequences, store.tokens
        );
    }
    if report.pii.total() > 0 {
        println!("PII replaced: {}", report.pii.total());
    }
    println!(
        "report: {}",
        config.output_dir.join("report.html").display()
    );
    Ok(())
}

/// `infuse anonymize`: replace PII in the text field of a JSONL file, keeping every other field.
#[derive(Args, Debug)]
pub(crate) struct AnonymizeArgs {
    /// Input JSONL file (or directory / `dir/*.jsonl`).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// Output JSONL file.
    #[arg(long)]
    pub(crate) output: PathBuf,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    pub(crate) text_field: String,
    /// Write counts per PII type (and bad lines) as JSON here.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// A file of names (one per line) to replace by <NAME>.
    #[arg(long)]
    pub(crate) names: Option<PathBuf>,
    /// Only these kinds (comma-separated: email,phone,ip_address,credit_card,iban,url_credentials,secret_key,password,private_key,high_entropy,name).
    #[arg(long, value_delimiter = ',')]
    pub(crate) kinds: Vec<String>,
}

/// Run `infuse anonymize`.
pub(crate) fn run_anonymize(args: AnonymizeArgs) -> Result<()> {
    let mut pii = PiiConfig {
        names_file: args.names,
        ..PiiConfig::default()
    };
    if !args.kinds.is_empty() {
        pii.kinds = args
            .kinds
            .iter()
            .map(|k| {
                serde_json::from_value::<PiiKind>(serde_json::Value::String(k.trim().to_owned()))
                    .with_context(|| format!("unknown PII kind `{k}`"))
            })
            .collect::<Result<_>>()?;
    }
    let io = StepIo {
        text_field: args.text_field,
        ..StepIo::new(args.input, args.output)
    };
    let report = infuse_data_prep::anonymize_jsonl(&io, &pii).context("infuse anonymize")?;
    finish(&report, args.report)?;
    for (k, v) in &report.pii.0 {
        println!("{:<16} {v}", k.as_str());
    }
    Ok(())
}

/// `infuse filter`: drop JSONL records failing quality rules, keeping every field of the others.
#[derive(Args, Debug)]
pub(crate) struct FilterArgs {
    /// Input JSONL file (or directory / `dir/*.jsonl`).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// Output JSONL file.
    #[arg(long)]
    pub(crate) output: PathBuf,
    /// Rules, comma-separated: gopher (= gopher_quality + gopher_repetition), gopher_quality,
    /// gopher_repetition, c4, fineweb, code, scorer, all.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) rules: Vec<String>,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    pub(crate) text_field: String,
    /// TOML file with thresholds (the `[filters]` section of a prep config, without the header).
    #[arg(long)]
    pub(crate) thresholds: Option<PathBuf>,
    /// Normalize text (NFC, whitespace, control characters, mojibake) before filtering.
    #[arg(long)]
    pub(crate) normalize: bool,
    /// Write counts per removal reason (and bad lines) as JSON here.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
}

/// Run `infuse filter`.
pub(crate) fn run_filter(args: FilterArgs) -> Result<()> {
    let filters = match &args.thresholds {
        Some(p) => FilterConfig::load_toml(p)?,
        None => FilterConfig::default(),
    };
    let job = FilterJob {
        rules: args.rules,
        filters,
        normalize: args.normalize.then(NormalizeConfig::default),
    };
    let io = StepIo {
        text_field: args.text_field,
        ..StepIo::new(args.input, args.output)
    };
    let report = infuse_data_prep::filter_jsonl(&io, &job).context("infuse filter")?;
    finish(&report, args.report)?;
    for (k, v) in &report.removed {
        println!("removed {k:<28} {v}");
    }
    Ok(())
}

fn finish(report: &StepReport, path: Option<PathBuf>) -> Result<()> {
    println!(
        "{} records in, {} out, {} bad lines",
        report.records_in,
        report.records_out,
        report.issues.values().sum::<u64>()
    );
    for i in report.issue_list.iter().take(5) {
        println!("  {i}");
    }
    if let Some(p) = path {
        report
            .write_json(&p)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
