//! Behaviour of the shared loop on the tiny fixture model: accumulation equivalence, exact resume,
//! NaN stop, memorization, early stopping, run layout, LoRA outputs, recipe parsing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use infuse_llama_model::burn::module::{Module, Param};
use infuse_llama_model::burn::prelude::*;
use infuse_llama_model::{ForwardOptions, LoadOptions, Weight, burn, ids_tensor, load_model, load_peft_adapter};
use infuse_trainer_core::{
    Error, InMemorySource, MetricsLine, Recipe, ResumeFrom, SchedulerKind, Sequence, SplitMix64, Stage, TrainData, Trainer, read_metrics,
};

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/gqa_tied")
}

/// `n` random sequences of 6..=14 tokens; every third one has its first half masked out.
fn random_sequences(n: usize, seed: u64) -> Vec<Sequence> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|i| {
            let len = 6 + rng.below(9);
            let tokens: Vec<u32> = (0..len).map(|_| 3 + rng.below(317) as u32).collect();
            if i % 3 == 0 {
                let mask = (0..len).map(|j| j >= len / 2).collect();
                Sequence::masked(tokens, mask)
            } else {
                Sequence::plain(tokens)
            }
        })
        .collect()
}

fn recipe(out: &Path) -> Recipe {
    let mut r = Recipe::new(Stage::Cpt, base(), out);
    r.learning_rate = 3e-3;
    r.lr_scheduler = SchedulerKind::Cosine;
    r.warmup_steps = Some(1);
    r.weight_decay = 0.01;
    r.progress_bar = Some(false);
    r
}

fn data(train: Vec<Sequence>, eval: Option<Vec<Sequence>>) -> TrainData {
    TrainData {
        train: Arc::new(InMemorySource::new("train", train)),
        eval: eval.map(|e| Arc::new(InMemorySource::new("eval", e)) as Arc<dyn infuse_trainer_core::SequenceSource>),
        replay: None,
        block_diagonal: false,
        pad_id: 0,
    }
}

fn trainer(r: &Recipe, d: TrainData) -> Trainer {
    let (model, hf) = load_model(&r.base_model, &LoadOptions::default()).expect("model");
    Trainer::new(r.clone(), model, hf, d).expect("trainer")
}

fn weights(model: &infuse_llama_model::Llama) -> Vec<f32> {
    let plain = model.valid();
    Weight::all(plain.config())
        .into_iter()
        .flat_map(|w| plain.weight_data(w).expect("w").convert::<f32>().try_to_vec::<f32>().expect("f32"))
        .collect()
}

fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs()) / f64::from(y.abs()).max(0.1)).fold(0.0, f64::max)
}

#[test]
fn four_micro_batches_of_one_equal_one_batch_of_four() {
    let seqs = random_sequences(8, 1);
    let run = |mbs: usize, gas: usize| {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut r = recipe(tmp.path());
        r.micro_batch_size = mbs;
        r.gradient_accumulation_steps = gas;
        r.max_steps = 2;
        r.shuffle = false;
        r.lr_scheduler = SchedulerKind::Constant;
        r.warmup_steps = Some(0);
        let mut t = trainer(&r, data(seqs.clone(), None));
        let m: Vec<_> = (0..2).map(|_| t.step().expect("step")).collect();
        (m, weights(t.model()))
    };
    let (a, wa) = run(1, 4);
    let (b, wb) = run(4, 1);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.target_tokens, y.target_tokens);
        assert!((x.loss - y.loss).abs() < 1e-5 * y.loss, "loss {} vs {}", x.loss, y.loss);
        assert!((x.grad_norm - y.grad_norm).abs() < 1e-4 * y.grad_norm, "grad norm {} vs {}", x.grad_norm, y.grad_norm);
    }
    let d = max_rel(&wa, &wb);
    // Multi-threaded GEMMs sum in a different order for batch 1 and batch 4, and AdamW's first
    // steps (m / sqrt(v) ~ sign(g)) pass f32 rounding of tiny gradients straight through.
    assert!(d < 1e-4, "weights after 2 steps differ by {d:e}");
    // And the loss is a per-token mean, not a sum over micro-batches (the peer bug).
    assert!(a[0].loss < 10.0, "loss {} looks like a sum", a[0].loss);
}

