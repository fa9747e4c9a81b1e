//! The evaluators' model traits implemented for infuse's burn Llama, so every harness (perplexity,
//! multiple choice, pass@k, grid search) runs on a model loaded by `infuse-llama-model`.

use infuse_infer::{GenerateOptions, Generator, SamplingParams};
use infuse_llama_model::{Llama, Pretrained};
use infuse_text::Tokenizer;

use crate::error::ModelError;
use crate::model::{CompletionModel, DecodingParams, LogLikelihoodModel};

/// A loaded Llama and its tokenizer, as an evaluation model.
pub struct LlamaEvalModel {
    model: Llama,
    tokenizer: Tokenizer,
    max_length: usize,
}

impl LlamaEvalModel {
    /// Wrap a model; `max_length` (lm-eval's `max_length`) defaults to the model's
    /// `max_position_embeddings` when `None`.
    pub fn new(model: Llama, tokenizer: Tokenizer, max_length: Option<usize>) -> Self {
        let max_length = max_length.unwrap_or(model.config().max_position_embeddings).max(1);
        Self { model, tokenizer, max_length }
    }

    /// From a loaded checkpoint.
    pub fn from_pretrained(p: Pretrained, max_length: Option<usize>) -> Self {
        Self::new(p.model, p.tokenizer, max_length)
    }

    /// The model.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

impl LogLikelihoodModel for LlamaEvalModel {
    fn token_logprobs(&mut self, tokens: &[u32]) -> Result<Vec<f64>, ModelError> {
        Ok(self.model.token_logprobs(tokens)?.into_iter().map(f64::from).collect())
    }

    fn max_context_len(&self) -> usize {
        self.max_length
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.tokenizer.encode(text)?)
    }

    fn bos_token_id(&self) -> Option<u32> {
        self.tokenizer.special().bos
    }

    fn eos_token_id(&self) -> Option<u32> {
        self.tokenizer.special().eos.first().copied()
    }
}

impl CompletionModel for LlamaEvalModel {
    fn complete(&mut self, prompt: &str, params: &DecodingParams, n: usize) -> Result<Vec<String>, ModelError> {
        let generator = Generator::new(&self.model, &self.tokenizer);
        (0..n)
            .map(|i| {
                let options = GenerateOptions {
                    max_new_tokens: params.max_new_tokens,
                    sampling: SamplingParams {
                        temperature: params.temperature,
                        top_k: params.top_k,
                        top_p: params.top_p,
                        repetition_penalty: params.repetition_penalty,
                        // Sample i draws from a generator seeded by (seed, i).
                        seed: params.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64),
                    },
                    stop: params.stop.clone(),
                    extra_eos: Vec::new(),
                };
                Ok(generator.complete(prompt, &options, |_| {})?.text)
            })
            .collect()
    }
}
