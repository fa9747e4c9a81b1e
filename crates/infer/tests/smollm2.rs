//! Chat with the real SmolLM2-135M-Instruct GGUF through its own chat template: greedy decoding
//! answers "Paris" and stops at EOS with exactly transformers' tokens. Skipped when the asset is absent.

use std::path::{Path, PathBuf};

use infuse_infer::{FinishReason, GenerateOptions, Generator};
use infuse_llama_model::{LoadOptions, load_pretrained};
use infuse_text::{Message, RenderOptions};
use serde_json::Value;

fn asset() -> Option<PathBuf> {
    let root = std::env::var_os("INFUSE_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets"));
    let p = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} missing (run `cargo xtask fetch-assets`)", p.display());
        None
    }
}

#[test]
fn smollm2_answers_paris_and_stops() {
    let Some(path) = asset() else { return };
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/smollm2/reference.json"))
            .expect("read"),
    )
    .expect("json");
    let p = load_pretrained(&path, &LoadOptions::default()).expect("load");
    let messages = [Message::user("What is the capital of France?")];
    let template = p.tokenizer.chat_template().expect("GGUF carries a chat template");
    let prompt = template.render(&messages, &RenderOptions { add_generation_prompt: true }).expect("render");
    assert_eq!(prompt, r["chat"]["prompt_text"].as_str().expect("prompt"));
    let generator = Generator::new(&p.model, &p.tokenizer);
    let options = GenerateOptions { max_new_tokens: 20, ..Default::default() };
    let mut streamed = String::new();
    let out = generator.chat(&messages, &options, |s| streamed.push_str(s)).expect("generate");
    assert!(out.text.contains("Paris"), "{:?}", out.text);
    assert_eq!(out.finish, FinishReason::Eos);
    assert_eq!(streamed, out.text);
    let want: Vec<u32> = r["chat"]["completion_ids"].as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect();
    assert_eq!(out.tokens, want);
}
