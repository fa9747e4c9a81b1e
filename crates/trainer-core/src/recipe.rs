//! Training recipes: one flat TOML file with the key names axolotl and LLaMA-Factory users know,
//! `key=value` overrides, unknown keys rejected by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which stage a recipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Continued pre-training on token stores (`stage = "cpt"`, LLaMA-Factory's `pt`).
    #[serde(alias = "pt")]
    Cpt,
    /// Supervised fine-tuning on loss-masked chat data (`stage = "sft"`).
    Sft,
    /// Preference optimization (`stage = "dpo"`): its own crate, not run by this loop yet.
    Dpo,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Cpt => "cpt",
            Stage::Sft => "sft",
            Stage::Dpo => "dpo",
        })
    }
}

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    /// Half-cosine from the peak to 0 (HF `get_cosine_schedule_with_warmup`).
    #[default]
    Cosine,
    /// Linear from the peak to 0 (HF `get_linear_schedule_with_warmup`).
    Linear,
    /// Constant after warm-up (HF `constant_with_warmup`; `constant` means the same here).
    #[serde(alias = "constant_with_warmup")]
    Constant,
}

/// Kind of a dataset entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DatasetType {
    /// When `type` is not given: a directory is a token store, a file is chat JSONL
    /// ([`DatasetType::resolve`]).
    #[default]
    Auto,
    /// A token store written by `infuse prep` (a directory with `meta.json`).
    #[serde(alias = "tokens", alias = "token-store")]
    TokenStore,
    /// JSONL conversations (OpenAI `messages`, ShareGPT `conversations`, Alpaca), detected per
    /// record; rendered through the chat template (SFT only).
    #[serde(alias = "chat_template", alias = "messages", alias = "conversation")]
    Chat,
    /// Alpaca records (`instruction`, `input`, `output`).
    Alpaca,
    /// ShareGPT records (`conversations` with `from`/`value`).
    Sharegpt,
}

impl DatasetType {
    /// The type to read `path` as: itself, or for [`DatasetType::Auto`] a token store when `path`
    /// is a directory and chat JSONL (records detected one by one) otherwise.
    pub fn resolve(self, path: &std::path::Path) -> DatasetType {
        match self {
            DatasetType::Auto if path.is_dir() => DatasetType::TokenStore,
            DatasetType::Auto => DatasetType::Chat,
            other => other,
        }
    }
}

/// One entry of `datasets`, `eval_datasets` or `replay_datasets`. Several datasets are read one
/// after the other (mixing by ratio is `infuse prep`'s job; replay uses `replay_ratio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Directory (token store) or JSONL file; relative paths are relative to the recipe file.
    pub path: PathBuf,
    /// What the path holds.
    #[serde(default, rename = "type")]
    pub kind: DatasetType,
}

/// `resume_from_checkpoint`: a checkpoint path, or `true` for the newest one in `output_dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResumeFrom {
    /// `true`: newest `checkpoint-*` in `output_dir`; `false`: start fresh.
    Latest(bool),
    /// A checkpoint directory.
    Path(PathBuf),
}

/// `bf16`: `true`, `false` or `"auto"` (bf16 where it is faster: CUDA; f32 on CPU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bf16 {
    /// On or off.
    Flag(bool),
    /// `"auto"`.
    Auto(String),
}

impl Default for Bf16 {
    fn default() -> Self {
        Bf16::Flag(false)
    }
}

