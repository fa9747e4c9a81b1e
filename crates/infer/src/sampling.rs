//! Token sampling with the transformers logits-processor order: repetition penalty, temperature,
//! top-k, top-p, then a draw (or argmax when greedy).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Decoding parameters, recorded with every result that used them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`0` = off).
    pub top_k: usize,
    /// Nucleus sampling mass (`1.0` = off).
    pub top_p: f32,
    /// CTRL-style repetition penalty (`1.0` = off): logits of already seen tokens are divided by it
    /// when positive and multiplied when negative.
    pub repetition_penalty: f32,
    /// RNG seed, so sampled runs are reproducible.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::default()
    }

    /// True when no randomness is involved.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// A stateful sampler (owns the RNG).
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Pick the next token from `logits` (modified in place) given the ids seen so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repetition_penalty != 1.0 && p.repetition_penalty > 0.0 {
            let mut seen = history.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &id in &seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / p.repetition_penalty } else { *l * p.repetition_penalty };
                }
            }
        }
        if p.is_greedy() {
            return argmax(logits);
        }
        let mut idx: Vec<usize> = (0..logits.len()).filter(|&i| logits[i].is_finite()).collect();
        if idx.is_empty() {
            return argmax(logits);
        }
        idx.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if p.top_k > 0 && p.top_k < idx.len() {
            idx.truncate(p.top_k);
        }
        let max = logits[idx[0]];
        let mut probs: Vec<f64> = idx.iter().map(|&i| f64::from((logits[i] - max) / p.temperature).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        if p.top_p < 1.0 {
            // Keep the smallest prefix whose mass reaches top_p (at least one token).
            let mut cum = 0.0;
            let mut keep = probs.len();
            for (k, &q) in probs.iter().enumerate() {
                cum += q;
                if cum >= f64::from(p.top_p) {
                    keep = k + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|x| *x /= total);
        }
        let r: f64 = self.rng.random();
        let mut cum = 0.0;
        for (k, &q) in probs.iter().enumerate() {
            cum += q;
            if r < cum {
                return idx[k] as u32;
            }
        }
        idx[probs.len() - 1] as u32
    }
}

/// Index of the largest finite value (first on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplingParams::greedy());
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..SamplingParams::greedy() });
        // 3.0 / 2 = 1.5 < 2.0
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[1]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_even_when_hot() {
        let mut s = Sampler::new(SamplingParams { temperature: 5.0, top_k: 1, seed: 3, ..Default::default() });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [0.1, 3.0, 2.9], &[]), 1);
        }
    }

    #[test]
    fn top_p_excludes_the_tail() {
        // probs ~ [0.665, 0.245, 0.09]; top_p 0.8 keeps the first two.
        let mut s = Sampler::new(SamplingParams { temperature: 1.0, top_p: 0.8, seed: 7, ..Default::default() });
        for _ in 0..200 {
            let t = s.sample(&mut [2.0, 1.0, 0.0], &[]);
            assert_ne!(t, 2);
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_is_seeded() {
        let params = SamplingParams { temperature: 1.0, seed: 11, ..Default::default() };
        let mut a = Sampler::new(params.clone());
        let mut b = Sampler::new(params);
        let logits = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        let mut ones = 0;
        for _ in 0..4000 {
            let x = a.sample(&mut logits.clone(), &[]);
            assert_eq!(x, b.sample(&mut logits.clone(), &[]));
            ones += x;
        }
        let frac = f64::from(ones) / 4000.0;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
    }
}
