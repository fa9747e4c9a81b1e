//! Convert a model (HF directory or `.gguf`) into a HF directory with its tokenizer:
//! `cargo run --release -p infuse-llama-model --example convert -- IN OUT [f32|bf16|f16]`.
#![allow(clippy::print_stdout)]

use infuse_llama_model::{LoadOptions, SaveOptions, load_pretrained, parse_dtype, save_pretrained};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: convert IN OUT [f32|bf16|f16]".into());
    };
    let dtype = parse_dtype(rest.first().map_or("bf16", String::as_str))?;
    let p = load_pretrained(input, &LoadOptions::default())?;
    save_pretrained(&p, output.as_ref(), &SaveOptions { dtype, max_shard_bytes: None })?;
    println!("wrote {output} ({} parameters)", p.model.config().num_parameters());
    Ok(())
}
