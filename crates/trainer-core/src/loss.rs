//! Chunked cross-entropy over the vocabulary, fused with the LM head.
//!
//! The loss of `N` target positions with hidden states `h: [N, D]` and head `W` is
//! `sum_i w · (logsumexp(h_i·W) - h_i·W[y_i])`. It is computed in row chunks of about 32M logits,
//! so neither the `[N, vocab]` logits nor their log-softmax ever exist at once, and the gradient
//! is computed in the same pass: `dL/dlogits = w·(softmax - onehot(y))`, giving
//! `dL/dh = dlogits·Wᵀ` and `dL/dW = hᵀ·dlogits` chunk by chunk. The gradient with respect to `h`
//! reaches the rest of the network through the surrogate scalar `sum(h ⊙ dL/dh)`, whose gradient
//! is exactly `dL/dh`; `dL/dW` is returned for the caller to add to the head's gradient. Logits
//! and softmax are computed in f32 whatever the compute dtype.

use burn::prelude::*;
use burn::tensor::{DType, IndexingUpdateOp};
use infuse_llama_model::burn;

use crate::{Error, Result};

/// The LM head as the loss sees it (a plain tensor, without autodiff).
#[derive(Debug, Clone)]
pub enum Head {
    /// Tied embeddings: the embedding matrix `[vocab, hidden]`.
    Tied(Tensor<2>),
    /// A separate head in burn's layout `[hidden, vocab]`.
    Untied(Tensor<2>),
}

impl Head {
    fn vocab(&self) -> usize {
        match self {
            Head::Tied(w) => w.dims()[0],
            Head::Untied(w) => w.dims()[1],
        }
    }
}

/// What [`chunked_cross_entropy`] computes.
#[derive(Debug)]
pub struct CeOutput {
    /// `sum_i nll_i` over the target positions (unweighted, f64).
    pub nll_sum: f64,
    /// Number of target positions.
    pub count: usize,
    /// Scalar whose backward pass gives the hidden states the weighted loss gradient (only when
    /// gradients were requested and `hidden` is tracked by autodiff).
    pub surrogate: Option<Tensor<1>>,
    /// Gradient of the weighted loss with respect to the head, in the head's layout (only when
    /// requested).
    pub head_grad: Option<Tensor<2>>,
}

/// Options of [`chunked_cross_entropy`].
#[derive(Debug, Clone, Copy)]
pub struct CeOptions {
    /// Weight of every position in the loss whose gradient is computed (e.g. `1 / tokens in the
    /// optimizer step`).
    pub weight: f64,
    /// Rows per chunk; `None` picks about [`DEFAULT_CHUNK_LOGITS`] logits per chunk.
    pub chunk_rows: Option<usize>,
    /// Compute the gradient with respect to `hidden` (surrogate).
    pub grad_hidden: bool,
    /// Compute the gradient with respect to the head weight.
    pub grad_head: bool,
    /// On the CPU backend, compute softmax, loss and `dL/dlogits` in one multi-threaded host
    /// pass per chunk (same formula; the matrix products stay on the backend). Ignored on GPUs.
    pub host_kernels: bool,
}

/// Logits per chunk when `chunk_rows` is not set: 32M (128 MB in f32). Each chunk adds a full
/// `[vocab, hidden]` head-gradient product, so fewer, larger chunks are faster; 128 MB stays small
/// next to the weights, moments and activations of any model with a vocabulary this large.
pub const DEFAULT_CHUNK_LOGITS: usize = 32 << 20;

/// Whether tensors on `device` live in host memory (burn's CPU backend).
pub(crate) fn is_host(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        *device == Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// One chunk of logits `[c, vocab]` on the host: the chunk's NLL sum and, when gradients are
/// requested, `w·(softmax - onehot(y))` as a tensor on the same device.
fn host_softmax_xent(logits: Tensor<2>, targets: &[u32], vocab: usize, options: &CeOptions) -> Result<(f64, Option<Tensor<2>>)> {
    use rayon::prelude::*;
    let device = logits.device();
    let [c, _] = logits.dims();
    let mut data = logits.into_data().try_into_vec::<f32>().map_err(|e| Error::Tensor(format!("{e:?}")))?;
    let grad = options.grad_hidden || options.grad_head;
    let w = options.weight as f32;
    // Per-row values collected in row order, then summed in that order: a parallel `sum()`
    // would depend on how rayon split the work (runs would differ in the last bits).
    let rows: Vec<f64> = data
        .par_chunks_mut(vocab)
        .zip(targets.par_iter())
        .map(|(row, &y)| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let target = row[y as usize];
            let mut sum = 0.0f64;
            for x in row.iter_mut() {
                let e = (*x - max).exp();
                *x = e;
                sum += f64::from(e);
            }
            if grad {
                let scale = (f64::from(w) / sum) as f32;
                row.iter_mut().for_each(|x| *x *= scale);
                row[y as usize] -= w;
            }
            sum.ln() - f64::from(target - max)
        })
        .collect();
    let nll: f64 = rows.iter().sum();
    let d = grad.then(|| Tensor::<2>::from_data(TensorData::new(data, [c, vocab]), &device));
    Ok((nll, d))
}