#[test]
fn sharded_micro_batches_equal_one_pass_and_are_deterministic() {
    let seqs = random_sequences(8, 3);
    for lora in [false, true] {
        let run = |shards: usize| {
            let tmp = tempfile::tempdir().expect("tmp");
            let mut r = recipe(tmp.path());
            r.micro_batch_size = 4;
            r.max_steps = 2;
            r.shuffle = false;
            r.cpu_micro_batch_shards = shards;
            if lora {
                r.adapter = Some("lora".into());
                r.lora_r = 4;
                r.learning_rate = 1e-2;
            }
            let mut t = trainer(&r, data(seqs.clone(), None));
            let m: Vec<_> = (0..2).map(|_| t.step().expect("step")).collect();
            // With LoRA the trained weights are the adapter's: compare the merged model.
            (m, weights(&infuse_llama_model::merge_lora(t.model().clone())))
        };
        let (one, w1) = run(1);
        let (two, w2) = run(2);
        let (three, w3) = run(3); // uneven shards: 2 + 1 + 1 sequences
        let (two_again, w2_again) = run(2);
        for ((a, b), c) in one.iter().zip(&two).zip(&three) {
            assert_eq!((a.target_tokens, a.tokens), (b.target_tokens, b.tokens));
            for x in [b, c] {
                assert!((x.loss - a.loss).abs() < 1e-5 * a.loss, "lora={lora}: loss {} vs {}", x.loss, a.loss);
                assert!((x.grad_norm - a.grad_norm).abs() < 1e-4 * a.grad_norm, "lora={lora}: grad norm {} vs {}", x.grad_norm, a.grad_norm);
            }
        }
        for w in [&w2, &w3] {
            let d = max_rel(w, &w1);
            assert!(d < 1e-4, "lora={lora}: weights differ by {d:e}");
        }
        // Gradients are summed in shard order, whatever thread finishes first.
        assert_eq!(w2, w2_again, "lora={lora}: two sharded runs differ");
        assert!(two.iter().zip(&two_again).all(|(a, b)| a.loss.to_bits() == b.loss.to_bits()));
    }
}

