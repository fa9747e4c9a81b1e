//! Rotary position embeddings in HF's rotate-half convention, with Llama 3.1 frequency scaling.

use burn::prelude::*;

use crate::config::{LlamaConfig, RopeScaling};

/// Inverse frequencies `[head_dim / 2]`, computed in f32 as transformers does
/// (`1 / base ** (arange(0, d, 2) / d)`, then `_compute_llama3_parameters` when scaled).
pub fn inverse_frequencies(config: &LlamaConfig) -> Vec<f32> {
    let d = config.head_dim;
    let base = config.rope_theta as f32;
    let inv: Vec<f32> = (0..d).step_by(2).map(|i| 1.0 / base.powf(i as f32 / d as f32)).collect();
    match &config.rope_scaling {
        RopeScaling::None => inv,
        RopeScaling::Factors(factors) => inv.iter().zip(factors).map(|(f, s)| f / s).collect(),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            let factor = *factor as f32;
            let (low, high) = (*low_freq_factor as f32, *high_freq_factor as f32);
            let old_len = *original_max_position_embeddings as f32;
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen { f / factor } else { f };
                    // Written as transformers writes it (`~(a < b) & ~(a > c)`).
                    #[allow(clippy::neg_cmp_op_on_partial_ord)]
                    let is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
                    if is_medium {
                        let smooth = (old_len / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

/// Precomputed RoPE frequencies living on the model's device.
#[derive(Module, Debug)]
pub struct Rope {
    /// `[1, 1, head_dim / 2]` inverse frequencies.
    inv_freq: Tensor<3>,
}

impl Rope {
    /// Build for a config on a device.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let inv = inverse_frequencies(config);
        let n = inv.len();
        let inv_freq = Tensor::<1>::from_data(TensorData::new(inv, [n]), device).reshape([1, 1, n]);
        Self { inv_freq }
    }

    /// `cos` and `sin` for positions `[B, T]`, each `[B, 1, T, head_dim]` (the two halves repeated).
    pub fn cos_sin(&self, positions: Tensor<2, Int>) -> (Tensor<4>, Tensor<4>) {
        let [b, t] = positions.dims();
        let freqs = positions.float().reshape([b, t, 1]) * self.inv_freq.clone(); // [B, T, hd/2]
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2); // [B, T, hd]
        let hd = emb.dims()[2];
        let cos = emb.clone().cos().reshape([b, 1, t, hd]);
        let sin = emb.sin().reshape([b, 1, t, hd]);
        (cos, sin)
    }
}

/// Apply rotate-half RoPE to `x: [B, H, T, hd]` with `cos`, `sin: [B, 1, T, hd]`.
pub fn apply_rotary(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let dtype = x.dtype();
    let hd = x.dims()[3];
    let half = hd / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone().cast(dtype) + rotated * sin.clone().cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scaling: RopeScaling) -> LlamaConfig {
        LlamaConfig {
            vocab_size: 10,
            hidden_size: 128,
            intermediate_size: 10,
            num_layers: 1,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim: 128,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            rope_scaling: scaling,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_ids: vec![],
            pad_token_id: None,
        }
    }

    #[test]
    fn llama3_scaling_matches_the_reference_formula_regions() {
        let plain = inverse_frequencies(&cfg(RopeScaling::None));
        let scaled = inverse_frequencies(&cfg(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        }));
        // High frequencies (short wavelengths) are untouched, the lowest are divided by the factor.
        assert_eq!(plain[0], scaled[0]);
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 8.0).abs() <= f32::EPSILON * plain[last]);
        // Medium frequencies lie between the two.
        let medium: Vec<usize> = (0..plain.len())
            .filter(|&i| {
                let w = 2.0 * std::f32::consts::PI / plain[i];
                (2048.0..=8192.0).contains(&w)
            })
            .collect();
        assert!(!medium.is_empty());
        for i in medium {
            assert!(scaled[i] <= plain[i] && scaled[i] >= plain[i] / 8.0);
        }
    }

    #[test]
    fn rotation_preserves_norm_and_is_identity_at_position_zero() {
        let device = Device::default();
        let c = cfg(RopeScaling::None);
        let rope = Rope::new(&c, &device);
        let x = Tensor::<4>::random([1, 1, 2, 128], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let pos = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 7], [1, 2]), &device);
        let (cos, sin) = rope.cos_sin(pos);
        let y = apply_rotary(x.clone(), &cos, &sin);
        let xs = x.clone().into_data().try_to_vec::<f32>().expect("f32");
        let ys = y.into_data().try_to_vec::<f32>().expect("f32");
        for (a, b) in xs[..128].iter().zip(&ys[..128]) {
            assert!((a - b).abs() < 1e-6);
        }
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm(&xs[128..]) - norm(&ys[128..])).abs() < 1e-4);
    }
}
