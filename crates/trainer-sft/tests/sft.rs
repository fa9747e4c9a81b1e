//! SFT: packed and unpacked batches give the same loss and gradients (no cross-contamination),
//! the model learns to stop (greedy generation ends with EOS), and a JSONL recipe with LoRA runs
//! end to end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use infuse_llama_model::burn::prelude::*;
use infuse_llama_model::{ForwardOptions, LoadOptions, ids_tensor, load_model, load_tokenizer};
use infuse_text::{ChatTemplate, Message, RenderOptions};
use infuse_trainer_core::{InMemorySource, Recipe, SchedulerKind, Sequence, Stage, TrainData, Trainer};
use infuse_trainer_sft::{pack, render_jsonl};

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/gqa_tied")
}

const CONVERSATIONS: &str = r#"{"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, friend"}]}
{"messages": [{"role": "user", "content": "the capital of France?"}, {"role": "assistant", "content": "Paris"}]}
{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "dog?"}, {"role": "assistant", "content": "cute"}, {"role": "user", "content": "cat?"}, {"role": "assistant", "content": "also cute"}]}
{"conversations": [{"from": "human", "value": "2 + 2"}, {"from": "gpt", "value": "4"}]}
"#;

fn samples(dir: &Path) -> Vec<Sequence> {
    let path = dir.join("chat.jsonl");
    std::fs::write(&path, CONVERSATIONS).expect("write");
    let tok = load_tokenizer(base()).expect("tokenizer");
    let (s, stats) = render_jsonl(&path, infuse_data_prep::sft::SftFormat::Auto, &tok, &ChatTemplate::chatml(), 256).expect("render");
    assert_eq!((stats.records, stats.kept), (4, 4));
    s
}

fn recipe(out: &Path) -> Recipe {
    let mut r = Recipe::new(Stage::Sft, base(), out);
    r.progress_bar = Some(false);
    r.shuffle = false;
    r
}

fn step_of(train: Vec<Sequence>, mbs: usize, block_diagonal: bool, lr: f64) -> infuse_trainer_core::StepMetrics {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    r.micro_batch_size = mbs;
    r.learning_rate = lr;
    r.max_steps = 1;
    let (model, hf) = load_model(base(), &LoadOptions::default()).expect("model");
    let data = TrainData { train: Arc::new(InMemorySource::new("t", train)), eval: None, replay: None, block_diagonal, pad_id: 0 };
    Trainer::new(r, model, hf, data).expect("trainer").step().expect("step")
}

#[test]
fn packed_and_unpacked_batches_have_the_same_loss_and_gradients() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = samples(tmp.path());
    let packed = pack(s.clone(), 256, true);
    assert_eq!(packed.len(), 1, "all four samples fit one sequence");
    assert_eq!(packed[0].doc_starts.len(), 4);
    let separate = step_of(s.clone(), 4, true, 0.0);
    let together = step_of(packed.clone(), 1, true, 0.0);
    assert_eq!(separate.target_tokens, together.target_tokens);
    assert!((separate.loss - together.loss).abs() < 1e-5 * separate.loss, "loss {} vs {}", separate.loss, together.loss);
    assert!((separate.grad_norm - together.grad_norm).abs() < 1e-4 * separate.grad_norm, "grad norm {} vs {}", separate.grad_norm, together.grad_norm);
    // Without block-diagonal attention the samples see each other and the loss changes.
    let contaminated = step_of(packed, 1, false, 0.0);
    assert!((contaminated.loss - separate.loss).abs() > 1e-3, "plain causal packing leaks across samples");
}

fn greedy(model: &infuse_llama_model::Llama, prompt: &[u32], max_new: usize, eos: u32) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_new {
        let logits = model.forward_last(ids_tensor(&ids, &Device::flex()), &ForwardOptions::default(), None).expect("fwd");
        let next = logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().expect("i64")[0] as u32;
        out.push(next);
        if next == eos {
            break;
        }
        ids.push(next);
    }
    out
}

#[test]
fn after_sft_generation_stops_with_eos() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = samples(tmp.path());
    assert!(infuse_trainer_sft::check_stop_tokens(&s, &[2]), "<|im_end|> is a trained label");
    let mut r = recipe(&tmp.path().join("run"));
    r.micro_batch_size = 4;
    r.learning_rate = 1e-2;
    r.lr_scheduler = SchedulerKind::Constant;
    r.warmup_steps = Some(0);
    r.max_steps = 60;
    let (model, hf) = load_model(base(), &LoadOptions::default()).expect("model");
    let data = TrainData { train: Arc::new(InMemorySource::new("t", pack(s, 256, false))), eval: None, replay: None, block_diagonal: true, pad_id: 0 };
    let report = Trainer::new(r, model, hf, data).expect("trainer").run().expect("run");
    assert!(report.final_loss.expect("loss") < 0.1, "loss {:?}", report.final_loss);
    let p = infuse_llama_model::load_pretrained(report.model_dir.expect("model"), &LoadOptions::default()).expect("trained model");
    let tok = &p.tokenizer;
    let eos = tok.token_to_id("<|im_end|>").expect("im_end");
    let prompt = ChatTemplate::chatml()
        .render(&[Message::user("the capital of France?")], &RenderOptions { add_generation_prompt: true })
        .expect("render");
    let prompt_ids = tok.encode(&prompt).expect("encode");
    let out = greedy(&p.model, &prompt_ids, 24, eos);
    assert_eq!(out.last(), Some(&eos), "generation ends with <|im_end|>: {out:?}");
    let answer = tok.decode(&out[..out.len() - 1], infuse_text::Decode::SkipSpecial).expect("decode");
    assert_eq!(answer, "Paris");
}

#[test]
fn jsonl_recipe_with_lora_runs_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("chat.jsonl"), CONVERSATIONS).expect("write");
    let text = format!(
        "stage = \"sft\"\nbase_model = {:?}\noutput_dir = \"run\"\ndatasets = [{{ path = \"chat.jsonl\", type = \"chat\" }}]\n\
         chat_template = \"chatml\"\nadapter = \"lora\"\nlora_r = 4\nlora_alpha = 8\nmerge_lora = true\nmax_steps = 3\n\
         learning_rate = 1e-3\nsequence_len = 128\nprogress_bar = false\n",
        base().display().to_string()
    );
    std::fs::write(tmp.path().join("recipe.toml"), text).expect("recipe");
    let report = infuse_trainer_sft::train_file(&tmp.path().join("recipe.toml"), &["micro_batch_size=2".into()]).expect("train");
    assert_eq!(report.steps, 3);
    let out = tmp.path().join("run");
    for f in ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "merged/model.safetensors", "merged/tokenizer.json", "metrics.jsonl", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}