#[test]
fn resumed_run_continues_exactly() {
    for lora in [false, true] {
        let seqs = random_sequences(10, 2);
        let dir_a = tempfile::tempdir().expect("tmp");
        let mut r = recipe(dir_a.path());
        r.micro_batch_size = 2;
        r.gradient_accumulation_steps = 2;
        r.max_steps = 6;
        r.save_steps = 3;
        if lora {
            r.adapter = Some("lora".into());
            r.lora_r = 4;
            r.lora_dropout = 0.1;
            r.learning_rate = 1e-2;
        }
        let full = trainer(&r, data(seqs.clone(), None)).run().expect("uninterrupted run");
        assert_eq!(full.losses.len(), 6);
        let ckpt = dir_a.path().join("checkpoint-3");
        assert!(ckpt.join("trainer_state.json").is_file() && ckpt.join("optimizer.safetensors").is_file());
        assert!(ckpt.join(if lora { "adapter/adapter_model.safetensors" } else { "model/model.safetensors" }).is_file());
        let dir_b = tempfile::tempdir().expect("tmp");
        let mut r2 = r.clone();
        r2.output_dir = dir_b.path().to_owned();
        r2.resume_from_checkpoint = Some(ResumeFrom::Path(ckpt));
        let resumed = trainer(&r2, data(seqs, None)).run().expect("resumed run");
        assert_eq!(resumed.losses.len(), 3, "steps 4..6");
        for (x, y) in resumed.losses.iter().zip(&full.losses[3..]) {
            assert_eq!(x.to_bits(), y.to_bits(), "lora={lora}: resumed loss {x} vs uninterrupted {y} (must be bitwise equal)");
        }
        let final_a = if lora { "adapter" } else { "model" };
        let a = std::fs::read(dir_a.path().join(final_a).join(if lora { "adapter_model.safetensors" } else { "model.safetensors" })).expect("a");
        let b = std::fs::read(dir_b.path().join(final_a).join(if lora { "adapter_model.safetensors" } else { "model.safetensors" })).expect("b");
        assert!(a == b, "lora={lora}: final weights of the resumed run differ from the uninterrupted run");
        // The resumed run's metrics.jsonl starts from the checkpoint's step + 1 in its own dir.
        let lines = read_metrics(&dir_b.path().join("metrics.jsonl")).expect("metrics");
        assert_eq!(lines.first().map(MetricsLine::step), Some(4));
    }
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    r.max_steps = 5;
    let mut t = trainer(&r, data(random_sequences(6, 3), None));
    t.step().expect("step 1");
    t.step().expect("step 2");
    let good = t.save_checkpoint().expect("checkpoint");
    // Poison one embedding value.
    t.map_model(|mut m| {
        let w = m.embed_tokens.weight.val();
        let [v, d] = w.dims();
        let mut data = w.inner().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
        data[5] = f32::NAN;
        let poisoned = Tensor::<2>::from_data(TensorData::new(data, [v, d]), &Device::flex());
        m.embed_tokens.weight = Param::from_tensor(poisoned);
        m.train()
    });
    let err = t.run().expect_err("NaN must stop the run");
    match &err {
        Error::NonFinite { what, step, last_checkpoint, .. } => {
            assert_eq!(what, "loss");
            assert_eq!(*step, 3);
            assert_eq!(last_checkpoint.as_deref(), Some(good.as_path()));
        }
        other => panic!("unexpected error {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("step 3") && msg.contains("checkpoint-2"), "{msg}");
    assert!(!tmp.path().join("checkpoint-3").exists());
    assert!(good.join("model/model.safetensors").is_file());
    let report = std::fs::read_to_string(tmp.path().join("report.html")).expect("report");
    assert!(report.contains("failed"), "the report records the failure");
}

#[test]
fn tiny_model_memorizes_a_few_sequences() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    r.learning_rate = 1e-2;
    r.micro_batch_size = 4;
    r.max_steps = 60;
    r.warmup_steps = Some(5);
    r.shuffle = false;
    let report = trainer(&r, data(random_sequences(4, 4), None)).run().expect("run");
    let first = report.losses[0];
    let last = *report.losses.last().expect("losses");
    assert!(first > 5.0 && last < 0.05, "loss {first} -> {last}");
}

#[test]
fn early_stopping_and_best_checkpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    // A learning rate of 0 never improves the eval loss: patience 2 stops after 3 evaluations.
    r.learning_rate = 0.0;
    r.max_steps = 20;
    r.eval_steps = 1;
    r.early_stopping_patience = Some(2);
    r.load_best_model_at_end = true;
    r.save_total_limit = Some(1);
    let report = trainer(&r, data(random_sequences(6, 5), Some(random_sequences(3, 6)))).run().expect("run");
    assert!(report.stopped_early);
    assert_eq!(report.steps, 3);
    assert_eq!(report.best_step, Some(1));
    assert_eq!(report.eval_losses.len(), 3);
    assert!(tmp.path().join("checkpoint-1").is_dir(), "the best checkpoint is kept");
    let lines = read_metrics(&tmp.path().join("metrics.jsonl")).expect("metrics");
    assert_eq!(lines.iter().filter(|l| matches!(l, MetricsLine::Eval(_))).count(), 3);
}

#[test]
fn full_run_writes_the_documented_layout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    r.max_steps = 4;
    r.save_steps = 2;
    r.eval_steps = 2;
    let report = trainer(&r, data(random_sequences(8, 7), Some(random_sequences(2, 8)))).run().expect("run");
    let out = tmp.path();
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    let steps: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).filter(|v: &serde_json::Value| v.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 4);
    for (i, v) in steps.iter().enumerate() {
        assert_eq!(v["step"].as_u64(), Some(i as u64 + 1));
        for key in ["loss", "lr", "grad_norm", "tokens_per_s"] {
            assert!(v[key].as_f64().is_some_and(f64::is_finite), "{key} in {v}");
        }
    }
    assert_eq!(steps[0]["lr"].as_f64(), Some(0.0), "warm-up starts at 0 (HF LambdaLR)");
    for d in ["checkpoint-2", "checkpoint-4"] {
        for f in ["trainer_state.json", "optimizer.safetensors", "recipe.toml", "model/model.safetensors", "model/config.json"] {
            assert!(out.join(d).join(f).is_file(), "{d}/{f}");
        }
    }
    assert_eq!(report.model_dir.as_deref(), Some(out.join("model").as_path()));
    let p = infuse_llama_model::load_pretrained(out.join("model"), &LoadOptions::default()).expect("final model loads with its tokenizer");
    assert_eq!(p.model.config().vocab_size, 320);
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("<svg") && html.contains("polyline"), "loss curve");
    assert!(!out.join(".checkpoint-2.tmp").exists());
}

