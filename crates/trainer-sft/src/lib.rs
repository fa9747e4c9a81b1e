//! The `sft` training stage of infuse: supervised fine-tuning on chat data.
//!
//! Data comes from token stores of kind `sft` written by `infuse prep` (rendered, loss-masked,
//! packed), or directly from JSONL conversations (OpenAI `messages`, ShareGPT, Alpaca), rendered
//! here through the model's chat template with `infuse-data-prep`'s encoder, the same code data
//! preparation and serving use. The loss covers assistant tokens only, including the end-of-turn
//! token, so the model learns to stop; a preflight check warns when no trained label is a stop
//! token. Samples are packed several per sequence (`sample_packing`, default on) with
//! block-diagonal attention and per-sample positions, so packing never lets samples see each
//! other: a packed batch has the same loss as the samples trained one by one.
//!
//! ```toml
//! stage = "sft"
//! base_model = "models/SmolLM2-135M-Instruct"
//! output_dir = "runs/sft"
//! datasets = [{ path = "data/chat.jsonl" }]   # a file: chat JSONL; a directory: an `infuse prep` token store; or set `type`
//! val_set_size = 0.05
//! sequence_len = 1024
//! adapter = "lora"
//! lora_r = 16
//! lora_alpha = 32
//! merge_lora = true
//! learning_rate = 2e-4
//! num_epochs = 3
//! ```

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use infuse_data_prep::sft::{ParseOptions, SftFormat, Truncation, choose_template, encode_conversation, parse_sft};
use infuse_text::{ChatTemplate, Tokenizer};
pub use infuse_trainer_core as core;
use infuse_trainer_core::{
    Concat, DatasetSpec, DatasetType, InMemorySource, Recipe, Sequence, SequenceSource, Stage, TokenStoreSource, TrainData, TrainReport,
    split_validation,
};

