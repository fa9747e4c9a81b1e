//! The real SmolLM2-135M-Instruct GGUF (fetched by `cargo xtask fetch-assets`; CI fetches it):
//! tokenizer rebuilt from metadata and per-token log-probabilities against transformers on the same
//! dequantized weights (`fixtures/make_smollm2_reference.py`). Skipped with a note when the asset is absent.

use std::path::{Path, PathBuf};

use infuse_llama_model::{LoadOptions, load_pretrained};
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

fn reference() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/smollm2/reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

#[test]
fn smollm2_tokenizer_and_logprobs_match_transformers() {
    let Some(path) = asset() else { return };
    let r = reference();
    let p = load_pretrained(&path, &LoadOptions::default()).expect("load");
    assert_eq!(p.tokenizer.encode("Hello, my dog is cute").expect("encode"), ids(&r["tokenizer"]["hello"]["ids"]));
    let text = r["score"]["text"].as_str().expect("text");
    let tokens = p.tokenizer.encode(text).expect("encode");
    assert_eq!(tokens, ids(&r["score"]["tokens"]));
    let got = p.model.token_logprobs(&tokens).expect("score");
    let want: Vec<f64> = r["score"]["logprobs"].as_array().expect("lp").iter().map(|x| x.as_f64().expect("f")).collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let rel = (f64::from(*g) - w).abs() / w.abs().max(1.0);
        assert!(rel < 1e-3, "token {i}: {g} vs {w}");
    }
    let nll = -got.iter().map(|&x| f64::from(x)).sum::<f64>() / got.len() as f64;
    let want_nll = r["score"]["nll"].as_f64().expect("nll");
    assert!((nll - want_nll).abs() / want_nll < 1e-3, "nll {nll} vs {want_nll}");
}
