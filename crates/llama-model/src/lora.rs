//! LoRA: low-rank adapters on the decoder projections, applied to activations.
//!
//! A LoRA-capable projection computes `y = x·W + s·(dropout(x)·A)·B` with `A: [in, r]`,
//! `B: [r, out]` and `s = alpha / r` (or `alpha / sqrt(r)` with rsLoRA): the low-rank path runs on
//! the activations, so no dense `[in, out]` delta is materialized in the forward or backward pass.
//! Adapters are created ([`apply_lora`]), folded into the base weights ([`merge_lora`]), and saved
//! and loaded in PEFT's layout ([`save_peft_adapter`], [`load_peft_adapter`]):
//! `adapter_config.json` plus `adapter_model.safetensors` with keys such as
//! `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (`[r, in]`) and
//! `...lora_B.weight` (`[out, r]`). Key names come from the [`Weight`] table.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::linear;
use burn::tensor::{DType, Distribution};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::model::{Llama, Mlp};
use crate::safetensors_io::{SafetensorsCheckpoint, write_atomic};
use crate::weights::{LayerTensor, Weight, transpose_host};
use crate::{Error, Result};

/// A linear projection without bias, `y = x·W` with `W: [in, out]`, optionally carrying a LoRA
/// adapter.
#[derive(Module, Debug)]
pub struct Projection {
    /// `[in, out]` (the transpose of HF's `[out, in]`).
    pub weight: Param<Tensor<2>>,
    /// The adapter, when LoRA is applied to this projection.
    pub lora: Option<LoraAdapter>,
}

/// The low-rank factors of one projection.
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// `[in, r]` (the transpose of PEFT's `lora_A.weight`).
    pub lora_a: Param<Tensor<2>>,
    /// `[r, out]` (the transpose of PEFT's `lora_B.weight`).
    pub lora_b: Param<Tensor<2>>,
    /// Output scale: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    #[module(skip)]
    pub scaling: f64,
    /// Dropout probability on the adapter's input (training only).
    #[module(skip)]
    pub dropout: f64,
}

impl Projection {
    /// A projection from a `[in, out]` weight.
    pub fn new(weight: Tensor<2>) -> Self {
        Self { weight: Param::from_tensor(weight), lora: None }
    }

    /// `[..., in]` -> `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.lora {
            None => linear(x, self.weight.val(), None),
            Some(adapter) => linear(x.clone(), self.weight.val(), None) + adapter.forward(x),
        }
    }

    /// The effective weight `[in, out]`: `W + s·A·B` with an adapter, `W` without.
    pub fn effective_weight(&self) -> Tensor<2> {
        let w = self.weight.val();
        match &self.lora {
            None => w,
            Some(a) => {
                let dtype = w.dtype();
                let delta = a.lora_a.val().cast(DType::F32).matmul(a.lora_b.val().cast(DType::F32)).mul_scalar(a.scaling);
                (w.cast(DType::F32) + delta).cast(dtype)
            }
        }
    }
}

impl LoraAdapter {
    /// `s·(dropout(x)·A)·B`. Dropout is active only on autodiff tensors (training).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = if self.dropout > 0.0 && x.is_autodiff() {
            let keep = 1.0 - self.dropout;
            let mask = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(keep), &x.device()).cast(x.dtype());
            x * mask.div_scalar(keep)
        } else {
            x
        };
        linear(linear(x, self.lora_a.val(), None), self.lora_b.val(), None).mul_scalar(self.scaling)
    }

    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.shape().dims::<2>()[1]
    }
}

/// The projections LoRA can target, with their HF module names.
pub const LORA_TARGETS: [LayerTensor; 7] =
    [LayerTensor::Q, LayerTensor::K, LayerTensor::V, LayerTensor::O, LayerTensor::Gate, LayerTensor::Up, LayerTensor::Down];

/// LoRA hyper-parameters (PEFT's `LoraConfig` names in comments).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank (`r`).
    pub r: usize,
    /// Scale numerator (`lora_alpha`).
    pub alpha: f64,
    /// Input dropout (`lora_dropout`).
    pub dropout: f64,
    /// Target projections (`target_modules`: `q_proj`, `k_proj`, ..., `down_proj`).
    pub target_modules: Vec<LayerTensor>,
    /// `alpha / sqrt(r)` instead of `alpha / r` (`use_rslora`).
    pub use_rslora: bool,
    /// Seed of the `A` initialization (PEFT's default: Kaiming-uniform `A`, zero `B`).
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { r: 8, alpha: 16.0, dropout: 0.0, target_modules: LORA_TARGETS.to_vec(), use_rslora: false, seed: 0 }
    }
}

