//! # infuse
//!
//! Turn a general Llama 3 base model into a domain-specific one, entirely on your own machines:
//! data preparation, continued pre-training, supervised fine-tuning, preference alignment,
//! evaluation and deployment, as one Rust workspace.
//!
//! This facade re-exports the stage crates under short names so a program can depend on `infuse`
//! alone and chain stages programmatically; the `infuse` binary is a thin command-line layer over
//! the same APIs.
//!
//! | module | crate | owns |
//! | --- | --- | --- |
//! | [`text`] | `infuse-text` | tokenizer wrapper, chat templates (shared by data prep, training, serving) |
//! | [`data`] | `infuse-data-prep` | readers, filters, PII, mixing, SFT formats, token stores |
//! | [`dedup`] | `infuse-dedup-minhash` | MinHash/LSH, SimHash, exact near-duplicate removal |
//! | [`model`] | `infuse-llama-model` | the Llama model on burn, checkpoints (safetensors, GGUF) |
//! | [`dist`] | `infuse-zero-shard` | distributed environment, collectives, ZeRO partitioning |
//! | [`cpt`], [`sft`], [`dpo`] | `infuse-trainer-*` | the training stages |
//! | [`eval`] | `infuse-eval` | perplexity, pass@k, multiple choice, reports |
//! | [`infer`] | `infuse-infer` | sampling, generation, serving, export |
//!
//! ## Features
//! - `flex` (default): burn's pure-Rust CPU backend.
//! - `cuda`: burn's CUDA backend (NVIDIA GPUs); the device is chosen at run time.
//! - `tch`: burn's LibTorch backend (deprecated upstream; needs torch 2.9.0).

pub use infuse_data_prep as data;
pub use infuse_dedup_minhash as dedup;
pub use infuse_eval as eval;
pub use infuse_infer as infer;
pub use infuse_llama_model as model;
pub use infuse_text as text;
pub use infuse_trainer_cpt as cpt;
pub use infuse_trainer_dpo as dpo;
pub use infuse_trainer_sft as sft;
pub use infuse_zero_shard as dist;
