//! The two traits through which the evaluators talk to a model, and the decoding parameters.
//!
//! Both traits are object safe: the harnesses take `&mut dyn LogLikelihoodModel` /
//! `&mut dyn CompletionModel`, so a backend (burn Llama, a remote server, a test fake) implements
//! them once and every evaluator works with it.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// A causal language model that scores token sequences (perplexity, multiple choice).
///
/// Token ids are `u32`; log-probabilities are natural logarithms (`ln p`), as lm-evaluation-harness
/// uses (`log_softmax` of the logits).
pub trait LogLikelihoodModel {
    /// Log-probability of every token after the first, each given all tokens before it.
    ///
    /// For `tokens = [t0, t1, …, t_{m-1}]` (with `2 <= m <= max_context_len() + 1`) the model runs one
    /// forward pass over the `m - 1` inputs `tokens[..m-1]` and returns `m - 1` values:
    /// `out[i] = ln p(t_{i+1} | t_0 … t_i)`. No token is added or removed (no BOS is prepended:
    /// callers put it in `tokens` when they want it). Callers never pass more than
    /// `max_context_len() + 1` tokens or fewer than 2.
    fn token_logprobs(&mut self, tokens: &[u32]) -> Result<Vec<f64>, ModelError>;

    /// Several independent sequences at once, same contract as [`Self::token_logprobs`] for each.
    /// The default calls `token_logprobs` in a loop; backends may override it to batch.
    fn token_logprobs_batch(&mut self, batch: &[&[u32]]) -> Result<Vec<Vec<f64>>, ModelError> {
        batch.iter().map(|t| self.token_logprobs(t)).collect()
    }

    /// Longest input (number of positions of one forward pass) the model accepts; lm-eval's
    /// `max_length`. Rolling perplexity windows are this long.
    fn max_context_len(&self) -> usize;

    /// Tokenize `text` without adding special tokens (no BOS/EOS), as lm-eval's
    /// `tok_encode(..., add_special_tokens=False)`.
    fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError>;

    /// The beginning-of-sequence token id, if the tokenizer has one.
    fn bos_token_id(&self) -> Option<u32>;

    /// The end-of-text token id, if the tokenizer has one.
    fn eos_token_id(&self) -> Option<u32>;

    /// Token that prefixes the first rolling window and an empty multiple-choice context: BOS when
    /// the tokenizer has one, else EOT (lm-eval `HFLM.prefix_token_id`).
    fn prefix_token_id(&self) -> Option<u32> {
        self.bos_token_id().or_else(|| self.eos_token_id())
    }
}

/// A model that writes text continuations (code generation, grid search).
pub trait CompletionModel {
    /// Generate `n` continuations of `prompt` (raw text, no chat template applied by the harness).
    ///
    /// Contract:
    /// - each returned string is only the newly generated text (the prompt is not repeated);
    /// - generation of a sample stops after `params.max_new_tokens` tokens, at the end-of-text token,
    ///   or as soon as the text ends with one of `params.stop`, which is then removed (the returned
    ///   text never contains a stop sequence: the harness also truncates at the first occurrence);
    /// - `temperature == 0.0` means greedy decoding (then all `n` samples may be equal);
    /// - sample `i` (0-based) draws its random numbers from a generator seeded by
    ///   `(params.seed, i)`, so the same call gives the same completions;
    /// - exactly `n` strings are returned, in sample order.
    fn complete(
        &mut self,
        prompt: &str,
        params: &DecodingParams,
        n: usize,
    ) -> Result<Vec<String>, ModelError>;
}

/// Decoding parameters of a generation; recorded with every result that used them.
///
/// Semantics follow Hugging Face `generate` / vLLM: the repetition penalty (CTRL: positive logits
/// divided, negative multiplied, over tokens of prompt and output) is applied first, then the
/// temperature, then top-k, then top-p (nucleus) filtering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodingParams {
    /// Softmax temperature; `0.0` = greedy.
    pub temperature: f32,
    /// Nucleus sampling mass in `(0, 1]`; `1.0` disables it.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables it.
    pub top_k: usize,
    /// Repetition penalty (>= 1 penalizes repeats); `1.0` disables it.
    pub repetition_penalty: f32,
    /// Maximum number of generated tokens per sample.
    pub max_new_tokens: usize,
    /// Stop sequences (see [`CompletionModel::complete`]).
    pub stop: Vec<String>,
    /// Base seed of the random generator (see [`CompletionModel::complete`]).
    pub seed: u64,
}

impl Default for DecodingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            max_new_tokens: 512,
            stop: Vec::new(),
            seed: 0,
        }
    }
}

impl DecodingParams {
    /// Check the ranges (temperature >= 0, top_p in (0, 1], repetition_penalty > 0, max_new_tokens > 0).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::EvalError::InvalidArgument(m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be > 0".into());
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop sequences must not be empty strings".into());
        }
        Ok(())
    }

    /// Short human-readable label, e.g. `T=0.2 p=0.95 k=40 rep=1.1`.
    pub fn label(&self) -> String {
        format!(
            "T={} p={} k={} rep={}",
            self.temperature, self.top_p, self.top_k, self.repetition_penalty
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_out_of_range() {
        assert!(DecodingParams::default().validate().is_ok());
        let p = DecodingParams {
            top_p: 0.0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        let p = DecodingParams {
            temperature: -1.0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        let p = DecodingParams {
            stop: vec![String::new()],
            ..Default::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn decoding_params_round_trip_json() -> Result<(), serde_json::Error> {
        let p = DecodingParams {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            repetition_penalty: 1.1,
            max_new_tokens: 64,
            stop: vec!["\ndef".into()],
            seed: 7,
        };
        let back: DecodingParams = serde_json::from_str(&serde_json::to_string(&p)?)?;
        assert_eq!(back, p);
        assert!(serde_json::from_str::<DecodingParams>(r#"{"temprature": 1}"#).is_err());
        Ok(())
    }
}
