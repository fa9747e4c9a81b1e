//! The Llama decoder as burn modules, following transformers' `modeling_llama.py`.
//!
//! Field names are HF's (`self_attn.q_proj`, `mlp.gate_proj`, `input_layernorm`, ...), so the burn
//! module path of every parameter is the HF name without the `model.` prefix. Linear weights are
//! stored burn-style, `[in, out]`; the checkpoint code transposes HF's `[out, in]` on load and save.
//! The seven decoder projections are [`Projection`]s, which can carry a LoRA adapter (see `lora.rs`).

use burn::nn::{Embedding, Linear, RmsNorm};

use crate::lora::Projection;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::config::LlamaConfig;
#[cfg(feature = "flex")]
use crate::fused;
use crate::rope::{Rope, apply_rotary};
use crate::{Error, Result};

/// Self-attention with grouped-query heads.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[hidden, heads * head_dim]`
    pub q_proj: Projection,
    /// `[hidden, kv_heads * head_dim]`
    pub k_proj: Projection,
    /// `[hidden, kv_heads * head_dim]`
    pub v_proj: Projection,
    /// `[heads * head_dim, hidden]`
    pub o_proj: Projection,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[hidden, intermediate]`
    pub gate_proj: Projection,
    /// `[hidden, intermediate]`
    pub up_proj: Projection,
    /// `[intermediate, hidden]`
    pub down_proj: Projection,
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Attention block.
    pub self_attn: Attention,
    /// Feed-forward block.
    pub mlp: Mlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
}

/// A Llama causal language model (HF `LlamaForCausalLM`).
#[derive(Module, Debug)]
pub struct Llama {
    /// `[vocab, hidden]` token embeddings.
    pub embed_tokens: Embedding,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
    /// Separate LM head `[hidden, vocab]`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    /// RoPE frequencies.
    pub rope: Rope,
    /// The resolved configuration.
    #[module(skip)]
    pub config: LlamaConfig,
}

/// Per-layer key/value cache for incremental decoding, passed explicitly to [`Llama::forward`].
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![None; num_layers], len: 0 }
    }

    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drop everything.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }
}

/// Optional inputs of a forward pass (HF conventions).
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// `[B, T]` positions for RoPE. Default: `cache.len() + 0..T` for every row. Left-padded batches
    /// pass `max(cumsum(attention_mask) - 1, 0)`; packed sequences restart at 0 per document.
    pub position_ids: Option<Tensor<2, Int>>,
    /// `[B, S]` with `S = cache.len() + T`: 1 for real tokens, 0 for padding keys (HF
    /// `attention_mask`).
    pub attention_mask: Option<Tensor<2, Int>>,
    /// `[B, T]` document ids of packed sequences: a token attends only to earlier tokens of the
    /// same document (block-diagonal causal attention). Only without a cache.
    pub segment_ids: Option<Tensor<2, Int>>,
}

struct AttnMask {
    /// `[B, heads, T, S]`, true = masked.
    mask: Option<Tensor<4, Bool>>,
    is_causal: bool,
    /// Training only: the same mask as an additive bias `[B or 1, 1, T, S]` (0 or -inf) for
    /// [`attention_autodiff`].
    bias: Option<Tensor<4>>,
}

/// Attention under autodiff: `softmax(q·kᵀ/sqrt(d) + bias)·v` written with the fewest element-wise
/// passes over the `[B, heads, T, S]` scores (burn's generic fallback, which autodiff uses, adds a
/// scale pass, a mask-fill pass, clamps and a differentiated max). The scale is applied to `q`
/// (`hd` wide instead of `S`), the mask is one broadcast add, and the row maximum is detached (the
/// softmax does not depend on it). Every row has an unmasked key (its own position), so rows stay
/// finite. Shapes: `q: [B, nh, T, hd]`, `k, v: [B, nh, S, hd]`, `bias: [B|1, 1, T, S]`.
fn attention_autodiff(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: &Tensor<4>) -> Tensor<4> {
    let hd = q.dims()[3];
    let scores = q.mul_scalar(1.0 / (hd as f64).sqrt()).matmul(k.swap_dims(2, 3));
    #[cfg(feature = "flex")]
    if fused::fused_f32(&scores) && fused::fused_f32(bias) {
        // One multi-threaded pass forward (bias add + softmax) and one backward.
        return fused::masked_softmax(scores, bias.clone()).matmul(v);
    }
    let scores = scores + bias.clone().cast(v.dtype());
    let max = scores.clone().max_dim(3).detach();
    let e = (scores - max).exp();
    let p = e.clone() / e.sum_dim(3);
    p.matmul(v)
}

impl Attention {
    /// `x: [B, T, hidden]` -> `[B, T, hidden]`.
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: &AttnMask,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_proj.forward(x.clone()).reshape([b, t, nh, hd]);
        let k = self.k_proj.forward(x.clone()).reshape([b, t, nkv, hd]);
        let v = self.v_proj.forward(x).reshape([b, t, nkv, hd]).swap_dims(1, 2);
        let (q, mut k) = rotate(q, k, cos, sin);
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.take() {
                k = Tensor::cat(vec![pk, k], 2);
                v = Tensor::cat(vec![pv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let k = repeat_kv(k, nh / nkv);
        let v = repeat_kv(v, nh / nkv);
        let out = match &mask.bias {
            Some(bias) => attention_autodiff(q, k, v, bias),
            None => {
                let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: mask.is_causal };
                attention(q, k, v, mask.mask.clone(), None, options) // [B, nh, T, hd]
            }
        };
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, nh * hd]))
    }
}

/// RoPE on `q: [B, T, nh, hd]` and `k: [B, T, nkv, hd]`, returned as `[B, heads, T, hd]`.
fn rotate(q: Tensor<4>, k: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    #[cfg(feature = "flex")]
    if fused::fused_f32(&q) && fused::fused_f32(cos) {
        // In the projection's own layout (contiguous), before the heads move forward.
        let q = fused::rope(q, cos.clone(), sin.clone()).swap_dims(1, 2);
        let k = fused::rope(k, cos.clone(), sin.clone()).swap_dims(1, 2);
        return (q, k);
    }
    (apply_rotary(q.swap_dims(1, 2), cos, sin), apply_rotary(k.swap_dims(1, 2), cos, sin))
}

/// RMSNorm through the fused kernel where it applies (same formula as burn's `RmsNorm`).
fn rms_norm(norm: &RmsNorm, x: Tensor<3>) -> Tensor<3> {
    #[cfg(feature = "flex")]
    if fused::fused_f32(&x) && norm.gamma.val().dtype() == DType::F32 {
        return fused::rms_norm(x, norm.gamma.val(), norm.epsilon);
    }
    norm.forward(x)
}

/// `[B, kv, S, hd]` -> `[B, kv * n_rep, S, hd]` (each KV head repeated for its query group).
fn repeat_kv(x: Tensor<4>, n_rep: usize) -> Tensor<4> {
    if n_rep == 1 {
        return x;
    }
    let [b, kv, s, hd] = x.dims();
    x.unsqueeze_dim::<5>(2).expand([b, kv, n_rep, s, hd]).reshape([b, kv * n_rep, s, hd])
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        #[cfg(feature = "flex")]
        if fused::fused_f32(&gate) && fused::fused_f32(&up) {
            return self.down_proj.forward(fused::swiglu(gate, up));
        }
        self.down_proj.forward(silu(gate) * up)
    }
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: &AttnMask,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let h = x.clone() + self.self_attn.forward(rms_norm(&self.input_layernorm, x), cos, sin, mask, cache);
        h.clone() + self.mlp.forward(rms_norm(&self.post_attention_layernorm, h))
    }
}

impl Llama {
    /// The resolved configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.val().device()
    }

    /// Final hidden states `[B, T, hidden]` (after the last norm) for `input_ids: [B, T]`.
    ///
    /// With a cache, the new tokens are appended to it and attend to everything cached.
    pub fn forward_hidden(
        &self,
        input_ids: Tensor<2, Int>,
        options: &ForwardOptions,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>> {
        let [b, t] = input_ids.dims();
        let device = input_ids.device();
        let offset = cache.as_ref().map_or(0, |c| c.len);
        if t == 0 {
            return Err(Error::InvalidInput("empty input (0 tokens)".into()));
        }
        if offset + t > self.config.max_position_embeddings {
            tracing::warn!(
                positions = offset + t,
                max = self.config.max_position_embeddings,
                "sequence longer than max_position_embeddings"
            );
        }
        if let Some(c) = cache.as_ref()
            && c.layers.len() != self.layers.len()
        {
            return Err(Error::InvalidInput(format!(
                "KV cache has {} layers, model has {}",
                c.layers.len(),
                self.layers.len()
            )));
        }
        let positions = match &options.position_ids {
            Some(p) => {
                if p.dims() != [b, t] {
                    return Err(Error::InvalidInput(format!("position_ids shape {:?}, expected [{b}, {t}]", p.dims())));
                }
                p.clone()
            }
            None => Tensor::<1, Int>::arange(offset as i64..(offset + t) as i64, &device)
                .reshape([1, t])
                .expand([b, t]),
        };
        let mut mask = self.build_mask(b, t, offset, options, &device)?;
        // Under autodiff (training) attention runs as `attention_autodiff` with an additive bias.
        if self.embed_tokens.weight.val().is_autodiff() {
            mask.bias = Some(self.mask_bias(b, t, offset, options, &device)?);
        }
        let (cos, sin) = self.rope.cos_sin(positions);
        let mut h = self.embed_tokens.forward(input_ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            h = layer.forward(h, &cos, &sin, &mask, slot);
        }
        if let Some(c) = cache {
            c.len += t;
        }
        Ok(rms_norm(&self.norm, h))
    }

    /// Logits `[B, T, vocab]` from hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                // `[B*T, D] @ [V, D]^T` as one 2-D matmul: the strided GEMM reads the embedding
                // transposed in place instead of materializing a `[D, V]` copy.
                let [b, t, d] = hidden.dims();
                let v = self.config.vocab_size;
                hidden.reshape([b * t, d]).matmul(self.embed_tokens.weight.val().transpose()).reshape([b, t, v])
            }
        }
    }

    /// Logits `[B, T, vocab]` for `input_ids: [B, T]`.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        options: &ForwardOptions,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>> {
        let hidden = self.forward_hidden(input_ids, options, cache)?;
        Ok(self.logits(hidden))
    }

    /// Logits of the last position only, `[B, vocab]` (what generation needs).
    pub fn forward_last(
        &self,
        input_ids: Tensor<2, Int>,
        options: &ForwardOptions,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<2>> {
        let hidden = self.forward_hidden(input_ids, options, cache)?;
        let [b, t, _] = hidden.dims();
        let last = hidden.narrow(1, t - 1, 1);
        Ok(self.logits(last).reshape([b, self.config.vocab_size]).cast(DType::F32))
    }

    /// `log p(token_i | tokens_<i)` for `i = 1..n` of one sequence (length `n - 1`), computed in f32
    /// in chunks of positions so the full `[T, vocab]` log-softmax never materializes at once.
    pub fn token_logprobs(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.len() < 2 {
            return Err(Error::InvalidInput("need at least 2 tokens to score".into()));
        }
        self.check_ids(ids)?;
        let device = self.device();
        let t = ids.len();
        let input = ids_tensor(&ids[..t - 1], &device);
        let hidden = self.forward_hidden(input, &ForwardOptions::default(), None)?; // [1, T-1, D]
        let mut out = Vec::with_capacity(t - 1);
        const CHUNK: usize = 256;
        let mut start = 0;
        while start < t - 1 {
            let len = CHUNK.min(t - 1 - start);
            let logits = self.logits(hidden.clone().narrow(1, start, len)).cast(DType::F32); // [1, len, V]
            let logp = burn::tensor::activation::log_softmax(logits, 2);
            let targets: Vec<i64> = ids[start + 1..start + 1 + len].iter().map(|&x| i64::from(x)).collect();
            let idx = Tensor::<3, Int>::from_data(TensorData::new(targets, [1, len, 1]), &device);
            let picked = logp.gather(2, idx).into_data().try_to_vec::<f32>().map_err(|e| Error::InvalidInput(format!("{e:?}")))?;
            out.extend(picked);
            start += len;
        }
        Ok(out)
    }

    /// Error if any id is outside the vocabulary.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(Error::InvalidInput(format!("token id {bad} >= vocab_size {}", self.config.vocab_size)));
        }
        Ok(())
    }

    fn build_mask(&self, b: usize, t: usize, offset: usize, options: &ForwardOptions, device: &Device) -> Result<AttnMask> {
        let s = offset + t;
        if options.attention_mask.is_none() && options.segment_ids.is_none() {
            return Ok(AttnMask { mask: None, is_causal: true, bias: None });
        }
        // Causal: key j is masked for query i when j > offset + i.
        let qpos = Tensor::<1, Int>::arange(offset as i64..s as i64, device).reshape([1, t, 1]);
        let kpos = Tensor::<1, Int>::arange(0..s as i64, device).reshape([1, 1, s]);
        let mut masked = kpos.clone().greater(qpos.clone()).expand([b, t, s]);
        if let Some(am) = &options.attention_mask {
            if am.dims() != [b, s] {
                return Err(Error::InvalidInput(format!(
                    "attention_mask shape {:?}, expected [{b}, {s}] (cached + new tokens)",
                    am.dims()
                )));
            }
            let pad = am.clone().equal_elem(0).reshape([b, 1, s]).expand([b, t, s]);
            masked = masked.bool_or(pad);
        }
        if let Some(seg) = &options.segment_ids {
            if offset != 0 {
                return Err(Error::InvalidInput("segment_ids cannot be combined with a KV cache".into()));
            }
            if seg.dims() != [b, t] {
                return Err(Error::InvalidInput(format!("segment_ids shape {:?}, expected [{b}, {t}]", seg.dims())));
            }
            let qs = seg.clone().reshape([b, t, 1]).expand([b, t, s]);
            let ks = seg.clone().reshape([b, 1, s]).expand([b, t, s]);
            masked = masked.bool_or(qs.not_equal(ks));
        }
        // A query always sees itself, so fully padded rows stay finite (their outputs are ignored).
        let diag = kpos.equal(qpos).expand([b, t, s]);
        masked = masked.bool_and(diag.bool_not());
        let nh = self.config.num_heads;
        Ok(AttnMask { mask: Some(masked.reshape([b, 1, t, s]).expand([b, nh, t, s])), is_causal: false, bias: None })
    }

    /// The attention mask as an additive bias `[B|1, 1, T, S]` (0 = attend, -inf = masked), for
    /// training through autodiff.
    fn mask_bias(&self, b: usize, t: usize, offset: usize, options: &ForwardOptions, device: &Device) -> Result<Tensor<4>> {
        let s = offset + t;
        let masked: Tensor<4, Bool> = match self.build_mask(b, t, offset, options, device)?.mask {
            Some(m) => m.narrow(1, 0, 1),
            None => {
                let qpos = Tensor::<1, Int>::arange(offset as i64..s as i64, device).reshape([1, 1, t, 1]);
                let kpos = Tensor::<1, Int>::arange(0..s as i64, device).reshape([1, 1, 1, s]);
                kpos.greater(qpos)
            }
        };
        let dims = masked.dims();
        Ok(Tensor::<4>::zeros(dims, device).mask_fill(masked, f32::NEG_INFINITY))
    }
}

/// A `[1, n]` id tensor.
pub fn ids_tensor(ids: &[u32], device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = ids.iter().map(|&x| i64::from(x)).collect();
    Tensor::<2, Int>::from_data(TensorData::new(data, [1, ids.len()]), device)
}
