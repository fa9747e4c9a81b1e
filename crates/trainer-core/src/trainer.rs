//! The training loop: micro-batches -> forward -> chunked cross-entropy -> backward ->
//! accumulation -> global-norm clipping -> AdamW, with evaluation, early stopping, checkpoints,
//! exact resume, metrics and the final model.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::DType;
use infuse_llama_model::{
    ForwardOptions, HfLlamaConfig, Llama, LoadOptions, LoraConfig, PeftSaveOptions, SaveOptions, apply_lora, burn, load_model,
    load_peft_adapter, load_tokenizer, merge_lora, parse_device, parse_dtype, save_hf, save_peft_adapter, write_atomic,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Batch, BatchOptions, DataPosition, DataStream, SequenceSource, make_batch};
use crate::loss::{CeOptions, Head, chunked_cross_entropy};
use crate::metrics::{EvalMetrics, MetricsLine, MetricsWriter, StepMetrics, memory_usage, read_metrics};
use crate::optim::{AdamW, AdamWConfig, clip_grad_norm};
use crate::params::{accumulate_grads, collect_params, fork_trainable};
use crate::recipe::{Bf16, Recipe, ResumeFrom};
use crate::report::write_report;
use crate::schedule::LrSchedule;
use crate::{Error, Result};

/// The data of a run, prepared by a stage.
#[derive(Clone)]
pub struct TrainData {
    /// Training sequences.
    pub train: Arc<dyn SequenceSource>,
    /// Held-out sequences for evaluation.
    pub eval: Option<Arc<dyn SequenceSource>>,
    /// Replay data and the fraction of training sequences drawn from it.
    pub replay: Option<(Arc<dyn SequenceSource>, f64)>,
    /// Block-diagonal attention over packed documents (positions restart per document).
    pub block_diagonal: bool,
    /// Token id used for padding (any id: padding is never attended by real tokens nor trained).
    pub pad_id: u32,
}

/// Where the time of the last optimizer step went, seconds (for profiling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTimings {
    /// Building batches on the host.
    pub data_s: f64,
    /// Model forward (to the final hidden states).
    pub forward_s: f64,
    /// Chunked cross-entropy with its gradient.
    pub loss_s: f64,
    /// Backward pass through the model and gradient collection.
    pub backward_s: f64,
    /// Clipping and the AdamW update.
    pub optimizer_s: f64,
}

/// Saved with every checkpoint as `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// `infuse-trainer-state`.
    pub format: String,
    /// Stage that wrote it.
    pub stage: String,
    /// Optimizer steps done.
    pub step: u64,
    /// Position of the data stream.
    pub data: DataPosition,
    /// Run seed.
    pub seed: u64,
    /// The schedule (its step counter is `step`).
    pub schedule: LrSchedule,
    /// Input tokens trained so far.
    pub tokens: u64,
    /// Lowest eval loss seen.
    pub best_eval_loss: Option<f64>,
    /// Step of the lowest eval loss.
    pub best_step: Option<u64>,
    /// Checkpoint holding the best weights (with `load_best_model_at_end`).
    pub best_checkpoint: Option<PathBuf>,
    /// Evaluations since the last improvement (early stopping).
    pub evals_without_improvement: u64,
    /// LoRA run (checkpoints hold an adapter) or full fine-tune (checkpoints hold the model).
    pub lora: bool,
    /// Training seconds before this process (resumed runs).
    pub elapsed_s: f64,
}

/// What a finished (or stopped) run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// `cpt` / `sft`.
    pub stage: String,
    /// `completed`, `early stopped`, or the failure.
    pub status: String,
    /// Optimizer steps done.
    pub steps: u64,
    /// Loss of the last step.
    pub final_loss: Option<f64>,
    /// Training loss of every step of this process.
    pub losses: Vec<f64>,
    /// `(step, eval loss)` of every evaluation of this process.
    pub eval_losses: Vec<(u64, f64)>,
    /// Lowest eval loss.
    pub best_eval_loss: Option<f64>,
    /// Its step.
    pub best_step: Option<u64>,
    /// Input tokens trained (whole run).
    pub tokens: u64,
    /// Mean input tokens per second over this process.
    pub tokens_per_s: f64,
    /// Wall time of this process, seconds.
    pub wall_time_s: f64,
    /// Peak resident memory, bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// Early stopping ended the run.
    pub stopped_early: bool,
    /// The run directory.
    pub output_dir: PathBuf,
    /// `output_dir/model` (full fine-tune).
    pub model_dir: Option<PathBuf>,
    /// `output_dir/adapter` (LoRA, PEFT layout).
    pub adapter_dir: Option<PathBuf>,
    /// `output_dir/merged` (LoRA with `merge_lora`).
    pub merged_dir: Option<PathBuf>,
    /// Newest checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
}

