"""Put adapter layers into a model: ``inject(model, config)``.

Targets are found by module *name* (as in PEFT's ``target_modules``); adapters are found
afterwards by module *type* (``adapter_modules``), never by parameter-name substrings.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

from torch import nn

from .config import LoRAConfig, NOLAConfig
from .config import _pattern_key as config_key
from .errors import UsageError, WrongTypeError
from .layers import SUPPORTED_BASE_TYPES, AdapterLayer, LoRALinear, NOLALinear, SoRALinear, _in_out


def matches(name: str, patterns: list[str]) -> bool:
    """``name`` is one of ``patterns`` or ends with ``"." + pattern`` (PEFT's rule for target_modules)."""
    return any(name == p or name.endswith("." + p) for p in patterns)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def adapter_modules(model: nn.Module, kind: type = AdapterLayer) -> Iterator[tuple[str, AdapterLayer]]:
    """``(name, module)`` for every adapter layer of type ``kind`` in the model."""
    for name, module in model.named_modules():
        if isinstance(module, kind):
            yield name, module


LAYER_TYPES = {"lora": LoRALinear, "sora": SoRALinear, "nola": NOLALinear}  # a config's method -> its layer


def make_adapter(base: nn.Module, config: LoRAConfig, name: str = "", *, layer_type: str | None = None,
                 r: int | None = None, lora_alpha: float | None = None) -> AdapterLayer:
    """The one factory of adapter layers: ``config``'s own layer type at module ``name``'s rank and alpha
    (``config.rank_alpha(name)``: ``r`` / ``lora_alpha``, or a ``rank_pattern`` / ``alpha_pattern`` entry), or, for a
    saved layout (``soralab.load_adapter``), the named ``layer_type`` (a pruned SoRA adapter holds ``LoRALinear``
    layers) at its own ``r`` and ``lora_alpha``. ``name`` also seeds NOLA's bases."""
    kinds = {cls.__name__: cls for cls in LAYER_TYPES.values()}
    cls = kinds.get(layer_type) if layer_type else LAYER_TYPES[config.method]
    if cls is None:
        raise UsageError(f"unknown adapter layer type {layer_type!r}; expected one of {', '.join(kinds)}")
    own_r, own_alpha = config.rank_alpha(name)
    common = dict(r=own_r if r is None else r, lora_alpha=own_alpha if lora_alpha is None else lora_alpha,
                  lora_dropout=config.lora_dropout)
    if cls is SoRALinear:
        return SoRALinear(base, gate_init=getattr(config, "gate_init", "randn"), **common)
    if cls is NOLALinear:
        if not isinstance(config, NOLAConfig):
            raise UsageError(f"a NOLALinear layer needs a NOLA config (bases and seed), got {type(config).__name__}")
        return NOLALinear(base, num_basis_A=config.num_basis_A, num_basis_B=config.num_basis_B, seed=config.seed,
                          name=name, **common)
    return LoRALinear(base, **common)


def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, SUPPORTED_BASE_TYPES) and n]


def inject(model: nn.Module, config: LoRAConfig) -> nn.Module:
    """Wrap every targeted ``nn.Linear`` / ``Conv1D`` in the adapter layer of ``config``.

    Everything else is frozen except the modules named in ``config.modules_to_save``.
    The model is changed in place and returned.
    """
    if any(True for _ in adapter_modules(model)):
        raise UsageError("this model already has adapters; inject into a fresh model")
    targets = check_targets(model, config.target_modules, config.modules_to_save)
    unsupported = [(n, type(m).__name__) for n, m in targets if not isinstance(m, SUPPORTED_BASE_TYPES)]
    if unsupported:
        n, t = unsupported[0]
        raise WrongTypeError(
            f"target {n!r} is a {t}; soralab adapts only "
            f"{', '.join(t.__name__ for t in SUPPORTED_BASE_TYPES)} layers "
            f"({len(unsupported)} unsupported target(s) in all). Narrow target_modules."
        )
    names = [n for n, _ in model.named_modules() if n]
    check_no_overlap([n for n, _ in targets], [n for n in names if matches(n, config.modules_to_save)])
    check_patterns(config, [n for n, _ in targets])
    for r in sorted({config.rank_alpha(n)[0] for n, _ in targets}):
        warn_rank_above_width([(n, m) for n, m in targets if config.rank_alpha(n)[0] == r], r)

    return install(model, {name: make_adapter(base, config, name) for name, base in targets}, config)


