"""What a trained model costs to ship and to run: the values and bytes of a safetensors file, and forward-pass
latency measured round-robin over several models.

Used by the notebooks' comparison tables (00 quickstart, 06 prune / merge / export).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class FileCost:
    """A safetensors file: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes."""

    path: Path
    values: int        # numbers stored: the sum of the tensors' sizes
    header_bytes: int  # length of the JSON header
    bytes: int         # size of the file on disk

    @property
    def payload_bytes(self) -> int:
        """Bytes of tensor data: 4 per value for float32."""
        return self.bytes - 8 - self.header_bytes


def file_cost(path: str | Path) -> FileCost:
    """Count the values stored in a safetensors file and split its size into header and payload."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no safetensors file at {path}")
    with safe_open(str(path), "pt") as f:
        values = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    with open(path, "rb") as fh:
        header = int.from_bytes(fh.read(8), "little")
    return FileCost(path, values, header, path.stat().st_size)


@dataclass(frozen=True)
class Latency:
    times_ms: tuple[float, ...]  # one per timed pass, in the order they ran

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def iqr(self) -> float:
        """Interquartile range; 0 for fewer than two passes."""
        if len(self.times_ms) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4)
        return q3 - q1


def interleaved_latency(models: Mapping[str, nn.Module], inputs: Mapping[str, Any], repeats: int = 7,
                        warmup: int = 1) -> dict[str, Latency]:
    """Time ``model(**inputs)`` for every model, in milliseconds.

    Each round runs every model once, in order; ``warmup`` untimed rounds come first, then ``repeats`` timed
    ones. Interleaving spreads a slow moment of a shared machine over all models rather than one. Runs under
    ``torch.inference_mode``; models are used as they are (call ``.eval()`` first).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    if not models:
        raise ValueError("no models to time")
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(warmup):
            for m in models.values():
                m(**inputs)
        for _ in range(repeats):
            for name, m in models.items():
                start = time.perf_counter()
                m(**inputs)
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: Latency(tuple(t)) for name, t in times.items()}
