//! Load a model and its tokenizer from a path: a HF directory (config.json + safetensors +
//! tokenizer.json) or a `.gguf` file. Every route produces the same [`Llama`].

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::DType;
use infuse_text::{ChatTemplate, Tokenizer};

use crate::config::{HfLlamaConfig, LlamaConfig};
use crate::gguf::GgufFile;
use crate::gguf_tokenizer::tokenizer_from_gguf;
use crate::model::Llama;
use crate::safetensors_io::SafetensorsCheckpoint;
use crate::weights::{BuildOptions, build_model};
use crate::{Error, Result};

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFormat {
    /// HF directory with safetensors.
    HfSafetensors,
    /// GGUF file.
    Gguf,
}

/// Options for [`load_pretrained`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device for the weights.
    pub device: Device,
    /// Compute dtype of the parameters (F32, F16, BF16).
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { device: crate::device::default_device(), dtype: DType::F32 }
    }
}

/// A loaded model with its tokenizer.
#[derive(Debug)]
pub struct Pretrained {
    /// The model.
    pub model: Llama,
    /// Its tokenizer (special tokens reconciled with the model config; chat template attached).
    pub tokenizer: Tokenizer,
    /// The original HF config, for saving with unknown fields preserved (`None` for GGUF).
    pub hf_config: Option<HfLlamaConfig>,
    /// The path loaded.
    pub path: PathBuf,
    /// The format loaded.
    pub format: ModelFormat,
}

/// Read only the configuration of a model path.
pub fn load_config(path: &Path) -> Result<LlamaConfig> {
    if is_gguf(path) {
        GgufFile::open(path)?.llama_config()
    } else {
        let cfg_path = path.join("config.json");
        HfLlamaConfig::from_file(&cfg_path)?.resolve(&cfg_path.display().to_string())
    }
}

fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Load a model and tokenizer from a HF directory or a `.gguf` file.
pub fn load_pretrained(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Pretrained> {
    let path = path.as_ref();
    let build = BuildOptions { device: options.device.clone(), dtype: options.dtype };
    if is_gguf(path) {
        let file = GgufFile::open(path)?;
        let config = file.llama_config()?;
        let tokenizer = tokenizer_from_gguf(&file)?;
        tracing::info!(path = %path.display(), layers = config.num_layers, hidden = config.hidden_size, "loading GGUF");
        let model = build_model(&config, &file, &build)?;
        return Ok(Pretrained { model, tokenizer, hf_config: None, path: path.to_owned(), format: ModelFormat::Gguf });
    }
    if !path.is_dir() {
        return Err(Error::NotAModel { path: path.to_owned() });
    }
    let cfg_path = path.join("config.json");
    if !cfg_path.is_file() {
        return Err(Error::NotAModel { path: path.to_owned() });
    }
    let hf = HfLlamaConfig::from_file(&cfg_path)?;
    let config = hf.resolve(&cfg_path.display().to_string())?;
    let tokenizer = load_hf_tokenizer(path, &config)?;
    let checkpoint = SafetensorsCheckpoint::open_dir(path)?;
    tracing::info!(path = %path.display(), layers = config.num_layers, hidden = config.hidden_size, "loading safetensors");
    let model = build_model(&config, &checkpoint, &build)?;
    Ok(Pretrained { model, tokenizer, hf_config: Some(hf), path: path.to_owned(), format: ModelFormat::HfSafetensors })
}

/// Save a loaded model in HF layout with its tokenizer (`tokenizer.json`, `tokenizer_config.json`
/// with the chat template): e.g. a GGUF converted to a directory transformers and infuse both load.
pub fn save_pretrained(pretrained: &Pretrained, dir: &Path, options: &crate::SaveOptions) -> Result<()> {
    crate::save_hf(&pretrained.model, dir, pretrained.hf_config.as_ref(), options)?;
    pretrained.tokenizer.save(dir)?;
    Ok(())
}

/// Load only a model (no tokenizer needed), e.g. for training from token stores.
pub fn load_model(path: impl AsRef<Path>, options: &LoadOptions) -> Result<(Llama, Option<HfLlamaConfig>)> {
    let path = path.as_ref();
    let build = BuildOptions { device: options.device.clone(), dtype: options.dtype };
    if is_gguf(path) {
        let file = GgufFile::open(path)?;
        let config = file.llama_config()?;
        return Ok((build_model(&config, &file, &build)?, None));
    }
    let cfg_path = path.join("config.json");
    if !cfg_path.is_file() {
        return Err(Error::NotAModel { path: path.to_owned() });
    }
    let hf = HfLlamaConfig::from_file(&cfg_path)?;
    let config = hf.resolve(&cfg_path.display().to_string())?;
    let checkpoint = SafetensorsCheckpoint::open_dir(path)?;
    Ok((build_model(&config, &checkpoint, &build)?, Some(hf)))
}

/// The tokenizer of a model path (HF directory or GGUF).
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    if is_gguf(path) {
        return tokenizer_from_gguf(&GgufFile::open(path)?);
    }
    let config = load_config(path)?;
    load_hf_tokenizer(path, &config)
}

fn load_hf_tokenizer(dir: &Path, config: &LlamaConfig) -> Result<Tokenizer> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(Error::MissingTokenizer {
            origin: dir.display().to_string(),
            expected: format!("{}", tok_path.display()),
        });
    }
    let mut tokenizer = Tokenizer::from_file(&tok_path)?;
    // The model config is authoritative for generation: every eos_token_id stops.
    let mut special = tokenizer.special().clone();
    if config.bos_token_id.is_some() {
        special.bos = config.bos_token_id;
    }
    for id in config.eos_token_ids.iter().rev() {
        special.eos.retain(|e| e != id);
        special.eos.insert(0, *id);
    }
    tokenizer.set_special(special);
    if tokenizer.chat_template().is_none()
        && let Some(t) = guess_chat_template(&tokenizer)
    {
        tokenizer.set_chat_template(t);
    }
    Ok(tokenizer)
}

/// A built-in template matching the vocabulary, for checkpoints without `tokenizer_config.json`.
pub fn guess_chat_template(tokenizer: &Tokenizer) -> Option<ChatTemplate> {
    if tokenizer.token_to_id("<|eot_id|>").is_some() && tokenizer.token_to_id("<|start_header_id|>").is_some() {
        Some(ChatTemplate::llama3())
    } else if tokenizer.token_to_id("<|im_start|>").is_some() {
        Some(ChatTemplate::chatml())
    } else {
        None
    }
}