/// Training dtype of a recipe on a device: bf16 when asked (or `auto` on CUDA), else f32.
pub fn training_dtype(recipe: &Recipe, device: &Device) -> DType {
    match &recipe.bf16 {
        Bf16::Flag(true) => DType::BF16,
        Bf16::Flag(false) => DType::F32,
        Bf16::Auto(_) => {
            let name = format!("{device:?}").to_ascii_lowercase();
            if name.contains("cuda") && device.supports_dtype(DType::BF16) { DType::BF16 } else { DType::F32 }
        }
    }
}

/// The newest `checkpoint-STEP` directory (with a `trainer_state.json`) in `dir`.
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    checkpoints(dir).into_iter().last().map(|(_, p)| p)
}

fn checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse::<u64>().ok()?;
            let p = e.path();
            p.join("trainer_state.json").is_file().then_some((step, p))
        })
        .collect();
    out.sort();
    out
}

fn hash64(parts: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in p.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The training loop over one model. Build it with [`Trainer::new`], then call [`Trainer::run`]
/// (or drive it with [`Trainer::step`] / [`Trainer::evaluate`] / [`Trainer::save_checkpoint`]).
pub struct Trainer {
    recipe: Recipe,
    model: Llama,
    hf_config: Option<HfLlamaConfig>,
    lora: Option<LoraConfig>,
    optimizer: AdamW,
    stream: DataStream,
    eval: Option<Arc<dyn SequenceSource>>,
    batch_options: BatchOptions,
    state: TrainerState,
    metrics: MetricsWriter,
    device: Device,
    dtype: DType,
    last_checkpoint: Option<PathBuf>,
    losses: Vec<f64>,
    eval_losses: Vec<(u64, f64)>,
    started: Instant,
    tokens_at_start: u64,
    timings: StepTimings,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("step", &self.state.step).field("total_steps", &self.state.schedule.total_steps).finish_non_exhaustive()
    }
}

