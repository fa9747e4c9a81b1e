#!/usr/bin/env python3
"""PyTorch peer for `cargo xtask bench train`: one training mode per process, so peak memory is
per mode.

Usage: torch_train.py MODEL_DIR --mode full|lora [--seq 256] [--batch 4] [--steps 3] [--threads 2]
       [--lora-r 8] [--lora-alpha 16]

The work matches ../shared/bench/torch_reference.py's training step (seeded random ids,
labels = ids, AdamW lr 1e-5, f32, median step time after one warm-up step); `lora` wraps the
model with peft LoRA on q/k/v/o/gate/up/down (dropout 0), the configuration infuse's bench uses.
Prints one JSON object: train_tokens_per_s, peak_rss_bytes (ru_maxrss of this process).
"""
import argparse, json, resource, statistics, time

import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model_dir")
p.add_argument("--mode", choices=["full", "lora"], required=True)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--batch", type=int, default=4)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--lora-r", type=int, default=8)
p.add_argument("--lora-alpha", type=float, default=16.0)
a = p.parse_args()

torch.manual_seed(0)
torch.set_num_threads(a.threads)
model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
vocab = model.config.vocab_size
ids = torch.randint(0, vocab, (a.batch, a.seq))
if a.mode == "lora":
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, cfg)
model.train()
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-5)

def train_step():
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    opt.step(); opt.zero_grad(set_to_none=True)

train_step()  # warm-up
times = []
for _ in range(a.steps):
    t = time.perf_counter(); train_step(); times.append(time.perf_counter() - t)
print(json.dumps({
    "torch": torch.__version__, "mode": a.mode, "threads": a.threads, "seq": a.seq, "batch": a.batch,
    "train_tokens_per_s": a.batch * a.seq / statistics.median(times),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