/// A training recipe. Key names follow axolotl (`micro_batch_size`, `lora_r`, ...) with
/// LLaMA-Factory / HF `TrainingArguments` names accepted as aliases
/// (`model_name_or_path`, `per_device_train_batch_size`, `lora_rank`, `num_train_epochs`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// `cpt` or `sft`.
    pub stage: Stage,
    /// HF model directory or `.gguf` file.
    #[serde(alias = "model_name_or_path")]
    pub base_model: PathBuf,
    /// Run directory (metrics, checkpoints, final model, report).
    pub output_dir: PathBuf,
    /// Seed of data order, LoRA initialization and dropout.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    #[serde(default = "d_device")]
    pub device: String,

    /// Training data.
    #[serde(default)]
    pub datasets: Vec<DatasetSpec>,
    /// Held-out data for evaluation.
    #[serde(default, alias = "test_datasets", alias = "eval_dataset")]
    pub eval_datasets: Vec<DatasetSpec>,
    /// Fraction (or count, when >= 1) of training sequences held out for evaluation when no
    /// `eval_datasets` are given.
    #[serde(default, alias = "val_size")]
    pub val_set_size: f64,
    /// General data replayed during CPT against catastrophic forgetting.
    #[serde(default)]
    pub replay_datasets: Vec<DatasetSpec>,
    /// Fraction of training sequences drawn from `replay_datasets`.
    #[serde(default)]
    pub replay_ratio: f64,
    /// Maximum sequence length: longer training sequences are truncated, longer SFT samples dropped.
    #[serde(default = "d_seq_len", alias = "cutoff_len")]
    pub sequence_len: usize,
    /// Pack several SFT samples per sequence (block-diagonal attention, positions restart).
    #[serde(default = "d_true")]
    pub sample_packing: bool,
    /// CPT: block-diagonal attention over the documents of a packed sequence, positions restarting
    /// per document (LLaMA-Factory's name). SFT packing is always block-diagonal.
    #[serde(default)]
    pub neat_packing: bool,
    /// Chat template for JSONL conversations: `auto`, `tokenizer`, `llama3`, `chatml`, `smollm2`.
    #[serde(default = "d_template", alias = "template")]
    pub chat_template: String,
    /// Shuffle training sequences every epoch (seeded).
    #[serde(default = "d_true")]
    pub shuffle: bool,

    /// Sequences per micro-batch.
    #[serde(default = "d_one", alias = "per_device_train_batch_size")]
    pub micro_batch_size: usize,
    /// Sequences per evaluation batch (default: `micro_batch_size`).
    #[serde(default, alias = "per_device_eval_batch_size")]
    pub eval_batch_size: Option<usize>,
    /// Micro-batches per optimizer step; the loss is normalized by the trained tokens of all of them.
    #[serde(default = "d_one")]
    pub gradient_accumulation_steps: usize,
    /// Passes over the training data (fractions allowed); ignored when `max_steps` > 0.
    #[serde(default = "d_epochs", alias = "num_train_epochs")]
    pub num_epochs: f64,
    /// Optimizer steps; `0` (or negative) derives them from `num_epochs`.
    #[serde(default)]
    pub max_steps: i64,

    /// Peak learning rate.
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    /// Schedule after warm-up.
    #[serde(default, alias = "lr_scheduler_type")]
    pub lr_scheduler: SchedulerKind,
    /// Warm-up as a fraction of all steps (`ceil(ratio * steps)`, as HF).
    #[serde(default)]
    pub warmup_ratio: f64,
    /// Warm-up steps (overrides `warmup_ratio`).
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    /// Decoupled weight decay, applied to matrices only (never norms or biases).
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW beta 1.
    #[serde(default = "d_beta1")]
    pub adam_beta1: f64,
    /// AdamW beta 2.
    #[serde(default = "d_beta2")]
    pub adam_beta2: f64,
    /// AdamW epsilon (PyTorch's 1e-8).
    #[serde(default = "d_eps")]
    pub adam_epsilon: f64,
    /// Global gradient-norm clipping (`torch.nn.utils.clip_grad_norm_`); 0 disables.
    #[serde(default = "d_clip")]
    pub max_grad_norm: f64,
    /// `adamw_torch` (the only optimizer; the name is accepted for compatibility).
    #[serde(default = "d_optimizer", alias = "optim")]
    pub optimizer: String,

    /// bf16 compute with f32 master weights.
    #[serde(default)]
    pub bf16: Bf16,
    /// burn's op-level gradient checkpointing (recomputes memory-bound ops in backward).
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Rows per cross-entropy chunk (default: about 32M logits per chunk).
    #[serde(default)]
    pub ce_chunk_size: Option<usize>,
    /// CPU backend only: split every micro-batch into this many shards whose forward and
    /// backward passes run concurrently, one thread each, their gradients summed in shard order
    /// (burn's CPU backend runs element-wise ops on one thread; a second shard keeps the other
    /// cores busy meanwhile). `0` (default): `min(2, threads, micro_batch_size)`; `1`: off. Off
    /// with LoRA dropout (masks come from one device RNG). Costs one extra set of gradients
    /// per extra shard; the result equals the unsharded step up to float rounding.
    #[serde(default)]
    pub cpu_micro_batch_shards: usize,

    /// `lora` for LoRA; absent for a full fine-tune.
    #[serde(default, alias = "finetuning_type")]
    pub adapter: Option<String>,
    /// LoRA rank.
    #[serde(default = "d_lora_r", alias = "lora_rank")]
    pub lora_r: usize,
    /// LoRA alpha.
    #[serde(default = "d_lora_alpha")]
    pub lora_alpha: f64,
    /// LoRA dropout.
    #[serde(default)]
    pub lora_dropout: f64,
    /// LoRA targets: `q_proj` ... `down_proj`, or `all-linear`.
    #[serde(default = "d_targets", alias = "lora_target")]
    pub lora_target_modules: TargetList,
    /// rsLoRA scaling `alpha / sqrt(r)`.
    #[serde(default, alias = "peft_use_rslora")]
    pub use_rslora: bool,
    /// Start from an existing PEFT adapter directory.
    #[serde(default, alias = "adapter_name_or_path")]
    pub lora_model_dir: Option<PathBuf>,
    /// Also write `output_dir/merged/` (base + adapter, HF layout).
    #[serde(default)]
    pub merge_lora: bool,

    /// Checkpoint every N steps (0: none until the end).
    #[serde(default)]
    pub save_steps: u64,
    /// Keep at most this many `checkpoint-*` directories (the best one is always kept).
    #[serde(default)]
    pub save_total_limit: Option<usize>,
    /// Evaluate every N steps (0: only at the end).
    #[serde(default)]
    pub eval_steps: u64,
    /// Stop after this many evaluations without improvement of the eval loss.
    #[serde(default)]
    pub early_stopping_patience: Option<u64>,
    /// Save the best (lowest eval loss) weights as the final model instead of the last ones.
    #[serde(default)]
    pub load_best_model_at_end: bool,
    /// Continue a run: a checkpoint directory, or `true` for the newest one in `output_dir`.
    #[serde(default)]
    pub resume_from_checkpoint: Option<ResumeFrom>,
    /// Dtype of the final model on disk: `f32`, `bf16`, `f16` (default: `bf16` with bf16 training,
    /// else `f32`).
    #[serde(default)]
    pub save_dtype: Option<String>,
    /// Log a plain line every N steps when no progress bar is shown.
    #[serde(default = "d_one_u64")]
    pub logging_steps: u64,
    /// Progress bar: `auto` (when stderr is a terminal), `true`, `false`.
    #[serde(default)]
    pub progress_bar: Option<bool>,
}

