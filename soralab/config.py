"""Adapter configurations: plain dataclasses that validate themselves at construction.

``LoRAConfig`` is the base; ``SoRAConfig`` adds the gate, ``NOLAConfig`` the random bases.
A config is all that is needed to rebuild an adapter's structure, so it is what
``save_adapter`` writes next to the weights.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field
from typing import Any

GATE_INITS = ("ones", "randn")


def check_gate_init(value: str) -> str:
    """The one check of a SoRA gate initialisation (used by ``SoRAConfig``, ``SoRALinear`` and the CLI)."""
    if value not in GATE_INITS:
        raise ValueError(f"gate_init must be one of {', '.join(GATE_INITS)}, got {value!r}")
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _pattern_key(keys, name: str) -> str | None:
    """The first key of a rank or alpha pattern that matches ``name``, by PEFT's ``get_pattern_key`` rule
    (``re.match(rf"(.*\\.)?({key})$", name)``); None when none does."""
    return next((k for k in keys if re.match(rf"(.*\.)?({k})$", name)), None)


@dataclass
class LoRAConfig:
    """Low-rank adaptation ``h = W0 x + (lora_alpha / r) * B A x`` on every targeted linear layer.

    target_modules: module names or dotted suffixes (``["query", "value"]`` matches
        ``encoder.layer.0.attention.self.query``); a module is targeted when its full name
        equals an entry or ends with ``"." + entry``.
    modules_to_save: modules that stay fully trainable (e.g. the classifier head).
    rank_pattern, alpha_pattern: per-module rank and alpha, read exactly as PEFT's ``LoraConfig`` reads them, so
        one pattern (e.g. from ``soralab.allocate``) builds the same layers in both: a key is a regular expression
        matched against the end of a module's name at a dot boundary (a full module name matches only itself),
        the first matching key wins, and a module no key matches gets ``r`` / ``lora_alpha``. Each module's scale
        is its own ``alpha / r``: a module in ``rank_pattern`` but not in ``alpha_pattern`` gets ``lora_alpha / its
        rank`` (PEFT's rule), so to keep one scale ``s`` everywhere give ``alpha_pattern`` as ``s * rank``.
    """

    r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    modules_to_save: list[str] = field(default_factory=list)
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)

    method = "lora"

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if isinstance(self.modules_to_save, str):
            self.modules_to_save = [self.modules_to_save]
        self.target_modules = list(self.target_modules)
        self.modules_to_save = list(self.modules_to_save or [])
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"r must be a positive integer (e.g. 8), got {self.r!r}")
        if not _is_number(self.lora_alpha) or not 0 < self.lora_alpha < math.inf:
            raise ValueError(f"lora_alpha must be > 0 and finite (e.g. 16), got {self.lora_alpha!r}")
        if not _is_number(self.lora_dropout) or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
            raise ValueError(
                f"target_modules must be a non-empty list of module names, e.g. ['query', 'value'], "
                f"got {self.target_modules!r}"
            )
        if not all(isinstance(m, str) and m for m in self.modules_to_save):
            raise ValueError(f"modules_to_save must be a list of module names, e.g. ['classifier'], "
                             f"got {self.modules_to_save!r}")
        self.rank_pattern, self.alpha_pattern = dict(self.rank_pattern or {}), dict(self.alpha_pattern or {})
        for key, r in self.rank_pattern.items():
            if not isinstance(key, str) or not key or isinstance(r, bool) or not isinstance(r, int) or r <= 0:
                raise ValueError(f"rank_pattern maps module names to positive integer ranks (a module that should "
                                 f"get rank 0 is left out of target_modules instead), got {key!r}: {r!r}")
        for key, a in self.alpha_pattern.items():
            if not isinstance(key, str) or not key or not _is_number(a) or not 0 < a < math.inf:
                raise ValueError(f"alpha_pattern maps module names to finite alphas > 0, got {key!r}: {a!r}")
        for key in (*self.rank_pattern, *self.alpha_pattern):
            try:
                re.compile(key)
            except re.error as err:
                raise ValueError(f"pattern key {key!r} is not a valid regular expression ({err}); PEFT reads "
                                 f"rank_pattern / alpha_pattern keys as regular expressions") from None

    @property
    def scaling(self) -> float:
        """The scale ``lora_alpha / r`` of a module that neither pattern names."""
        return self.lora_alpha / self.r

    def rank_alpha(self, name: str) -> tuple[int, float]:
        """``(r, lora_alpha)`` of module ``name``: from the patterns if a key matches (PEFT's rule), else the
        config's own ``r`` / ``lora_alpha``. The module's scale is then ``lora_alpha / r``."""
        r_key, a_key = _pattern_key(self.rank_pattern, name), _pattern_key(self.alpha_pattern, name)
        return self.rank_pattern.get(r_key, self.r), self.alpha_pattern.get(a_key, self.lora_alpha)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **asdict(self)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> LoRAConfig:
        d = dict(d)
        method = d.pop("method", "lora")
        classes = {"lora": LoRAConfig, "sora": SoRAConfig, "nola": NOLAConfig}
        if method not in classes:
            raise ValueError(f"unknown adapter method {method!r}; expected one of {sorted(classes)}")
        return classes[method](**d)


@dataclass
class SoRAConfig(LoRAConfig):
    """Sparse LoRA: a gate vector ``g`` of ``r`` (= r_max) entries between A and B.

    ``h = W0 x + scaling * B (g * (A x))``. The gate's L1 penalty is applied by the optimiser
    (``ProximalAdamW``), not here.

    gate_init: ``"randn"`` (default, as in the authors' code) or ``"ones"`` (a fresh SoRA layer
        is then exactly the LoRA layer with the same A and B). Chosen by measurement on the
        planted-rank task (``benchmarks/gate_init.py``, r_max=8, true rank 3, 10 seeds x 6 settings
        of xi and weight decay, table in ``benchmarks/gate_init_results.md``): randn ended on
        exactly the planted rank in 35/60 runs, ones in 24/60; randn already recovers the rank at
        xi=1 (9/10, test MSE 2.9e-5) where ones needs xi=2 (10/10, but test MSE 7e-3 from the
        larger shrinkage). Both start with output equal to the base model, since B starts at 0.
    """

    gate_init: str = "randn"

    method = "sora"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_gate_init(self.gate_init)


@dataclass
class NOLAConfig(LoRAConfig):
    """NOLA: ``A = sum_i a_i A_i`` and ``B = sum_j b_j B_j`` over frozen random bases.

    The bases are regenerated from ``seed`` (and the module's name), so only the
    ``num_basis_A + num_basis_B`` coefficients per module are trained and stored.
    """

    num_basis_A: int = 64
    num_basis_B: int = 64
    seed: int = 0

    method = "nola"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_basis_A", "num_basis_B"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer (e.g. 64), got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
