//! Text handling shared by every infuse stage, without any numeric dependency.
//!
//! `infuse-text` owns two things that data preparation, training and serving must agree on byte for
//! byte, so that the prompt a model is trained on is exactly the prompt it is served with:
//!
//! - [`Tokenizer`]: a wrapper around a Hugging Face `tokenizer.json` (through the `tokenizers` crate)
//!   that knows the model's special tokens (BOS, the EOS set, padding) and can encode a rendered
//!   conversation into ids **with a per-token loss mask**.
//! - [`ChatTemplate`]: the model's Jinja chat template rendered with `minijinja` exactly as
//!   transformers' `apply_chat_template` renders it, plus the built-in Llama 3 Instruct and ChatML
//!   (SmolLM2) templates, and [`ChatTemplate::render_segments`], which splits a conversation into
//!   trainable (assistant) and context segments.
//!
//! This crate deliberately does not depend on burn or polars: `data-prep` uses it to render and
//! tokenize training data, `llama-model`/`infer` use it to prompt the model.
//!
//! ```no_run
//! use infuse_text::{ChatTemplate, Message, RenderOptions, Tokenizer};
//! # fn main() -> Result<(), infuse_text::Error> {
//! let tok = Tokenizer::from_file("tokenizer.json")?;
//! let template = ChatTemplate::llama3();
//! let prompt = template.render(
//!     &[Message::user("What is the capital of France?")],
//!     &RenderOptions { add_generation_prompt: true },
//! )?;
//! let ids = tok.encode(&prompt)?;
//! # let _ = ids; Ok(()) }
//! ```

mod chat;
mod error;
mod tokenizer;

pub use chat::{CHATML_TEMPLATE, ChatTemplate, LLAMA3_TEMPLATE, Message, RenderOptions, SMOLLM2_TEMPLATE, Segment};
pub use error::Error;
pub use tokenizer::{Decode, EncodedSegments, SpecialTokens, Tokenizer};

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