/// `lora_target_modules`: a list, or one string (`all-linear`, or comma-separated names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetList {
    /// `["q_proj", "v_proj"]`.
    List(Vec<String>),
    /// `"all"` / `"all-linear"` / `"q_proj,v_proj"`.
    One(String),
}

impl TargetList {
    /// Module names.
    pub fn names(&self) -> Vec<String> {
        match self {
            TargetList::List(v) => v.clone(),
            TargetList::One(s) => s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect(),
        }
    }
}

fn d_seed() -> u64 {
    42
}
fn d_device() -> String {
    "auto".into()
}
fn d_seq_len() -> usize {
    2048
}
fn d_true() -> bool {
    true
}
fn d_template() -> String {
    "auto".into()
}
fn d_one() -> usize {
    1
}
fn d_one_u64() -> u64 {
    1
}
fn d_epochs() -> f64 {
    1.0
}
fn d_lr() -> f64 {
    5e-5
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_clip() -> f64 {
    1.0
}
fn d_optimizer() -> String {
    "adamw_torch".into()
}
fn d_lora_r() -> usize {
    8
}
fn d_lora_alpha() -> f64 {
    16.0
}
fn d_targets() -> TargetList {
    TargetList::One("all-linear".into())
}

impl Recipe {
    /// A recipe with every default, for programs that build one in code.
    pub fn new(stage: Stage, base_model: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        let mut table = toml::Table::new();
        table.insert("stage".into(), toml::Value::String(stage.to_string()));
        table.insert("base_model".into(), toml::Value::String(base_model.into().display().to_string()));
        table.insert("output_dir".into(), toml::Value::String(output_dir.into().display().to_string()));
        // Every other field has a serde default, so this cannot fail.
        match toml::Value::Table(table).try_into::<Recipe>() {
            Ok(r) => r,
            Err(e) => unreachable!("defaults are complete: {e}"),
        }
    }

    /// Read a TOML recipe and apply `key=value` overrides (dotted keys reach into tables and
    /// arrays: `datasets.0.path=...`). Relative paths are resolved against the recipe's folder.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let origin = path.display().to_string();
        let yaml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("json"));
        let mut recipe = if yaml { Self::from_yaml_str(&text, &origin, overrides)? } else { Self::from_toml_str(&text, &origin, overrides)? };
        let base = path.parent().unwrap_or(Path::new("."));
        recipe.resolve_paths(base);
        Ok(recipe)
    }

    /// Parse TOML text with overrides (paths left as written).
    pub fn from_toml_str(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::recipe(origin, e.to_string()))?;
        Self::from_table(table, origin, overrides)
    }

    /// Parse YAML text (axolotl's recipe format; JSON is YAML too) with overrides. The keys and
    /// their meaning are the TOML ones; `null` values are treated as absent keys.
    pub fn from_yaml_str(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| Error::recipe(origin, e.to_string()))?;
        let table = match yaml_to_toml(value, "").map_err(|m| Error::recipe(origin, m))? {
            Some(toml::Value::Table(t)) => t,
            None => toml::Table::new(),
            Some(other) => return Err(Error::recipe(origin, format!("a recipe is a mapping of keys to values, found a {}", other.type_str()))),
        };
        Self::from_table(table, origin, overrides)
    }

    fn from_table(mut table: toml::Table, origin: &str, overrides: &[String]) -> Result<Self> {
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let recipe: Recipe = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
            let what = if overrides.is_empty() { origin.to_owned() } else { format!("{origin} (with overrides {overrides:?})") };
            Error::recipe(what, e.to_string().trim().to_owned())
        })?;
        recipe.validate(origin)?;
        Ok(recipe)
    }

    /// Make relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.base_model);
        fix(&mut self.output_dir);
        for d in self.datasets.iter_mut().chain(self.eval_datasets.iter_mut()).chain(self.replay_datasets.iter_mut()) {
            fix(&mut d.path);
        }
        if let Some(p) = self.lora_model_dir.as_mut() {
            fix(p);
        }
        if let Some(ResumeFrom::Path(p)) = self.resume_from_checkpoint.as_mut() {
            fix(p);
        }
    }

    /// Check values and combinations; errors name the key.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |m: String| Err(Error::recipe(origin, m));
        if self.micro_batch_size == 0 {
            return bad("micro_batch_size must be >= 1".into());
        }
        if self.gradient_accumulation_steps == 0 {
            return bad("gradient_accumulation_steps must be >= 1".into());
        }
        if self.sequence_len < 2 {
            return bad("sequence_len must be >= 2".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return bad(format!("learning_rate {} must be finite and >= 0", self.learning_rate));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!("warmup_ratio {} must be in [0, 1)", self.warmup_ratio));
        }
        if !(0.0..1.0).contains(&self.adam_beta1) || !(0.0..1.0).contains(&self.adam_beta2) {
            return bad("adam_beta1 and adam_beta2 must be in [0, 1)".into());
        }
        if self.adam_epsilon.is_nan() || self.adam_epsilon <= 0.0 || self.weight_decay < 0.0 || self.max_grad_norm < 0.0 {
            return bad("adam_epsilon must be > 0, weight_decay and max_grad_norm >= 0".into());
        }
        if self.max_steps <= 0 && (self.num_epochs.is_nan() || self.num_epochs <= 0.0) {
            return bad("set max_steps > 0 or num_epochs > 0".into());
        }
        if !(0.0..1.0).contains(&self.replay_ratio) {
            return bad(format!("replay_ratio {} must be in [0, 1)", self.replay_ratio));
        }
        if self.replay_ratio > 0.0 && self.replay_datasets.is_empty() {
            return bad("replay_ratio > 0 needs replay_datasets".into());
        }
        if self.val_set_size < 0.0 {
            return bad("val_set_size must be >= 0".into());
        }
        if !matches!(self.optimizer.as_str(), "adamw_torch" | "adamw" | "adamw_torch_fused" | "adamw_hf") {
            return bad(format!("optimizer `{}` is not supported (adamw_torch)", self.optimizer));
        }
        if let Bf16::Auto(s) = &self.bf16
            && s != "auto"
        {
            return bad(format!("bf16 = \"{s}\": expected true, false or \"auto\""));
        }
        match self.adapter.as_deref() {
            None | Some("lora") | Some("full") | Some("") => {}
            Some(other) => return bad(format!("adapter `{other}` is not supported (lora, or leave it out for a full fine-tune)")),
        }
        if self.is_lora() {
            infuse_llama_model::LoraConfig::parse_targets(&self.lora_target_modules.names())
                .map_err(|e| Error::recipe(origin, format!("lora_target_modules: {e}")))?;
            if self.lora_r == 0 {
                return bad("lora_r must be >= 1".into());
            }
            if !(0.0..1.0).contains(&self.lora_dropout) {
                return bad(format!("lora_dropout {} must be in [0, 1)", self.lora_dropout));
            }
        } else if self.merge_lora {
            return bad("merge_lora = true needs adapter = \"lora\"".into());
        }
        if let Some(d) = &self.save_dtype {
            infuse_llama_model::parse_dtype(d).map_err(|e| Error::recipe(origin, format!("save_dtype: {e}")))?;
        }
        if self.load_best_model_at_end && self.eval_datasets.is_empty() && self.val_set_size == 0.0 {
            return bad("load_best_model_at_end needs eval_datasets or val_set_size".into());
        }
        Ok(())
    }

    /// True for `adapter = "lora"`.
    pub fn is_lora(&self) -> bool {
        self.adapter.as_deref() == Some("lora")
    }

    /// The LoRA configuration of this recipe.
    pub fn lora_config(&self) -> Result<infuse_llama_model::LoraConfig> {
        let targets = infuse_llama_model::LoraConfig::parse_targets(&self.lora_target_modules.names())
            .map_err(|e| Error::recipe("lora_target_modules", e.to_string()))?;
        Ok(infuse_llama_model::LoraConfig {
            r: self.lora_r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules: targets,
            use_rslora: self.use_rslora,
            seed: self.seed,
        })
    }

    /// The recipe as TOML (what checkpoints store).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::recipe("serialize", e.to_string()))
    }
}

