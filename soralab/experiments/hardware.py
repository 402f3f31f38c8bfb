"""Where a run trains and in which precision: detected from the machine, never assumed.

``precision="auto"`` picks bf16 autocast where bf16 is faster than fp32: on a CUDA GPU that supports it, and on a
CPU with AMX tiles. A CPU with AVX512-BF16 alone is not enough: on this project's 2-core Xeon (AVX512-BF16, no AMX
visible to torch) a MiniLM+LoRA train step under bf16 autocast took 1.85x the fp32 time (batch 32, 32-128 tokens;
``benchmarks/speed_results.md``), so ``auto`` stays fp32 there. ``precision="bf16"`` or ``"fp32"`` forces either.

``attention_kernel``: in bf16 on a CPU, attention runs on SDPA's math kernel (plain matrix products, which AMX
speeds up) instead of its fused CPU flash-attention kernel. On a 2-core AMX Xeon (torch 2.13) a MiniLM+LoRA train
step in bf16 with the model's dropout off took 954 ms with the fused kernel and 542 ms with the math one (batch 32 x
80 tokens; ``python benchmarks/speed.py --attention``, ``benchmarks/speed_results.md``). With dropout on, SDPA
already takes the math path; fp32 keeps the fused kernel, which was faster there (774 vs 849 ms). The kernels
compute the same attention.
"""

from __future__ import annotations

import contextlib
import os
import platform

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def world_size() -> int:
    """Processes that train together: torchrun and accelerate launch set ``WORLD_SIZE``; 1 without a launcher. Each
    step then takes a batch per process, so a run has that many times fewer steps."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def replicas(device: str = "auto") -> int:
    """Batches in one optimiser step, as the Trainer takes them: one per process under a launcher (``world_size``);
    without one, on a machine with several GPUs, one per GPU (the Trainer's DataParallel); else 1."""
    if world_size() > 1 or use_cpu(device):
        return world_size()
    return max(1, torch.cuda.device_count())


def use_cpu(device: str = "auto") -> bool:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def cpu_bf16_is_fast() -> bool:
    """True when the CPU has AMX tiles, whose bf16 matrix products beat fp32 (torch.cpu, present since torch 2.2)."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(precision: str = "auto", device: str = "auto") -> str:
    """``"auto"`` -> ``"bf16"`` where it is faster than fp32, else ``"fp32"``; explicit values are checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cpu = use_cpu(device)
    if precision == "fp16" and cpu:
        raise ValueError("precision='fp16' needs a CUDA GPU; on a CPU use 'bf16' or 'fp32'")
    if precision != "auto":
        return precision
    if cpu:
        return "bf16" if cpu_bf16_is_fast() else "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp32"


def environment(device: str = "auto") -> dict[str, str]:
    """What a result was produced with: package versions, the device and ``replicas`` (batches per optimiser step),
    saved beside every GLUE result."""
    import transformers

    from .. import __version__

    if use_cpu(device):
        where = f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    else:
        where = f"cuda: {torch.cuda.get_device_name()}"
    return {"soralab": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": where, "replicas": str(replicas(device))}


def attention_kernel(precision: str, device: str = "auto") -> contextlib.AbstractContextManager:
    """The context to train and evaluate in: SDPA's math kernel for bf16 on a CPU (see the module's docstring),
    else no change."""
    if precision == "bf16" and use_cpu(device):
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()
