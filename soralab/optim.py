"""The proximal optimiser for SoRA's gates, and the authors' xi schedules.

Paper (Ding et al. 2023, Eq. 6): after the gradient step, soft-threshold the gate,
``g <- sign(g) * max(|g| - t, 0)`` with ``t = lr * xi``: the proximal operator of
``xi * |g|_1`` for a step of size ``lr``. ``ProximalAdamW`` does exactly that on top of
``torch.optim.AdamW`` for every parameter group whose ``xi`` is positive.

The authors' code differs from the paper in two ways that change the update, each switched on explicitly here:
``prox="official"`` (a constant threshold ``xi`` and their three in-place steps) and a group's ``l1_loss`` (their
extra loss term ``lambda * mean|g|``). Their randn gate initialisation is soralab's default as well
(``SoRAConfig.gate_init``, chosen by measurement).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .inject import adapter_modules
from .layers import SoRALinear

PROX_MODES = ("paper", "official")
GATES = "gates"  # the name of the parameter group that holds the gates (``param_groups``); only it may have xi > 0


def _check_strength(name: str, value: float) -> None:
    """A penalty strength or learning rate: a finite number >= 0 (NaN would pass a plain ``< 0`` test)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")


def soft_threshold(x: torch.Tensor, t: float) -> torch.Tensor:
    """The proximal operator of ``t * |x|_1``: shrink towards 0 by ``t``, exactly 0 inside [-t, t]."""
    if not t >= 0:  # also refuses NaN
        raise ValueError(f"threshold t must be >= 0, got {t}")
    return torch.sign(x) * torch.clamp(x.abs() - t, min=0)


def official_threshold_(x: torch.Tensor, t: float) -> torch.Tensor:
    """The authors' code (TsinghuaC3I/SoRA ``sparse_optimizer.py``), in place, step by step.

    Three sequential masked updates. A value in (t, 2t) is first lowered into (0, t) and then
    caught by the third line and zeroed, where the true operator would leave ``x - t``.
    """
    x[x > t] -= t
    x[x < -t] += t
    x[x.abs() < t] = 0.0
    return x