/// A YAML value as the TOML value the recipe is deserialized from (`None` for null).
fn yaml_to_toml(v: serde_yaml_ng::Value, path: &str) -> std::result::Result<Option<toml::Value>, String> {
    use serde_yaml_ng::Value as Y;
    Ok(Some(match v {
        Y::Null => return Ok(None),
        Y::Bool(b) => toml::Value::Boolean(b),
        Y::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) => toml::Value::Float(f),
            (None, None) => return Err(format!("`{path}`: number {n} is out of range")),
        },
        Y::String(s) => toml::Value::String(s),
        Y::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let p = format!("{path}.{i}");
                out.push(yaml_to_toml(item, &p)?.ok_or_else(|| format!("`{p}`: null inside a list"))?);
            }
            toml::Value::Array(out)
        }
        Y::Mapping(m) => {
            let mut t = toml::Table::new();
            for (k, val) in m {
                let key = match k {
                    Y::String(s) => s,
                    other => return Err(format!("`{path}`: keys must be strings, found {other:?}")),
                };
                let p = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                if let Some(val) = yaml_to_toml(val, &p)? {
                    t.insert(key, val);
                }
            }
            toml::Value::Table(t)
        }
        Y::Tagged(t) => return yaml_to_toml(t.value, path),
    }))
}

