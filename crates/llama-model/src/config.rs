//! Model configuration: the serde mirror of HF `config.json` and the validated runtime config.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `eos_token_id` in HF configs is a single id or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids (Llama 3 Instruct: `[128001, 128008, 128009]`).
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// HF `rope_scaling` (`rope_type` or the older `type` key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfRopeScaling {
    /// `llama3`, `default`, ...
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Scaling factor.
    #[serde(default)]
    pub factor: Option<f64>,
    /// Llama 3.1: low-frequency factor.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// Llama 3.1: high-frequency factor.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// Llama 3.1: the context length the model was pre-trained with.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// RoPE base; transformers >= 5 writes it here (`rope_parameters`) instead of top-level `rope_theta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
}

/// HF `config.json` of a `LlamaForCausalLM`, field for field. Unknown fields are kept in `extra` so
/// that saving writes them back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HfLlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (transformers < 5; default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RoPE frequency scaling (transformers < 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<HfRopeScaling>,
    /// RoPE base, type and scaling together (transformers >= 5); wins over the two fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<HfRopeScaling>,
    /// Maximum sequence length.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// BOS id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// EOS id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Bias in q/k/v/o projections (false for Llama).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias in the MLP (false for Llama).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Activation; only `silu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Every other field, preserved.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}
fn default_act() -> String {
    "silu".to_owned()
}

/// How RoPE frequencies are scaled.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Llama 3.1/3.2 frequency-dependent scaling.
    Llama3 {
        /// Scaling factor.
        factor: f64,
        /// Low-frequency factor.
        low_freq_factor: f64,
        /// High-frequency factor.
        high_freq_factor: f64,
        /// Pre-training context length.
        original_max_position_embeddings: usize,
    },
    /// Explicit per-frequency divisors, as llama.cpp stores them in the GGUF `rope_freqs.weight`
    /// tensor (`inv_freq[i] / factors[i]`).
    Factors(Vec<f32>),
}

/// The validated, fully resolved model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (divides `num_heads`).
    pub num_kv_heads: usize,
    /// Per-head width (even).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Maximum sequence length.
    pub max_position_embeddings: usize,
    /// LM head tied to the embeddings.
    pub tie_word_embeddings: bool,
    /// BOS id.
    pub bos_token_id: Option<u32>,
    /// Every EOS id.
    pub eos_token_ids: Vec<u32>,
    /// Padding id.
    pub pad_token_id: Option<u32>,
}

impl HfLlamaConfig {
    /// Read and parse `config.json`; errors name the file and the missing or malformed field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidConfig { origin: path.display().to_string(), message: e.to_string() })
    }

    /// Resolve defaults and validate.
    pub fn resolve(&self, origin: &str) -> Result<LlamaConfig> {
        let invalid = |message: String| Error::InvalidConfig { origin: origin.to_owned(), message };
        if self.hidden_act != "silu" {
            return Err(invalid(format!("hidden_act `{}` is not supported (only `silu`)", self.hidden_act)));
        }
        if self.attention_bias || self.mlp_bias {
            return Err(invalid("attention_bias / mlp_bias = true is not supported for Llama".into()));
        }
        if self.num_attention_heads == 0 {
            return Err(invalid("num_attention_heads must be > 0".into()));
        }
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads);
        let rope_theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0);
        let scaling = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let rope_scaling = match scaling {
            None => RopeScaling::None,
            Some(s) if s.rope_type == "default" => RopeScaling::None,
            Some(s) if s.rope_type == "llama3" => {
                let need = |v: Option<f64>, name: &str| {
                    v.ok_or_else(|| invalid(format!("rope_scaling of type llama3 needs `{name}`")))
                };
                RopeScaling::Llama3 {
                    factor: need(s.factor, "factor")?,
                    low_freq_factor: need(s.low_freq_factor, "low_freq_factor")?,
                    high_freq_factor: need(s.high_freq_factor, "high_freq_factor")?,
                    original_max_position_embeddings: s.original_max_position_embeddings.ok_or_else(|| {
                        invalid("rope_scaling of type llama3 needs `original_max_position_embeddings`".into())
                    })?,
                }
            }
            Some(s) => {
                return Err(invalid(format!(
                    "rope_scaling type `{}` is not supported (supported: llama3, default)",
                    s.rope_type
                )));
            }
        };
        let cfg = LlamaConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id,
            eos_token_ids: self.eos_token_id.as_ref().map(TokenIds::to_vec).unwrap_or_default(),
            pad_token_id: self.pad_token_id,
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }
}

