//! Golden tests against transformers: tiny seeded checkpoints made by `fixtures/make_llama_fixtures.py`
//! (see fixtures/README.md), loaded from safetensors (f32, bf16, f16, sharded) and GGUF (F32, F16,
//! Q8_0, Q4_0, Q4_1), with logits matched to 1e-4 relative, with and without the KV cache.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use infuse_llama_model::burn;
use infuse_llama_model::{
    Error, ForwardOptions, KvCache, Weight, LoadOptions, SafetensorsCheckpoint, SaveOptions, ids_tensor, load_model,
    load_pretrained, load_tokenizer, save_hf,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama")
}

fn reference(dir: &Path, json: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(json)).expect("reference json");
    serde_json::from_str(&text).expect("valid json")
}

/// A tensor referenced as `{"file", "tensor"}` from a reference JSON, as f32.
fn ref_tensor(dir: &Path, pointer: &Value) -> Vec<f32> {
    let file = dir.join(pointer["file"].as_str().expect("file"));
    let ckpt = SafetensorsCheckpoint::open_file(&file).expect("open reference");
    let data = ckpt.tensor(pointer["tensor"].as_str().expect("tensor")).expect("read").expect("present");
    data.try_to_vec::<f32>().expect("f32")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn to_vec(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32")
}

/// max |a - b| / max(|b|, 1) over all elements where `keep` is true.
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (a, b) in got.iter().zip(want) {
        let rel = (a - b).abs() / b.abs().max(1.0);
        worst = worst.max(rel);
    }
    assert!(worst <= tol, "{what}: max relative difference {worst} > {tol}");
}

fn options() -> LoadOptions {
    LoadOptions::default()
}

fn check_single(dir: &Path, model_path: &Path, json: &str) {
    let r = reference(dir, json);
    let (model, _) = load_model(model_path, &options()).expect("load");
    let input = ids(&r["single"]["input_ids"]);
    let logits = model.forward(ids_tensor(&input, &model.device()), &ForwardOptions::default(), None).expect("forward");
    assert_close(&to_vec(logits), &ref_tensor(dir, &r["single"]["logits"]), 1e-4, &format!("{} single", model_path.display()));
}

#[test]
fn safetensors_cases_match_transformers() {
    for case in ["gqa_tied", "mha_untied_llama3rope", "mqa_headdim", "gqa_tied_bf16", "gqa_tied_f16", "gqa_tied_sharded"] {
        let dir = fixtures().join(case);
        check_single(&dir, &dir, "reference.json");
    }
}

#[test]
fn gguf_cases_match_dequantized_transformers() {
    let dir = fixtures().join("gqa_tied_gguf");
    for ty in ["f32", "f16", "q8_0", "q4_0", "q4_1"] {
        check_single(&dir, &dir.join(format!("model-{ty}.gguf")), &format!("reference-{ty}.json"));
    }
    // Untied head + llama3 rope scaling stored as llama.cpp's `rope_freqs.weight`.
    let dir = fixtures().join("mha_untied_gguf");
    check_single(&dir, &dir.join("model-q8_0.gguf"), "reference-q8_0.json");
}

#[test]
fn left_padded_batch_matches_on_real_tokens() {
    for case in ["gqa_tied", "mha_untied_llama3rope", "mqa_headdim"] {
        let dir = fixtures().join(case);
        let r = reference(&dir, "reference.json");
        let (model, _) = load_model(&dir, &options()).expect("load");
        let device = model.device();
        let rows = |key: &str| -> Vec<Vec<i64>> {
            r["batch"][key]
                .as_array()
                .expect("rows")
                .iter()
                .map(|row| row.as_array().expect("row").iter().map(|x| x.as_i64().expect("int")).collect())
                .collect()
        };
        let (input, mask, pos) = (rows("input_ids"), rows("attention_mask"), rows("position_ids"));
        let (b, t) = (input.len(), input[0].len());
        let tensor = |v: &Vec<Vec<i64>>| Tensor::<2, Int>::from_data(TensorData::new(v.concat(), [b, t]), &device);
        let opts = ForwardOptions { position_ids: Some(tensor(&pos)), attention_mask: Some(tensor(&mask)), segment_ids: None };
        let got = to_vec(model.forward(tensor(&input), &opts, None).expect("forward"));
        let want = ref_tensor(&dir, &r["batch"]["logits"]);
        let v = model.config().vocab_size;
        let flat_mask = mask.concat();
        let keep = |x: &[f32]| -> Vec<f32> {
            x.chunks(v).zip(&flat_mask).filter(|(_, m)| **m == 1).flat_map(|(c, _)| c.to_vec()).collect()
        };
        assert_close(&keep(&got), &keep(&want), 1e-4, &format!("{case} batch"));
    }
}

