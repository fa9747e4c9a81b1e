//! The one table that maps model parameters to checkpoint tensor names (HF and GGUF), and the code
//! that builds a [`Llama`] from any tensor source and reads its weights back in HF layout.

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;
use burn::tensor::DType;

use crate::config::LlamaConfig;
use crate::lora::Projection;
use crate::model::{Attention, DecoderLayer, Llama, Mlp};
use crate::rope::Rope;
use crate::{Error, Result};

/// A tensor inside a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerTensor {
    /// Query projection.
    Q,
    /// Key projection.
    K,
    /// Value projection.
    V,
    /// Output projection.
    O,
    /// MLP gate projection.
    Gate,
    /// MLP up projection.
    Up,
    /// MLP down projection.
    Down,
    /// Norm before attention.
    InputNorm,
    /// Norm before the MLP.
    PostAttentionNorm,
}

/// Every parameter of a Llama model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weight {
    /// Token embeddings `[vocab, hidden]`.
    Embed,
    /// Final norm `[hidden]`.
    Norm,
    /// Untied LM head `[vocab, hidden]`.
    LmHead,
    /// A layer tensor.
    Layer(usize, LayerTensor),
}

/// `(tensor, HF suffix after "model.layers.N.", GGUF suffix after "blk.N.")`.
const LAYER_NAMES: [(LayerTensor, &str, &str); 9] = [
    (LayerTensor::Q, "self_attn.q_proj.weight", "attn_q.weight"),
    (LayerTensor::K, "self_attn.k_proj.weight", "attn_k.weight"),
    (LayerTensor::V, "self_attn.v_proj.weight", "attn_v.weight"),
    (LayerTensor::O, "self_attn.o_proj.weight", "attn_output.weight"),
    (LayerTensor::Gate, "mlp.gate_proj.weight", "ffn_gate.weight"),
    (LayerTensor::Up, "mlp.up_proj.weight", "ffn_up.weight"),
    (LayerTensor::Down, "mlp.down_proj.weight", "ffn_down.weight"),
    (LayerTensor::InputNorm, "input_layernorm.weight", "attn_norm.weight"),
    (LayerTensor::PostAttentionNorm, "post_attention_layernorm.weight", "ffn_norm.weight"),
];

impl Weight {
    /// All weights of a model with this config, in checkpoint order.
    pub fn all(config: &LlamaConfig) -> Vec<Weight> {
        let mut out = vec![Weight::Embed];
        for layer in 0..config.num_layers {
            out.extend(LAYER_NAMES.iter().map(|(t, _, _)| Weight::Layer(layer, *t)));
        }
        out.push(Weight::Norm);
        if !config.tie_word_embeddings {
            out.push(Weight::LmHead);
        }
        out
    }

    /// The HF (`transformers`) tensor name.
    pub fn hf_name(&self) -> String {
        match self {
            Weight::Embed => "model.embed_tokens.weight".into(),
            Weight::Norm => "model.norm.weight".into(),
            Weight::LmHead => "lm_head.weight".into(),
            Weight::Layer(i, t) => format!("model.layers.{i}.{}", layer_names(*t).1),
        }
    }

    /// The GGUF (llama.cpp) tensor name.
    pub fn gguf_name(&self) -> String {
        match self {
            Weight::Embed => "token_embd.weight".into(),
            Weight::Norm => "output_norm.weight".into(),
            Weight::LmHead => "output.weight".into(),
            Weight::Layer(i, t) => format!("blk.{i}.{}", layer_names(*t).2),
        }
    }

    /// The HF name for an HF name string, if it is a Llama weight.
    pub fn from_hf_name(name: &str, config: &LlamaConfig) -> Option<Weight> {
        Weight::all(config).into_iter().find(|w| w.hf_name() == name)
    }

