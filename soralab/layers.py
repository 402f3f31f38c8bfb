"""Adapter layers. Each wraps a frozen base layer and adds a low-rank update.

Vocabulary follows microsoft/LoRA: ``lora_A`` (r x in), ``lora_B`` (out x r), ``scaling``.
The base layer is either ``torch.nn.Linear`` (weight: out x in) or transformers' ``Conv1D``
(GPT-2; weight stored transposed: in x out). ``delta_weight()`` always returns the
update in ``nn.Linear`` layout (out x in).

Nothing here merges or changes weights on ``train()`` / ``eval()``: merging is the explicit
``soralab.merge``.
"""

from __future__ import annotations

import contextlib
import math
import zlib

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from .config import check_gate_init

SUPPORTED_BASE_TYPES = (nn.Linear, Conv1D)


def _in_out(base: nn.Module) -> tuple[int, int]:
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    if isinstance(base, Conv1D):
        in_features, out_features = base.weight.shape  # Conv1D stores (in, out)
        return in_features, out_features
    raise TypeError(
        f"cannot adapt a {type(base).__name__}; supported layer types are "
        f"{', '.join(t.__name__ for t in SUPPORTED_BASE_TYPES)}"
    )


def adapter_dtype(base: nn.Module) -> torch.dtype:
    """The dtype of the adapters on ``base``: its weight's, but float32 where that is half precision. A bf16 gate
    near 1 moves in steps of 0.004, so Adam's updates and the proximal threshold would round away (PEFT keeps its
    adapters in float32 on half-precision models too)."""
    dtype = base.weight.dtype
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in the adapters' dtype; under autocast as it is (autocast picks the matmul's dtype, and a cast there
    would only copy the activations)."""
    return x if torch.is_autocast_enabled(x.device.type) else x.to(dtype)


@contextlib.contextmanager
def rng_kept(device: torch.device):
    """Inside, random draws (a layer's initialisation that is then overwritten) leave the global RNG of ``device``
    (and the CPU's) as they found it."""
    device = torch.device(device)
    accelerator = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=accelerator, device_type="cuda" if device.type == "cpu" else device.type):
        yield


def count_trainable(model: nn.Module) -> int:
    """Parameters that train (``requires_grad``): the one count used for adapters, heads and whole models."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class AdapterLayer(nn.Module):
    """Common part: the frozen ``base_layer``, dropout and ``scaling``.

    Subclasses provide ``lora_A`` (r x in) and ``lora_B`` (out x r); SoRA overrides ``update`` and
    ``delta_weight`` to put its gate between them.
    """

    def __init__(self, base_layer: nn.Module, r: int, lora_alpha: float, lora_dropout: float = 0.0):
        super().__init__()
        if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
            raise ValueError(f"r must be a positive integer, got {r!r}")
        if not 0 < lora_alpha < math.inf:  # also refuses NaN
            raise ValueError(f"lora_alpha must be > 0 and finite, got {lora_alpha!r}")
        self.in_features, self.out_features = _in_out(base_layer)
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        self.r = r
        self.lora_alpha = lora_alpha
        self.scaling = lora_alpha / r
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()

    @property
    def fan_in_fan_out(self) -> bool:
        """True when the base weight is stored transposed (Conv1D)."""
        return isinstance(self.base_layer, Conv1D)

    def _new_param(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.zeros(*shape, device=self.base_layer.weight.device,
                                        dtype=adapter_dtype(self.base_layer)))

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """``scaling * B A x`` for ``x`` of shape (..., in), in the adapters' dtype."""
        A = self.lora_A
        # scale the narrow (..., r) activation rather than the wide (..., out) one: same result, less work
        return F.linear(F.linear(_as(x, A.dtype), A) * self.scaling, self.lora_B)  # (..., in) -> (..., r) -> (..., out)

    def delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B A`` as an (out x in) matrix."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        return out + self.update(self.lora_dropout(x)).to(out.dtype)  # a no-op unless the base is half precision

    def active_rank(self) -> int:
        """Ranks that contribute: all ``r`` of them (SoRA overrides: its non-zero gates)."""
        return self.r

    def params_after_prune(self) -> int:
        """Trainable parameters this layer keeps after ``soralab.prune`` (SoRA overrides: live ranks, no gate)."""
        return count_trainable(self)  # the base layer is frozen

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, scaling={self.scaling:g}"


class LoRALinear(AdapterLayer):
    """``h = W0 x + scaling * B A x``; A Kaiming-uniform, B zero, so the update starts at 0."""

    def __init__(self, base_layer: nn.Module, r: int, lora_alpha: float, lora_dropout: float = 0.0):
        super().__init__(base_layer, r, lora_alpha, lora_dropout)
        self.lora_A = self._new_param(r, self.in_features)
        self.lora_B = self._new_param(self.out_features, r)
        nn.init.kaiming_uniform_(self.lora_A, a=5**0.5)


class SoRALinear(LoRALinear):
    """``h = W0 x + scaling * B (g * (A x))`` with a gate ``g`` of ``r`` (= r_max) entries.

    Ranks whose gate is exactly zero are dead: they contribute nothing and ``soralab.prune``
    removes them.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        gate_init: str = "randn",
    ):
        super().__init__(base_layer, r, lora_alpha, lora_dropout)
        self.gate = self._new_param(r)
        if check_gate_init(gate_init) == "ones":
            nn.init.ones_(self.gate)
        else:
            nn.init.normal_(self.gate)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        # (..., r) * (r,): gate and scaling applied together on the narrow activation
        return F.linear(F.linear(_as(x, self.lora_A.dtype), self.lora_A) * (self.gate * self.scaling), self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        return self.scaling * ((self.lora_B * self.gate) @ self.lora_A)

    def active_rank(self) -> int:
        return int(torch.count_nonzero(self.gate.detach()))

    def params_after_prune(self) -> int:
        return self.active_rank() * (self.in_features + self.out_features)


def _module_seed(seed: int, name: str) -> int:
    """A stable per-module seed: the same name and seed give the same bases in any process."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


class NOLALinear(AdapterLayer):
    """NOLA: ``A = sum_i coef_A[i] basis_A[i]``, ``B = sum_j coef_B[j] basis_B[j]``.

    The bases are frozen, regenerated from ``(seed, name)`` at construction and kept as
    non-persistent buffers (not saved, not regenerated per forward). Only ``coef_A`` and
    ``coef_B`` train; ``coef_B`` starts at zero so the update starts at zero.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        num_basis_A: int = 64,
        num_basis_B: int = 64,
        seed: int = 0,
        name: str = "",
    ):
        super().__init__(base_layer, r, lora_alpha, lora_dropout)
        w, dtype = base_layer.weight, adapter_dtype(base_layer)
        gen = torch.Generator().manual_seed(_module_seed(seed, name))
        # Uniform bases with LoRA's Kaiming-uniform bound for A; B bases on the same scale.
        bound_a = (1.0 / self.in_features) ** 0.5
        bound_b = (1.0 / r) ** 0.5
        basis_A = (torch.rand(num_basis_A, r, self.in_features, generator=gen) * 2 - 1) * bound_a
        basis_B = (torch.rand(num_basis_B, self.out_features, r, generator=gen) * 2 - 1) * bound_b
        self.register_buffer("basis_A", basis_A.to(w.device, dtype), persistent=False)
        self.register_buffer("basis_B", basis_B.to(w.device, dtype), persistent=False)
        self.coef_A = self._new_param(num_basis_A)
        self.coef_B = self._new_param(num_basis_B)
        nn.init.uniform_(self.coef_A, -(1.0 / num_basis_A) ** 0.5, (1.0 / num_basis_A) ** 0.5)

    @property
    def lora_A(self) -> torch.Tensor:
        return torch.einsum("k,kri->ri", self.coef_A, self.basis_A)  # (k,) x (k, r, in) -> (r, in)

    @property
    def lora_B(self) -> torch.Tensor:
        return torch.einsum("k,kor->or", self.coef_B, self.basis_B)  # (k,) x (k, out, r) -> (out, r)
