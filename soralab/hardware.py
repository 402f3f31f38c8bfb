"""Where a run trains and in which precision: detected from the machine, never assumed.

``precision="auto"`` picks bf16 autocast on a CUDA GPU that supports it and on a CPU with native bf16 arithmetic
(AVX512-BF16 or AMX): on this project's 2-core Xeon (AVX512-BF16) a whole MiniLM GLUE run took about 0.8 of the
fp32 time with the same metrics within seed noise (``benchmarks/speed_results.md``). Everywhere else it is fp32.
"""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def use_cpu(device: str = "auto") -> bool:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX tiles); emulated bf16 is slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, present since torch 2.2
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str = "auto", device: str = "auto") -> str:
    """``"auto"`` -> ``"bf16"`` where the hardware runs it natively, else ``"fp32"``; explicit values are checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cpu = use_cpu(device)
    if precision == "fp16" and cpu:
        raise ValueError("precision='fp16' needs a CUDA GPU; on a CPU use 'bf16' or 'fp32'")
    if precision != "auto":
        return precision
    if cpu:
        return "bf16" if cpu_has_bf16() else "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
