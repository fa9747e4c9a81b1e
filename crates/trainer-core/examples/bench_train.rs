//! Training throughput of the shared loop on a real model: full fine-tune and LoRA (r = 8 on the
//! seven projections), f32, AdamW, seeded random token ids (the same work as
//! `shared/bench/torch_reference.py`).
//!
//! `cargo run --release -p infuse-trainer-core --example bench_train -- MODEL_DIR [--batch 4]
//! [--seq 256] [--steps 3] [--mode both|full|lora] [--ce-chunk ROWS]`
//!
//! Prints one JSON object: `full_ft_tokens_per_s`, `lora_tokens_per_s` (batch × seq over the median
//! step time, after one warm-up step), `peak_rss_bytes` (of the process: run one mode per process
//! for per-mode memory), and the time split of the last step of each mode.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use infuse_llama_model::{HugePageAlloc, LoadOptions, load_model};
use infuse_trainer_core::{InMemorySource, Recipe, SchedulerKind, Sequence, SplitMix64, Stage, StepTimings, TrainData, Trainer, memory_usage};

/// As the `infuse` binary: huge pages for large blocks.
#[global_allocator]
static ALLOC: HugePageAlloc = HugePageAlloc;

struct Args {
    model: String,
    batch: usize,
    seq: usize,
    steps: usize,
    mode: String,
    ce_chunk: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args { model: String::new(), batch: 4, seq: 256, steps: 3, mode: "both".into(), ce_chunk: None };
    while let Some(x) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a number"))
        };
        match x.as_str() {
            "--batch" => a.batch = num("--batch")?,
            "--seq" => a.seq = num("--seq")?,
            "--steps" => a.steps = num("--steps")?,
            "--mode" => a.mode = it.next().ok_or("--mode needs a value")?,
            "--ce-chunk" => a.ce_chunk = Some(num("--ce-chunk")?),
            _ if a.model.is_empty() => a.model = x,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if a.model.is_empty() {
        return Err("usage: bench_train MODEL_DIR [--batch 4] [--seq 256] [--steps 3] [--mode both|full|lora]".into());
    }
    Ok(a)
}

fn run(a: &Args, lora: bool) -> Result<(f64, StepTimings), Box<dyn std::error::Error>> {
    let (model, hf) = load_model(&a.model, &LoadOptions::default())?;
    let vocab = model.config().vocab_size;
    let mut rng = SplitMix64(0);
    let seqs: Vec<Sequence> = (0..(a.steps + 1) * a.batch).map(|_| Sequence::plain((0..a.seq).map(|_| rng.below(vocab) as u32).collect())).collect();
    let out = std::env::temp_dir().join(format!("infuse-bench-train-{}", std::process::id()));
    let mut r = Recipe::new(Stage::Cpt, &a.model, &out);
    r.micro_batch_size = a.batch;
    r.max_steps = (a.steps + 1) as i64;
    r.learning_rate = 1e-5;
    r.lr_scheduler = SchedulerKind::Constant;
    r.warmup_steps = Some(0);
    r.progress_bar = Some(false);
    r.sequence_len = a.seq;
    r.ce_chunk_size = a.ce_chunk;
    r.cpu_micro_batch_shards = std::env::var("SHARDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if lora {
        r.adapter = Some("lora".into());
        r.lora_r = 8;
        r.lora_alpha = 16.0;
    }
    let data = TrainData { train: Arc::new(InMemorySource::new("random", seqs)), eval: None, replay: None, block_diagonal: false, pad_id: 0 };
    let mut t = Trainer::new(r, model, hf, data)?;
    t.step()?; // warm-up
    let mut times = Vec::with_capacity(a.steps);
    for _ in 0..a.steps {
        let start = Instant::now();
        let m = t.step()?;
        times.push(start.elapsed().as_secs_f64());
        eprintln!("{} step {}: loss {:.4} {:.1} tok/s {:?}", if lora { "lora" } else { "full" }, m.step, m.loss, m.tokens_per_s, t.last_timings());
    }
    // The median step, as the PyTorch peers report.
    times.sort_by(f64::total_cmp);
    let tps = (a.batch * a.seq) as f64 / times[times.len() / 2];
    let _ = std::fs::remove_dir_all(&out);
    Ok((tps, t.last_timings()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let full = if a.mode != "lora" { Some(run(&a, false)?) } else { None };
    let lora = if a.mode != "full" { Some(run(&a, true)?) } else { None };
    let json = serde_json::json!({
        "batch": a.batch,
        "seq": a.seq,
        "steps": a.steps,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "full_ft_tokens_per_s": full.map(|f| f.0),
        "lora_tokens_per_s": lora.map(|l| l.0),
        "peak_rss_bytes": memory_usage().1,
        "full_ft_last_step": full.map(|f| f.1),
        "lora_last_step": lora.map(|l| l.1),
    });
    println!("{json}");
    Ok(())
}
