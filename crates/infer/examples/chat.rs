//! Chat with a model: `cargo run --release -p infuse-infer --example chat -- MODEL "question"`.
//! MODEL is a HF directory or a `.gguf` file (e.g. `.cache/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf`
//! after `cargo xtask fetch-assets`).
#![allow(clippy::print_stdout)]

use std::io::Write;

use infuse_infer::{GenerateOptions, Generator};
use infuse_llama_model::{LoadOptions, load_pretrained};
use infuse_text::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: chat MODEL [QUESTION]")?;
    let question = args.next().unwrap_or_else(|| "What is the capital of France?".to_owned());
    let t = std::time::Instant::now();
    let p = load_pretrained(&model, &LoadOptions::default())?;
    println!("loaded {model} in {:.1}s", t.elapsed().as_secs_f64());
    let generator = Generator::new(&p.model, &p.tokenizer);
    let options = GenerateOptions { max_new_tokens: 64, ..Default::default() };
    let out = generator.chat(&[Message::user(question)], &options, |piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    })?;
    println!("\n[{:?}, {} tokens, {:.1} tok/s]", out.finish, out.tokens.len(), out.decode_tokens_per_sec());
    Ok(())
}