impl Trainer {
    /// Prepare a run: `model` is the base model on a plain (non-autodiff) device in the training
    /// dtype. Applies LoRA (new, or from `lora_model_dir`), restores a checkpoint when
    /// `resume_from_checkpoint` is set, and opens `output_dir/metrics.jsonl`.
    pub fn new(recipe: Recipe, model: Llama, hf_config: Option<HfLlamaConfig>, data: TrainData) -> Result<Self> {
        let device = model.device();
        let dtype = model.embed_tokens.weight.val().dtype();
        std::fs::create_dir_all(&recipe.output_dir).map_err(|e| Error::io(&recipe.output_dir, e))?;
        if recipe.gradient_checkpointing {
            tracing::warn!("gradient_checkpointing is not used: burn 0.22 only offers op-level recomputation, which does not save memory here");
        }
        let mut stream = DataStream::new(data.train.clone(), data.replay.clone(), recipe.seed, recipe.shuffle)?;
        let per_step = (recipe.micro_batch_size * recipe.gradient_accumulation_steps) as f64;
        if (data.train.len() as f64) < per_step {
            // Correct by the stream's definition (epochs wrap), but rarely what was meant: with
            // sample packing a small dataset can pack into very few sequences.
            tracing::warn!(
                sequences = data.train.len(),
                per_step,
                source = %data.train.describe(),
                "fewer training sequences than one optimizer step draws: every step repeats sequences (lower micro_batch_size or gradient_accumulation_steps)"
            );
        }
        let total_steps = if recipe.max_steps > 0 {
            recipe.max_steps as u64
        } else {
            let per_epoch = stream.main_len() as f64 / (1.0 - stream.replay_ratio());
            ((recipe.num_epochs * per_epoch) / per_step).ceil().max(1.0) as u64
        };
        let schedule = LrSchedule::new(recipe.learning_rate, recipe.lr_scheduler, total_steps, recipe.warmup_steps, recipe.warmup_ratio);
        let lora = if recipe.is_lora() { Some(recipe.lora_config()?) } else { None };
        let adam = AdamWConfig {
            beta1: recipe.adam_beta1,
            beta2: recipe.adam_beta2,
            eps: recipe.adam_epsilon,
            weight_decay: recipe.weight_decay,
        };
        let resume_dir = match &recipe.resume_from_checkpoint {
            None | Some(ResumeFrom::Latest(false)) => None,
            Some(ResumeFrom::Latest(true)) => {
                let found = latest_checkpoint(&recipe.output_dir);
                if found.is_none() {
                    tracing::warn!(dir = %recipe.output_dir.display(), "resume_from_checkpoint = true but no checkpoint found: starting fresh");
                }
                found
            }
            Some(ResumeFrom::Path(p)) => Some(p.clone()),
        };
        let mut state = TrainerState {
            format: "infuse-trainer-state".into(),
            stage: recipe.stage.to_string(),
            step: 0,
            data: DataPosition::default(),
            seed: recipe.seed,
            schedule,
            tokens: 0,
            best_eval_loss: None,
            best_step: None,
            best_checkpoint: None,
            evals_without_improvement: 0,
            lora: lora.is_some(),
            elapsed_s: 0.0,
        };
        let (model, lora, optimizer) = match &resume_dir {
            Some(dir) => {
                let text = std::fs::read_to_string(dir.join("trainer_state.json")).map_err(|e| Error::io(dir.join("trainer_state.json"), e))?;
                let saved: TrainerState =
                    serde_json::from_str(&text).map_err(|e| Error::Checkpoint { path: dir.clone(), message: format!("trainer_state.json: {e}") })?;
                if saved.lora != lora.is_some() {
                    return Err(Error::Checkpoint {
                        path: dir.clone(),
                        message: format!("checkpoint is a {} run, the recipe a {} run", if saved.lora { "LoRA" } else { "full" }, if lora.is_some() { "LoRA" } else { "full" }),
                    });
                }
                if saved.seed != recipe.seed {
                    tracing::warn!(saved = saved.seed, recipe = recipe.seed, "seed differs from the checkpoint's: the data order will not continue exactly");
                }
                let (model, lora) = match lora {
                    Some(cfg) => {
                        let (m, saved_cfg) = load_peft_adapter(model, &dir.join("adapter"))?;
                        (m, Some(LoraConfig { seed: cfg.seed, ..saved_cfg }))
                    }
                    None => (load_model(dir.join("model"), &LoadOptions { device: device.clone(), dtype })?.0, None),
                };
                let optimizer = AdamW::load(&dir.join("optimizer.safetensors"), adam, &device)?;
                let mut new_state = saved;
                if new_state.schedule.total_steps != schedule.total_steps || new_state.schedule.peak != schedule.peak {
                    tracing::info!(total = schedule.total_steps, "the recipe changes the schedule; continuing with the recipe's");
                }
                new_state.schedule = schedule;
                stream.set_position(new_state.data);
                state = new_state;
                tracing::info!(checkpoint = %dir.display(), step = state.step, "resuming");
                (model, lora, optimizer)
            }
            None => {
                let (model, lora) = match lora {
                    Some(cfg) => match &recipe.lora_model_dir {
                        Some(dir) => {
                            let (m, saved_cfg) = load_peft_adapter(model, dir)?;
                            tracing::info!(adapter = %dir.display(), r = saved_cfg.r, alpha = saved_cfg.alpha, "continuing from an existing adapter (its r, alpha and targets win over the recipe's)");
                            (m, Some(LoraConfig { seed: cfg.seed, ..saved_cfg }))
                        }
                        None => (apply_lora(model, &cfg)?, Some(cfg)),
                    },
                    None => (model, None),
                };
                (model, lora, AdamW::new(adam))
            }
        };
        let model = model.train();
        optimizer.check_matches(&model, resume_dir.as_deref().unwrap_or(Path::new("(new)")))?;
        let metrics = MetricsWriter::open(&recipe.output_dir.join("metrics.jsonl"), resume_dir.as_ref().map(|_| state.step))?;
        let trainable: usize = collect_params(&model, true).iter().map(|(i, _)| i.shape.iter().product::<usize>()).sum();
        tracing::info!(
            stage = %recipe.stage,
            steps = state.schedule.total_steps,
            warmup = state.schedule.warmup_steps,
            trainable_params = trainable,
            sequences = stream.main_len(),
            dtype = ?dtype,
            lora = lora.is_some(),
            "training"
        );
        let batch_options = BatchOptions { block_diagonal: data.block_diagonal, pad_id: data.pad_id, max_len: recipe.sequence_len };
        let tokens_at_start = state.tokens;
        Ok(Self {
            recipe,
            model,
            hf_config,
            lora,
            optimizer,
            stream,
            eval: data.eval,
            batch_options,
            state,
            metrics,
            device,
            dtype,
            last_checkpoint: resume_dir,
            losses: Vec::new(),
            eval_losses: Vec::new(),
            started: Instant::now(),
            tokens_at_start,
            timings: StepTimings::default(),
        })
    }

    /// The model being trained (autodiff tensors).
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// Replace the model (same structure), e.g. to inspect or perturb it between steps.
    pub fn map_model(&mut self, f: impl FnOnce(Llama) -> Llama) {
        let stand_in = placeholder(&self.model);
        let model = std::mem::replace(&mut self.model, stand_in);
        self.model = f(model);
    }

