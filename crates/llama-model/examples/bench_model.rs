//! Forward and greedy-decode throughput of a model, as JSON (used by `cargo xtask bench model`):
//! `cargo run --release -p infuse-llama-model --example bench_model -- MODEL [--batch 4] [--seq 256] [--gen 64]`.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use infuse_llama_model::burn::prelude::*;
use infuse_llama_model::{ForwardOptions, KvCache, LoadOptions, ids_tensor, load_model};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: bench_model MODEL [--batch B] [--seq T] [--gen N] [--steps S]")?;
    let (batch, seq, n_gen, steps) = (arg(&args, "--batch", 4), arg(&args, "--seq", 256), arg(&args, "--gen", 64), arg(&args, "--steps", 3));
    let (model, _) = load_model(path, &LoadOptions::default())?;
    let device = model.device();
    let vocab = model.config().vocab_size as u64;
    // Seeded pseudo-random ids (LCG), the same every run.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % vocab) as i64
    };
    let ids: Vec<i64> = (0..batch * seq).map(|_| next()).collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [batch, seq]), &device);
    let forward = || -> Result<(), Box<dyn std::error::Error>> {
        let logits = model.forward(input.clone(), &ForwardOptions::default(), None)?;
        let _ = logits.narrow(1, seq - 1, 1).into_data(); // force execution
        Ok(())
    };
    forward()?;
    let mut times = Vec::new();
    for _ in 0..steps {
        let t = Instant::now();
        forward()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let forward_tps = (batch * seq) as f64 / median(times);
    // Greedy decode: 32-token prompt, `n_gen` new tokens with the KV cache.
    let prompt: Vec<u32> = ids[..32].iter().map(|&x| x as u32).collect();
    let decode = || -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        let mut cache = KvCache::new(model.config().num_layers);
        let mut input = ids_tensor(&prompt, &device);
        for _ in 0..n_gen {
            let logits = model.forward_last(input, &ForwardOptions::default(), Some(&mut cache))?;
            let next = logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| format!("{e:?}"))?[0];
            input = ids_tensor(&[next as u32], &device);
        }
        Ok(t.elapsed().as_secs_f64())
    };
    decode()?;
    let decode_tps = n_gen as f64 / median(vec![decode()?, decode()?]);
    println!(
        "{}",
        serde_json::json!({"batch": batch, "seq": seq, "gen": n_gen, "forward_tokens_per_s": forward_tps, "decode_tokens_per_s": decode_tps})
    );
    Ok(())
}
