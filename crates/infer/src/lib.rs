//! Inference: sampling and the generation engine today; serving, export, quantization, RAG and
//! weight arithmetic as the deployment stage grows.
//!
//! `infuse-infer` owns everything that turns a trained [`infuse_llama_model::Llama`] into answers:
//!
//! - [`Sampler`] / [`SamplingParams`]: repetition penalty, temperature, top-k, top-p in transformers'
//!   order, seeded and reproducible;
//! - [`Generator`]: prompt prefill plus one-token steps with an explicit KV cache, stopping at every
//!   EOS id of the model (so a model trained with infuse's SFT, which trains EOS, stops), at stop
//!   strings, or at the token budget; streaming text through a callback; chat through the
//!   tokenizer's own template (the same renderer data preparation used for training).
//!
//! Planned here (deployment issue): an OpenAI-compatible HTTP server with streaming, GGUF and merged
//! LoRA export, int8/int4 weight quantization, RAG over a local knowledge base, chat-vector
//! arithmetic.

mod generate;
mod sampling;

pub use generate::{FinishReason, GenerateOptions, Generation, Generator};
pub use sampling::{Sampler, SamplingParams, argmax};

/// Errors of the inference crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Model error.
    #[error(transparent)]
    Model(#[from] infuse_llama_model::Error),
    /// Tokenizer or template error.
    #[error(transparent)]
    Text(#[from] infuse_text::Error),
    /// The tokenizer has no chat template.
    #[error("the model's tokenizer has no chat template (pass a template explicitly or use raw completion)")]
    NoChatTemplate,
    /// Bad input.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
