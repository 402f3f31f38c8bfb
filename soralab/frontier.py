"""What an adapter costs to keep: the numbers a saved adapter holds ("stored parameters").

Definition used across methods: the number of tensor elements in the ``soralab_adapter.safetensors`` that
``save_adapter`` writes, once dead SoRA ranks are pruned. Split in two parts:

* ``"adapter"``: the tensors of the adapter layers. LoRA: ``lora_A`` and ``lora_B`` (``r * (in + out)`` per
  module); pruned SoRA: the same at each module's active rank (the gate is folded into B); NOLA: only
  ``coef_A`` and ``coef_B`` (``num_basis_A + num_basis_B`` per module; its bases are regenerated from the
  seed in the JSON config and never saved).
* ``"head"``: the ``modules_to_save`` (e.g. the classifier), the same for every adapter method on one task.

The JSON config (seed, ranks, shapes) is not counted. ``stored_params(path)`` reads a saved folder;
``count_stored(model)`` gives the same number from a live model without writing anything.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from safetensors import safe_open
from torch import nn

from .inject import adapter_modules
from .io import CONFIG_NAME, WEIGHTS_NAME, adapter_state
from .prune import pruned_param_count

PARTS = ("adapter", "head", "all")


def _check_part(part: str) -> str:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    return part


def saved_tensors(path: str | os.PathLike, part: str = "all") -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a ``save_adapter`` folder (read from the header, nothing loaded).

    ``part="adapter"``: tensors of the adapter layers listed in the folder's config; ``"head"``: the rest
    (``modules_to_save``); ``"all"``: everything.
    """
    _check_part(part)
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{path} is not a soralab adapter folder: expected {CONFIG_NAME} and {WEIGHTS_NAME}")
    layout = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))["modules"]
    with safe_open(str(path / WEIGHTS_NAME), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    if part == "all":
        return dict(sorted(shapes.items()))
    in_adapter = {k: k.rpartition(".")[0] in layout for k in shapes}
    return {k: s for k, s in sorted(shapes.items()) if in_adapter[k] == (part == "adapter")}


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
    n = sum(pruned_param_count(m) for m in layers.values())
    if head:
        n += sum(p.numel() for k, p in adapter_state(model).items() if k.rpartition(".")[0] not in layers)
    return n