impl LoraConfig {
    /// The output scale `s`.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora { self.alpha / (self.r as f64).sqrt() } else { self.alpha / self.r as f64 }
    }

    /// Parse target module names: HF module names (`q_proj`, `self_attn.q_proj`, ...), or
    /// `all-linear` / `all` for the seven decoder projections. Unknown names are an error naming them.
    pub fn parse_targets<S: AsRef<str>>(names: &[S]) -> Result<Vec<LayerTensor>> {
        let mut out = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            if matches!(name, "all-linear" | "all_linear" | "all") {
                out.extend(LORA_TARGETS);
                continue;
            }
            let short = name.rsplit('.').next().unwrap_or(name);
            let t = LORA_TARGETS.iter().copied().find(|t| module_name(*t) == short).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown LoRA target module `{name}` (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear)"
                ))
            })?;
            out.push(t);
        }
        let mut seen = Vec::new();
        out.retain(|t| if seen.contains(t) { false } else { seen.push(*t); true });
        if out.is_empty() {
            return Err(Error::InvalidInput("LoRA needs at least one target module".into()));
        }
        Ok(out)
    }

    fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::InvalidInput("LoRA rank r must be >= 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::InvalidInput(format!("lora_dropout {} must be in [0, 1)", self.dropout)));
        }
        if !self.alpha.is_finite() {
            return Err(Error::InvalidInput(format!("lora_alpha {} is not finite", self.alpha)));
        }
        Ok(())
    }
}

/// HF module name of a projection (`q_proj`), taken from the [`Weight`] name table.
pub fn module_name(t: LayerTensor) -> String {
    let name = Weight::Layer(0, t).hf_name();
    let module = name.strip_suffix(".weight").unwrap_or(&name);
    module.rsplit('.').next().unwrap_or(module).to_owned()
}

/// PEFT key of factor `A` or `B` of one projection:
/// `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`.
pub fn peft_key(layer: usize, t: LayerTensor, factor: LoraFactor) -> String {
    let name = Weight::Layer(layer, t).hf_name();
    let module = name.strip_suffix(".weight").unwrap_or(&name);
    let f = match factor {
        LoraFactor::A => "lora_A",
        LoraFactor::B => "lora_B",
    };
    format!("base_model.model.{module}.{f}.weight")
}

/// Which LoRA factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoraFactor {
    /// `A`, PEFT shape `[r, in]`.
    A,
    /// `B`, PEFT shape `[out, r]`.
    B,
}

impl Llama {
    /// The projection for a layer tensor (`None` for norms or an out-of-range layer).
    pub fn projection(&self, layer: usize, t: LayerTensor) -> Option<&Projection> {
        let l = self.layers.get(layer)?;
        match t {
            LayerTensor::Q => Some(&l.self_attn.q_proj),
            LayerTensor::K => Some(&l.self_attn.k_proj),
            LayerTensor::V => Some(&l.self_attn.v_proj),
            LayerTensor::O => Some(&l.self_attn.o_proj),
            LayerTensor::Gate => Some(&l.mlp.gate_proj),
            LayerTensor::Up => Some(&l.mlp.up_proj),
            LayerTensor::Down => Some(&l.mlp.down_proj),
            LayerTensor::InputNorm | LayerTensor::PostAttentionNorm => None,
        }
    }

    fn projection_mut(&mut self, layer: usize, t: LayerTensor) -> Option<&mut Projection> {
        let l = self.layers.get_mut(layer)?;
        match t {
            LayerTensor::Q => Some(&mut l.self_attn.q_proj),
            LayerTensor::K => Some(&mut l.self_attn.k_proj),
            LayerTensor::V => Some(&mut l.self_attn.v_proj),
            LayerTensor::O => Some(&mut l.self_attn.o_proj),
            LayerTensor::Gate => Some(&mut l.mlp.gate_proj),
            LayerTensor::Up => Some(&mut l.mlp.up_proj),
            LayerTensor::Down => Some(&mut l.mlp.down_proj),
            LayerTensor::InputNorm | LayerTensor::PostAttentionNorm => None,
        }
    }