    /// The run state.
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// Where the time of the last step went.
    pub fn last_timings(&self) -> StepTimings {
        self.timings
    }

    /// The total number of optimizer steps of the run.
    pub fn total_steps(&self) -> u64 {
        self.state.schedule.total_steps
    }

    fn hidden_rows(model: &Llama, batch: &Batch, device: &Device) -> Result<Tensor<2>> {
        let ids = Tensor::<2, Int>::from_data(TensorData::new(batch.input_ids.clone(), [batch.batch, batch.len]), device);
        let as_tensor = |v: &Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v.clone(), [batch.batch, batch.len]), device);
        let options = ForwardOptions {
            position_ids: batch.position_ids.as_ref().map(as_tensor),
            attention_mask: None,
            segment_ids: batch.segment_ids.as_ref().map(as_tensor),
        };
        let hidden = model.forward_hidden(ids, &options, None)?;
        let [b, t, d] = hidden.dims();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(batch.target_rows.clone(), [batch.target_rows.len()]), device);
        Ok(hidden.reshape([b * t, d]).select(0, rows))
    }

    /// One optimizer step over `gradient_accumulation_steps` micro-batches. The loss of every
    /// micro-batch is weighted by `1 / (target tokens of the whole step)`, so the result does not
    /// depend on how the step is split into micro-batches.
    pub fn step(&mut self) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let k = self.state.step;
        let lr = self.state.schedule.lr(k);
        let mut batches = Vec::with_capacity(self.recipe.gradient_accumulation_steps);
        let mut micro_seqs = Vec::with_capacity(self.recipe.gradient_accumulation_steps);
        for _ in 0..self.recipe.gradient_accumulation_steps {
            let seqs: Vec<_> = (0..self.recipe.micro_batch_size).map(|_| self.stream.next_sequence()).collect::<Result<_>>()?;
            batches.push(make_batch(&seqs, &self.batch_options));
            micro_seqs.push(seqs);
        }
        let mut timings = StepTimings { data_s: t0.elapsed().as_secs_f64(), ..StepTimings::default() };
        let vocab = self.model.config().vocab_size;
        if let Some(bad) = batches.iter().flat_map(|b| b.input_ids.iter()).find(|&&t| t < 0 || t as usize >= vocab) {
            return Err(Error::Data { origin: format!("step {}", k + 1), message: format!("token id {bad} >= vocab_size {vocab}") });
        }
        let total_targets: usize = batches.iter().map(|b| b.targets.len()).sum();
        let tokens: usize = batches.iter().map(|b| b.num_tokens).sum();
        if total_targets == 0 {
            return Err(Error::Data {
                origin: format!("step {}", k + 1),
                message: "no target token in this step's batches: every loss-mask flag is off (check the chat template's assistant spans)".into(),
            });
        }
        let weight = 1.0 / total_targets as f64;
        let dropout = self.lora.as_ref().is_some_and(|l| l.dropout > 0.0);
        let shards = self.micro_batch_shards(dropout);
        let ce_chunk = self.recipe.ce_chunk_size;
        let mut total = UnitOutput::default();
        for (mi, batch) in batches.iter().enumerate() {
            if dropout {
                self.device.seed(hash64(&[self.recipe.seed, k, mi as u64]));
            }
            let out = if shards <= 1 || batch.batch < 2 {
                micro_batch(&self.model, batch, weight, ce_chunk)?
            } else {
                // Shards of the micro-batch run concurrently, each on its own copy of the
                // trainable leaves (separate autodiff graphs, no shared lock); their gradients
                // are summed in shard order, so the result does not depend on thread timing.
                let t = Instant::now();
                // As even as possible: 4 sequences in 3 shards are 2 + 1 + 1.
                let seqs = &micro_seqs[mi];
                let (n, k) = (seqs.len(), shards.min(seqs.len()));
                let mut parts = Vec::with_capacity(k);
                let mut start = 0;
                for i in 0..k {
                    let len = n / k + usize::from(i < n % k);
                    parts.push(make_batch(&seqs[start..start + len], &self.batch_options));
                    start += len;
                }
                let model = &self.model;
                let outs: Vec<Result<UnitOutput>> = parts.par_iter().map(|b| micro_batch(&fork_trainable(model), b, weight, ce_chunk)).collect();
                let mut m = UnitOutput::default();
                for o in outs {
                    m.absorb(o?);
                }
                // Report wall time, split in the proportions the shards measured.
                let busy = m.timings.forward_s + m.timings.loss_s + m.timings.backward_s;
                let scale = if busy > 0.0 { t.elapsed().as_secs_f64() / busy } else { 0.0 };
                m.timings.forward_s *= scale;
                m.timings.loss_s *= scale;
                m.timings.backward_s *= scale;
                m
            };
            if !out.nll_sum.is_finite() {
                return Err(self.non_finite("loss", out.nll_sum / out.count.max(1) as f64, k + 1));
            }
            total.absorb(out);
        }
        let UnitOutput { nll_sum, mut grads, timings: unit_timings, .. } = total;
        timings.forward_s = unit_timings.forward_s;
        timings.loss_s = unit_timings.loss_s;
        timings.backward_s = unit_timings.backward_s;
        let t = Instant::now();
        let loss = nll_sum / total_targets as f64;
        let grad_norm = clip_grad_norm(&mut grads, self.recipe.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(self.non_finite("grad_norm", grad_norm, k + 1));
        }
        let stand_in = placeholder(&self.model);
        let model = std::mem::replace(&mut self.model, stand_in);
        self.model = self.optimizer.step(model, &mut grads, lr)?;
        timings.optimizer_s = t.elapsed().as_secs_f64();
        self.timings = timings;
        self.state.step += 1;
        self.state.tokens += tokens as u64;
        self.state.data = self.stream.position();
        let dt = t0.elapsed().as_secs_f64();
        let (rss, peak) = memory_usage();
        let m = StepMetrics {
            step: self.state.step,
            loss,
            lr,
            grad_norm,
            tokens_per_s: tokens as f64 / dt.max(1e-9),
            target_tokens: total_targets as u64,
            tokens: tokens as u64,
            epoch: self.stream.epoch_progress(),
            step_time_s: dt,
            rss_bytes: rss,
            peak_rss_bytes: peak,
        };
        self.metrics.write(&MetricsLine::Step(m.clone()))?;
        self.losses.push(loss);
        tracing::debug!(step = m.step, loss, lr, grad_norm, tokens_per_s = m.tokens_per_s, "step");
        Ok(m)
    }

    /// Shards per micro-batch (see [`Recipe::cpu_micro_batch_shards`]).
    fn micro_batch_shards(&self, dropout: bool) -> usize {
        if !crate::loss::is_host(&self.device) || dropout {
            return 1;
        }
        match self.recipe.cpu_micro_batch_shards {
            0 => rayon::current_num_threads().min(2),
            n => n,
        }
        .clamp(1, self.recipe.micro_batch_size)
    }

    fn non_finite(&self, what: &str, value: f64, step: u64) -> Error {
        tracing::error!(what, value, step, "non-finite value: stopping");
        Error::NonFinite { what: what.into(), value, step, last_checkpoint: self.last_checkpoint.clone() }
    }

    /// Mean loss per target token on the evaluation data (no gradients), logged to metrics.jsonl.
    pub fn evaluate(&mut self) -> Result<Option<EvalMetrics>> {
        let Some(eval) = self.eval.clone() else { return Ok(None) };
        let model = self.model.valid();
        let device = model.device();
        let bs = self.recipe.eval_batch_size.unwrap_or(self.recipe.micro_batch_size).max(1);
        let (mut sum, mut count) = (0.0, 0usize);
        let mut i = 0;
        while i < eval.len() {
            let seqs: Vec<_> = (i..(i + bs).min(eval.len())).map(|j| eval.get(j)).collect::<Result<_>>()?;
            i += bs;
            let batch = make_batch(&seqs, &self.batch_options);
            if batch.targets.is_empty() {
                continue;
            }
            let rows = Self::hidden_rows(&model, &batch, &device)?;
            let head = match &model.lm_head {
                Some(l) => Head::Untied(l.weight.val()),
                None => Head::Tied(model.embed_tokens.weight.val()),
            };
            let ce = chunked_cross_entropy(
                rows,
                &head,
                &batch.targets,
                &CeOptions { weight: 1.0, chunk_rows: self.recipe.ce_chunk_size, grad_hidden: false, grad_head: false, host_kernels: true },
            )?;
            sum += ce.nll_sum;
            count += ce.count;
        }
        if count == 0 {
            return Err(Error::Data { origin: eval.describe(), message: "no target token in the evaluation data".into() });
        }
        let loss = sum / count as f64;
        let m = EvalMetrics { step: self.state.step, eval_loss: loss, eval_perplexity: loss.exp(), eval_tokens: count as u64 };
        self.metrics.write(&MetricsLine::Eval(m.clone()))?;
        self.eval_losses.push((m.step, loss));
        tracing::info!(step = m.step, eval_loss = loss, perplexity = m.eval_perplexity, "eval");
        Ok(Some(m))
    }

    /// Write `output_dir/checkpoint-STEP/` atomically (model or adapter, optimizer state, trainer
    /// state with the data position, recipe), then prune old checkpoints (`save_total_limit`,
    /// never the best one). Refuses to save non-finite weights.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let step = self.state.step;
        let out = self.recipe.output_dir.clone();
        let dir = out.join(format!("checkpoint-{step}"));
        let tmp = out.join(format!(".checkpoint-{step}.tmp"));
        let sums: Vec<Tensor<1>> = collect_params(&self.model, true).into_iter().map(|(_, v)| v.cast(DType::F32).square().sum()).collect();
        if !sums.is_empty() {
            let total: f64 = Tensor::cat(sums, 0)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| Error::Tensor(format!("{e:?}")))?
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            if !total.is_finite() {
                return Err(self.non_finite("parameters", total, step));
            }
        }
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let plain = self.model.valid();
        match &self.lora {
            Some(cfg) => save_peft_adapter(
                &plain,
                cfg,
                &tmp.join("adapter"),
                &PeftSaveOptions { base_model: Some(self.recipe.base_model.display().to_string()), dtype: self.dtype },
            )?,
            None => save_hf(&plain, &tmp.join("model"), self.hf_config.as_ref(), &SaveOptions { dtype: self.dtype, max_shard_bytes: None })?,
        }
        self.optimizer.save(&tmp.join("optimizer.safetensors"))?;
        let mut state = self.state.clone();
        state.elapsed_s += self.started.elapsed().as_secs_f64();
        let json = serde_json::to_string_pretty(&state).map_err(|e| Error::Checkpoint { path: tmp.clone(), message: e.to_string() })?;
        write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())?;
        write_atomic(&tmp.join("recipe.toml"), self.recipe.to_toml()?.as_bytes())?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        if let Ok(d) = std::fs::File::open(&out) {
            let _ = d.sync_all();
        }
        tracing::info!(checkpoint = %dir.display(), "saved checkpoint");
        self.last_checkpoint = Some(dir.clone());
        if let Some(limit) = self.recipe.save_total_limit {
            let all = checkpoints(&out);
            let keep_best = self.state.best_checkpoint.clone();
            let removable: Vec<_> = all.iter().filter(|(_, p)| Some(p) != keep_best.as_ref() && *p != dir).collect();
            let excess = all.len().saturating_sub(limit.max(1));
            for (_, p) in removable.into_iter().take(excess) {
                tracing::info!(checkpoint = %p.display(), "removing old checkpoint (save_total_limit)");
                std::fs::remove_dir_all(p).map_err(|e| Error::io(p, e))?;
            }
        }
        Ok(dir)
    }

    /// Train to the end: steps with periodic evaluation and checkpoints, early stopping, then the
    /// final model (`output_dir/model`, or `adapter` + `merged`), `report.html` and the report.
    pub fn run(mut self) -> Result<TrainReport> {
        let total = self.state.schedule.total_steps;
        let progress = make_progress(self.recipe.progress_bar, total, self.state.step);
        let mut stopped_early = false;
        let result = (|| -> Result<()> {
            while self.state.step < total {
                let m = self.step()?;
                if let Some(pb) = &progress {
                    pb.set_position(m.step);
                    pb.set_message(format!("loss {:.4} lr {:.2e} {:.0} tok/s", m.loss, m.lr, m.tokens_per_s));
                } else if m.step % self.recipe.logging_steps.max(1) == 0 || m.step == total {
                    tracing::info!(step = m.step, total, loss = m.loss, lr = m.lr, grad_norm = m.grad_norm, tokens_per_s = m.tokens_per_s, "train");
                }
                let last = self.state.step == total;
                let eval_now = self.eval.is_some() && (last || (self.recipe.eval_steps > 0 && m.step % self.recipe.eval_steps == 0));
                let mut improved = false;
                if eval_now && let Some(e) = self.evaluate()? {
                    improved = self.state.best_eval_loss.is_none_or(|b| e.eval_loss < b);
                    if improved {
                        self.state.best_eval_loss = Some(e.eval_loss);
                        self.state.best_step = Some(e.step);
                        self.state.evals_without_improvement = 0;
                    } else {
                        self.state.evals_without_improvement += 1;
                    }
                }
                let periodic = self.recipe.save_steps > 0 && (last || m.step % self.recipe.save_steps == 0);
                let save_now = periodic || (improved && self.recipe.load_best_model_at_end);
                if save_now {
                    let dir = self.save_checkpoint()?;
                    if improved {
                        self.state.best_checkpoint = Some(dir);
                    }
                }
                if let Some(patience) = self.recipe.early_stopping_patience
                    && eval_now
                    && self.state.evals_without_improvement >= patience.max(1)
                {
                    tracing::info!(step = m.step, patience, "early stopping: no eval improvement");
                    stopped_early = true;
                    break;
                }
            }
            Ok(())
        })();
        if let Some(pb) = &progress {
            pb.finish_and_clear();
        }
        match result {
            Ok(()) => self.finish(stopped_early),
            Err(e) => {
                let mut report = self.report(stopped_early);
                report.status = format!("failed: {e}");
                let _ = self.write_report_files(&report);
                Err(e)
            }
        }
    }

    fn report(&self, stopped_early: bool) -> TrainReport {
        let wall = self.started.elapsed().as_secs_f64();
        TrainReport {
            stage: self.recipe.stage.to_string(),
            status: if stopped_early { "early stopped".into() } else { "completed".into() },
            steps: self.state.step,
            final_loss: self.losses.last().copied(),
            losses: self.losses.clone(),
            eval_losses: self.eval_losses.clone(),
            best_eval_loss: self.state.best_eval_loss,
            best_step: self.state.best_step,
            tokens: self.state.tokens,
            tokens_per_s: (self.state.tokens - self.tokens_at_start) as f64 / wall.max(1e-9),
            wall_time_s: wall,
            peak_rss_bytes: memory_usage().1,
            stopped_early,
            output_dir: self.recipe.output_dir.clone(),
            model_dir: None,
            adapter_dir: None,
            merged_dir: None,
            last_checkpoint: self.last_checkpoint.clone(),
        }
    }

    fn write_report_files(&self, report: &TrainReport) -> Result<()> {
        let lines = read_metrics(&self.recipe.output_dir.join("metrics.jsonl")).unwrap_or_default();
        write_report(&self.recipe.output_dir.join("report.html"), report, &lines, &self.recipe.to_toml().unwrap_or_default())?;
        let json = serde_json::to_string_pretty(report).map_err(|e| Error::Tensor(e.to_string()))?;
        write_atomic(&self.recipe.output_dir.join("train_report.json"), json.as_bytes())?;
        Ok(())
    }

    fn finish(mut self, stopped_early: bool) -> Result<TrainReport> {
        let out = self.recipe.output_dir.clone();
        if self.recipe.load_best_model_at_end
            && let Some(best) = self.state.best_checkpoint.clone()
            && self.state.best_step != Some(self.state.step)
        {
            tracing::info!(checkpoint = %best.display(), "loading the best weights for the final model");
            let plain = self.model.valid();
            self.model = match &self.lora {
                Some(_) => {
                    let base = strip_lora(plain);
                    load_peft_adapter(base, &best.join("adapter"))?.0
                }
                None => load_model(best.join("model"), &LoadOptions { device: self.device.clone(), dtype: self.dtype })?.0,
            };
        }
        let save_dtype = match &self.recipe.save_dtype {
            Some(s) => parse_dtype(s)?,
            None => self.dtype,
        };
        let plain = self.model.valid();
        let mut report = self.report(stopped_early);
        let tokenizer = load_tokenizer(&self.recipe.base_model).ok();
        match &self.lora {
            Some(cfg) => {
                let dir = out.join("adapter");
                save_peft_adapter(&plain, cfg, &dir, &PeftSaveOptions { base_model: Some(self.recipe.base_model.display().to_string()), dtype: save_dtype })?;
                report.adapter_dir = Some(dir);
                if self.recipe.merge_lora {
                    let dir = out.join("merged");
                    let merged = merge_lora(plain);
                    save_hf(&merged, &dir, self.hf_config.as_ref(), &SaveOptions { dtype: save_dtype, max_shard_bytes: Some(4 << 30) })?;
                    if let Some(t) = &tokenizer {
                        t.save(&dir).map_err(infuse_llama_model::Error::from)?;
                    }
                    report.merged_dir = Some(dir);
                }
            }
            None => {
                let dir = out.join("model");
                save_hf(&plain, &dir, self.hf_config.as_ref(), &SaveOptions { dtype: save_dtype, max_shard_bytes: Some(4 << 30) })?;
                if let Some(t) = &tokenizer {
                    t.save(&dir).map_err(infuse_llama_model::Error::from)?;
                }
                report.model_dir = Some(dir);
            }
        }
        self.write_report_files(&report)?;
        tracing::info!(steps = report.steps, loss = report.final_loss, tokens_per_s = report.tokens_per_s, dir = %out.display(), "training done");
        Ok(report)
    }
}