#[test]
fn kv_cache_decoding_equals_full_forward_and_greedy_reference() {
    for case in ["gqa_tied", "mha_untied_llama3rope", "mqa_headdim"] {
        let dir = fixtures().join(case);
        let r = reference(&dir, "reference.json");
        let (model, _) = load_model(&dir, &options()).expect("load");
        let device = model.device();
        let prompt = ids(&r["greedy"]["prompt_ids"]);
        let want = ids(&r["greedy"]["generated_ids"]);
        let mut cache = KvCache::new(model.config().num_layers);
        let mut seq = prompt.clone();
        let mut input = ids_tensor(&prompt, &device);
        let mut generated = Vec::new();
        for _ in 0..want.len() {
            let last = model.forward_last(input, &ForwardOptions::default(), Some(&mut cache)).expect("step");
            let incremental = last.into_data().try_to_vec::<f32>().expect("f32");
            // The same position through a full forward without cache.
            let full = model.forward(ids_tensor(&seq, &device), &ForwardOptions::default(), None).expect("full");
            let t = seq.len();
            let full_last = to_vec(full.narrow(1, t - 1, 1));
            assert_close(&incremental, &full_last, 1e-4, &format!("{case} cache step {t}"));
            let next = argmax(&incremental);
            generated.push(next);
            seq.push(next);
            input = ids_tensor(&[next], &device);
        }
        assert_eq!(generated, want, "{case} greedy");
        // The last generated token was never fed back.
        assert_eq!(cache.len(), prompt.len() + want.len() - 1);
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn packed_segments_equal_separate_sequences() {
    // Two documents packed in one row with block-diagonal attention and restarted positions give the
    // same logits as each document alone.
    let dir = fixtures().join("gqa_tied");
    let (model, _) = load_model(&dir, &options()).expect("load");
    let device = model.device();
    let (a, b) = (vec![14u32, 310, 289, 86, 170], vec![95u32, 156, 112, 19]);
    let packed: Vec<u32> = a.iter().chain(&b).copied().collect();
    let segs: Vec<i64> = [0i64; 5].into_iter().chain([1i64; 4]).collect();
    let pos: Vec<i64> = (0..5).chain(0..4).collect();
    let opts = ForwardOptions {
        position_ids: Some(Tensor::<2, Int>::from_data(TensorData::new(pos, [1, 9]), &device)),
        attention_mask: None,
        segment_ids: Some(Tensor::<2, Int>::from_data(TensorData::new(segs, [1, 9]), &device)),
    };
    let got = to_vec(model.forward(ids_tensor(&packed, &device), &opts, None).expect("packed"));
    let alone = |x: &[u32]| to_vec(model.forward(ids_tensor(x, &device), &ForwardOptions::default(), None).expect("alone"));
    let want: Vec<f32> = alone(&a).into_iter().chain(alone(&b)).collect();
    assert_close(&got, &want, 1e-4, "packed vs separate");
}

#[test]
fn save_and_reload_round_trips() {
    let dir = fixtures().join("mha_untied_llama3rope");
    let (model, hf) = load_model(&dir, &options()).expect("load");
    let input = vec![5u32, 17, 99, 3, 250, 8];
    let device = model.device();
    let before = to_vec(model.forward(ids_tensor(&input, &device), &ForwardOptions::default(), None).expect("fwd"));
    let out = tempfile::tempdir().expect("tempdir");
    // f32 in 3 shards: exact.
    let sharded = out.path().join("sharded");
    save_hf(&model, &sharded, hf.as_ref(), &SaveOptions { max_shard_bytes: Some(100_000), ..Default::default() }).expect("save");
    assert!(sharded.join("model.safetensors.index.json").is_file());
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(sharded.join("config.json")).expect("config")).expect("json");
    assert_eq!(cfg["rope_scaling"]["rope_type"], "llama3");
    assert_eq!(cfg["eos_token_id"], serde_json::json!([2, 3]));
    let (reloaded, _) = load_model(&sharded, &options()).expect("reload");
    let after = to_vec(reloaded.forward(ids_tensor(&input, &device), &ForwardOptions::default(), None).expect("fwd"));
    assert_eq!(before, after);
    // bf16 single file: every weight is exactly the bf16 rounding of the original.
    let bf16 = out.path().join("bf16");
    save_hf(&model, &bf16, hf.as_ref(), &SaveOptions { dtype: burn::tensor::DType::BF16, max_shard_bytes: None }).expect("save");
    let (reloaded, _) = load_model(&bf16, &options()).expect("reload");
    for w in Weight::all(model.config()) {
        let original: Vec<f32> = model.weight_data(w).expect("weight").try_to_vec::<f32>().expect("f32");
        let rounded: Vec<f32> = original.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect();
        let got = reloaded.weight_data(w).expect("weight").convert::<f32>().try_to_vec::<f32>().expect("f32");
        assert_eq!(got, rounded, "{}", w.hf_name());
    }
}

#[test]
fn gguf_tokenizer_is_rebuilt_from_metadata() {
    let dir = fixtures().join("gqa_tied_gguf");
    let r = reference(&dir, "reference-f32.json");
    let tok = load_tokenizer(dir.join("model-f32.gguf")).expect("tokenizer");
    for case in r["tokenizer_golden"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        assert_eq!(tok.encode(text).expect("encode"), ids(&case["ids"]), "{text:?}");
    }
}

// ---- bad input: clear errors naming the file, never a panic ----

fn copy_case(case: &str) -> tempfile::TempDir {
    let src = fixtures().join(case);
    let dst = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&src).expect("read") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dst.path().join(entry.file_name())).expect("copy");
    }
    dst
}

