//! Rebuild a HF `tokenizer.json` from GGUF `tokenizer.ggml.*` metadata (BPE "gpt2" vocabularies,
//! which is what Llama 3 and SmolLM2 use), as llama.cpp's pre-tokenizer types describe it.

use infuse_text::{ChatTemplate, SpecialTokens, Tokenizer};
use serde_json::{Value as Json, json};

use crate::gguf::{GgufFile, GgufValue};
use crate::{Error, Result};

/// Llama 3's pre-tokenizer split regex (tiktoken cl100k style).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn strings(file: &GgufFile, key: &str) -> Result<Vec<String>> {
    match file.get(key) {
        Some(GgufValue::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| Error::InvalidGguf {
                    path: file.path().to_owned(),
                    message: format!("`{key}` must be an array of strings"),
                })
            })
            .collect(),
        Some(_) => Err(Error::InvalidGguf { path: file.path().to_owned(), message: format!("`{key}` must be an array") }),
        None => Err(Error::MissingTokenizer {
            origin: file.path().display().to_string(),
            expected: format!("GGUF metadata `{key}`"),
        }),
    }
}

/// The `tokenizer.json` document for the GGUF's vocabulary.
pub fn tokenizer_json(file: &GgufFile) -> Result<Json> {
    let model = file.get("tokenizer.ggml.model").and_then(GgufValue::as_str).unwrap_or("");
    if model != "gpt2" {
        return Err(Error::MissingTokenizer {
            origin: file.path().display().to_string(),
            expected: format!("a BPE (`gpt2`) tokenizer in the GGUF metadata; found tokenizer.ggml.model = `{model}`"),
        });
    }
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = match file.get("tokenizer.ggml.merges") {
        Some(_) => strings(file, "tokenizer.ggml.merges")?,
        None => Vec::new(),
    };
    let types: Vec<u64> = match file.get("tokenizer.ggml.token_type") {
        Some(GgufValue::Array(items)) => items.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let pre = file.get("tokenizer.ggml.pre").and_then(GgufValue::as_str).unwrap_or("default");
    let byte_level = |use_regex: bool| {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
    };
    let (pre_tokenizer, ignore_merges) = match pre {
        "llama3" | "llama-bpe" | "llama-v3" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
                byte_level(false)
            ]}),
            true,
        ),
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true)
            ]}),
            false,
        ),
        other => {
            if other != "gpt2" && other != "default" {
                tracing::warn!(pre = other, "unknown GGUF pre-tokenizer type, using GPT-2 byte-level splitting");
            }
            (byte_level(true), false)
        }
    };
    let mut added = Vec::new();
    for (id, (tok, ty)) in tokens.iter().zip(types.iter().chain(std::iter::repeat(&1))).enumerate() {
        // 3 = CONTROL (special), 4 = USER_DEFINED (added, not special)
        if *ty == 3 || *ty == 4 {
            added.push(json!({
                "id": id, "content": tok, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": *ty == 3
            }));
        }
    }
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges
        }
    }))
}

/// The tokenizer embedded in a GGUF file, with special tokens and chat template from its metadata.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let doc = tokenizer_json(file)?;
    let bytes = serde_json::to_vec(&doc).map_err(|e| Error::InvalidGguf { path: file.path().to_owned(), message: e.to_string() })?;
    let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::InvalidGguf {
        path: file.path().to_owned(),
        message: format!("tokenizer metadata does not build a tokenizer: {e}"),
    })?;
    let id = |key: &str| file.get(key).and_then(GgufValue::as_u64).map(|v| v as u32);
    let mut eos: Vec<u32> = [id("tokenizer.ggml.eos_token_id"), id("tokenizer.ggml.eot_token_id")].into_iter().flatten().collect();
    eos.dedup();
    let special = SpecialTokens {
        bos: id("tokenizer.ggml.bos_token_id"),
        eos,
        pad: id("tokenizer.ggml.padding_token_id"),
        add_bos: file.get("tokenizer.ggml.add_bos_token").and_then(GgufValue::as_bool).unwrap_or(false),
    };
    let token_text = |id: Option<u32>| id.and_then(|i| inner.id_to_token(i)).unwrap_or_default();
    let chat_template = match file.get("tokenizer.chat_template").and_then(GgufValue::as_str) {
        Some(src) => Some(ChatTemplate::new(src, token_text(special.bos), token_text(special.eos.first().copied()))?),
        None => None,
    };
    Ok(Tokenizer::from_parts(inner, special, chat_template, file.path().display().to_string()))
}