    /// True when any projection carries an adapter.
    pub fn has_lora(&self) -> bool {
        self.layers.iter().any(|l| {
            let Mlp { gate_proj, up_proj, down_proj } = &l.mlp;
            [&l.self_attn.q_proj, &l.self_attn.k_proj, &l.self_attn.v_proj, &l.self_attn.o_proj, gate_proj, up_proj, down_proj]
                .iter()
                .any(|p| p.lora.is_some())
        })
    }

    /// `(layer, target, adapter)` for every adapter, in layer then [`LORA_TARGETS`] order.
    pub fn lora_adapters(&self) -> Vec<(usize, LayerTensor, &LoraAdapter)> {
        let mut out = Vec::new();
        for i in 0..self.layers.len() {
            for t in LORA_TARGETS {
                if let Some(a) = self.projection(i, t).and_then(|p| p.lora.as_ref()) {
                    out.push((i, t, a));
                }
            }
        }
        out
    }
}

/// Seeded uniform values in `[-bound, bound)` (SplitMix64; the same on every platform).
fn uniform(n: usize, bound: f64, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
            ((2.0 * u - 1.0) * bound) as f32
        })
        .collect()
}

/// Add LoRA adapters to the target projections of every layer and freeze every other parameter.
///
/// Initialization follows PEFT's default: `A` Kaiming-uniform (`U(-1/sqrt(in), 1/sqrt(in))`, seeded),
/// `B` zero, so the adapted model starts equal to the base model. Adapters are created in the dtype
/// of the base weights.
pub fn apply_lora(model: Llama, config: &LoraConfig) -> Result<Llama> {
    config.validate()?;
    if model.has_lora() {
        return Err(Error::InvalidInput("the model already has LoRA adapters (merge or drop them first)".into()));
    }
    let mut model = model.no_grad();
    let scaling = config.scaling();
    for i in 0..model.layers.len() {
        for &t in &config.target_modules {
            let Some(p) = model.projection_mut(i, t) else { continue };
            let w = p.weight.val();
            let [d_in, d_out] = w.dims();
            let (device, dtype) = (w.device(), w.dtype());
            let seed = config.seed ^ hash_name(&peft_key(i, t, LoraFactor::A));
            let a = uniform(d_in * config.r, 1.0 / (d_in as f64).sqrt(), seed);
            // PEFT's `A` is `[r, in]`; ours is its transpose, so draw in PEFT order and transpose
            // on the host (contiguous, like every other weight).
            let a = transpose_host(TensorData::new(a, [config.r, d_in]), config.r, d_in);
            let a = Tensor::<2>::from_data(a, &device).cast(dtype);
            let b = Tensor::<2>::zeros([config.r, d_out], &device).cast(dtype);
            p.lora = Some(LoraAdapter {
                lora_a: Param::from_tensor(a),
                lora_b: Param::from_tensor(b),
                scaling,
                dropout: config.dropout,
            });
        }
    }
    Ok(model)
}

fn hash_name(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Fold every adapter into its base weight (`W += s·A·B`, computed in f32) and remove it.
pub fn merge_lora(mut model: Llama) -> Llama {
    for i in 0..model.layers.len() {
        for t in LORA_TARGETS {
            let Some(p) = model.projection_mut(i, t) else { continue };
            if p.lora.is_none() {
                continue;
            }
            let merged = p.effective_weight().detach();
            *p = Projection { weight: Param::from_tensor(merged), lora: None };
        }
    }
    model
}

/// PEFT's `adapter_config.json` (the fields infuse reads and writes; PEFT fills the rest with its
/// defaults when loading).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeftAdapterConfig {
    /// Always `LORA`.
    pub peft_type: String,
    /// `CAUSAL_LM`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// The base model this adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Rank.
    pub r: usize,
    /// Alpha.
    pub lora_alpha: f64,
    /// Dropout.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Target module names (a list, or a string such as `all-linear`).
    pub target_modules: TargetModules,
    /// rsLoRA scaling.
    #[serde(default)]
    pub use_rslora: bool,
    /// Bias handling; only `none` is supported.
    #[serde(default = "bias_none")]
    pub bias: String,
    /// Must be false: infuse stores weights as `[out, in]` like `nn.Linear`.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// DoRA is not supported.
    #[serde(default)]
    pub use_dora: bool,
    /// Per-module rank overrides; must be empty.
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, serde_json::Value>,
    /// Per-module alpha overrides; must be empty.
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, serde_json::Value>,
    /// Extra trained modules; must be empty.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Everything else, written back unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn bias_none() -> String {
    "none".into()
}