/// What one micro-batch (or shard of one) contributes to an optimizer step.
#[derive(Default)]
struct UnitOutput {
    nll_sum: f64,
    count: usize,
    grads: BTreeMap<String, Tensor<1>>,
    timings: StepTimings,
}

impl UnitOutput {
    /// Adds `other`'s loss, counts, times and gradients to these.
    fn absorb(&mut self, other: UnitOutput) {
        self.nll_sum += other.nll_sum;
        self.count += other.count;
        self.timings.forward_s += other.timings.forward_s;
        self.timings.loss_s += other.timings.loss_s;
        self.timings.backward_s += other.timings.backward_s;
        add_grads(&mut self.grads, other.grads);
    }
}

/// The LM head of `model` as the loss sees it, its parameter path, and whether it is trained.
fn head_of(model: &Llama) -> (Head, &'static str, bool) {
    match &model.lm_head {
        Some(l) => {
            let w = l.weight.val();
            let trainable = w.is_require_grad();
            (Head::Untied(w), "lm_head.weight", trainable)
        }
        None => {
            let w = model.embed_tokens.weight.val();
            let trainable = w.is_require_grad();
            (Head::Tied(w), "embed_tokens.weight", trainable)
        }
    }
}

/// Forward, chunked cross-entropy (weighted by `weight`) and backward of one batch; the
/// gradients of every trainable parameter (flattened, f32, by path, the head's included).
fn micro_batch(model: &Llama, batch: &Batch, weight: f64, ce_chunk: Option<usize>) -> Result<UnitOutput> {
    let mut timings = StepTimings::default();
    let t = Instant::now();
    let rows = Trainer::hidden_rows(model, batch, &model.device())?;
    timings.forward_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (head, head_path, head_trainable) = head_of(model);
    let ce = chunked_cross_entropy(
        rows,
        &head,
        &batch.targets,
        &CeOptions { weight, chunk_rows: ce_chunk, grad_hidden: true, grad_head: head_trainable, host_kernels: true },
    )?;
    timings.loss_s = t.elapsed().as_secs_f64();
    let mut grads = BTreeMap::new();
    if !ce.nll_sum.is_finite() {
        return Ok(UnitOutput { nll_sum: ce.nll_sum, count: ce.count, grads, timings });
    }
    let t = Instant::now();
    if let Some(s) = ce.surrogate {
        let mut g = s.backward();
        accumulate_grads(model, &mut g, &mut grads);
    }
    if let Some(hg) = ce.head_grad {
        let n = hg.shape().num_elements();
        let hg = hg.reshape([n]);
        let merged = match grads.remove(head_path) {
            Some(prev) => prev + hg,
            None => hg,
        };
        grads.insert(head_path.to_owned(), merged);
    }
    timings.backward_s = t.elapsed().as_secs_f64();
    Ok(UnitOutput { nll_sum: ce.nll_sum, count: ce.count, grads, timings })
}

