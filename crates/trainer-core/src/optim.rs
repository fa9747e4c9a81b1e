//! AdamW with PyTorch's semantics and defaults, global-norm gradient clipping, and f32 master
//! weights for low-precision parameters.
//!
//! burn's `AdamW` differs from `torch.optim.AdamW` (epsilon 1e-5, per-tensor clipping), so the
//! update is written here over burn tensors, term for term as torch's single-tensor AdamW computes
//! it:
//!
//! ```text
//! p   <- p * (1 - lr * wd)                       (matrices only)
//! m   <- m + (1 - b1) * (g - m)                  (lerp)
//! v   <- b2 * v + (1 - b2) * g * g
//! p   <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//!
//! State is keyed by module path so that it can be saved and restored across processes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::prelude::*;
use burn::tensor::DType;
use infuse_llama_model::{Llama, SafetensorsCheckpoint, burn, write_atomic};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::params::{collect_params, write_params};
use crate::{Error, Result};

/// AdamW hyper-parameters (PyTorch defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay (applied to matrices, never to norms or biases).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

struct ParamState {
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
    /// f32 copy of a parameter stored in a lower precision.
    master: Option<Tensor<1>>,
}

/// The optimizer: configuration, step count and per-parameter state.
pub struct AdamW {
    config: AdamWConfig,
    steps: u64,
    state: BTreeMap<String, ParamState>,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW").field("config", &self.config).field("steps", &self.steps).field("params", &self.state.len()).finish()
    }
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, steps: 0, state: BTreeMap::new() }
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Apply one update with learning rate `lr` to every trainable parameter that has a gradient in
    /// `grads` (flattened, keyed by module path). Gradients are consumed.
    pub fn step(&mut self, model: Llama, grads: &mut BTreeMap<String, Tensor<1>>, lr: f64) -> Llama {
        self.steps += 1;
        let t = self.steps as i32;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2 = 1.0 - beta2.powi(t);
        let step_size = lr / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.sqrt();
        let mut updates = BTreeMap::new();
        for (info, value) in collect_params(&model, true) {
            let Some(g) = grads.remove(&info.path) else { continue };
            let low_precision = value.dtype() != DType::F32;
            let g = g.cast(DType::F32);
            let state = self.state.entry(info.path.clone()).or_insert_with(|| ParamState {
                exp_avg: g.zeros_like(),
                exp_avg_sq: g.zeros_like(),
                master: None,
            });
            let mut p = match state.master.take() {
                Some(m) if low_precision => m,
                _ => value.cast(DType::F32),
            };
            if info.decay && weight_decay != 0.0 {
                p = p.mul_scalar(1.0 - lr * weight_decay);
            }
            let m = state.exp_avg.clone();
            let m = m.clone() + (g.clone() - m).mul_scalar(1.0 - beta1);
            let v = state.exp_avg_sq.clone().mul_scalar(beta2) + (g.clone() * g).mul_scalar(1.0 - beta2);
            let denom = v.clone().sqrt().div_scalar(bias_correction2_sqrt).add_scalar(eps);
            let p = p - (m.clone() / denom).mul_scalar(step_size);
            state.exp_avg = m;
            state.exp_avg_sq = v;
            if low_precision {
                state.master = Some(p.clone());
            }
            updates.insert(info.path, p);
        }
        write_params(model, &mut updates)
    }

    /// Save the state as `optimizer.safetensors` (moments and master weights, f32) plus the step
    /// count in its metadata; written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, s) in &self.state {
            let mut push = |suffix: &str, t: &Tensor<1>| {
                let data = t.to_data().convert_dtype(DType::F32);
                tensors.push((format!("{name}::{suffix}"), vec![t.dims()[0]], data.as_bytes().to_vec()));
            };
            push("exp_avg", &s.exp_avg);
            push("exp_avg_sq", &s.exp_avg_sq);
            if let Some(m) = &s.master {
                push("master", m);
            }
        }
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                TensorView::new(StDtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Checkpoint { path: path.to_owned(), message: e.to_string() })
            })
            .collect::<Result<_>>()?;
        let config = serde_json::to_string(&self.config).map_err(|e| Error::Checkpoint { path: path.to_owned(), message: e.to_string() })?;
        let meta = HashMap::from([
            ("format".to_owned(), "infuse-adamw".to_owned()),
            ("steps".to_owned(), self.steps.to_string()),
            ("config".to_owned(), config),
        ]);
        let bytes = safetensors::tensor::serialize(views, Some(meta))
            .map_err(|e| Error::Checkpoint { path: path.to_owned(), message: e.to_string() })?;
        write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Load state written by [`AdamW::save`] onto `device`. The configuration comes from the
    /// caller (the recipe), the step count and tensors from the file.
    pub fn load(path: &Path, config: AdamWConfig, device: &Device) -> Result<Self> {
        let bad = |m: String| Error::Checkpoint { path: path.to_owned(), message: m };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let steps: u64 = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("missing `steps` metadata".into()))?;
        let ckpt = SafetensorsCheckpoint::open_file(path)?;
        let mut state: BTreeMap<String, ParamState> = BTreeMap::new();
        let mut masters: BTreeMap<String, Tensor<1>> = BTreeMap::new();
        let mut moments: BTreeMap<String, (Option<Tensor<1>>, Option<Tensor<1>>)> = BTreeMap::new();
        for name in ckpt.names() {
            let (param, suffix) = name.rsplit_once("::").ok_or_else(|| bad(format!("unexpected tensor `{name}`")))?;
            let data = ckpt.tensor(&name)?.ok_or_else(|| bad(format!("unreadable tensor `{name}`")))?;
            let t = Tensor::<1>::from_data(data, device);
            let entry = moments.entry(param.to_owned()).or_default();
            match suffix {
                "exp_avg" => entry.0 = Some(t),
                "exp_avg_sq" => entry.1 = Some(t),
                "master" => {
                    masters.insert(param.to_owned(), t);
                }
                other => return Err(bad(format!("unexpected tensor kind `{other}` for `{param}`"))),
            }
        }
        for (param, (m, v)) in moments {
            let (Some(exp_avg), Some(exp_avg_sq)) = (m, v) else {
                return Err(bad(format!("incomplete state for `{param}`")));
            };
            let master = masters.remove(&param);
            state.insert(param, ParamState { exp_avg, exp_avg_sq, master });
        }
        Ok(Self { config, steps, state })
    }

    /// Check that the state covers exactly the trainable parameters of `model` with matching sizes.
    pub fn check_matches(&self, model: &Llama, origin: &Path) -> Result<()> {
        if self.state.is_empty() {
            return Ok(());
        }
        for (info, _) in collect_params(model, true) {
            let n: usize = info.shape.iter().product();
            match self.state.get(&info.path) {
                Some(s) if s.exp_avg.dims()[0] == n => {}
                Some(s) => {
                    return Err(Error::Checkpoint {
                        path: origin.to_owned(),
                        message: format!("optimizer state for `{}` has {} values, the parameter {n}", info.path, s.exp_avg.dims()[0]),
                    });
                }
                None => {
                    return Err(Error::Checkpoint {
                        path: origin.to_owned(),
                        message: format!("optimizer state has no entry for trainable parameter `{}`", info.path),
                    });
                }
            }
        }
        Ok(())
    }

    /// The f32 master copy of a low-precision parameter, if it has one.
    pub fn master(&self, path: &str) -> Option<&Tensor<1>> {
        self.state.get(path).and_then(|s| s.master.as_ref())
    }
}

/// Squared L2 norm of each gradient, read back in one transfer.
fn squared_norms(grads: &BTreeMap<String, Tensor<1>>) -> Result<Vec<f64>> {
    if grads.is_empty() {
        return Ok(Vec::new());
    }
    let sums: Vec<Tensor<1>> = grads.values().map(|g| g.clone().cast(DType::F32).square().sum()).collect();
    let all = Tensor::cat(sums, 0);
    let v = all.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::Tensor(format!("{e:?}")))?;
    Ok(v.into_iter().map(f64::from).collect())
}

/// Global L2 norm of all gradients, then scale them by `max_norm / (norm + 1e-6)` when that is
/// below 1 (PyTorch's `clip_grad_norm_`). `max_norm <= 0` only measures. Returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut BTreeMap<String, Tensor<1>>, max_norm: f64) -> Result<f64> {
    let total = squared_norms(grads)?.iter().sum::<f64>().sqrt();
    if max_norm > 0.0 && total.is_finite() {
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            for g in grads.values_mut() {
                let scaled = g.clone().mul_scalar(coef);
                *g = scaled;
            }
        }
    }
    Ok(total)
}
