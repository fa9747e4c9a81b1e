//! LoRA on the projections: identity at initialization, adapter forward equals the merged weights,
//! PEFT save/load round trip (key names and shapes), reading an adapter written by peft itself,
//! and clear errors for unsupported adapters.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use infuse_llama_model::burn;
use infuse_llama_model::burn::module::Param;
use infuse_llama_model::{
    ForwardOptions, LayerTensor, LoadOptions, LoraConfig, LoraFactor, PeftSaveOptions, SafetensorsCheckpoint, apply_lora, ids_tensor,
    load_model, load_peft_adapter, merge_lora, peft_key, save_peft_adapter,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn base() -> infuse_llama_model::Llama {
    load_model(fixtures().join("llama/gqa_tied"), &LoadOptions::default()).expect("model").0
}

fn logits(m: &infuse_llama_model::Llama) -> Vec<f32> {
    let ids = ids_tensor(&[7, 42, 99, 3, 180, 255, 17], &m.device());
    m.forward(ids, &ForwardOptions::default(), None).expect("fwd").into_data().convert::<f32>().try_to_vec::<f32>().expect("f32")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Give every B factor seeded non-zero values so adapters change the output.
fn randomize_b(mut m: infuse_llama_model::Llama) -> infuse_llama_model::Llama {
    let mut k = 0.0f32;
    for l in &mut m.layers {
        for p in [&mut l.self_attn.q_proj, &mut l.self_attn.v_proj, &mut l.mlp.down_proj] {
            if let Some(a) = p.lora.as_mut() {
                let [r, out] = a.lora_b.val().dims();
                let vals: Vec<f32> = (0..r * out).map(|i| ((i as f32 * 0.37 + k).sin()) * 0.05).collect();
                k += 1.0;
                a.lora_b = Param::from_tensor(Tensor::<2>::from_data(TensorData::new(vals, [r, out]), &Device::flex()));
            }
        }
    }
    m
}

fn config() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: LoraConfig::parse_targets(&["q_proj", "self_attn.v_proj", "down_proj"]).expect("targets"),
        use_rslora: true,
        seed: 3,
    }
}

#[test]
fn fresh_adapters_are_the_identity_and_merging_matches_the_adapter_forward() {
    let plain = logits(&base());
    let m = apply_lora(base(), &config()).expect("lora");
    assert_eq!(m.lora_adapters().len(), 2 * 3);
    assert_eq!(max_diff(&logits(&m), &plain), 0.0, "B = 0 at initialization");
    let m = randomize_b(m);
    let adapted = logits(&m);
    assert!(max_diff(&adapted, &plain) > 1e-2, "adapters change the output");
    let merged = merge_lora(m);
    assert!(!merged.has_lora());
    let d = max_diff(&logits(&merged), &adapted);
    assert!(d < 1e-4, "merged weights give the adapter's logits (max diff {d})");
}

#[test]
fn peft_round_trip_keeps_names_shapes_and_outputs() {
    let m = randomize_b(apply_lora(base(), &config()).expect("lora"));
    let want = logits(&m);
    let dir = tempfile::tempdir().expect("tmp");
    save_peft_adapter(&m, &config(), dir.path(), &PeftSaveOptions { base_model: Some("gqa_tied".into()), ..Default::default() }).expect("save");
    let file = SafetensorsCheckpoint::open_file(&dir.path().join("adapter_model.safetensors")).expect("open");
    let names = file.names();
    assert_eq!(names.len(), 12);
    assert!(names.contains(&"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_owned()), "{names:?}");
    assert_eq!(peft_key(1, LayerTensor::Down, LoraFactor::B), "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
    let a = file.tensor(&peft_key(0, LayerTensor::Down, LoraFactor::A)).expect("read").expect("A");
    let b = file.tensor(&peft_key(0, LayerTensor::Down, LoraFactor::B)).expect("read").expect("B");
    assert_eq!(a.shape().to_vec(), vec![4, 160], "lora_A is [r, in]");
    assert_eq!(b.shape().to_vec(), vec![64, 4], "lora_B is [out, r]");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("adapter_config.json")).expect("cfg")).expect("json");
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["use_rslora"], true);
    assert_eq!(cfg["lora_alpha"], 8.0);
    let (loaded, lc) = load_peft_adapter(base(), dir.path()).expect("load");
    assert_eq!(lc.r, 4);
    assert!((lc.scaling() - 4.0).abs() < 1e-12, "rsLoRA: alpha / sqrt(r)");
    assert_eq!(max_diff(&logits(&loaded), &want), 0.0);
}

#[test]
fn reads_an_adapter_written_by_peft() {
    // fixtures/train/make_train_fixtures.py saved this with peft's own save_pretrained.
    let dir = fixtures().join("train/lora_gqa_tied/initial_adapter");
    let (m, cfg) = load_peft_adapter(base(), &dir).expect("peft adapter");
    assert_eq!((cfg.r, cfg.alpha, cfg.use_rslora), (4, 8.0, true));
    assert_eq!(m.lora_adapters().len(), 2 * 7);
    assert!(max_diff(&logits(&m), &logits(&base())) > 1e-3);
}

#[test]
fn unsupported_adapters_are_clear_errors() {
    let m = apply_lora(base(), &config()).expect("lora");
    let dir = tempfile::tempdir().expect("tmp");
    save_peft_adapter(&m, &config(), dir.path(), &PeftSaveOptions::default()).expect("save");
    let cfg_path = dir.path().join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).expect("cfg");
    std::fs::write(&cfg_path, text.replace("\"use_dora\": false", "\"use_dora\": true")).expect("write");
    let err = load_peft_adapter(base(), dir.path()).expect_err("dora");
    assert!(err.to_string().contains("use_dora"), "{err}");
    std::fs::write(&cfg_path, text.replace("\"q_proj\"", "\"qkv_proj\"")).expect("write");
    let err = load_peft_adapter(base(), dir.path()).expect_err("target");
    assert!(err.to_string().contains("qkv_proj"), "{err}");
    // A config targeting more modules than the file holds: the missing tensor is named.
    std::fs::write(&cfg_path, text.replace("\"q_proj\"", "\"q_proj\", \"k_proj\"")).expect("write");
    let err = load_peft_adapter(base(), dir.path()).expect_err("missing");
    assert!(err.to_string().contains("k_proj.lora_A.weight"), "{err}");
    assert!(LoraConfig::parse_targets(&["all-linear"]).expect("all").len() == 7);
    assert!(apply_lora(base(), &LoraConfig { r: 0, ..config() }).is_err());
}
