"""soralab: SoRA (Sparse Low-Rank Adaptation) for teaching and reproduction.

The whole method in a few calls::

    model = soralab.inject(model, soralab.SoRAConfig(r=8, target_modules=["query", "value"]))
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-3, xi=1e-3), lr=1e-3)
    ...train...
    print(soralab.gate_report(model))
    soralab.prune(model)            # dead ranks out: a LoRA with per-module ranks
    soralab.export_peft(model, "adapter/")
"""

from .config import LoRAConfig, NOLAConfig, SoRAConfig
from .export import export_peft, load_adapter, save_adapter
from .inject import adapter_modules, inject
from .layers import AdapterLayer, LoRALinear, NOLALinear, SoRALinear, count_trainable
from .optim import ProximalAdamW, gate_l1, param_groups, soft_threshold
from .prune import gate_report, merge, prune

__version__ = "0.1.0"

__all__ = [
    "AdapterLayer", "LoRAConfig", "LoRALinear", "NOLAConfig", "NOLALinear", "ProximalAdamW",
    "SoRAConfig", "SoRALinear", "adapter_modules", "allocate", "count_trainable", "export_peft", "gate_l1",
    "gate_report", "inject", "load_adapter", "merge", "param_groups", "prune", "save_adapter",
    "soft_threshold", "xi_values",
]


# Names that live above the core, looked up only when used: ``import soralab`` loads the core alone, and no core
# module imports from soralab.experiments.
_LAZY = {"allocate": "soralab.experiments.allocate", "xi_values": "soralab.experiments.scheduler"}


def __getattr__(name: str):
    """``soralab.allocate`` (the rank finder, a GLUE experiment) and ``soralab.xi_values`` (the sparsifying
    scheduler's xi schedules) live in ``soralab.experiments``."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'soralab' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, so that tab completion and ``help(soralab)`` list them."""
    return sorted({*globals(), *_LAZY})
