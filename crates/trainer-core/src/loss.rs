//! Chunked cross-entropy over the vocabulary, fused with the LM head.
//!
//! The loss of `N` target positions with hidden states `h: [N, D]` and head `W` is
//! `sum_i w · (logsumexp(h_i·W) - h_i·W[y_i])`. It is computed in row chunks of about 8M logits,
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
    /// Rows per chunk; `None` picks about 8M logits per chunk.
    pub chunk_rows: Option<usize>,
    /// Compute the gradient with respect to `hidden` (surrogate).
    pub grad_hidden: bool,
    /// Compute the gradient with respect to the head weight.
    pub grad_head: bool,
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
    let chunk = options.chunk_rows.unwrap_or_else(|| ((8usize << 20) / vocab.max(1)).max(16)).max(1);
    let h_plain = hidden.clone().inner().cast(DType::F32);
    let (w, tied) = match head {
        Head::Tied(w) => (w.clone().inner().cast(DType::F32), true),
        Head::Untied(w) => (w.clone().inner().cast(DType::F32), false),
    };
    let device_plain = h_plain.device();
    let mut nll_parts = Vec::new();
    let mut grad_rows = Vec::new();
    let mut head_grad: Option<Tensor<2>> = None;
    let mut start = 0;
    while start < n {
        let c = chunk.min(n - start);
        let hc = h_plain.clone().narrow(0, start, c);
        let logits = if tied { hc.clone().matmul(w.clone().transpose()) } else { hc.clone().matmul(w.clone()) }; // [c, V]
        let idx_data: Vec<i64> = targets[start..start + c].iter().map(|&t| i64::from(t)).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(idx_data, [c, 1]), &device_plain);
        let max = logits.clone().max_dim(1); // [c, 1]
        let shifted = logits - max;
        let exp = shifted.clone().exp();
        let sum = exp.clone().sum_dim(1); // [c, 1]
        let target_logit = shifted.gather(1, idx.clone()); // [c, 1]
        nll_parts.push((sum.clone().log() - target_logit).sum());
        if options.grad_hidden || options.grad_head {
            let ones = Tensor::<2>::ones([c, 1], &device_plain).neg();
            let dlogits = (exp / sum).scatter(1, idx, ones, IndexingUpdateOp::Add).mul_scalar(options.weight);
            if options.grad_hidden {
                let gh = if tied { dlogits.clone().matmul(w.clone()) } else { dlogits.clone().matmul(w.clone().transpose()) };
                grad_rows.push(gh);
            }
            if options.grad_head {
                let gw = if tied { dlogits.transpose().matmul(hc) } else { hc.transpose().matmul(dlogits) };
                head_grad = Some(match head_grad {
                    Some(acc) => acc + gw,
                    None => gw,
                });
            }
        }
        start += c;
    }
    let nll = Tensor::cat(nll_parts, 0).into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::Tensor(format!("{e:?}")))?;
    let nll_sum: f64 = nll.iter().map(|&x| f64::from(x)).sum();
    let surrogate = if options.grad_hidden && hidden.is_autodiff() && hidden.is_tracked() {
        let grad = Tensor::cat(grad_rows, 0).cast(hidden.dtype());
        Some((hidden * grad).sum())
    } else {
        None
    };
    Ok(CeOutput { nll_sum, count: n, surrogate, head_grad })
}
