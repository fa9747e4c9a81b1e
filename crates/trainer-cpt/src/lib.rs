//! The `cpt` training stage of infuse (not implemented yet).
//!
//! This crate will own continued pre-training (CPT): streams packed sequences from a data-prep token store (memory-mapped, never loaded whole), with plain causal or document-boundary (block-diagonal) attention, replay of general data against catastrophic forgetting, full-parameter by default.
//!
//! It runs on the training loop shared by every stage (AdamW with PyTorch defaults, warm-up +
//! cosine/linear schedules, global-norm clipping, token-normalized gradient accumulation, bf16 with
//! f32 master weights, chunked cross-entropy, periodic eval, early stopping, atomic checkpoints and
//! exact resume), dispatched by `infuse train RECIPE` on `stage = "cpt"`. See docs/ARCHITECTURE.md.
