//! `infuse generate` and `infuse score`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use infuse_infer::{GenerateOptions, Generator, SamplingParams};
use infuse_llama_model::{LoadOptions, Pretrained, load_pretrained, parse_device, parse_dtype};
use infuse_text::Message;

/// Where and how to load a model.
#[derive(Args, Debug, Clone)]
pub(crate) struct ModelArgs {
    /// HF model directory (config.json + *.safetensors + tokenizer.json) or a .gguf file.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Device: cpu, cuda, cuda:N, auto.
    #[arg(long, default_value = "auto")]
    pub(crate) device: String,
    /// Compute dtype: f32, bf16, f16.
    #[arg(long, default_value = "f32")]
    pub(crate) dtype: String,
}

impl ModelArgs {
    pub(crate) fn load(&self) -> Result<Pretrained> {
        let options = LoadOptions { device: parse_device(&self.device)?, dtype: parse_dtype(&self.dtype)? };
        load_pretrained(&self.model, &options).with_context(|| format!("loading {}", self.model.display()))
    }
}

/// `infuse generate`: print a completion.
#[derive(Args, Debug)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt (raw text, or the user message with --chat).
    #[arg(long)]
    prompt: String,
    /// Render the prompt as a user message through the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message (with --chat).
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print a JSON object (text, tokens, finish reason, timings) instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn generate(args: GenerateArgs) -> Result<()> {
    let p = args.model.load()?;
    let generator = Generator::new(&p.model, &p.tokenizer);
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            seed: args.seed,
        },
        ..Default::default()
    };
    let stream = !args.json;
    let mut stdout = std::io::stdout();
    let on_text = |piece: &str| {
        if stream {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
    };
    let out = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(args.prompt));
        generator.chat(&messages, &options, on_text)?
    } else {
        generator.complete(&args.prompt, &options, on_text)?
    };
    let mut stdout = std::io::stdout();
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string(&out)?)?;
    } else {
        writeln!(stdout)?;
        tracing::info!(
            finish = ?out.finish,
            tokens = out.tokens.len(),
            tok_per_s = format!("{:.2}", out.decode_tokens_per_sec()),
            "done"
        );
    }
    Ok(())
}

/// `infuse score`: log-probabilities of a text under the model.
#[derive(Args, Debug)]
pub(crate) struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text to score.
    #[arg(long)]
    text: String,
    /// Prepend BOS (when the model has one).
    #[arg(long)]
    bos: bool,
    /// Print JSON `{"tokens", "logprobs", "nll"}` (the default output is also JSON; kept for scripts).
    #[arg(long)]
    json: bool,
}

pub(crate) fn score(args: ScoreArgs) -> Result<()> {
    let p = args.model.load()?;
    let tokens = if args.bos { p.tokenizer.encode_with_bos(&args.text)? } else { p.tokenizer.encode(&args.text)? };
    let logprobs = p.model.token_logprobs(&tokens)?;
    let nll = -logprobs.iter().map(|&x| f64::from(x)).sum::<f64>() / logprobs.len() as f64;
    let out = serde_json::json!({ "tokens": tokens, "logprobs": logprobs, "nll": nll });
    let _ = args.json;
    writeln!(std::io::stdout(), "{out}")?;
    Ok(())
}

/// `infuse convert`: write a model (HF directory or GGUF) as a HF directory with its tokenizer.
#[derive(Args, Debug)]
pub(crate) struct ConvertArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output directory.
    #[arg(long)]
    output: PathBuf,
    /// Dtype on disk: f32, bf16, f16.
    #[arg(long, default_value = "bf16")]
    save_dtype: String,
    /// Shard size limit in MB (0 = one file).
    #[arg(long, default_value_t = 0)]
    max_shard_mb: u64,
}

pub(crate) fn convert(args: ConvertArgs) -> Result<()> {
    let p = args.model.load()?;
    let options = infuse_llama_model::SaveOptions {
        dtype: parse_dtype(&args.save_dtype)?,
        max_shard_bytes: (args.max_shard_mb > 0).then_some(args.max_shard_mb * 1_000_000),
    };
    infuse_llama_model::save_pretrained(&p, &args.output, &options)?;
    tracing::info!(output = %args.output.display(), "saved");
    Ok(())
}