/// `into += from`, parameter by parameter (in parallel: each sum is one element-wise op).
fn add_grads(into: &mut BTreeMap<String, Tensor<1>>, mut from: BTreeMap<String, Tensor<1>>) {
    let mut pairs: Vec<(String, Tensor<1>, Option<Tensor<1>>)> =
        std::mem::take(into).into_iter().map(|(k, v)| { let o = from.remove(&k); (k, v, o) }).collect();
    pairs.extend(from.into_iter().map(|(k, v)| (k, v, None)));
    *into = pairs.into_par_iter().map(|(k, a, b)| (k, match b { Some(b) => a + b, None => a })).collect();
}

/// A model with the adapters removed (base weights kept).
fn strip_lora(mut model: Llama) -> Llama {
    for l in &mut model.layers {
        for p in [&mut l.self_attn.q_proj, &mut l.self_attn.k_proj, &mut l.self_attn.v_proj, &mut l.self_attn.o_proj, &mut l.mlp.gate_proj, &mut l.mlp.up_proj, &mut l.mlp.down_proj] {
            p.lora = None;
        }
    }
    model
}

/// A cheap stand-in while the real model is moved through a by-value call.
fn placeholder(model: &Llama) -> Llama {
    model.clone()
}

fn make_progress(setting: Option<bool>, total: u64, start: u64) -> Option<indicatif::ProgressBar> {
    let show = setting.unwrap_or_else(|| std::io::stderr().is_terminal());
    if !show {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} ETA {eta} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_position(start);
    Some(pb)
}

/// Everything a stage needs to start: the model loaded from `base_model` on the recipe's device in
/// the training dtype, and its HF config.
pub fn load_base_model(recipe: &Recipe) -> Result<(Llama, Option<HfLlamaConfig>)> {
    let device = parse_device(&recipe.device)?;
    let dtype = training_dtype(recipe, &device);
    Ok(load_model(&recipe.base_model, &LoadOptions { device, dtype })?)
}

/// Load the base model and run the loop on `data` (what the stage crates call).
pub fn run(recipe: &Recipe, data: TrainData) -> Result<TrainReport> {
    let (model, hf) = load_base_model(recipe)?;
    Trainer::new(recipe.clone(), model, hf, data)?.run()
}
