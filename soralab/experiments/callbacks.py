"""The Trainer callbacks soralab's methods need, called by the Trainer at fixed points, never hidden in a model.

AdaLoRA's ``update_and_allocate`` (the Trainer does not call it, and forgetting it silently turns AdaLoRA into
LoRA), SoRA's gate statistics at each evaluation, and the ``keep`` schedule that steers SoRA's xi.
"""

from __future__ import annotations

import warnings

from torch import nn
from transformers import TrainerCallback

from ..inject import adapter_modules
from ..layers import SoRALinear
from ..optim import GATES
from ..prune import gate_report
from .sparsity import KeepSchedule


class AdaLoraCallback(TrainerCallback):
    """Calls ``update_and_allocate`` after every optimizer step, before gradients are cleared."""

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        model.base_model.update_and_allocate(state.global_step)


class GateStatsCallback(TrainerCallback):
    """Records, at every evaluation, the active rank, the adapters' size after pruning (``gate_report``'s count: the
    head is not in it, unlike a result's ``params_after_prune``) and the gates' xi."""

    def __init__(self) -> None:
        self.history: list[dict] = []

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not any(True for _ in adapter_modules(model, SoRALinear)):
            return
        report = gate_report(model)
        if not self.history or self.history[-1]["step"] != state.global_step:
            optimizer = kwargs.get("optimizer")
            xi = [g["xi"] for g in getattr(optimizer, "param_groups", []) if g.get("name") == GATES]
            self.history.append({"step": state.global_step, "active_rank": report.active_rank,
                                 "r_max": report.r_max, "adapter_params_after_prune": report.params_after_prune,
                                 "xi": xi[0] if xi else None})


class KeepCallback(TrainerCallback):
    """Steers SoRA's xi towards a share of live ranks after every optimiser step (``soralab.experiments.sparsity``)."""

    def __init__(self, model: nn.Module, optimizer, keep: float, total_steps: int, **schedule) -> None:
        self.schedule = KeepSchedule(model, optimizer, keep, total_steps, **schedule)  # start, end, final

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps != self.schedule.total_steps:
            warnings.warn(f"the keep schedule was sized for {self.schedule.total_steps} optimiser steps but the "
                          f"Trainer will take {state.max_steps}: the share of live ranks will not follow its schedule "
                          f"(size it with the Trainer's count: batch per process x processes)", stacklevel=2)

    def on_step_end(self, args, state, control, **kwargs):
        self.schedule.update(state.global_step)