class ProximalAdamW(torch.optim.AdamW):
    """AdamW, then a proximal L1 step on every parameter group with ``xi > 0``.

    prox="paper": ``t = lr * xi`` with the group's *current* lr (a scheduler moves it too).
    prox="official": the authors' code: a constant ``t = xi`` and their three in-place steps.
    A group's ``l1_loss`` (lambda, default 0) adds the gradient of ``lambda * mean|p|`` over the group's
    parameters, ``lambda * sign(p) / n``, before the AdamW step: the same update as adding ``gate_l1`` times
    lambda to the loss, as the authors' code does, except that it lands after the Trainer clips gradients.
    With ``xi = 0`` and ``l1_loss = 0`` everywhere this is ``torch.optim.AdamW``, bit for bit.

    Where ``xi`` applies, so that no setting is silently ignored or lands on the wrong parameters:

    * Only the group named ``"gates"`` (``param_groups`` builds it from the model's ``SoRALinear`` gates) may have
      ``xi > 0`` or ``l1_loss > 0``. On any other group the threshold would zero entries of A, B or the head; such
      a group is refused. (The optimiser cannot see the model: a hand-built group named "gates" is trusted.)
    * The constructor's ``xi`` is the default for a gates group that sets none: ``param_groups(model, lr)`` leaves
      it unset, so ``ProximalAdamW(param_groups(model, lr), lr, xi=1.0)`` works. If a gates group sets its own xi
      and the constructor is given a different one, one of them would be ignored: refused.
    * A constructor ``xi > 0`` with no gates group to act on would do nothing: refused.
    """

    def __init__(self, params, lr: float = 1e-3, *, xi: float | None = None, prox: str = "paper", **adamw_kwargs):
        if prox not in PROX_MODES:
            raise ValueError(f"prox must be one of {PROX_MODES}, got {prox!r}")
        if xi is not None:
            _check_strength("xi", xi)
        self.prox = prox
        self._given_xi = xi
        self._default_xi = float(xi or 0.0)
        super().__init__(params, lr=lr, **adamw_kwargs)
        if self._default_xi > 0 and not any(g.get("name") == GATES for g in self.param_groups):
            raise ValueError(f"xi={xi} acts only on a parameter group named {GATES!r} (the SoRA gates), and this "
                             f"optimiser has none; build the groups with soralab.param_groups(model, lr), which puts "
                             f"the gates in a group of their own")

    def add_param_group(self, param_group: dict) -> None:
        name = param_group.get("name")
        given = getattr(self, "_given_xi", None)
        if name == GATES and given is not None and "xi" in param_group and param_group["xi"] != given:
            raise ValueError(f"ProximalAdamW(xi={given}) conflicts with xi={param_group['xi']} set on the gates group; "
                             f"give xi in one place (soralab.param_groups(model, lr) without xi leaves it to the "
                             f"optimiser)")
        param_group.setdefault("xi", getattr(self, "_default_xi", 0.0) if name == GATES else 0.0)
        param_group.setdefault("l1_loss", 0.0)
        for key in ("xi", "l1_loss"):
            _check_strength(key, param_group[key])
            if param_group[key] > 0 and name != GATES:
                raise ValueError(
                    f"{key}={param_group[key]} is set on parameter group {name or len(self.param_groups)!r}, which is "
                    f"not the {GATES!r} group: it would shrink weights that are not SoRA gates. Build the groups with "
                    f"soralab.param_groups(model, lr, xi=...), which puts the gates in a group named {GATES!r}")
        super().add_param_group(param_group)

    def threshold(self, group: dict) -> float:
        """The threshold this group's proximal step uses now."""
        return group["xi"] if self.prox == "official" else group["lr"] * group["xi"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:  # run it here: the L1 gradient must land after its backward pass
            with torch.enable_grad():
                loss = closure()
        self.add_l1_gradient()
        super().step()
        self.proximal_step()
        return loss

    @torch.no_grad()
    def add_l1_gradient(self) -> None:
        """``grad += lambda * sign(p) / n`` for every group with ``l1_loss`` = lambda > 0 (n: the group's size)."""
        for group in self.param_groups:
            if group["l1_loss"] <= 0:
                continue
            n = sum(p.numel() for p in group["params"])
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.add_(torch.sign(p), alpha=group["l1_loss"] / n)

    @torch.no_grad()
    def proximal_step(self) -> None:
        for group in self.param_groups:
            if group["xi"] <= 0:
                continue
            t = self.threshold(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if self.prox == "official":
                    official_threshold_(p, t)
                else:
                    p.copy_(soft_threshold(p, t))


def gate_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [m.gate for _, m in adapter_modules(model, SoRALinear)]


def _no_decay_ids(model: nn.Module) -> set[int]:
    """Biases and normalisation weights, found by module type and attribute, not name substrings."""
    ids = set()
    for module in model.modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or type(module).__name__.endswith(
            ("LayerNorm", "RMSNorm")
        )
        for attr, p in module.named_parameters(recurse=False):
            if is_norm or attr == "bias":
                ids.add(id(p))
    return ids


def param_groups(
    model: nn.Module, lr: float, weight_decay: float = 0.0, xi: float | None = None, gate_lr: float | None = None,
    l1_loss: float = 0.0,
) -> list[dict]:
    """Optimizer groups: decayed weights, undecayed biases/norms, and gates (no decay, ``xi``, ``l1_loss``).

    Only trainable parameters are included; empty groups are dropped. ``xi=None`` leaves the gates group's xi
    to ``ProximalAdamW(..., xi=...)``; a model without gates refuses ``xi > 0``, which would do nothing.
    """
    for name, value in (("lr", lr), ("weight_decay", weight_decay), ("l1_loss", l1_loss),
                        ("xi", 0.0 if xi is None else xi), ("gate_lr", lr if gate_lr is None else gate_lr)):
        _check_strength(name, value)
    gates = {id(p) for p in gate_parameters(model)}
    if not gates and xi:  # (l1_loss, like GlueConfig's other SoRA-only options, has nothing to act on: no group)
        raise ValueError(f"xi={xi} acts on SoRA gates, and this model has none (inject a SoRAConfig); "
                         f"use xi=0 or None for LoRA and the other methods")
    no_decay = _no_decay_ids(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in gates | no_decay], "weight_decay": weight_decay,
         "lr": lr, "xi": 0.0, "name": "decay"},
        {"params": [p for p in trainable if id(p) in no_decay and id(p) not in gates], "weight_decay": 0.0,
         "lr": lr, "xi": 0.0, "name": "no_decay"},
        {"params": [p for p in trainable if id(p) in gates], "weight_decay": 0.0,
         "lr": lr if gate_lr is None else gate_lr, "l1_loss": l1_loss, "name": GATES},
    ]
    if xi is not None:
        groups[-1]["xi"] = xi
    return [g for g in groups if g["params"]]


def gate_l1(model: nn.Module) -> torch.Tensor:
    """``mean |g|`` over all gate entries: the authors' extra loss term (multiply by lambda)."""
    gates = gate_parameters(model)
    if not gates:
        raise ValueError("gate_l1 needs a model with SoRA layers; none found")
    return torch.cat([g.abs().flatten() for g in gates]).mean()
