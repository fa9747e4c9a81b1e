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

/// The scalars of one update.
struct Scalars {
    decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step_size: f64,
    bias_correction2_sqrt: f64,
}

/// The same update in one multi-threaded pass over host memory (burn's CPU backend runs each
/// element-wise op on one thread, and the tensor form takes eleven of them). Consumes `p, g, m, v`
/// (all f32, moved out of their tensors without copies where the backend allows) and returns the
/// new `(m, v, p)`.
fn host_update(p: Tensor<1>, g: Tensor<1>, m: Tensor<1>, v: Tensor<1>, s: &Scalars) -> Result<(Tensor<1>, Tensor<1>, Tensor<1>)> {
    use rayon::prelude::*;
    let device = p.device();
    let read = |t: Tensor<1>| -> Result<Vec<f32>> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Tensor(format!("optimizer state: {e:?}")))
    };
    let (mut pv, gv, mut mv, mut vv) = (read(p)?, read(g)?, read(m)?, read(v)?);
    let n = pv.len();
    if gv.len() != n || mv.len() != n || vv.len() != n {
        return Err(Error::Tensor(format!("optimizer: parameter has {n} elements, gradient {}, moments {} and {}", gv.len(), mv.len(), vv.len())));
    }
    // f32 arithmetic in torch's order (`mul_`, `lerp_`, `mul_().addcmul_()`, `sqrt / c + eps`,
    // `addcdiv_`), with the scalars rounded to f32 as burn's scalar ops round them.
    let (decay, b1c, b2, b2c, eps, step, bc2) =
        (s.decay as f32, (1.0 - s.beta1) as f32, s.beta2 as f32, (1.0 - s.beta2) as f32, s.eps as f32, s.step_size as f32, s.bias_correction2_sqrt as f32);
    const CHUNK: usize = 1 << 14;
    pv.par_chunks_mut(CHUNK)
        .zip(mv.par_chunks_mut(CHUNK))
        .zip(vv.par_chunks_mut(CHUNK))
        .zip(gv.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            for i in 0..p.len() {
                let gi = g[i];
                m[i] += (gi - m[i]) * b1c;
                v[i] = v[i] * b2 + gi * gi * b2c;
                let denom = v[i].sqrt() / bc2 + eps;
                p[i] = p[i] * decay - m[i] / denom * step;
            }
        });
    let back = |data: Vec<f32>| Tensor::<1>::from_data(TensorData::new(data, [n]), &device);
    Ok((back(mv), back(vv), back(pv)))
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
    pub fn step(&mut self, model: Llama, grads: &mut BTreeMap<String, Tensor<1>>, lr: f64) -> Result<Llama> {
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
            let p = match state.master.take() {
                Some(m) if low_precision => m,
                _ => value.cast(DType::F32),
            };
            let decay = if info.decay && weight_decay != 0.0 { 1.0 - lr * weight_decay } else { 1.0 };
            let scalars = Scalars { decay, beta1, beta2, eps, step_size, bias_correction2_sqrt };
            let (m, v, p) = if crate::loss::is_host(&g.device()) {
                let m = std::mem::replace(&mut state.exp_avg, Tensor::empty([0], &g.device()));
                let v = std::mem::replace(&mut state.exp_avg_sq, Tensor::empty([0], &g.device()));
                host_update(p, g, m, v, &scalars)?
            } else {
                let p = if decay != 1.0 { p.mul_scalar(decay) } else { p };
                let m = state.exp_avg.clone();
                let m = m.clone() + (g.clone() - m).mul_scalar(1.0 - beta1);
                let v = state.exp_avg_sq.clone().mul_scalar(beta2) + (g.clone() * g).mul_scalar(1.0 - beta2);
                let denom = v.clone().sqrt().div_scalar(bias_correction2_sqrt).add_scalar(eps);
                let p = p - (m.clone() / denom).mul_scalar(step_size);
                (m, v, p)
            };
            state.exp_avg = m;
            state.exp_avg_sq = v;
            if low_precision {
                state.master = Some(p.clone());
            }
            updates.insert(info.path, p);
        }
        Ok(write_params(model, &mut updates))
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

#[cfg(test)]
mod host_tests {
    use super::*;

    /// The fused host update equals the tensor-op form (used on GPUs) on random state.
    #[test]
    fn host_update_equals_tensor_form() {
        let device = Device::default();
        let mut rng = crate::SplitMix64(9);
        let mut rand = |n: usize, scale: f32| (0..n).map(|_| (rng.below(20001) as f32 - 10000.0) / 10000.0 * scale).collect::<Vec<f32>>();
        let n = 40_000;
        let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
        let (p, g, m) = (rand(n, 1.0), rand(n, 1e-2), rand(n, 1e-3));
        let v: Vec<f32> = rand(n, 1e-4).iter().map(|x| x.abs()).collect();
        let (beta1, beta2, eps, lr, wd) = (0.9, 0.999, 1e-8, 1e-3, 0.1);
        let (bc1, bc2) = (1.0 - f64::powi(beta1, 3), 1.0 - f64::powi(beta2, 3));
        let s = Scalars { decay: 1.0 - lr * wd, beta1, beta2, eps, step_size: lr / bc1, bias_correction2_sqrt: bc2.sqrt() };
        let (hm, hv, hp) = host_update(t(p.clone()), t(g.clone()), t(m.clone()), t(v.clone()), &s).expect("host");
        let pt = t(p).mul_scalar(s.decay);
        let mt = t(m.clone()) + (t(g.clone()) - t(m)).mul_scalar(1.0 - beta1);
        let vt = t(v).mul_scalar(beta2) + (t(g.clone()) * t(g)).mul_scalar(1.0 - beta2);
        let denom = vt.clone().sqrt().div_scalar(s.bias_correction2_sqrt).add_scalar(eps);
        let pt = pt - (mt.clone() / denom).mul_scalar(s.step_size);
        let vec = |x: Tensor<1>| x.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32");
        for (name, a, b) in [("m", vec(hm), vec(mt)), ("v", vec(hv), vec(vt)), ("p", vec(hp), vec(pt))] {
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-6)).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{name}: host and tensor forms differ by {worst} relative");
        }
    }
}