impl LlamaConfig {
    /// Check the invariants every module relies on.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidConfig { origin: origin.to_owned(), message });
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, value) in positive {
            if value == 0 {
                return invalid(format!("{name} must be > 0"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return invalid(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return invalid(format!("head_dim ({}) must be even for RoPE", self.head_dim));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 || self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return invalid("rms_norm_eps and rope_theta must be > 0".into());
        }
        if let RopeScaling::Factors(f) = &self.rope_scaling
            && f.len() != self.head_dim / 2
        {
            return invalid(format!("rope frequency factors have {} entries, expected head_dim/2 = {}", f.len(), self.head_dim / 2));
        }
        Ok(())
    }

    /// Number of parameters.
    pub fn num_parameters(&self) -> usize {
        let (h, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let attn = h * self.num_heads * hd * 2 + h * self.num_kv_heads * hd * 2;
        let layer = attn + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { self.vocab_size * h };
        self.vocab_size * h + self.num_layers * layer + h + head
    }

    /// Back to HF `config.json` form (for saving), merging into `base` when given so unknown fields survive.
    pub fn to_hf(&self, base: Option<&HfLlamaConfig>) -> HfLlamaConfig {
        let mut extra = base.map(|b| b.extra.clone()).unwrap_or_default();
        extra.insert("architectures".into(), serde_json::json!(["LlamaForCausalLM"]));
        extra.insert("model_type".into(), serde_json::json!("llama"));
        let rope_scaling = match &self.rope_scaling {
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                Some(HfRopeScaling {
                    rope_type: "llama3".into(),
                    factor: Some(*factor),
                    low_freq_factor: Some(*low_freq_factor),
                    high_freq_factor: Some(*high_freq_factor),
                    original_max_position_embeddings: Some(*original_max_position_embeddings),
                    rope_theta: None,
                })
            }
            _ => None,
        };
        HfLlamaConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_layers,
            num_attention_heads: self.num_heads,
            num_key_value_heads: Some(self.num_kv_heads),
            head_dim: Some(self.head_dim),
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: Some(self.rope_theta),
            rope_scaling,
            rope_parameters: None,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id,
            eos_token_id: match self.eos_token_ids.as_slice() {
                [] => None,
                [one] => Some(TokenIds::One(*one)),
                many => Some(TokenIds::Many(many.to_vec())),
            },
            pad_token_id: self.pad_token_id,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: "silu".into(),
            extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA32_1B: &str = r#"{
      "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
      "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
      "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
      "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
      "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
      "rms_norm_eps": 1e-05,
      "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
      "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
      "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
    }"#;

    #[test]
    fn parses_llama_3_2_1b_config() {
        let hf: HfLlamaConfig = serde_json::from_str(LLAMA32_1B).expect("parse");
        let cfg = hf.resolve("config.json").expect("valid");
        assert_eq!(cfg.num_kv_heads, 8);
        assert_eq!(cfg.eos_token_ids, vec![128001, 128008, 128009]);
        assert!(matches!(cfg.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 32.0));
        // Llama 3.2 1B has 1.24B parameters (tied).
        assert_eq!(cfg.num_parameters(), 1_235_814_400);
        // Unknown fields survive a round trip.
        let back = serde_json::to_value(cfg.to_hf(Some(&hf))).expect("serialize");
        assert_eq!(back["torch_dtype"], "bfloat16");
        assert_eq!(back["rope_scaling"]["rope_type"], "llama3");
    }

    #[test]
    fn transformers_v5_rope_parameters() {
        let v5 = r#"{"vocab_size": 320, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "rope_parameters": {"factor": 8.0, "high_freq_factor": 4.0,
            "low_freq_factor": 1.0, "original_max_position_embeddings": 64, "rope_theta": 500000.0,
            "rope_type": "llama3"}}"#;
        let cfg = serde_json::from_str::<HfLlamaConfig>(v5).expect("parse").resolve("v5").expect("valid");
        assert_eq!(cfg.rope_theta, 500_000.0);
        assert!(matches!(cfg.rope_scaling, RopeScaling::Llama3 { original_max_position_embeddings: 64, .. }));
        let plain = r#"{"vocab_size": 320, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}"#;
        let cfg = serde_json::from_str::<HfLlamaConfig>(plain).expect("parse").resolve("v5").expect("valid");
        assert_eq!((cfg.rope_theta, cfg.rope_scaling), (10_000.0, RopeScaling::None));
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = serde_json::from_str::<HfLlamaConfig>(r#"{"vocab_size": 10}"#).expect_err("missing");
        assert!(err.to_string().contains("hidden_size"), "{err}");
    }

    #[test]
    fn zero_heads_is_rejected() {
        let mut hf: HfLlamaConfig = serde_json::from_str(LLAMA32_1B).expect("parse");
        hf.num_attention_heads = 0;
        let err = hf.resolve("x/config.json").expect_err("zero heads");
        assert!(err.to_string().contains("x/config.json") && err.to_string().contains("num_attention_heads"), "{err}");
    }

    #[test]
    fn kv_heads_must_divide_heads() {
        let mut hf: HfLlamaConfig = serde_json::from_str(LLAMA32_1B).expect("parse");
        hf.num_key_value_heads = Some(5);
        assert!(hf.resolve("c").is_err());
    }

    #[test]
    fn unsupported_rope_type_is_rejected() {
        let mut hf: HfLlamaConfig = serde_json::from_str(LLAMA32_1B).expect("parse");
        hf.rope_scaling = Some(HfRopeScaling {
            rope_type: "yarn".into(),
            factor: Some(4.0),
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: None,
            rope_theta: None,
        });
        let err = hf.resolve("c").expect_err("yarn");
        assert!(err.to_string().contains("yarn"), "{err}");
    }
}
