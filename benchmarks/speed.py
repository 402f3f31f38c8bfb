"""Train-step cost of PEFT LoRA vs soralab LoRA vs soralab SoRA on the packaged MiniLM.

All six linear layers of every block (query, key, value, attention output, FFN in, FFN out),
r = 8 (SoRA: r_max = 8), the same token batch for all three, one warm-up step each, then
repetitions interleaved (A B C A B C ...) so drift in machine speed hits every method alike.
A step is forward + backward + optimizer step (AdamW for the LoRAs, ProximalAdamW for SoRA).

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` of one step. On CPU there is no allocator
high-water mark, so the script reports the bytes autograd saves for backward in one step (the
activation memory an adapter adds) plus trainable parameters, gradients and Adam state.

    python benchmarks/speed.py                  # ~2 minutes on 2 CPU cores
    python benchmarks/speed.py --reps 30 --batch 16 --seq 128 --device cuda
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model

import soralab
from soralab.models import TARGETS, load_classifier

TARGET_MODULES = TARGETS["bert"]


def build(method: str, base: torch.nn.Module, r: int):
    model = copy.deepcopy(base)
    if method == "peft-lora":
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=TARGET_MODULES,
                                                 modules_to_save=["classifier"]))
        return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    cls = soralab.SoRAConfig if method == "sora" else soralab.LoRAConfig
    model = soralab.inject(model, cls(r=r, lora_alpha=2 * r, target_modules=TARGET_MODULES,
                                      modules_to_save=["classifier"]))
    groups = soralab.param_groups(model, lr=1e-4, xi=1e-3 if method == "sora" else 0.0)
    opt_cls = soralab.ProximalAdamW if method == "sora" else torch.optim.AdamW
    return model, opt_cls(groups, lr=1e-4)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_step(model, opt, batch, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - t0


def memory_bytes(model, opt, batch, device) -> int:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        train_step(model, opt, batch, device)
        return torch.cuda.max_memory_allocated()
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    opt.step()
    state = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                if isinstance(v, torch.Tensor))
    trainable = sum(2 * p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    opt.zero_grad(set_to_none=True)
    return saved + state + trainable


def proximal_time(opt, reps: int = 50) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        opt.proximal_step()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    torch.manual_seed(0)
    base, tokenizer = load_classifier("minilm", num_labels=2)
    ids = torch.randint(1000, tokenizer.vocab_size, (args.batch, args.seq))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (args.batch,))}
    batch = {k: v.to(args.device) for k, v in batch.items()}
    methods = ["peft-lora", "soralab-lora", "sora"]
    runs = {}
    for m in methods:
        model, opt = build(m, base, args.r)
        model.to(args.device).train()
        train_step(model, opt, batch, args.device)  # warm-up (also creates Adam state)
        runs[m] = (model, opt)
    times = {m: [] for m in methods}
    for _ in range(args.reps):
        for m in methods:
            times[m].append(train_step(*runs[m], batch, args.device))
    med = {m: statistics.median(t) for m, t in times.items()}
    mem = {m: memory_bytes(*runs[m], batch, args.device) for m in methods}
    prox = proximal_time(runs["sora"][1])

    print(f"device={args.device} batch={args.batch}x{args.seq} r={args.r} reps={args.reps} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")
    print("| method | trainable params | median step (ms) | IQR (ms) | memory (MB) | time / PEFT | memory / PEFT |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m in methods:
        q = statistics.quantiles(times[m], n=4)
        n = sum(p.numel() for p in runs[m][0].parameters() if p.requires_grad)
        print(f"| {m} | {n:,} | {1e3 * med[m]:.1f} | {1e3 * (q[2] - q[0]):.1f} | {mem[m] / 2**20:.1f} | "
              f"{med[m] / med['peft-lora']:.3f} | {mem[m] / mem['peft-lora']:.3f} |")
    print(f"proximal step: {1e6 * prox:.0f} us = {100 * prox / med['sora']:.3f}% of a SoRA step")


if __name__ == "__main__":
    main()