/// Cross-entropy of `hidden: [N, D]` (one row per target position) against `targets` (length
/// `N`) through `head`, in chunks. See the module documentation.
pub fn chunked_cross_entropy(hidden: Tensor<2>, head: &Head, targets: &[u32], options: &CeOptions) -> Result<CeOutput> {
    let [n, _d] = hidden.dims();
    if n != targets.len() {
        return Err(Error::Tensor(format!("{n} hidden rows but {} targets", targets.len())));
    }
    if n == 0 {
        return Ok(CeOutput { nll_sum: 0.0, count: 0, surrogate: None, head_grad: None });
    }
    let vocab = head.vocab();
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::Tensor(format!("target id {bad} >= vocab size {vocab}")));
    }
    let chunk = options.chunk_rows.unwrap_or_else(|| (DEFAULT_CHUNK_LOGITS / vocab.max(1)).max(16)).max(1);
    let h_plain = hidden.clone().inner().cast(DType::F32);
    let (w, tied) = match head {
        Head::Tied(w) => (w.clone().inner().cast(DType::F32), true),
        Head::Untied(w) => (w.clone().inner().cast(DType::F32), false),
    };
    let device_plain = h_plain.device();
    let mut nll_parts = Vec::new();
    let mut grad_rows = Vec::new();
    let mut head_grad: Option<Tensor<2>> = None;
    let host = options.host_kernels && is_host(&device_plain);
    let mut host_nll = 0.0f64;
    let mut start = 0;
    while start < n {
        let c = chunk.min(n - start);
        let hc = h_plain.clone().narrow(0, start, c);
        let logits = if tied { hc.clone().matmul(w.clone().transpose()) } else { hc.clone().matmul(w.clone()) }; // [c, V]
        let dlogits = if host {
            // CPU: one fused, multi-threaded pass over the chunk (burn-flex runs element-wise
            // ops on one thread; this replaces seven of them).
            let (nll, d) = host_softmax_xent(logits, &targets[start..start + c], vocab, options)?;
            host_nll += nll;
            d
        } else {
            let idx_data: Vec<i64> = targets[start..start + c].iter().map(|&t| i64::from(t)).collect();
            let idx = Tensor::<2, Int>::from_data(TensorData::new(idx_data, [c, 1]), &device_plain);
            let max = logits.clone().max_dim(1); // [c, 1]
            let shifted = logits - max;
            let exp = shifted.clone().exp();
            let sum = exp.clone().sum_dim(1); // [c, 1]
            let target_logit = shifted.gather(1, idx.clone()); // [c, 1]
            nll_parts.push((sum.clone().log() - target_logit).sum());
            if options.grad_hidden || options.grad_head {
                // w·(softmax - onehot): scale by w/sum in one pass, then subtract w at the targets.
                let scale = sum.recip().mul_scalar(options.weight);
                let minus_w = Tensor::<2>::full([c, 1], -options.weight, &device_plain);
                Some((exp * scale).scatter(1, idx, minus_w, IndexingUpdateOp::Add))
            } else {
                None
            }
        };
        if let Some(dlogits) = dlogits {
            if options.grad_hidden {
                let gh = if tied { dlogits.clone().matmul(w.clone()) } else { dlogits.clone().matmul(w.clone().transpose()) };
                grad_rows.push(gh);
            }
            if options.grad_head {
                // Always `hᵀ·dlogits` ([hidden, vocab]: the contiguous `dlogits` is the right-hand
                // side, which GEMMs stream best); the tied head's `[vocab, hidden]` is its transpose.
                let gw = hc.transpose().matmul(dlogits);
                head_grad = Some(match head_grad {
                    Some(acc) => acc + gw,
                    None => gw,
                });
            }
        }
        start += c;
    }
    let mut nll_sum = host_nll;
    if !nll_parts.is_empty() {
        let nll = Tensor::cat(nll_parts, 0).into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::Tensor(format!("{e:?}")))?;
        nll_sum += nll.iter().map(|&x| f64::from(x)).sum::<f64>();
    }
    let surrogate = if options.grad_hidden && hidden.is_autodiff() && hidden.is_tracked() {
        let grad = Tensor::cat(grad_rows, 0).cast(hidden.dtype());
        Some((hidden * grad).sum())
    } else {
        None
    };
    let head_grad = if tied { head_grad.map(Tensor::transpose) } else { head_grad };
    Ok(CeOutput { nll_sum, count: n, surrogate, head_grad })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn to_vec(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32")
    }

    /// The fused host pass and the tensor-op path compute the same loss and gradients, and both
    /// equal a direct log-softmax over the full logits (tied and untied heads, several chunks).
    #[test]
    fn host_and_tensor_paths_agree_with_direct_log_softmax() {
        let device = Device::default();
        let (n, d, vocab) = (7, 5, 11);
        let mut rng = crate::SplitMix64(3);
        let mut rand = |k: usize| (0..k).map(|_| (rng.below(2001) as f32 - 1000.0) / 400.0).collect::<Vec<_>>();
        let h = rand(n * d);
        let w = rand(vocab * d);
        let targets: Vec<u32> = (0..n).map(|i| ((i * 5 + 3) % vocab) as u32).collect();
        // Direct reference on the host: logits = h·Wᵀ, log-softmax, nll.
        let mut ref_nll = 0.0f64;
        let mut ref_dh = vec![0.0f64; n * d];
        let weight = 0.25;
        for i in 0..n {
            let logits: Vec<f64> = (0..vocab).map(|v| (0..d).map(|k| f64::from(h[i * d + k]) * f64::from(w[v * d + k])).sum()).collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + logits.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            ref_nll += lse - logits[targets[i] as usize];
            for v in 0..vocab {
                let g = weight * ((logits[v] - lse).exp() - if v == targets[i] as usize { 1.0 } else { 0.0 });
                for k in 0..d {
                    ref_dh[i * d + k] += g * f64::from(w[v * d + k]);
                }
            }
        }
        for tied in [true, false] {
            let head = if tied {
                Head::Tied(tensor(w.clone(), [vocab, d], &device))
            } else {
                Head::Untied(tensor(w.clone(), [vocab, d], &device).transpose())
            };
            let mut grads = Vec::new();
            for host_kernels in [true, false] {
                let hidden = tensor(h.clone(), [n, d], &device);
                let opts = CeOptions { weight, chunk_rows: Some(3), grad_hidden: true, grad_head: true, host_kernels };
                // Without autodiff the surrogate is absent; dL/dh is checked through the head
                // gradient's transpose relation instead: dL/dW = dlogitsᵀ·h.
                let out = chunked_cross_entropy(hidden, &head, &targets, &opts).expect("ce");
                assert_eq!(out.count, n);
                assert!((out.nll_sum - ref_nll).abs() < 1e-5 * ref_nll.abs().max(1.0), "nll {} vs {ref_nll} (host {host_kernels})", out.nll_sum);
                let hg = out.head_grad.expect("head grad");
                grads.push(to_vec(if tied { hg } else { hg.transpose() }));
            }
            let diff = grads[0].iter().zip(&grads[1]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-6, "host and tensor head gradients differ by {diff} (tied {tied})");
        }
        // dL/dh through autodiff's surrogate, host path, against the reference.
        let ad = Device::default().autodiff();
        let hidden = tensor(h.clone(), [n, d], &ad).require_grad();
        let head = Head::Tied(tensor(w.clone(), [vocab, d], &device));
        let opts = CeOptions { weight, chunk_rows: Some(4), grad_hidden: true, grad_head: false, host_kernels: true };
        let out = chunked_cross_entropy(hidden.clone(), &head, &targets, &opts).expect("ce");
        let grads = out.surrogate.expect("surrogate").backward();
        let dh = hidden.grad(&grads).expect("grad");
        let dh: Vec<f32> = dh.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32");
        for (a, b) in dh.iter().zip(&ref_dh) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "dL/dh {a} vs {b}");
        }
    }
}