    /// Shape in HF layout (`[out, in]` for projections).
    pub fn hf_shape(&self, c: &LlamaConfig) -> Vec<usize> {
        let (h, hd) = (c.hidden_size, c.head_dim);
        match self {
            Weight::Embed | Weight::LmHead => vec![c.vocab_size, h],
            Weight::Norm => vec![h],
            Weight::Layer(_, t) => match t {
                LayerTensor::Q => vec![c.num_heads * hd, h],
                LayerTensor::K | LayerTensor::V => vec![c.num_kv_heads * hd, h],
                LayerTensor::O => vec![h, c.num_heads * hd],
                LayerTensor::Gate | LayerTensor::Up => vec![c.intermediate_size, h],
                LayerTensor::Down => vec![h, c.intermediate_size],
                LayerTensor::InputNorm | LayerTensor::PostAttentionNorm => vec![h],
            },
        }
    }

    /// True for projection matrices (stored transposed in burn's `Linear`).
    pub fn is_linear(&self) -> bool {
        match self {
            Weight::Embed | Weight::Norm => false,
            Weight::LmHead => true,
            Weight::Layer(_, t) => !matches!(t, LayerTensor::InputNorm | LayerTensor::PostAttentionNorm),
        }
    }
}

fn layer_names(t: LayerTensor) -> (LayerTensor, &'static str, &'static str) {
    LAYER_NAMES.iter().copied().find(|(x, _, _)| *x == t).unwrap_or(LAYER_NAMES[0])
}

/// Where weights come from: tensors in HF layout and naming, already converted to a float dtype
/// burn can hold (F32, F16 or BF16).
pub trait WeightSource {
    /// File or description, for errors.
    fn origin(&self) -> String;
    /// The tensor for a weight, in HF layout; `Ok(None)` when the checkpoint lacks it.
    fn load(&self, weight: Weight, config: &LlamaConfig) -> Result<Option<TensorData>>;
}

/// Options for building a model from weights.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Device for the weights.
    pub device: Device,
    /// Float dtype of the parameters (compute dtype).
    pub dtype: DType,
}

/// Build a [`Llama`] from a source, checking every shape.
pub fn build_model(config: &LlamaConfig, source: &dyn WeightSource, options: &BuildOptions) -> Result<Llama> {
    let device = &options.device;
    let get = |w: Weight| -> Result<Tensor<2>> {
        let data = source
            .load(w, config)?
            .ok_or_else(|| Error::MissingTensor { origin: source.origin(), name: w.hf_name() })?;
        let expected = w.hf_shape(config);
        if data.shape().as_slice() != expected.as_slice() {
            return Err(Error::ShapeMismatch {
                origin: source.origin(),
                name: w.hf_name(),
                got: data.shape().to_vec(),
                expected,
            });
        }
        // Projections are stored `[in, out]` and contiguous: transposing on the host once here keeps
        // burn's `linear` from copying a strided weight on every call.
        let data = if w.is_linear() { transpose_host(data, expected[0], expected[1]) } else { data };
        let t = if expected.len() == 1 {
            Tensor::<1>::from_data(data, device).reshape([1, expected[0]])
        } else {
            Tensor::<2>::from_data(data, device)
        };
        Ok(t.cast(options.dtype))
    };
    let lin = |w: Weight| -> Result<Linear> { Ok(Linear { weight: Param::from_tensor(get(w)?), bias: None }) };
    let proj = |w: Weight| -> Result<Projection> { Ok(Projection::new(get(w)?)) };
    let norm = |w: Weight| -> Result<RmsNorm> {
        let g = get(w)?;
        let n = g.dims()[1];
        Ok(RmsNorm { gamma: Param::from_tensor(g.reshape([n])), epsilon: config.rms_norm_eps })
    };
    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let l = |t| Weight::Layer(i, t);
        layers.push(DecoderLayer {
            self_attn: Attention {
                q_proj: proj(l(LayerTensor::Q))?,
                k_proj: proj(l(LayerTensor::K))?,
                v_proj: proj(l(LayerTensor::V))?,
                o_proj: proj(l(LayerTensor::O))?,
                num_heads: config.num_heads,
                num_kv_heads: config.num_kv_heads,
                head_dim: config.head_dim,
            },
            mlp: Mlp {
                gate_proj: proj(l(LayerTensor::Gate))?,
                up_proj: proj(l(LayerTensor::Up))?,
                down_proj: proj(l(LayerTensor::Down))?,
            },
            input_layernorm: norm(l(LayerTensor::InputNorm))?,
            post_attention_layernorm: norm(l(LayerTensor::PostAttentionNorm))?,
        });
    }
    Ok(Llama {
        embed_tokens: Embedding { weight: Param::from_tensor(get(Weight::Embed)?) },
        layers,
        norm: norm(Weight::Norm)?,
        lm_head: if config.tie_word_embeddings { None } else { Some(lin(Weight::LmHead)?) },
        rope: Rope::new(config, device),
        config: config.clone(),
    })
}

