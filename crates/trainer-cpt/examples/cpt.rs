//! Continued pre-training from a recipe, or a self-contained demo on the tiny fixture model.
//!
//! `cargo run --release -p infuse-trainer-cpt --example cpt -- RECIPE.toml [key=value...]`
//!
//! Without arguments: writes a small synthetic token store (a toy "domain language") into a
//! temporary directory, trains `fixtures/llama/gqa_tied` on it for three epochs and prints the
//! held-out perplexity before and after, and where the run directory is.
#![allow(clippy::print_stdout)]

use std::path::Path;

use infuse_data_prep::tokstore::{StoreSpec, TokenStoreWriter};
use infuse_trainer_cpt::core::{DatasetSpec, DatasetType, Recipe, SplitMix64, Stage, Trainer, load_base_model};

fn write_store(dir: &Path, n: usize, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let spec = StoreSpec { kind: "cpt".into(), split: "train".into(), tokenizer: "tiny".into(), vocab_size: 320, seq_len: 64, seed, has_loss_mask: false };
    let mut w = TokenStoreWriter::create(dir, spec)?;
    let mut rng = SplitMix64(seed);
    for _ in 0..n {
        let mut t = 20 + rng.below(60) as u32;
        let tokens: Vec<u32> = (0..64)
            .map(|_| {
                let cur = t;
                t = if rng.below(10) == 0 { 20 + rng.below(60) as u32 } else { (7 * t + 3) % 60 + 20 };
                cur
            })
            .collect();
        w.push(&tokens, None, &[0])?;
    }
    w.finish(false, serde_json::Map::new())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some((recipe, overrides)) = args.split_first() {
        let report = infuse_trainer_cpt::train_file(Path::new(recipe), overrides)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("infuse-cpt-demo-{}", std::process::id()));
    write_store(&dir.join("train"), 48, 1)?;
    write_store(&dir.join("valid"), 8, 2)?;
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/gqa_tied");
    let mut r = Recipe::new(Stage::Cpt, base, dir.join("run"));
    r.datasets = vec![DatasetSpec { path: dir.join("train"), kind: DatasetType::TokenStore }];
    r.eval_datasets = vec![DatasetSpec { path: dir.join("valid"), kind: DatasetType::TokenStore }];
    r.micro_batch_size = 4;
    r.num_epochs = 3.0;
    r.learning_rate = 5e-3;
    r.warmup_ratio = 0.1;
    r.eval_steps = 12;
    r.save_steps = 18;
    let (model, hf) = load_base_model(&r)?;
    let data = infuse_trainer_cpt::data(&r, model.config().vocab_size, 0)?;
    let mut trainer = Trainer::new(r, model, hf, data)?;
    let before = trainer.evaluate()?.map(|e| e.eval_perplexity);
    let report = trainer.run()?;
    println!("held-out perplexity {:.1} -> {:.1} after {} steps", before.unwrap_or(f64::NAN), report.best_eval_loss.unwrap_or(f64::NAN).exp(), report.steps);
    println!("run directory: {}", report.output_dir.display());
    Ok(())
}
