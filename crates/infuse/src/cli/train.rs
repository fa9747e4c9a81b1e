//! `infuse train RECIPE [key=value...]`: argument parsing and output only; the stage crates
//! (`infuse-trainer-cpt`, `infuse-trainer-sft`) do the work on the shared loop.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use infuse_trainer_cpt::core::{Recipe, Stage, TrainReport};

/// `infuse train RECIPE [key=value...]`: run a training recipe (`stage = "cpt"` or `"sft"`).
#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// Recipe file (TOML) with axolotl / LLaMA-Factory key names.
    pub(crate) recipe: PathBuf,
    /// Overrides such as `learning_rate=1e-4`, `adapter=lora`, `max_steps=100`,
    /// `datasets.0.path=prep/sft/train`, `resume_from_checkpoint=true`.
    pub(crate) overrides: Vec<String>,
}

/// Run a recipe on the stage it names.
pub(crate) fn train(recipe: &Recipe) -> Result<TrainReport> {
    Ok(match recipe.stage {
        Stage::Cpt => infuse_trainer_cpt::train(recipe)?,
        Stage::Sft => infuse_trainer_sft::train(recipe)?,
        Stage::Dpo => bail!("stage = \"dpo\" is not implemented yet (infuse-trainer-dpo)"),
    })
}

/// Run `infuse train`.
pub(crate) fn run(args: TrainArgs) -> Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.overrides).with_context(|| format!("loading {}", args.recipe.display()))?;
    let report = train(&recipe).with_context(|| format!("infuse train {} (stage {})", args.recipe.display(), recipe.stage))?;
    println!("{} run {}: {} steps, final loss {}", report.stage, report.status, report.steps, report.final_loss.map_or("-".into(), |l| format!("{l:.4}")));
    if let Some(l) = report.best_eval_loss {
        println!("best eval loss {l:.4} (perplexity {:.2}) at step {}", l.exp(), report.best_step.unwrap_or(0));
    }
    println!("{:.1} tokens/s, {:.1} s", report.tokens_per_s, report.wall_time_s);
    for (what, dir) in [("model", &report.model_dir), ("adapter", &report.adapter_dir), ("merged", &report.merged_dir)] {
        if let Some(d) = dir {
            println!("{what}: {}", d.display());
        }
    }
    println!("metrics: {}", report.output_dir.join("metrics.jsonl").display());
    println!("report: {}", report.output_dir.join("report.html").display());
    Ok(())
}