/// Errors of the SFT stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipe is not an SFT recipe or asks for something SFT cannot do.
    #[error("sft recipe: {0}")]
    Recipe(String),
    /// A data file could not be read or a record is invalid.
    #[error("{path}:{line}: {message}")]
    Record {
        /// The JSONL file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What is wrong (field and problem).
        message: String,
    },
    /// The shared loop failed.
    #[error(transparent)]
    Train(#[from] infuse_trainer_core::Error),
    /// The model or tokenizer could not be read.
    #[error(transparent)]
    Model(#[from] infuse_llama_model::Error),
    /// Rendering or tokenizing failed.
    #[error(transparent)]
    Prep(#[from] infuse_data_prep::Error),
    /// The distributed environment is invalid.
    #[error("distributed environment: {0}")]
    Dist(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Counts from rendering a JSONL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Records read.
    pub records: u64,
    /// Samples kept.
    pub kept: u64,
    /// Samples longer than `sequence_len` (dropped).
    pub too_long: u64,
    /// Samples without a trainable token (dropped).
    pub no_target: u64,
}

/// Render a JSONL file of conversations into loss-masked samples (one [`Sequence`] each).
pub fn render_jsonl(path: &Path, format: SftFormat, tokenizer: &Tokenizer, template: &ChatTemplate, max_len: usize) -> Result<(Vec<Sequence>, RenderStats)> {
    let file = std::fs::File::open(path).map_err(|e| Error::Record { path: path.display().to_string(), line: 0, message: e.to_string() })?;
    let opts = ParseOptions { format, ..ParseOptions::default() };
    let mut out = Vec::new();
    let mut stats = RenderStats::default();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let rec_err = |message: String| Error::Record { path: path.display().to_string(), line: line_no, message };
        let line = line.map_err(|e| rec_err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        stats.records += 1;
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| rec_err(format!("invalid JSON: {e}")))?;
        let conv = parse_sft(&value, &format!("{}:{line_no}", path.display()), &opts).map_err(|e| rec_err(format!("{}: {}", e.field, e.message)))?;
        match encode_conversation(tokenizer, template, &conv.messages, max_len, Truncation::Drop)? {
            Ok(enc) => {
                stats.kept += 1;
                out.push(Sequence::masked(enc.ids, enc.mask));
            }
            Err(infuse_data_prep::sft::EncodeSkip::TooLong) => stats.too_long += 1,
            Err(infuse_data_prep::sft::EncodeSkip::NoTrainableTokens) => stats.no_target += 1,
        }
    }
    if stats.too_long + stats.no_target > 0 {
        tracing::warn!(path = %path.display(), too_long = stats.too_long, no_target = stats.no_target, "samples dropped");
    }
    Ok((out, stats))
}

/// Pack samples in order into sequences of at most `max_len` tokens (a sample that does not fit
/// starts a new sequence); without `packing`, one sample per sequence.
pub fn pack(samples: Vec<Sequence>, max_len: usize, packing: bool) -> Vec<Sequence> {
    if !packing {
        return samples;
    }
    let mut out = Vec::new();
    let mut cur: Vec<Sequence> = Vec::new();
    let mut len = 0;
    for s in samples {
        if len + s.tokens.len() > max_len && !cur.is_empty() {
            out.push(Sequence::pack(&cur));
            cur.clear();
            len = 0;
        }
        len += s.tokens.len();
        cur.push(s);
    }
    if !cur.is_empty() {
        out.push(Sequence::pack(&cur));
    }
    out
}

/// Warn when no trained label is one of the stop ids: such a model never learns to stop.
pub fn check_stop_tokens(samples: &[Sequence], stop_ids: &[u32]) -> bool {
    let found = samples.iter().any(|s| {
        s.tokens
            .iter()
            .zip(s.loss_mask.as_deref().unwrap_or(&[]))
            .any(|(t, &m)| m && stop_ids.contains(t))
    });
    if !found {
        tracing::warn!(?stop_ids, "no trained label is an EOS / end-of-turn token: the model will not learn to stop");
    }
    found
}

fn sources(specs: &[DatasetSpec], what: &str, tokenizer: &Tokenizer, template: &ChatTemplate, recipe: &Recipe) -> Result<Option<Arc<dyn SequenceSource>>> {
    let mut parts: Vec<Arc<dyn SequenceSource>> = Vec::new();
    let mut rendered: Vec<Sequence> = Vec::new();
    for d in specs {
        let format = match d.kind.resolve(&d.path) {
            DatasetType::TokenStore | DatasetType::Auto => {
                let src = TokenStoreSource::open(&d.path)?;
                if !src.store().meta().has_loss_mask {
                    tracing::warn!(path = %d.path.display(), "token store has no loss mask: every token is trained");
                }
                parts.push(Arc::new(src));
                continue;
            }
            DatasetType::Chat => SftFormat::Auto,
            DatasetType::Alpaca => SftFormat::Alpaca,
            DatasetType::Sharegpt => SftFormat::Sharegpt,
        };
        let (samples, stats) = render_jsonl(&d.path, format, tokenizer, template, recipe.sequence_len)?;
        tracing::info!(path = %d.path.display(), records = stats.records, kept = stats.kept, "rendered {what}");
        rendered.extend(samples);
    }
    if !rendered.is_empty() {
        let mut stop = tokenizer.special().eos.clone();
        stop.extend(["<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "</s>"].iter().filter_map(|t| tokenizer.token_to_id(t)));
        check_stop_tokens(&rendered, &stop);
        let packed = pack(rendered, recipe.sequence_len, recipe.sample_packing);
        parts.push(Arc::new(InMemorySource::new(what.to_owned(), packed)));
    }
    Ok(match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Arc::new(Concat::new(parts))),
    })
}

/// The SFT data of a recipe. `tokenizer` renders JSONL datasets (not needed for token stores).
pub fn data(recipe: &Recipe, tokenizer: &Tokenizer, pad_id: u32) -> Result<TrainData> {
    let (template, name) = choose_template(&recipe.chat_template, tokenizer)?;
    tracing::info!(template = %name, "chat template");
    let train = sources(&recipe.datasets, "datasets", tokenizer, &template, recipe)?
        .ok_or_else(|| Error::Recipe("`datasets` is empty".into()))?;
    let mut eval = sources(&recipe.eval_datasets, "eval_datasets", tokenizer, &template, recipe)?;
    let mut train = train;
    if eval.is_none() && recipe.val_set_size > 0.0 {
        let (t, v) = split_validation(train, recipe.val_set_size, recipe.seed)?;
        train = t;
        eval = Some(v);
    }
    let replay = sources(&recipe.replay_datasets, "replay_datasets", tokenizer, &template, recipe)?.map(|r| (r, recipe.replay_ratio));
    Ok(TrainData { train, eval, replay: replay.filter(|(_, r)| *r > 0.0), block_diagonal: true, pad_id })
}

/// Run an SFT recipe end to end.
pub fn train(recipe: &Recipe) -> Result<TrainReport> {
    if recipe.stage != Stage::Sft {
        return Err(Error::Recipe(format!("stage is `{}`, expected `sft`", recipe.stage)));
    }
    let env = infuse_zero_shard::DistEnv::from_env().map_err(|e| Error::Dist(e.to_string()))?;
    if env.world_size > 1 {
        return Err(Error::Dist(format!(
            "launched as rank {} of {}: multi-process training is not supported yet; run a single process",
            env.rank, env.world_size
        )));
    }
    let tokenizer = infuse_llama_model::load_tokenizer(&recipe.base_model)?;
    let (model, hf) = infuse_trainer_core::load_base_model(recipe)?;
    let pad = model.config().pad_token_id.unwrap_or(0);
    let data = data(recipe, &tokenizer, pad)?;
    Ok(infuse_trainer_core::Trainer::new(recipe.clone(), model, hf, data)?.run()?)
}

/// Load a recipe file with overrides and run it (the `infuse train` entry for `stage = "sft"`).
pub fn train_file(path: &Path, overrides: &[String]) -> Result<TrainReport> {
    train(&Recipe::load(path, overrides)?)
}
