//! The `cpt` training stage of infuse: continued pre-training on packed token stores.
//!
//! Sequences are streamed from the memory-mapped token stores `infuse prep` writes (never loaded
//! whole), every token is a target (no loss mask), and attention is either plain causal over the
//! packed documents (GPT-style, the default) or block-diagonal with positions restarting per
//! document (`neat_packing = true`). A general-data replay stream (`replay_datasets`,
//! `replay_ratio`) is interleaved at a fixed ratio against catastrophic forgetting. Full-parameter
//! training by default; `adapter = "lora"` trains LoRA adapters instead.
//!
//! Everything else (optimizer, schedule, clipping, accumulation, chunked cross-entropy, eval,
//! checkpoints, exact resume, metrics) is the shared loop of `infuse-trainer-core`.
//!
//! ```toml
//! stage = "cpt"
//! base_model = "models/SmolLM2-135M"
//! output_dir = "runs/cpt"
//! datasets = [{ path = "prep/cpt/train" }]
//! eval_datasets = [{ path = "prep/cpt/valid" }]
//! replay_datasets = [{ path = "general/cpt/train" }]
//! replay_ratio = 0.2
//! micro_batch_size = 4
//! gradient_accumulation_steps = 4
//! learning_rate = 2e-5
//! warmup_ratio = 0.05
//! num_epochs = 1
//! save_steps = 200
//! eval_steps = 100
//! ```

use std::path::Path;
use std::sync::Arc;

pub use infuse_trainer_core as core;
use infuse_trainer_core::{
    Concat, DatasetSpec, DatasetType, Recipe, SequenceSource, Stage, TokenStoreSource, TrainData, TrainReport, split_validation,
};

/// Errors of the CPT stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipe is not a CPT recipe or asks for something CPT cannot do.
    #[error("cpt recipe: {0}")]
    Recipe(String),
    /// The shared loop failed.
    #[error(transparent)]
    Train(#[from] infuse_trainer_core::Error),
    /// The model could not be read.
    #[error(transparent)]
    Model(#[from] infuse_llama_model::Error),
    /// The distributed environment is invalid.
    #[error("distributed environment: {0}")]
    Dist(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn open_stores(specs: &[DatasetSpec], what: &str, vocab: usize) -> Result<Option<Arc<dyn SequenceSource>>> {
    let mut parts: Vec<Arc<dyn SequenceSource>> = Vec::new();
    for d in specs {
        let kind = d.kind.resolve(&d.path);
        if kind != DatasetType::TokenStore {
            return Err(Error::Recipe(format!(
                "{what}: `{}` is {kind:?} data; CPT reads token stores (directories) written by `infuse prep`",
                d.path.display(),
            )));
        }
        let src = TokenStoreSource::open(&d.path)?;
        let meta = src.store().meta();
        if meta.vocab_size > vocab {
            return Err(Error::Recipe(format!(
                "{what}: `{}` was tokenized with a vocabulary of {} tokens, the model has {vocab}",
                d.path.display(),
                meta.vocab_size
            )));
        }
        if meta.kind != "cpt" {
            tracing::warn!(path = %d.path.display(), kind = %meta.kind, "token store is not of kind `cpt`; its loss mask (if any) is used");
        }
        parts.push(Arc::new(src));
    }
    Ok(match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Arc::new(Concat::new(parts))),
    })
}

/// The CPT data of a recipe: token stores for training, evaluation (or a `val_set_size` split)
/// and replay. `vocab_size` is the model's, to reject stores of another tokenizer.
pub fn data(recipe: &Recipe, vocab_size: usize, pad_id: u32) -> Result<TrainData> {
    let train = open_stores(&recipe.datasets, "datasets", vocab_size)?
        .ok_or_else(|| Error::Recipe("`datasets` is empty: give at least one token store".into()))?;
    let mut eval = open_stores(&recipe.eval_datasets, "eval_datasets", vocab_size)?;
    let mut train = train;
    if eval.is_none() && recipe.val_set_size > 0.0 {
        let (t, v) = split_validation(train, recipe.val_set_size, recipe.seed)?;
        train = t;
        eval = Some(v);
    }
    let replay = open_stores(&recipe.replay_datasets, "replay_datasets", vocab_size)?.map(|r| (r, recipe.replay_ratio));
    Ok(TrainData { train, eval, replay: replay.filter(|(_, r)| *r > 0.0), block_diagonal: recipe.neat_packing, pad_id })
}

/// Run a CPT recipe end to end.
pub fn train(recipe: &Recipe) -> Result<TrainReport> {
    if recipe.stage != Stage::Cpt {
        return Err(Error::Recipe(format!("stage is `{}`, expected `cpt`", recipe.stage)));
    }
    check_single_process()?;
    let (model, hf) = infuse_trainer_core::load_base_model(recipe)?;
    let pad = model.config().pad_token_id.unwrap_or(0);
    let data = data(recipe, model.config().vocab_size, pad)?;
    Ok(infuse_trainer_core::Trainer::new(recipe.clone(), model, hf, data)?.run()?)
}

/// Data-parallel training across processes is not implemented yet: refuse to run as one of
/// several ranks rather than train N unsynchronized copies.
fn check_single_process() -> Result<()> {
    let env = infuse_zero_shard::DistEnv::from_env().map_err(|e| Error::Dist(e.to_string()))?;
    if env.world_size > 1 {
        return Err(Error::Dist(format!(
            "launched as rank {} of {}: multi-process training is not supported yet; run a single process",
            env.rank, env.world_size
        )));
    }
    Ok(())
}

/// Load a recipe file with overrides and run it (the `infuse train` entry for `stage = "cpt"`).
pub fn train_file(path: &Path, overrides: &[String]) -> Result<TrainReport> {
    train(&Recipe::load(path, overrides)?)
}
