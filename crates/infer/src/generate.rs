//! Autoregressive generation with the KV cache: prefill the prompt once, then one token per step,
//! stopping at any EOS id, a stop string, or the token budget.

use std::time::Instant;

use infuse_llama_model::{ForwardOptions, KvCache, Llama, ids_tensor};
use infuse_text::{Decode, Message, RenderOptions, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::sampling::{Sampler, SamplingParams};
use crate::{Error, Result};

/// Options of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Decoding parameters.
    pub sampling: SamplingParams,
    /// Extra strings that end generation (the text is cut before them).
    pub stop: Vec<String>,
    /// Ids that end generation in addition to the tokenizer's EOS ids.
    pub extra_eos: Vec<u32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 128, sampling: SamplingParams::default(), stop: Vec::new(), extra_eos: Vec::new() }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS id was produced (it is included in `tokens`, not in `text`).
    Eos,
    /// `max_new_tokens` reached.
    Length,
    /// A stop string appeared.
    Stop,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated ids (including the final EOS when `finish == Eos`).
    pub tokens: Vec<u32>,
    /// Generated text (special tokens skipped, cut at a stop string).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Seconds spent on the prompt.
    pub prefill_secs: f64,
    /// Seconds spent generating after the prompt.
    pub decode_secs: f64,
}

impl Generation {
    /// Generated tokens per second after the prompt.
    pub fn decode_tokens_per_sec(&self) -> f64 {
        if self.decode_secs > 0.0 { self.tokens.len().saturating_sub(1) as f64 / self.decode_secs } else { 0.0 }
    }
}

/// Generates text with a model and its tokenizer.
pub struct Generator<'a> {
    model: &'a Llama,
    tokenizer: &'a Tokenizer,
}

impl<'a> Generator<'a> {
    /// A generator over a model and tokenizer.
    pub fn new(model: &'a Llama, tokenizer: &'a Tokenizer) -> Self {
        Self { model, tokenizer }
    }

    /// Continue raw text (BOS prepended when the tokenizer asks for it).
    pub fn complete(&self, prompt: &str, options: &GenerateOptions, on_text: impl FnMut(&str)) -> Result<Generation> {
        let ids = if self.tokenizer.special().add_bos {
            self.tokenizer.encode_with_bos(prompt)?
        } else {
            self.tokenizer.encode(prompt)?
        };
        self.generate_ids(&ids, options, on_text)
    }

    /// Answer a conversation through the tokenizer's chat template.
    pub fn chat(&self, messages: &[Message], options: &GenerateOptions, on_text: impl FnMut(&str)) -> Result<Generation> {
        let template = self.tokenizer.chat_template().ok_or(Error::NoChatTemplate)?;
        let prompt = template.render(messages, &RenderOptions { add_generation_prompt: true })?;
        let ids = self.tokenizer.encode(&prompt)?;
        self.generate_ids(&ids, options, on_text)
    }

    /// Generate from prompt ids; `on_text` receives each new piece of decoded text as it appears.
    pub fn generate_ids(&self, prompt: &[u32], options: &GenerateOptions, mut on_text: impl FnMut(&str)) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::InvalidInput("empty prompt".into()));
        }
        self.model.check_ids(prompt)?;
        let device = self.model.device();
        let mut cache = KvCache::new(self.model.config().num_layers);
        let mut sampler = Sampler::new(options.sampling.clone());
        let eos: Vec<u32> = self.tokenizer.special().eos.iter().chain(&options.extra_eos).copied().collect();
        let mut history: Vec<u32> = prompt.to_vec();
        let mut tokens = Vec::new();
        let mut emitted = 0usize; // bytes of text already passed to on_text
        let mut finish = FinishReason::Length;
        let mut text = String::new();
        let start = Instant::now();
        let mut prefill_secs = 0.0;
        let mut input = ids_tensor(prompt, &device);
        for step in 0..options.max_new_tokens {
            let logits = self.model.forward_last(input, &ForwardOptions::default(), Some(&mut cache))?;
            let mut logits: Vec<f32> = logits
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::InvalidInput(format!("logits: {e:?}")))?;
            if step == 0 {
                prefill_secs = start.elapsed().as_secs_f64();
            }
            let next = sampler.sample(&mut logits, &history);
            tokens.push(next);
            history.push(next);
            if eos.contains(&next) {
                finish = FinishReason::Eos;
                break;
            }
            text = self.tokenizer.decode(&tokens, Decode::SkipSpecial)?;
            if let Some(cut) = options.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(cut);
                finish = FinishReason::Stop;
                break;
            }
            // Hold back a trailing partial UTF-8 sequence (decoded as U+FFFD) until it completes.
            let stable = text.trim_end_matches('\u{FFFD}').len();
            if stable > emitted && text.is_char_boundary(emitted) {
                on_text(&text[emitted..stable]);
                emitted = stable;
            }
            input = ids_tensor(&[next], &device);
        }
        if finish == FinishReason::Eos {
            text = self.tokenizer.decode(&tokens, Decode::SkipSpecial)?;
        }
        if text.len() > emitted && text.is_char_boundary(emitted) {
            on_text(&text[emitted..]);
        }
        let decode_secs = start.elapsed().as_secs_f64() - prefill_secs;
        Ok(Generation { prompt_tokens: prompt.len(), tokens, text, finish, prefill_secs, decode_secs })
    }
}
