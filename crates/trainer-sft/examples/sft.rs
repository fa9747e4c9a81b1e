//! Supervised fine-tuning from a recipe, or a self-contained demo on the tiny fixture model.
//!
//! `cargo run --release -p infuse-trainer-sft --example sft -- RECIPE.toml [key=value...]`
//!
//! Without arguments: writes a few chat conversations as JSONL into a temporary directory, trains
//! LoRA adapters on `fixtures/llama/gqa_tied` (ChatML template, packed samples, loss on assistant
//! turns), merges them, and prints where the adapter (PEFT layout) and merged model are.
#![allow(clippy::print_stdout)]

use std::path::Path;

const CHATS: &str = r#"{"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, friend"}]}
{"messages": [{"role": "user", "content": "the capital of France?"}, {"role": "assistant", "content": "Paris"}]}
{"conversations": [{"from": "human", "value": "2 + 2"}, {"from": "gpt", "value": "4"}]}
{"instruction": "Say yes", "input": "", "output": "yes"}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some((recipe, overrides)) = args.split_first() {
        let report = infuse_trainer_sft::train_file(Path::new(recipe), overrides)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("infuse-sft-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("chat.jsonl"), CHATS)?;
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/gqa_tied");
    let recipe = format!(
        "stage = \"sft\"\nbase_model = {:?}\noutput_dir = \"run\"\ndatasets = [{{ path = \"chat.jsonl\", type = \"chat\" }}]\n\
         chat_template = \"chatml\"\nsequence_len = 256\nadapter = \"lora\"\nlora_r = 8\nlora_alpha = 16\nmerge_lora = true\n\
         learning_rate = 1e-2\nlr_scheduler = \"constant\"\nmax_steps = 40\nmicro_batch_size = 2\nsave_steps = 20\n",
        base.display().to_string()
    );
    std::fs::write(dir.join("recipe.toml"), recipe)?;
    let report = infuse_trainer_sft::train_file(&dir.join("recipe.toml"), &[])?;
    println!("loss {:.3} -> {:.3} in {} steps", report.losses.first().copied().unwrap_or(f64::NAN), report.final_loss.unwrap_or(f64::NAN), report.steps);
    if let (Some(a), Some(m)) = (&report.adapter_dir, &report.merged_dir) {
        println!("adapter (PEFT): {}\nmerged model (HF): {}", a.display(), m.display());
    }
    Ok(())
}