/// `target_modules` is a list of names or one string (a regex or `all-linear`) in PEFT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// A list of module names.
    List(Vec<String>),
    /// One string.
    One(String),
}

impl PeftAdapterConfig {
    /// The config PEFT would write for `config`.
    pub fn from_lora(config: &LoraConfig, base_model: Option<&str>) -> Self {
        let mut extra = serde_json::Map::new();
        extra.insert("inference_mode".into(), serde_json::json!(true));
        extra.insert("init_lora_weights".into(), serde_json::json!(true));
        extra.insert("layers_to_transform".into(), serde_json::Value::Null);
        extra.insert("layers_pattern".into(), serde_json::Value::Null);
        extra.insert("revision".into(), serde_json::Value::Null);
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            base_model_name_or_path: base_model.map(str::to_owned),
            r: config.r,
            lora_alpha: config.alpha,
            lora_dropout: config.dropout,
            target_modules: TargetModules::List(config.target_modules.iter().map(|t| module_name(*t)).collect()),
            use_rslora: config.use_rslora,
            bias: "none".into(),
            fan_in_fan_out: false,
            use_dora: false,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            modules_to_save: None,
            extra,
        }
    }

    /// The LoRA config this file describes, or an error naming the unsupported field.
    pub fn to_lora(&self, origin: &str) -> Result<LoraConfig> {
        let bad = |m: String| Error::InvalidConfig { origin: origin.to_owned(), message: m };
        if !self.peft_type.eq_ignore_ascii_case("lora") {
            return Err(bad(format!("peft_type `{}` is not LORA", self.peft_type)));
        }
        if self.bias != "none" {
            return Err(bad(format!("bias = `{}`: only `none` is supported", self.bias)));
        }
        if self.fan_in_fan_out || self.use_dora {
            return Err(bad("fan_in_fan_out and use_dora are not supported".into()));
        }
        if !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return Err(bad("rank_pattern / alpha_pattern are not supported".into()));
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(bad("modules_to_save is not supported".into()));
        }
        for key in ["layers_to_transform", "layers_pattern", "exclude_modules", "target_parameters", "layer_replication"] {
            if self.extra.get(key).is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())) {
                return Err(bad(format!("`{key}` is not supported")));
            }
        }
        if self.extra.get("lora_bias").and_then(serde_json::Value::as_bool) == Some(true) {
            return Err(bad("lora_bias = true is not supported".into()));
        }
        let names = match &self.target_modules {
            TargetModules::List(v) => v.clone(),
            TargetModules::One(s) => vec![s.clone()],
        };
        let target_modules = LoraConfig::parse_targets(&names).map_err(|e| bad(e.to_string()))?;
        Ok(LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules,
            use_rslora: self.use_rslora,
            seed: 0,
        })
    }
}

/// Options for [`save_peft_adapter`].
#[derive(Debug, Clone)]
pub struct PeftSaveOptions {
    /// `base_model_name_or_path` in `adapter_config.json`.
    pub base_model: Option<String>,
    /// Dtype of the factors on disk (F32, F16, BF16).
    pub dtype: DType,
}

impl Default for PeftSaveOptions {
    fn default() -> Self {
        Self { base_model: None, dtype: DType::F32 }
    }
}

/// The config of the adapters a model carries (rank, scale and targets read from the model).
pub fn lora_config_of(model: &Llama) -> Option<LoraConfig> {
    let adapters = model.lora_adapters();
    let (_, _, first) = adapters.first()?;
    let r = first.rank();
    let mut targets: Vec<LayerTensor> = Vec::new();
    for (_, t, _) in &adapters {
        if !targets.contains(t) {
            targets.push(*t);
        }
    }
    Some(LoraConfig {
        r,
        alpha: first.scaling * r as f64,
        dropout: first.dropout,
        target_modules: targets,
        use_rslora: false,
        seed: 0,
    })
}

