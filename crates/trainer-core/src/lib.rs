//! The training loop shared by every infuse stage (`cpt`, `sft`, later `dpo`).
//!
//! A stage turns its data into [`TrainData`] (sources of token sequences with loss masks and
//! document boundaries) and calls [`run`] with a [`Recipe`]; everything else lives here:
//!
//! - [`Recipe`]: one flat TOML file with axolotl / LLaMA-Factory key names, `key=value`
//!   overrides, unknown keys rejected by name.
//! - [`AdamW`] with PyTorch's update and defaults (epsilon 1e-8, decoupled weight decay on matrices
//!   only), f32 master weights for bf16 parameters; [`clip_grad_norm`] with `clip_grad_norm_`
//!   semantics (one global norm); [`LrSchedule`]: warm-up then cosine/linear/constant as HF.
//! - Gradient accumulation in which every micro-batch's loss is weighted by `1 / target tokens of
//!   the whole optimizer step`, so `k` micro-batches of `b` sequences equal one batch of `k·b`.
//! - [`chunked_cross_entropy`]: the LM head and the loss fused and chunked over rows, so the
//!   `[tokens, vocab]` log-probabilities never exist at once.
//! - [`Trainer`]: evaluation, early stopping, best-checkpoint tracking, atomic checkpoints (model or
//!   PEFT adapter, optimizer state, data position, schedule) with exact resume, a clear stop on
//!   NaN/inf, `metrics.jsonl`, a progress bar with plain-log fallback, and `report.html`.
//!
//! Run layout: `output_dir/metrics.jsonl`, `output_dir/checkpoint-STEP/`, `output_dir/model/`
//! (full fine-tune, HF layout) or `output_dir/adapter/` (PEFT) and `output_dir/merged/`
//! (`merge_lora`), `output_dir/report.html`, `output_dir/train_report.json`.

mod data;
mod error;
mod loss;
mod metrics;
mod optim;
mod params;
mod recipe;
mod report;
mod schedule;
mod trainer;

pub use data::{
    Batch, BatchOptions, Concat, DataPosition, DataStream, InMemorySource, Sequence, SequenceSource, SplitMix64, Subset, TokenStoreSource,
    make_batch, permutation, split_validation,
};
pub use error::Error;
pub use infuse_llama_model;
pub use loss::{CeOptions, CeOutput, DEFAULT_CHUNK_LOGITS, Head, chunked_cross_entropy};
pub use metrics::{EvalMetrics, MetricsLine, MetricsWriter, StepMetrics, memory_usage, read_metrics};
pub use optim::{AdamW, AdamWConfig, clip_grad_norm};
pub use params::{ParamInfo, accumulate_grads, collect_params, write_params};
pub use recipe::{Bf16, DatasetSpec, DatasetType, Recipe, ResumeFrom, SchedulerKind, Stage, TargetList, apply_override};
pub use report::{loss_curve_svg, write_report};
pub use schedule::LrSchedule;
pub use trainer::{StepTimings, TrainData, TrainReport, Trainer, TrainerState, latest_checkpoint, load_base_model, run, training_dtype};

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