/// Apply one `key=value` override to a TOML table. The value is parsed as a TOML value
/// (`1e-4`, `true`, `"x"`, `[1, 2]`), falling back to a plain string.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| Error::recipe(format!("override `{spec}`"), "expected key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::recipe(format!("override `{spec}`"), "empty key"));
    }
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = key.split('.').collect();
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &parts, value, spec);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_path(cur: &mut toml::Value, parts: &[&str], value: toml::Value, spec: &str) -> Result<()> {
    let err = |m: String| Error::recipe(format!("override `{spec}`"), m);
    let Some((part, rest)) = parts.split_first() else { return Ok(()) };
    let next = match cur {
        toml::Value::Table(t) => {
            if rest.is_empty() {
                t.insert((*part).to_owned(), value);
                return Ok(());
            }
            t.entry((*part).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()))
        }
        toml::Value::Array(a) => {
            let idx: usize = part.parse().map_err(|_| err(format!("`{part}` is not an array index")))?;
            let len = a.len();
            let slot = a.get_mut(idx).ok_or_else(|| err(format!("index {idx} out of range (the array has {len})")))?;
            if rest.is_empty() {
                *slot = value;
                return Ok(());
            }
            slot
        }
        _ => return Err(err(format!("`{part}` is inside a value that is neither a table nor an array"))),
    };
    set_path(next, rest, value, spec)
}

fn parse_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_type_defaults_to_the_path_kind() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("chat.jsonl");
        std::fs::write(&file, "{}\n").expect("write");
        assert_eq!(DatasetType::Auto.resolve(dir.path()), DatasetType::TokenStore);
        assert_eq!(DatasetType::Auto.resolve(&file), DatasetType::Chat);
        assert_eq!(DatasetType::Alpaca.resolve(&file), DatasetType::Alpaca);
        let spec: DatasetSpec = toml::from_str("path = \"x.jsonl\"").expect("spec");
        assert_eq!(spec.kind, DatasetType::Auto);
    }
}