/// Transpose a row-major `[rows, cols]` tensor on the host (any element size).
pub(crate) fn transpose_host(data: TensorData, rows: usize, cols: usize) -> TensorData {
    let dtype = data.dtype();
    let size = dtype.size();
    let src = data.as_bytes();
    let mut dst = vec![0u8; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = (r * cols + c) * size;
            let to = (c * rows + r) * size;
            dst[to..to + size].copy_from_slice(&src[from..from + size]);
        }
    }
    TensorData::from_bytes_vec(dst, [cols, rows], dtype)
}

/// A randomly initialized model (for tests and from-scratch training), weights `N(0, std)` and norms 1.
pub fn random_model(config: &LlamaConfig, std: f64, seed: u64, options: &BuildOptions) -> Result<Llama> {
    struct Random {
        std: f64,
        seed: u64,
    }
    impl WeightSource for Random {
        fn origin(&self) -> String {
            "random init".into()
        }
        fn load(&self, weight: Weight, config: &LlamaConfig) -> Result<Option<TensorData>> {
            let shape = weight.hf_shape(config);
            let n: usize = shape.iter().product();
            if shape.len() == 1 {
                return Ok(Some(TensorData::new(vec![1.0f32; n], shape)));
            }
            // SplitMix64 + Box-Muller: deterministic across platforms and backends.
            let mut state = self.seed ^ (weight.hf_name().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            }));
            let mut next = || {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
            };
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    let (u1, u2) = (next().max(1e-300), next());
                    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * self.std) as f32
                })
                .collect();
            Ok(Some(TensorData::new(values, shape)))
        }
    }
    build_model(config, &Random { std, seed }, options)
}

impl Llama {
    /// A parameter's values in HF layout (projections transposed back to `[out, in]`), as tensor
    /// data on the host in the parameter's dtype. `None` for `LmHead` of a tied model. A projection
    /// carrying a LoRA adapter reports its effective (merged) weight `W + s·A·B`.
    pub fn weight_data(&self, weight: Weight) -> Option<TensorData> {
        let two = |t: Tensor<2>| -> Tensor<2> { if weight.is_linear() { t.transpose() } else { t } };
        let one = |t: Tensor<1>| t.into_data();
        let lin = |l: &Linear| two(l.weight.val()).into_data();
        let proj = |p: &Projection| two(p.effective_weight()).into_data();
        Some(match weight {
            Weight::Embed => self.embed_tokens.weight.val().into_data(),
            Weight::Norm => one(self.norm.gamma.val()),
            Weight::LmHead => lin(self.lm_head.as_ref()?),
            Weight::Layer(i, t) => {
                let layer = self.layers.get(i)?;
                match t {
                    LayerTensor::Q => proj(&layer.self_attn.q_proj),
                    LayerTensor::K => proj(&layer.self_attn.k_proj),
                    LayerTensor::V => proj(&layer.self_attn.v_proj),
                    LayerTensor::O => proj(&layer.self_attn.o_proj),
                    LayerTensor::Gate => proj(&layer.mlp.gate_proj),
                    LayerTensor::Up => proj(&layer.mlp.up_proj),
                    LayerTensor::Down => proj(&layer.mlp.down_proj),
                    LayerTensor::InputNorm => one(layer.input_layernorm.gamma.val()),
                    LayerTensor::PostAttentionNorm => one(layer.post_attention_layernorm.gamma.val()),
                }
            }
        })
    }
}