#[test]
fn lora_run_writes_adapter_and_merged_model_that_agree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    r.max_steps = 5;
    r.learning_rate = 2e-2;
    r.adapter = Some("lora".into());
    r.lora_r = 4;
    r.lora_alpha = 8.0;
    r.lora_target_modules = infuse_trainer_core::TargetList::List(vec!["q_proj".into(), "v_proj".into(), "down_proj".into()]);
    r.merge_lora = true;
    let report = trainer(&r, data(random_sequences(6, 9), None)).run().expect("run");
    let adapter = report.adapter_dir.expect("adapter");
    let merged = report.merged_dir.expect("merged");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(adapter.join("adapter_config.json")).expect("cfg")).expect("json");
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 4);
    let (base_model, _) = load_model(base(), &LoadOptions::default()).expect("base");
    let (with_adapter, _) = load_peft_adapter(base_model, &adapter).expect("adapter loads");
    let (merged_model, _) = load_model(&merged, &LoadOptions::default()).expect("merged loads");
    let ids = ids_tensor(&[5, 17, 40, 99, 3, 250], &Device::flex());
    let a = with_adapter.forward(ids.clone(), &ForwardOptions::default(), None).expect("fwd").into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
    let b = merged_model.forward(ids.clone(), &ForwardOptions::default(), None).expect("fwd").into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
    let (base_again, _) = load_model(base(), &LoadOptions::default()).expect("base");
    let c = base_again.forward(ids, &ForwardOptions::default(), None).expect("fwd").into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let moved = a.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "merged model differs from base + adapter by {diff}");
    assert!(moved > 1e-3, "the adapter changed the model ({moved})");
}

#[test]
fn recipes_reject_unknown_keys_and_apply_overrides() {
    let text = "stage = \"sft\"\nbase_model = \"m\"\noutput_dir = \"o\"\nlearning_rate = 1e-4\nlora_rnak = 8\n";
    let err = Recipe::from_toml_str(text, "r.toml", &[]).expect_err("typo");
    assert!(err.to_string().contains("lora_rnak"), "{err}");
    let ok = "stage = \"sft\"\nmodel_name_or_path = \"m\"\noutput_dir = \"o\"\nper_device_train_batch_size = 2\ndatasets = [{ path = \"a\" }]\n";
    let r = Recipe::from_toml_str(ok, "r.toml", &["learning_rate=3e-4".into(), "adapter=lora".into(), "datasets.0.path=b".into(), "lr_scheduler_type=linear".into()])
        .expect("valid");
    assert_eq!(r.micro_batch_size, 2);
    assert_eq!(r.learning_rate, 3e-4);
    assert!(r.is_lora());
    assert_eq!(r.datasets[0].path, PathBuf::from("b"));
    assert_eq!(r.lr_scheduler, SchedulerKind::Linear);
    let bad = Recipe::from_toml_str(ok, "r.toml", &["micro_batch_size=0".into()]).expect_err("zero batch");
    assert!(bad.to_string().contains("micro_batch_size"), "{bad}");
    let bad = Recipe::from_toml_str(ok, "r.toml", &["lora_target_modules=[\"q_proj\", \"qkv\"]".into(), "adapter=lora".into()]).expect_err("target");
    assert!(bad.to_string().contains("qkv"), "{bad}");
    let bad = Recipe::from_toml_str(ok, "r.toml", &["noequals".into()]).expect_err("override syntax");
    assert!(bad.to_string().contains("key=value"), "{bad}");
}