#[test]
fn truncated_safetensors_is_a_clear_error() {
    let dir = copy_case("gqa_tied");
    let file = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load_model(dir.path(), &options()).expect_err("must fail");
    assert!(matches!(err, Error::InvalidSafetensors { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn header_offset_past_the_file_is_a_clear_error() {
    let dir = copy_case("gqa_tied");
    let file = dir.path().join("model.safetensors");
    let header = r#"{"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[0,1000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 256]);
    std::fs::write(&file, bytes).expect("write");
    let err = load_model(dir.path(), &options()).expect_err("must fail");
    assert!(matches!(err, Error::InvalidSafetensors { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn gguf_with_unknown_tensor_type_is_a_clear_error() {
    let path = fixtures().join("gqa_tied_gguf/model-bad-type.gguf");
    let err = load_model(&path, &options()).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("model-bad-type.gguf") && msg.contains("99") && msg.contains("blk.0.attn_q.weight"), "{msg}");
}

#[test]
fn config_with_zero_heads_is_a_clear_error() {
    let dir = copy_case("gqa_tied");
    let cfg_path = dir.path().join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).expect("read")).expect("json");
    cfg["num_attention_heads"] = 0.into();
    std::fs::write(&cfg_path, cfg.to_string()).expect("write");
    let err = load_model(dir.path(), &options()).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("config.json") && msg.contains("num_attention_heads"), "{msg}");
}

#[test]
fn missing_tokenizer_is_a_clear_error() {
    let dir = copy_case("mqa_headdim");
    let _ = std::fs::remove_file(dir.path().join("tokenizer.json"));
    let err = load_pretrained(dir.path(), &options()).expect_err("must fail");
    assert!(matches!(err, Error::MissingTokenizer { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn missing_tensor_and_wrong_path_are_clear_errors() {
    let err = load_model("/nonexistent/model", &options()).expect_err("must fail");
    assert!(err.to_string().contains("/nonexistent/model"), "{err}");
    let dir = copy_case("gqa_tied");
    // A checkpoint written without the final norm.
    let (model, hf) = load_model(dir.path(), &options()).expect("load");
    let _ = (model, hf);
    let cfg_path = dir.path().join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).expect("read")).expect("json");
    cfg["num_hidden_layers"] = 3.into();
    std::fs::write(&cfg_path, cfg.to_string()).expect("write");
    let err = load_model(dir.path(), &options()).expect_err("must fail");
    assert!(err.to_string().contains("model.layers.2."), "{err}");
}

#[test]
fn bf16_compute_stays_close_to_f32() {
    let dir = fixtures().join("gqa_tied");
    let r = reference(&dir, "reference.json");
    let bf16 = LoadOptions { dtype: burn::tensor::DType::BF16, ..LoadOptions::default() };
    let (model, _) = load_model(&dir, &bf16).expect("load bf16");
    let input = ids(&r["single"]["input_ids"]);
    let logits = model.forward(ids_tensor(&input, &model.device()), &ForwardOptions::default(), None).expect("forward");
    let got = to_vec(logits);
    let want = ref_tensor(&dir, &r["single"]["logits"]);
    // bf16 keeps 8 mantissa bits: logits agree to a few percent on average (relative L1) and the
    // argmax almost everywhere.
    let l1: f32 = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).sum::<f32>() / want.iter().map(|w| w.abs()).sum::<f32>();
    assert!(l1 < 0.03, "relative L1 {l1}");
    let v = model.config().vocab_size;
    let agree = got.chunks(v).zip(want.chunks(v)).filter(|(g, w)| argmax(g) == argmax(w)).count();
    assert!(agree * 10 >= input.len() * 9, "argmax agreement {agree}/{}", input.len());
}