/// Save the adapters of `model` in PEFT layout: `dir/adapter_config.json` and
/// `dir/adapter_model.safetensors` (factors transposed to PEFT's `[r, in]` / `[out, r]`), each
/// written atomically. `config` supplies alpha/rsLoRA/dropout for the JSON.
pub fn save_peft_adapter(model: &Llama, config: &LoraConfig, dir: &Path, options: &PeftSaveOptions) -> Result<()> {
    let adapters = model.lora_adapters();
    if adapters.is_empty() {
        return Err(Error::Save { path: dir.to_owned(), message: "the model has no LoRA adapters".into() });
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })?;
    let st_dtype = match options.dtype {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        other => return Err(Error::Save { path: dir.to_owned(), message: format!("unsupported dtype {other:?}") }),
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, t, a) in &adapters {
        for (factor, p) in [(LoraFactor::A, &a.lora_a), (LoraFactor::B, &a.lora_b)] {
            let v = p.val().transpose();
            let shape = v.dims().to_vec();
            let data = v.into_data().convert_dtype(options.dtype);
            tensors.push((peft_key(*i, *t, factor), shape, data.as_bytes().to_vec()));
        }
    }
    let file = dir.join("adapter_model.safetensors");
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(st_dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Save { path: file.clone(), message: e.to_string() })
        })
        .collect::<Result<_>>()?;
    let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let bytes = safetensors::tensor::serialize(views, Some(meta)).map_err(|e| Error::Save { path: file.clone(), message: e.to_string() })?;
    write_atomic(&file, &bytes)?;
    let cfg = PeftAdapterConfig::from_lora(config, options.base_model.as_deref());
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Save { path: dir.to_owned(), message: e.to_string() })?;
    write_atomic(&dir.join("adapter_config.json"), text.as_bytes())
}

/// Load a PEFT LoRA adapter directory onto `model` (which must not carry adapters), freezing the
/// base weights. Every key of the file must belong to a target projection and every target
/// projection of every layer must be present; shapes are checked against the model.
pub fn load_peft_adapter(model: Llama, dir: &Path) -> Result<(Llama, LoraConfig)> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io { path: cfg_path.clone(), source })?;
    let origin = cfg_path.display().to_string();
    let peft: PeftAdapterConfig =
        serde_json::from_str(&text).map_err(|e| Error::InvalidConfig { origin: origin.clone(), message: e.to_string() })?;
    let config = peft.to_lora(&origin)?;
    let file = dir.join("adapter_model.safetensors");
    let ckpt = SafetensorsCheckpoint::open_file(&file)?;
    let mut model = apply_lora(model, &config)?;
    let mut used = 0usize;
    for i in 0..model.layers.len() {
        for &t in &config.target_modules {
            let Some(p) = model.projection_mut(i, t) else { continue };
            let w = p.weight.val();
            let [d_in, d_out] = w.dims();
            let (device, dtype) = (w.device(), w.dtype());
            let Some(adapter) = p.lora.as_mut() else { continue };
            for (factor, expected) in [(LoraFactor::A, [config.r, d_in]), (LoraFactor::B, [d_out, config.r])] {
                let key = peft_key(i, t, factor);
                // PEFT sometimes saves with the adapter name inside the key.
                let alt = key.replace(".weight", ".default.weight");
                let data = match ckpt.tensor(&key)? {
                    Some(d) => d,
                    None => ckpt
                        .tensor(&alt)?
                        .ok_or_else(|| Error::MissingTensor { origin: file.display().to_string(), name: key.clone() })?,
                };
                if data.shape().as_slice() != expected.as_slice() {
                    return Err(Error::ShapeMismatch {
                        origin: file.display().to_string(),
                        name: key,
                        got: data.shape().to_vec(),
                        expected: expected.to_vec(),
                    });
                }
                let data = transpose_host(data.convert_dtype(DType::F32), expected[0], expected[1]);
                let tensor = Tensor::<2>::from_data(data, &device).cast(dtype);
                match factor {
                    LoraFactor::A => adapter.lora_a = Param::from_tensor(tensor),
                    LoraFactor::B => adapter.lora_b = Param::from_tensor(tensor),
                }
                used += 1;
            }
        }
    }
    let total = ckpt.names().len();
    if used != total {
        let known: Vec<String> = (0..model.layers.len())
            .flat_map(|i| config.target_modules.iter().flat_map(move |&t| [peft_key(i, t, LoraFactor::A), peft_key(i, t, LoraFactor::B)]))
            .collect();
        let unknown: Vec<String> = ckpt
            .names()
            .into_iter()
            .filter(|n| !known.contains(n) && !known.contains(&n.replace(".default.weight", ".weight")))
            .take(5)
            .collect();
        return Err(Error::InvalidConfig {
            origin: file.display().to_string(),
            message: format!("{} tensors do not belong to the configured targets, e.g. {unknown:?}", total - used),
        });
    }
    Ok((model, config))
}
