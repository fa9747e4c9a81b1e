//! `infuse train RECIPE [key=value...]` end to end through the binary: a YAML SFT recipe with
//! LoRA on the tiny fixture model writes the documented run layout; a typo in a recipe key fails
//! with a message naming the key and the file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/gqa_tied")
}

const CHATS: &str = r#"{"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, friend"}]}
{"messages": [{"role": "user", "content": "the capital of France?"}, {"role": "assistant", "content": "Paris"}]}
{"conversations": [{"from": "human", "value": "2 + 2"}, {"from": "gpt", "value": "4"}]}
"#;

#[test]
fn yaml_sft_recipe_with_overrides_writes_the_run_layout() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("chat.jsonl"), CHATS).expect("data");
    let recipe = format!(
        "stage: sft\nbase_model: {:?}\noutput_dir: run\ndatasets:\n  - path: chat.jsonl\n    type: chat\nchat_template: chatml\n\
         adapter: lora\nlora_r: 4\nlora_alpha: 8\nmerge_lora: true\nlearning_rate: 0.001\nmax_steps: 10\nsave_steps: 2\nsequence_len: 128\n",
        fixture_model().display().to_string()
    );
    std::fs::write(tmp.path().join("recipe.yaml"), recipe).expect("recipe");
    let out = Command::new(env!("CARGO_BIN_EXE_infuse"))
        .arg("train")
        .arg(tmp.path().join("recipe.yaml"))
        .args(["max_steps=3", "micro_batch_size=2"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run infuse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "infuse train failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 steps"), "the override max_steps=3 wins: {stdout}");
    let run = tmp.path().join("run");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let steps: Vec<serde_json::Value> =
        metrics.lines().map(|l| serde_json::from_str(l).expect("json line")).filter(|v: &serde_json::Value| v.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 3, "{metrics}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i as u64 + 1);
        for k in ["loss", "lr", "grad_norm", "tokens_per_s"] {
            assert!(s[k].as_f64().is_some_and(f64::is_finite), "{k} in {s}");
        }
    }
    for f in ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "merged/config.json", "merged/model.safetensors", "checkpoint-2/trainer_state.json", "report.html"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let html = std::fs::read_to_string(run.join("report.html")).expect("report");
    assert!(html.contains("<svg"), "the report has a loss curve");
}

#[test]
fn unknown_recipe_key_is_an_error_naming_key_and_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, format!("stage = \"sft\"\nbase_model = {:?}\noutput_dir = \"o\"\nlora_rnak = 8\n", fixture_model().display().to_string()))
        .expect("recipe");
    let out = Command::new(env!("CARGO_BIN_EXE_infuse")).arg("train").arg(&path).output().expect("run infuse");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lora_rnak") && err.contains("bad.toml"), "{err}");
}
