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

CPU precision and the whole ``run_glue`` path (``--cpu-precision``): the same small MRPC run (640 training
pairs, one epoch, the whole dev set evaluated once) in fp32, bf16 autocast, fp32 on one thread, fp32 with
``torch.compile`` (all four with the checkpoint's dropout), and fp32 and bf16 with the model's own dropout off
(``model_dropout=0.0``, the default since 2026-11-28; bf16 is ``auto``'s choice on a CPU with AMX), each in a fresh
process,
interleaved over ``--rounds`` rounds; it reports each part of the run (loading, tokenization, training, evaluation)
and its ratio to fp32, plus tokenization with and without soralab's own dataset fingerprint. Needs
``SORALAB_GLUE_DIR``; about 12 minutes on 2 cores; run it alone.
``--dropout`` times a train step with the model's own dropout at 0.1, with the attention probabilities' dropout
off, and with all of it off, and profiles the share of a step spent drawing dropout masks (about 2 minutes).
``--matmul`` (also printed after ``--cpu-precision``) times bare matrix products of MiniLM's shapes in fp32 and in
bf16: whether this CPU multiplies bf16 faster at all, before any framework overhead (seconds).

    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/speed.py --cpu-precision
    python benchmarks/speed.py --matmul
    python benchmarks/speed.py --dropout --batch 32 --seq 80
    python benchmarks/speed.py --attention --batch 32 --seq 80 --reps 6

``--attention`` times a train step in fp32 and bf16, dropout on and off, with SDPA's fused CPU kernel allowed and
with its math kernel forced: why bf16 on a CPU trains on the math kernel (about 3 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from peft import LoraConfig, get_peft_model

import soralab
from soralab.experiments.models import TARGETS, load_classifier

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


# name: (run_glue options, torch threads). "fp32" is plain fp32 with the checkpoint's dropout, the default before
# 2026-11-28 and every ratio's reference; the last two rows are today's default without AMX (fp32) and with it.
CHECKPOINT = {"model_dropout": None}
WHOLE_RUN = {"fp32": ({"precision": "fp32", **CHECKPOINT}, 2),
             "bf16 autocast": ({"precision": "bf16", **CHECKPOINT}, 2),
             "fp32, 1 thread": ({"precision": "fp32", **CHECKPOINT}, 1),
             "fp32 + torch.compile": ({"precision": "fp32", "torch_compile": True, **CHECKPOINT}, 2),
             "fp32, model dropout off (the default)": ({"precision": "fp32", "model_dropout": 0.0}, 2),
             "bf16 autocast, model dropout off": ({"precision": "bf16", "model_dropout": 0.0}, 2)}
PARTS = ("load", "tokenize", "train", "evaluate")


def one_run(name: str) -> None:
    """Child process: one small MRPC run with setting ``name``; prints its timings as JSON."""
    from soralab.experiments.train import run_glue

    options, threads = WHOLE_RUN[name]
    torch.set_num_threads(threads)
    start = time.perf_counter()
    res = run_glue("mrpc", "lora", max_train_samples=640, num_train_epochs=1, progress=False, **options)
    print(json.dumps({**res.timings, "wall": time.perf_counter() - start, "score": res.score}))


def tokenize_cost() -> tuple[float, float]:
    """Seconds to tokenize MRPC (train + dev) with soralab's fingerprint, and with datasets' default hashing."""
    from soralab.experiments import glue

    data = glue.load_glue("mrpc")
    _, tokenizer = load_classifier("minilm", num_labels=2)
    t0 = time.perf_counter()
    glue.tokenize(data, tokenizer, "mrpc")
    t1 = time.perf_counter()
    for ds in data.values():  # the same work, letting `map` fingerprint the function (it hashes the tokenizer)
        ds.map(lambda b: tokenizer(b["sentence1"], b["sentence2"], truncation=True, max_length=128), batched=True)
    return t1 - t0, time.perf_counter() - t1


# (tokens, in, out): a batch of 32 x 64 tokens through MiniLM's attention projections, FFN in and FFN out
MATMULS = ((2048, 384, 384), (2048, 384, 1536), (2048, 1536, 384))


def matmul_cost(reps: int = 20) -> None:
    """Median ms of ``x @ w`` per shape in fp32 and bf16 (both operands in the dtype, no autocast)."""
    print(f"matrix products, median of {reps} (torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}, AMX {torch.cpu._is_amx_tile_supported()}):")
    print("| tokens x in x out | fp32 (ms) | bf16 (ms) | bf16 / fp32 |\n|---|---:|---:|---:|")
    for m, k, n in MATMULS:
        ms = {}
        for dtype in (torch.float32, torch.bfloat16):
            x, w = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            times = []
            for _ in range(reps + 2):
                t0 = time.perf_counter()
                x @ w
                times.append(time.perf_counter() - t0)
            ms[dtype] = 1e3 * statistics.median(times[2:])
        print(f"| {m} x {k} x {n} | {ms[torch.float32]:.2f} | {ms[torch.bfloat16]:.2f} | "
              f"{ms[torch.bfloat16] / ms[torch.float32]:.2f} |")


def dropout_cost(batch: int, seq: int, reps: int) -> None:
    """Train-step time of MiniLM + soralab LoRA with the model's own dropout at the checkpoint's 0.1, with the
    attention probabilities' dropout off, and with all of it off (interleaved reps), and the share of a step's CPU
    time that drawing dropout masks (``aten::bernoulli_``) takes."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    base, tokenizer = load_classifier("minilm", num_labels=2)
    model, opt = build("soralab-lora", base, 8)  # lora_dropout 0: every nn.Dropout left is the model's own
    model.train()
    ids = torch.randint(1000, tokenizer.vocab_size, (batch, seq))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (batch,))}
    drops = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}
    settings = {"checkpoint (0.1 everywhere)": lambda n: 0.1,
                "attention probabilities off": lambda n: 0.0 if "attention.self" in n else 0.1,
                "all off (model_dropout=0.0)": lambda n: 0.0}

    def use(name):
        for n, m in drops.items():
            m.p = settings[name](n)

    times = {name: [] for name in settings}
    for name in settings:  # warm-up
        use(name)
        train_step(model, opt, data, "cpu")
    for _ in range(reps):
        for name in settings:
            use(name)
            times[name].append(train_step(model, opt, data, "cpu"))
    use("checkpoint (0.1 everywhere)")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            train_step(model, opt, data, "cpu")
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    masks = sum(e.self_cpu_time_total for e in events if e.key == "aten::bernoulli_")
    med = {n: statistics.median(t) for n, t in times.items()}
    first = med["checkpoint (0.1 everywhere)"]
    print(f"MiniLM + soralab LoRA r=8, batch {batch} x {seq} tokens, {len(drops)} dropout modules, median of {reps} "
          f"interleaved steps, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| model dropout | median step (ms) | step / checkpoint |\n|---|---:|---:|")
    for n, m in med.items():
        print(f"| {n} | {1e3 * m:.0f} | {m / first:.2f} |")
    print(f"drawing dropout masks (aten::bernoulli_): {100 * masks / total:.1f}% of a step's self CPU time "
          f"(3 profiled steps, dropout at 0.1)")


def attention_cost(batch: int, seq: int, reps: int) -> None:
    """Train-step time in fp32 and bf16 autocast, the model's dropout at 0.1 and off, with SDPA free to pick its
    fused CPU kernel and held to its math kernel (``soralab.experiments.hardware.attention_kernel``); interleaved."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    base, tokenizer = load_classifier("minilm", num_labels=2)
    model, opt = build("soralab-lora", base, 8)
    model.train()
    ids = torch.randint(1000, tokenizer.vocab_size, (batch, seq))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (batch,))}
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    settings = [(prec, p, kernel) for prec in ("fp32", "bf16") for p in (0.1, 0.0) for kernel in ("fused", "math")]

    def step(prec, p, kernel):
        for m in drops:
            m.p = p
        with (sdpa_kernel(SDPBackend.MATH) if kernel == "math" else contextlib.nullcontext()), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
            return train_step(model, opt, data, "cpu")

    times = {s: [] for s in settings}
    for s in settings:  # warm-up
        step(*s)
    for _ in range(reps):
        for s in settings:
            times[s].append(step(*s))
    first = statistics.median(times[settings[0]])
    print(f"MiniLM + soralab LoRA r=8, batch {batch} x {seq} tokens, median of {reps} interleaved steps, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, AMX {torch.cpu._is_amx_tile_supported()}")
    print("| precision | model dropout | SDPA kernel | median step (ms) | step / first row |\n|---|---:|---|---:|---:|")
    for (prec, p, kernel), ts in times.items():
        print(f"| {prec} | {p:g} | {kernel if p == 0 or kernel == 'math' else 'fused allowed (dropout: math)'} | "
              f"{1e3 * statistics.median(ts):.0f} | {statistics.median(ts) / first:.2f} |")


def cpu_precision(rounds: int) -> None:
    runs = {name: [] for name in WHOLE_RUN}
    for _ in range(rounds):
        for name in WHOLE_RUN:
            out = subprocess.run([sys.executable, __file__, "--one-run", name], capture_output=True, text=True,
                                 check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {n: {k: statistics.median(r[k] for r in rs) for k in (*PARTS, "wall", "score")} for n, rs in runs.items()}
    base = med["fp32"]
    print(f"MRPC, LoRA r=8 on all six linears of MiniLM, 640 training pairs (20 steps of 32), 1 epoch, 408 dev pairs; "
          f"median of {rounds} interleaved rounds, each run in its own process; torch {torch.__version__}; "
          f"AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}, AMX {torch.cpu._is_amx_tile_supported()}")
    print("| setting | " + " | ".join(f"{p} (s)" for p in PARTS) + " | whole run (s) | whole / fp32 | train / fp32 "
          "| eval / fp32 | dev F1 |")
    print("|---|" + "---:|" * (len(PARTS) + 5))
    for name, m in med.items():
        print(f"| {name} | " + " | ".join(f"{m[p]:.1f}" for p in PARTS) + f" | {m['wall']:.1f} | "
              f"{m['wall'] / base['wall']:.2f} | {m['train'] / base['train']:.2f} | "
              f"{m['evaluate'] / base['evaluate']:.2f} | {m['score']:.2f} |")
    own, default = tokenize_cost()
    print(f"\ntokenizing MRPC (4,076 pairs): {own:.2f} s with soralab's fingerprint, {default:.2f} s letting datasets "
          f"hash the tokenizer\n")
    matmul_cost()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cpu-precision", action="store_true", help="time the whole run_glue path per CPU setting")
    ap.add_argument("--rounds", type=int, default=2, help="--cpu-precision: interleaved rounds (default 2)")
    ap.add_argument("--matmul", action="store_true", help="time bare fp32 and bf16 matrix products of MiniLM's shapes")
    ap.add_argument("--dropout", action="store_true", help="train-step time with the model's own dropout on / off "
                    "(uses --batch, --seq, --reps)")
    ap.add_argument("--attention", action="store_true", help="train-step time per precision, model dropout and SDPA "
                    "kernel (fused or math; uses --batch, --seq, --reps)")
    ap.add_argument("--one-run", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_run:
        return one_run(args.one_run)
    if args.cpu_precision:
        return cpu_precision(args.rounds)
    if args.matmul:
        return matmul_cost()
    if args.dropout:
        return dropout_cost(args.batch, args.seq, args.reps)
    if args.attention:
        return attention_cost(args.batch, args.seq, args.reps)

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
