"""Reading the gates, pruning dead ranks, and merging adapters into base weights.

All three are explicit calls; nothing here runs on ``train()`` / ``eval()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .errors import NonFiniteError
from .inject import adapter_modules, replace_module
from .layers import LoRALinear, SoRALinear, count_trainable, rng_kept


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse NaN or infinity in any floating-point tensor of ``tensors``, naming ``what`` and the tensor.

    A non-zero NaN gate would count as an active rank, survive ``prune`` and be written into every file.
    """
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteError(f"{what}: {len(bad)} tensor(s) hold NaN or infinity, first {bad[0]!r}; the model has "
                             f"diverged (try a lower learning rate or xi) or the values were corrupted")


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every adapter layer's own parameters, by full name (what ``gate_report``, ``prune`` and ``merge`` use)."""
    return {f"{name}.{attr}": p.detach() for name, m in adapter_modules(model)
            for attr, p in m.named_parameters(recurse=False)}


def params_after_prune(model: nn.Module) -> int:
    """Trainable parameters the model would have after ``prune``: every adapter layer at its
    ``params_after_prune()`` (SoRA: live ranks, no gate), everything else that trains (the head) as it is.
    A model without soralab adapters (PEFT, full, BitFit) keeps what it trains."""
    layers = [m for _, m in adapter_modules(model)]
    return count_trainable(model) - sum(count_trainable(m) for m in layers) + sum(m.params_after_prune()
                                                                                  for m in layers)


@dataclass
class GateRow:
    name: str
    kind: str
    r_max: int
    active_rank: int
    params: int
    params_after_prune: int


@dataclass
class GateReport:
    rows: list[GateRow]

    @property
    def r_max(self) -> int:
        return sum(r.r_max for r in self.rows)

    @property
    def active_rank(self) -> int:
        return sum(r.active_rank for r in self.rows)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def params_after_prune(self) -> int:
        return sum(r.params_after_prune for r in self.rows)

    def ranks(self) -> dict[str, int]:
        return {r.name: r.active_rank for r in self.rows}

    def to_markdown(self) -> str:
        lines = ["| module | type | r_max | active | params | after prune |", "|---|---|---:|---:|---:|---:|"]
        for r in self.rows:
            lines.append(f"| {r.name} | {r.kind} | {r.r_max} | {r.active_rank} | {r.params} | {r.params_after_prune} |")
        lines.append(f"| **total** | | {self.r_max} | {self.active_rank} | {self.params} | {self.params_after_prune} |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"GateReport({len(self.rows)} modules, active rank {self.active_rank}/{self.r_max}, "
                f"params {self.params} -> {self.params_after_prune} after prune)")


def gate_report(model: nn.Module) -> GateReport:
    """A row per adapter module: name, r_max, active rank, params now and after pruning."""
    check_finite(adapter_tensors(model), "gate_report")
    rows = [
        GateRow(name, type(m).__name__, m.r, m.active_rank(), count_trainable(m), m.params_after_prune())
        for name, m in adapter_modules(model)
    ]
    if not rows:
        raise ValueError("gate_report needs a model with soralab adapters; none found")
    return GateReport(rows)


@torch.no_grad()
def prune(model: nn.Module) -> nn.Module:
    """Every ``SoRALinear`` becomes a ``LoRALinear`` of its active rank, gate folded into B.

    A module with no active rank becomes its frozen base layer again. Outputs are unchanged
    (up to floating-point rounding). In place; returns the model. NaN or infinity anywhere in the adapters is
    refused before anything changes.
    """
    check_finite(adapter_tensors(model), "prune")
    for name, m in list(adapter_modules(model, SoRALinear)):
        keep = torch.nonzero(m.gate).flatten()
        if keep.numel() == 0:
            replace_module(model, name, m.base_layer)
            continue
        # alpha chosen so that alpha / new_r equals the SoRA layer's alpha / r_max
        with rng_kept(m.lora_A.device):  # its initialisation is overwritten below: no draw from the global RNG
            lora = LoRALinear(m.base_layer, r=keep.numel(), lora_alpha=m.scaling * keep.numel())
        lora.lora_dropout = m.lora_dropout
        lora.train(m.training)
        for new, old in ((lora.lora_A, m.lora_A), (lora.lora_B, m.lora_B)):
            new.requires_grad_(old.requires_grad)  # a frozen SoRA layer stays frozen as a LoRA one
        lora.lora_A.copy_(m.lora_A[keep])
        lora.lora_B.copy_(m.lora_B[:, keep] * m.gate[keep])
        replace_module(model, name, lora)
    return model


@torch.no_grad()
def merge(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the original layer back. In place."""
    check_finite(adapter_tensors(model), "merge")
    for name, m in list(adapter_modules(model)):
        base = m.base_layer
        with torch.autocast(base.weight.device.type, enabled=False):  # inside a bf16 autocast: still float32 B @ A
            delta = m.delta_weight().to(base.weight.dtype)
        base.weight += delta.T if m.fan_in_fan_out else delta
        replace_module(model, name, base)
    if hasattr(model, "soralab_config"):
        del model.soralab_config
    return model

