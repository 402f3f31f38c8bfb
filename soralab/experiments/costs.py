"""What a trained model costs to keep, to ship and to run.

Stored parameters, the numbers a saved adapter holds, defined the same way for every method: the tensor
elements in the ``soralab_adapter.safetensors`` that ``save_adapter`` writes, once dead SoRA ranks are pruned.
They come in two parts:

* ``"adapter"``: the tensors of the adapter layers. LoRA: ``lora_A`` and ``lora_B`` (``r * (in + out)`` per
  module); pruned SoRA: the same at each module's active rank (the gate is folded into B); NOLA: only
  ``coef_A`` and ``coef_B`` (``num_basis_A + num_basis_B`` per module; its bases are regenerated from the
  seed in the JSON config and never saved).
* ``"head"``: the ``modules_to_save`` (e.g. the classifier), the same for every adapter method on one task.

The JSON config (seed, ranks, shapes) is not counted. ``stored_params(folder)`` reads a saved folder and
``count_stored(model)`` gives the same number from a live model without writing anything. ``file_cost`` sizes
any safetensors file (soralab's or PEFT's); ``interleaved_latency`` times forward passes of several models.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..export import CONFIG_NAME, WEIGHTS_NAME, adapter_state
from ..inject import adapter_modules

PARTS = ("adapter", "head", "all")


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a safetensors file, read from its header (no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


# --- stored parameters of a soralab adapter -------------------------------------------------------------------

def saved_tensors(path: str | os.PathLike, part: str = "all") -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a ``save_adapter`` folder (read from the header, nothing loaded).

    ``part="adapter"``: tensors of the adapter layers listed in the folder's config; ``"head"``: the rest
    (``modules_to_save``); ``"all"``: everything.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{path} is not a soralab adapter folder: expected {CONFIG_NAME} and {WEIGHTS_NAME}")
    layout = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))["modules"]
    shapes = dict(sorted(_shapes(path / WEIGHTS_NAME).items()))
    if part == "all":
        return shapes
    return {k: s for k, s in shapes.items() if (k.rpartition(".")[0] in layout) == (part == "adapter")}


def stored_params(path: str | os.PathLike, head: bool = False) -> int:
    """Tensor elements in a saved adapter folder: the adapter layers' tensors, plus the head if ``head``."""
    return sum(math.prod(s) for s in saved_tensors(path, "all" if head else "adapter").values())


def count_stored(model: nn.Module, head: bool = False) -> int:
    """What ``stored_params`` would report for this model saved after ``soralab.prune``, without saving.

    SoRA modules count at their active rank (no gate), other adapters as they are; ``head`` adds the
    ``modules_to_save`` parameters.
    """
    layers = dict(adapter_modules(model))
    if not layers:
        raise ValueError("count_stored needs a model with soralab adapters; none found")
    n = sum(m.params_after_prune() for m in layers.values())
    if head:
        n += sum(p.numel() for k, p in adapter_state(model).items() if k.rpartition(".")[0] not in layers)
    return n


# --- any safetensors file: values and bytes --------------------------------------------------------------------

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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no safetensors file at {path}")
    values = sum(math.prod(s) for s in _shapes(path).values())
    with open(path, "rb") as fh:
        header = int.from_bytes(fh.read(8), "little")
    return FileCost(path, values, header, path.stat().st_size)


# --- latency ---------------------------------------------------------------------------------------------------

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
