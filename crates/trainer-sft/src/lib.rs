//! The `sft` training stage of infuse (not implemented yet).
//!
//! This crate will own supervised fine-tuning (SFT): chat-formatted, loss-masked samples rendered by data-prep through the model's own chat template (loss on assistant tokens only, EOS trained so the model learns to stop), multi-turn, packing without cross-contamination, full fine-tune or LoRA with PEFT-format adapters.
//!
//! It runs on the training loop shared by every stage (AdamW with PyTorch defaults, warm-up +
//! cosine/linear schedules, global-norm clipping, token-normalized gradient accumulation, bf16 with
//! f32 master weights, chunked cross-entropy, periodic eval, early stopping, atomic checkpoints and
//! exact resume), dispatched by `infuse train RECIPE` on `stage = "sft"`. See docs/ARCHITECTURE.md.
