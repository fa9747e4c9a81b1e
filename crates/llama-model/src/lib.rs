//! The Llama 3 family on burn.
//!
//! `infuse-llama-model` owns the model every infuse stage trains, evaluates and serves:
//!
//! - [`HfLlamaConfig`] mirrors HF `config.json` (unknown fields kept) and resolves into a validated
//!   [`LlamaConfig`] (GQA/MQA, explicit `head_dim`, `rope_scaling` of type `llama3`, EOS lists).
//! - [`Llama`]: embeddings, RMSNorm, rotate-half RoPE, grouped-query attention through burn's
//!   attention op, SwiGLU MLP, tied or separate LM head, as `#[derive(Module)]` blocks with HF field
//!   names. A [`KvCache`] is passed explicitly; [`ForwardOptions`] carries position ids, a padding
//!   mask (left-padded batches) and segment ids (packed sequences, block-diagonal attention).
//! - Loading from HF safetensors (single or sharded, F32/F16/BF16, memory-mapped) and GGUF
//!   (F32/F16/BF16/Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K, Q/K permutation undone, config and
//!   tokenizer from metadata) through one name table ([`Weight`]); saving in HF layout.
//! - LoRA on the decoder projections ([`Projection`], [`apply_lora`], [`merge_lora`]), computed on
//!   activations, saved and loaded in PEFT's adapter layout ([`save_peft_adapter`],
//!   [`load_peft_adapter`]).
//!
//! The same code runs on CPU (`flex`, default) and CUDA (`cuda` feature): the backend is a runtime
//! [`burn::tensor::Device`].
//!
//! ```no_run
//! use infuse_llama_model::{LoadOptions, load_pretrained};
//! # fn main() -> Result<(), infuse_llama_model::Error> {
//! let p = load_pretrained("SmolLM2-135M-Instruct.Q4_1.gguf", &LoadOptions::default())?;
//! let ids = p.tokenizer.encode("The capital of France is")?;
//! let logprobs = p.model.token_logprobs(&ids)?;
//! # let _ = logprobs; Ok(()) }
//! ```

mod alloc;
mod config;
mod device;
mod error;
#[cfg(feature = "flex")]
pub mod fused;
pub mod gguf;
mod gguf_tokenizer;
mod loader;
mod lora;
mod model;
mod rope;
mod safetensors_io;
mod weights;

pub use alloc::HugePageAlloc;
pub use burn;
pub use config::{HfLlamaConfig, HfRopeScaling, LlamaConfig, RopeScaling, TokenIds};
pub use device::{default_device, parse_device, parse_dtype};
pub use error::Error;
pub use gguf_tokenizer::{tokenizer_from_gguf, tokenizer_json as gguf_tokenizer_json};
pub use loader::{LoadOptions, ModelFormat, Pretrained, guess_chat_template, load_config, load_model, load_pretrained, load_tokenizer,
    save_pretrained,
};
pub use lora::{
    LORA_TARGETS, LoraAdapter, LoraConfig, LoraFactor, PeftAdapterConfig, PeftSaveOptions, Projection, TargetModules, apply_lora,
    load_peft_adapter, lora_config_of, merge_lora, module_name, peft_key, save_peft_adapter,
};
pub use model::{Attention, DecoderLayer, ForwardOptions, KvCache, Llama, Mlp, ids_tensor};
pub use rope::{Rope, apply_rotary, inverse_frequencies};
pub use safetensors_io::{SafetensorsCheckpoint, SaveOptions, save_hf, write_atomic};
pub use weights::{BuildOptions, LayerTensor, Weight, WeightSource, build_model, random_model};

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