#[test]
fn bf16_training_keeps_f32_master_weights() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = recipe(tmp.path());
    r.bf16 = infuse_trainer_core::Bf16::Flag(true);
    r.max_steps = 8;
    r.save_steps = 8;
    r.learning_rate = 1e-2;
    r.micro_batch_size = 4;
    r.shuffle = false;
    let (model, hf) = infuse_trainer_core::load_base_model(&r).expect("model");
    assert_eq!(model.embed_tokens.weight.val().dtype(), burn::tensor::DType::BF16);
    let report = Trainer::new(r, model, hf, data(random_sequences(4, 11), None)).expect("trainer").run().expect("run");
    assert!(report.losses.iter().all(|l| l.is_finite()));
    assert!(report.final_loss.expect("loss") < report.losses[0] - 0.5, "bf16 training learns: {:?}", report.losses);
    let opt = infuse_llama_model::SafetensorsCheckpoint::open_file(&tmp.path().join("checkpoint-8/optimizer.safetensors")).expect("optimizer");
    assert!(opt.names().iter().any(|n| n.ends_with("::master")), "f32 master copies are saved");
    let cfg = std::fs::read_to_string(tmp.path().join("model/config.json")).expect("config");
    assert!(cfg.contains("bfloat16"), "final model saved in the training dtype");
}

#[test]
fn yaml_recipes_equal_their_toml_twin() {
    // An axolotl-style YAML recipe (LoRA, list of target modules, datasets as a list of maps).
    let yaml = "stage: sft\nbase_model: models/base\noutput_dir: runs/x\nseed: 7\nadapter: lora\nlora_r: 16\nlora_alpha: 32\n\
                lora_dropout: 0.05\nlora_target_modules:\n  - q_proj\n  - v_proj\nlearning_rate: 0.0002\nwarmup_ratio: 0.1\n\
                num_epochs: 3\nmicro_batch_size: 2\ngradient_accumulation_steps: 4\nsequence_len: 512\nsample_packing: true\n\
                datasets:\n  - path: data/chat.jsonl\n    type: chat\nval_set_size: 0.05\nlora_model_dir: ~\n";
    let toml = "stage = \"sft\"\nbase_model = \"models/base\"\noutput_dir = \"runs/x\"\nseed = 7\nadapter = \"lora\"\nlora_r = 16\n\
                lora_alpha = 32\nlora_dropout = 0.05\nlora_target_modules = [\"q_proj\", \"v_proj\"]\nlearning_rate = 0.0002\n\
                warmup_ratio = 0.1\nnum_epochs = 3\nmicro_batch_size = 2\ngradient_accumulation_steps = 4\nsequence_len = 512\n\
                sample_packing = true\ndatasets = [{ path = \"data/chat.jsonl\", type = \"chat\" }]\nval_set_size = 0.05\n";
    let from_yaml = Recipe::from_yaml_str(yaml, "r.yaml", &["learning_rate=1e-4".into()]).expect("yaml");
    let from_toml = Recipe::from_toml_str(toml, "r.toml", &["learning_rate=1e-4".into()]).expect("toml");
    assert_eq!(from_yaml.to_toml().expect("ser"), from_toml.to_toml().expect("ser"));
    assert_eq!(from_yaml.learning_rate, 1e-4, "overrides apply to YAML recipes too");
    let err = Recipe::from_yaml_str("stage: sft\nbase_model: m\noutput_dir: o\nlora_rnak: 8\n", "r.yaml", &[]).expect_err("typo");
    assert!(err.to_string().contains("lora_rnak") && err.to_string().contains("r.yaml"), "{err}");
    let err = Recipe::from_yaml_str("stage: sft\n  base_model: [\n", "bad.yaml", &[]).expect_err("syntax");
    assert!(err.to_string().contains("bad.yaml") && err.to_string().contains("line"), "{err}");
    // `Recipe::load` picks the format from the extension.
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("r.yml"), yaml).expect("write");
    let loaded = Recipe::load(&tmp.path().join("r.yml"), &[]).expect("load");
    assert_eq!(loaded.datasets[0].path, tmp.path().join("data/chat.jsonl"));
}
