"""One place that turns a pretrained classifier into a model for each fine-tuning method.

Methods: ``full`` (everything trains), ``bitfit`` (biases and the head), ``lora`` / ``sora`` / ``nola``
(soralab adapters), ``peft-lora`` and ``adalora`` (PEFT's implementations, the baselines).
The Trainer callbacks some of them need are in ``callbacks.py``.
"""

from __future__ import annotations

from torch import nn

from ..config import LoRAConfig, NOLAConfig, SoRAConfig
from ..errors import UsageError
from ..inject import adapter_modules, check_targets, inject, matches
from ..layers import count_trainable
from ..prune import gate_report, params_after_prune

METHODS = ("full", "bitfit", "lora", "peft-lora", "adalora", "sora", "nola")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def _unfreeze(model: nn.Module, heads: list[str]) -> None:
    for name, module in model.named_modules():
        if name and matches(name, heads):
            module.requires_grad_(True)


def prepare(model: nn.Module, method: str, *, r: int, lora_alpha: float, lora_dropout: float,
            target_modules: list[str], heads: list[str], gate_init: str = "randn", num_basis: int = 64,
            seed: int = 0, total_steps: int = 0, rank_pattern: str | None = None) -> nn.Module:
    """Make ``model`` ready to fine-tune with ``method``; returns the (possibly wrapped) model. ``rank_pattern``
    (lora, peft-lora): a ``soralab allocate`` JSON whose modules, ranks and alphas replace ``target_modules``,
    ``r`` and ``lora_alpha``."""
    check_method(method)
    common = dict(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=target_modules,
                  modules_to_save=heads)
    if rank_pattern is not None:
        from ..patterns import load_pattern

        if method not in ("lora", "peft-lora"):
            raise UsageError(f"rank_pattern sets per-module ranks of lora or peft-lora, not of {method!r}")

        p = load_pattern(rank_pattern)
        common.update(r=p["r"], lora_alpha=p["lora_alpha"], target_modules=list(p["target_modules"]),
                      rank_pattern=dict(p["rank_pattern"]), alpha_pattern=dict(p["alpha_pattern"]))
    if method == "full":
        model.requires_grad_(True)
        return model
    if method == "bitfit":
        model.requires_grad_(False)
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter):
                bias.requires_grad_(True)
        _unfreeze(model, heads)
        return model
    if method == "lora":
        return inject(model, LoRAConfig(**common))
    if method == "sora":
        return inject(model, SoRAConfig(gate_init=gate_init, **common))
    if method == "nola":
        return inject(model, NOLAConfig(num_basis_A=num_basis, num_basis_B=num_basis, seed=seed, **common))
    from peft import AdaLoraConfig, LoraConfig, get_peft_model

    check_targets(model, target_modules, heads)  # PEFT's own message for a typo is a traceback
    if method == "peft-lora":
        return get_peft_model(model, LoraConfig(**common))
    # AdaLoRA: start at 1.5 r and prune to an average of r, as in the AdaLoRA paper's GLUE setup
    # (initial warm-up 10% of steps, final fine-tuning 20%, reallocation every 1% of steps).
    if total_steps < 10:
        raise UsageError(f"adalora needs at least 10 training steps to schedule its budget, got {total_steps}")
    config = AdaLoraConfig(init_r=max(r * 3 // 2, r + 1), target_r=r, tinit=total_steps // 10,
                           tfinal=total_steps // 5, deltaT=max(1, total_steps // 100), total_step=total_steps,
                           **common)
    return get_peft_model(model, config)


def _peft_layers(model: nn.Module) -> dict[str, nn.Module]:
    """PEFT's LoRA and AdaLoRA layers, by type, under the base model's module names."""
    from peft.tuners.lora import LoraLayer

    return {name.removeprefix("base_model.model."): m for name, m in model.named_modules()
            if isinstance(m, LoraLayer)}


def active_ranks(model: nn.Module) -> dict[str, int]:
    """Active rank per adapted module: soralab adapters via ``gate_report``; PEFT LoRA layers by type,
    AdaLoRA from the rank pattern its allocator wrote (before the first allocation: its initial rank)."""
    if any(True for _ in adapter_modules(model)):
        return gate_report(model).ranks()
    layers = _peft_layers(model)
    peft_config = getattr(model, "peft_config", {}).get("default")
    pattern = getattr(peft_config, "rank_pattern", None) or {}
    ranks = {name: m.r["default"] for name, m in layers.items()}
    for key, mask in pattern.items():  # AdaLoRA: key "<module>.lora_E" (or the module), mask per rank
        name = key.removeprefix("base_model.model.").removesuffix(".default").removesuffix(".lora_E")
        if name in ranks and not isinstance(mask, int):  # a LoRA rank_pattern's ranks are already in m.r
            ranks[name] = int(sum(bool(v) for v in mask))
    return ranks


def pruned_params(model: nn.Module, ranks: dict[str, int] | None = None) -> int:
    """Trainable parameters once dead ranks are cut out, for any method (a result's ``params_after_prune``).

    soralab adapters: ``soralab.prune.params_after_prune`` (SoRA at its live ranks, no gate). PEFT's LoRA and
    AdaLoRA layers (by type): ``r * (in + out)`` at the active rank, or at ``ranks`` (a saved result's
    ``active_ranks``) where given. AdaLoRA masks the ranks its allocator drops instead of cutting them, and trains
    an r-entry vector E between A and B; its count here is what its final allocation stores as a plain LoRA (E
    folded into B), the way the literature counts AdaLoRA's budget. Everything else that trains (the head,
    BitFit's biases, a fully fine-tuned model) counts as it is.
    """
    if any(True for _ in adapter_modules(model)):
        if ranks is not None:
            raise UsageError("ranks= counts PEFT layers; a soralab model's live ranks are in its gates")
        return params_after_prune(model)
    layers = _peft_layers(model)
    if ranks is None:
        ranks = active_ranks(model)
    if set(ranks) != set(layers):
        raise UsageError(f"ranks name {sorted(set(ranks) ^ set(layers))[:3]} that are not the model's adapted "
                         f"modules (or miss some); pass the active_ranks of a run of this model and method")
    return count_trainable(model) + sum(ranks[name] * (m.in_features + m.out_features) - count_trainable(m)
                                        for name, m in layers.items())
