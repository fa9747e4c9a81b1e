//! CPT on token stores: training on a small "domain" corpus lowers the held-out perplexity;
//! replay mixing and block-diagonal attention run; non-store datasets are rejected.

use std::path::{Path, PathBuf};

use infuse_data_prep::tokstore::{StoreSpec, TokenStoreWriter};
use infuse_trainer_core::{DatasetSpec, DatasetType, Recipe, SchedulerKind, SplitMix64, Stage, Trainer};

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/gqa_tied")
}

/// A toy domain language: each token is followed by `(7t + 3) mod 60 + 20` nine times out of ten.
/// Sequences of 48 tokens packed from documents of 12..24 tokens.
fn write_store(dir: &Path, n: usize, seed: u64) {
    let spec = StoreSpec {
        kind: "cpt".into(),
        split: "train".into(),
        tokenizer: "tiny".into(),
        vocab_size: 320,
        seq_len: 48,
        seed,
        has_loss_mask: false,
    };
    let mut w = TokenStoreWriter::create(dir, spec).expect("writer");
    let mut rng = SplitMix64(seed);
    for _ in 0..n {
        let mut tokens = Vec::new();
        let mut starts = Vec::new();
        while tokens.len() < 48 {
            starts.push(tokens.len() as u32);
            let len = (12 + rng.below(13)).min(48 - tokens.len());
            let mut t = 20 + rng.below(60) as u32;
            for _ in 0..len {
                tokens.push(t);
                t = if rng.below(10) == 0 { 20 + rng.below(60) as u32 } else { (7 * t + 3) % 60 + 20 };
            }
        }
        w.push(&tokens, None, &starts).expect("push");
    }
    w.finish(false, serde_json::Map::new()).expect("finish");
}

fn recipe(out: &Path, train: &Path, valid: &Path) -> Recipe {
    let mut r = Recipe::new(Stage::Cpt, base(), out);
    r.datasets = vec![DatasetSpec { path: train.to_owned(), kind: DatasetType::TokenStore }];
    r.eval_datasets = vec![DatasetSpec { path: valid.to_owned(), kind: DatasetType::TokenStore }];
    r.learning_rate = 5e-3;
    r.lr_scheduler = SchedulerKind::Cosine;
    r.warmup_ratio = 0.1;
    r.micro_batch_size = 4;
    r.num_epochs = 3.0;
    r.sequence_len = 48;
    r.progress_bar = Some(false);
    r
}

#[test]
fn cpt_lowers_held_out_perplexity() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train, valid) = (tmp.path().join("train"), tmp.path().join("valid"));
    write_store(&train, 32, 1);
    write_store(&valid, 6, 2);
    let r = recipe(&tmp.path().join("run"), &train, &valid);
    let (model, hf) = infuse_trainer_core::load_base_model(&r).expect("model");
    let data = infuse_trainer_cpt::data(&r, 320, 0).expect("data");
    let mut trainer = Trainer::new(r, model, hf, data).expect("trainer");
    assert_eq!(trainer.total_steps(), 24, "3 epochs of 32 sequences at 4 per step");
    let before = trainer.evaluate().expect("eval").expect("eval data").eval_perplexity;
    let report = trainer.run().expect("run");
    let after = report.eval_losses.last().expect("final eval").1.exp();
    assert!(after < 0.5 * before, "held-out perplexity {before:.1} -> {after:.1}");
    assert!(report.model_dir.expect("model").join("model.safetensors").is_file());
}

#[test]
fn replay_and_block_diagonal_attention_run_through_the_recipe_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train, valid, general) = (tmp.path().join("train"), tmp.path().join("valid"), tmp.path().join("general"));
    write_store(&train, 8, 3);
    write_store(&valid, 2, 4);
    write_store(&general, 5, 5);
    let mut r = recipe(&tmp.path().join("run"), &train, &valid);
    r.replay_datasets = vec![DatasetSpec { path: general, kind: DatasetType::TokenStore }];
    r.replay_ratio = 0.25;
    r.neat_packing = true;
    r.num_epochs = 1.0;
    let report = infuse_trainer_cpt::train(&r).expect("train");
    // 8 domain sequences are 3/4 of the stream: 8 / 0.75 = 10.7 sequences -> 3 steps of 4.
    assert_eq!(report.steps, 3);
    assert!(report.losses.iter().all(|l| l.is_finite()));
}

#[test]
fn cpt_rejects_chat_data_and_wrong_stage() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut r = Recipe::new(Stage::Cpt, base(), tmp.path());
    r.datasets = vec![DatasetSpec { path: tmp.path().join("chat.jsonl"), kind: DatasetType::Chat }];
    let err = infuse_trainer_cpt::data(&r, 320, 0).err().expect("chat data");
    assert!(err.to_string().contains("token stores"), "{err}");
    r.stage = Stage::Sft;
    let err = infuse_trainer_cpt::train(&r).expect_err("stage");
    assert!(err.to_string().contains("expected `cpt`"), "{err}");
}
