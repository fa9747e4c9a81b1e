//! Perplexity of the real SmolLM2-135M-Instruct GGUF on a fixed text, rolling windows of 128
//! tokens, against transformers computing lm-eval's `loglikelihood_rolling` on the same dequantized
//! weights (`fixtures/perplexity/make_perplexity_reference.py`). Skipped when the asset is absent.

use std::path::{Path, PathBuf};

use infuse_eval::llama::LlamaEvalModel;
use infuse_eval::perplexity::{Document, PerplexityConfig, evaluate_perplexity};
use infuse_llama_model::{LoadOptions, load_pretrained};
use serde_json::Value;

#[test]
fn smollm2_perplexity_matches_transformers() {
    let root = std::env::var_os("INFUSE_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets"));
    let gguf = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.is_file() {
        eprintln!("SKIPPED: {} missing (run `cargo xtask fetch-assets`)", gguf.display());
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/perplexity");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).expect("read")).expect("json");
    let text = std::fs::read_to_string(dir.join("text.txt")).expect("text");
    let max_length = r["max_length"].as_u64().expect("max_length") as usize;
    let mut model = LlamaEvalModel::from_pretrained(load_pretrained(&gguf, &LoadOptions::default()).expect("load"), Some(max_length));
    let docs = [Document { id: "text".into(), text }];
    let got = evaluate_perplexity(&mut model, &docs, &PerplexityConfig { max_length: Some(max_length) }).expect("eval");
    let close = |a: f64, key: &str| {
        let b = r[key].as_f64().expect(key);
        assert!((a - b).abs() / b.abs() < 1e-3, "{key}: {a} vs {b}");
    };
    assert_eq!(got.tokens as u64, r["num_tokens"].as_u64().expect("tokens"));
    assert_eq!(got.words as u64, r["words"].as_u64().expect("words"));
    assert_eq!(got.bytes as u64, r["bytes"].as_u64().expect("bytes"));
    close(got.loglikelihood, "loglikelihood");
    close(got.token_perplexity, "token_perplexity");
    close(got.word_perplexity.expect("word"), "word_perplexity");
    close(got.byte_perplexity.expect("byte"), "byte_perplexity");
    close(got.bits_per_byte.expect("bpb"), "bits_per_byte");
}
