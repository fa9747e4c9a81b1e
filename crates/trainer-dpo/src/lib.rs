//! The `dpo` training stage of infuse (not implemented yet).
//!
//! This crate will own preference alignment (DPO and variants): chosen/rejected pairs, reference log-probabilities computed once and cached (or from the LoRA base with adapters disabled) so memory is not doubled.
//!
//! It runs on the training loop shared by every stage (AdamW with PyTorch defaults, warm-up +
//! cosine/linear schedules, global-norm clipping, token-normalized gradient accumulation, bf16 with
//! f32 master weights, chunked cross-entropy, periodic eval, early stopping, atomic checkpoints and
//! exact resume), dispatched by `infuse train RECIPE` on `stage = "dpo"`. See docs/ARCHITECTURE.md.