def check_targets(model: nn.Module, target_modules: list[str], modules_to_save: list[str]) -> list[tuple]:
    """``(name, module)`` of every target; a clear error when no module matches ``target_modules`` or some
    ``modules_to_save`` entry matches nothing (PEFT's methods are checked here too, before PEFT sees them)."""
    targets = [(n, m) for n, m in model.named_modules() if n and matches(n, target_modules)]
    if not targets:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in _linear_names(model)})
        raise UsageError(f"no module matches target_modules={target_modules}. "
                         f"Linear layers in this model end in: {suffixes}")
    names = [n for n, _ in model.named_modules() if n]
    missing = [p for p in modules_to_save if not any(matches(n, [p]) for n in names)]
    if missing:
        raise UsageError(f"modules_to_save {missing} match no module of this model")
    return targets


def check_patterns(config: LoRAConfig, targets: list[str]) -> None:
    """Refuse a ``rank_pattern`` / ``alpha_pattern`` key that matches no targeted module: PEFT ignores one
    silently, and a typo would then give that module the default rank."""
    for kind, pattern in (("rank_pattern", config.rank_pattern), ("alpha_pattern", config.alpha_pattern)):
        unused = [k for k in pattern if not any(config_key(pattern, n) == k for n in targets)]
        if unused:
            raise UsageError(f"{kind} key(s) {unused[:3]} match no module of target_modules={config.target_modules} "
                             f"(or only modules an earlier key already matches; {len(unused)} in all); a key names "
                             f"a targeted module, e.g. {targets[0]!r}")


def check_no_overlap(targets: list[str], saved: list[str], where: str = "") -> None:
    """Refuse a module that is both adapted and saved whole (itself, or inside a saved module).

    Its weights would be stored twice, once as the adapter's base layer and once as a saved module, and the
    adapter could then neither be loaded into a fresh model nor exported (the two copies share memory).
    """
    clash = [(t, s) for t in targets for s in saved if t == s or t.startswith(s + ".")]
    if clash:
        t, s = clash[0]
        inside = "" if t == s else f" (it is inside {s!r})"
        raise UsageError(
            f"{where}module {t!r} is matched by target_modules and also kept whole by modules_to_save{inside}; "
            f"{len(clash)} module(s) in all. A module is either adapted or saved whole: take it out of one list")


def warn_rank_above_width(targets: list[tuple[str, nn.Module]], r: int) -> None:
    """Warn when r exceeds a layer's smaller dimension: the extra ranks cannot add anything (B A has rank
    at most min(in, out)) and only cost parameters."""
    narrow = [(n, min(_in_out(m))) for n, m in targets if r > min(_in_out(m))]
    if narrow:
        n, width = narrow[0]
        warnings.warn(f"r={r} is larger than the smaller dimension of {len(narrow)} targeted layer(s) (e.g. {n!r}: "
                      f"{width}); an update of such a layer has rank at most {width}, so the extra ranks only add "
                      f"parameters", stacklevel=3)


def install(model: nn.Module, layers: dict[str, AdapterLayer], config: LoRAConfig) -> nn.Module:
    """Freeze the model, put ``layers`` in place, unfreeze ``config.modules_to_save``."""
    for p in model.parameters():
        p.requires_grad_(False)
    for name, layer in layers.items():
        replace_module(model, name, layer)
        layer.train(model.training)  # a new layer trains; in a model in eval mode its dropout must not
        for p in layer.parameters(recurse=False):
            p.requires_grad_(True)
    for name, module in model.named_modules():
        if name and matches(name, config.modules_to_save):
            for p in module.parameters():
                p.requires_grad_(True)
    model.soralab_config = config
    return model


def adapter_config(model: nn.Module) -> LoRAConfig:
    """The config the model was injected with; a clear error if it has none."""
    config = getattr(model, "soralab_config", None)
    if config is None:
        raise ValueError("this model has no soralab adapters; call soralab.inject(model, config) first")
    return config
