"""SoRA's strength as a target: the share of ranks to keep, reached by steering xi during training.

A constant ``xi`` means different sparsity at different budgets: with ``t = lr * xi`` per step and Adam moving a
gate by at most about ``lr`` per step, whether a gate dies depends on how many steps there are, the lr schedule and
the gate's starting size. ``KeepSchedule`` instead fixes the outcome, the fraction of gate entries still non-zero,
and lets the proximal step decide *which* ranks go (the allocation across layers stays SoRA's own):

* before ``start`` (a fraction of the run) ``xi = 0``: gates, A and B learn freely;
* from ``start`` to ``end`` the target share of live ranks falls from 1 to ``keep`` on a cubic curve (fast first,
  as AdaLoRA's budget schedule); after ``end`` it stays at ``keep``;
* from ``start`` on, after every optimiser step, ``xi`` is multiplied by a constant factor (``decades`` powers of ten
  over the ramp) while more ranks live than the target and none died in that step; it is held while gates are dying
  (they die some steps after xi rises, so raising it further would overshoot), and divided by the factor while fewer
  ranks live than the target (a dead gate revives only if its Adam step beats the threshold).

Why xi needs no budget-dependent scale here: Adam moves a gate by at most about its learning rate per step, and
the paper's threshold is that learning rate times xi, so xi compares the shrinkage with the gate's normalised
gradient (about 1 for a gradient of constant sign, about 0 for noise): gates whose gradient is more noise than signal
die first, at any budget, and xi stays of order 0.1 to 1. What does depend on the budget is how far a gate can travel:
``gate_lr(total_steps)`` lets a gate move about its own initial size (1) over the ramp, so training, not the
starting value, decides which gates reach zero. ``run_glue`` uses it when no ``gate_lr`` is given.

Call ``update(step)`` explicitly after ``optimizer.step()``; ``methods.KeepCallback`` does it in a Trainer.
"""

from __future__ import annotations

import math

import torch

from .optim import gate_parameters


START, END = 0.1, 0.7  # the ramp, as fractions of the run


def ramp_steps(total_steps: int, start: float = START, end: float = END) -> float:
    return max(1.0, (end - start) * total_steps)


def gate_lr(total_steps: int, start: float = START, end: float = END) -> float:
    """A gate learning rate that lets a gate travel about 1 (a fresh gate's size) over the ramp."""
    return 1.0 / ramp_steps(total_steps, start, end)


class KeepSchedule:
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, keep: float, total_steps: int, *,
                 start: float = START, end: float = END, xi_start: float = 0.1, decades: float = 2.0):
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be a fraction of ranks in (0, 1], got {keep!r}")
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"need 0 <= start < end <= 1 (fractions of the run), got start={start}, end={end}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not xi_start > 0 or not decades > 0:
            raise ValueError(f"xi_start and decades must be > 0, got {xi_start}, {decades}")
        self.gates = gate_parameters(model)
        if not self.gates:
            raise ValueError("KeepSchedule needs a model with SoRA gates; none found")
        self.optimizer = optimizer
        groups = self.groups
        ids = {id(g) for g in self.gates}
        stray = [g.get("name", "?") for g in groups if any(id(p) not in ids for p in g["params"])]
        if stray or sum(len(g["params"]) for g in groups) != len(self.gates):
            raise ValueError("the optimiser must hold every gate, in groups of gates only (soralab.param_groups "
                             f"does this); groups mixing gates with other parameters: {stray}")
        self.keep, self.total_steps, self.start, self.end = keep, total_steps, start, end
        self.xi_start = xi_start
        self.ramp_steps = ramp_steps(total_steps, start, end)
        self.factor = math.exp(decades * math.log(10) / self.ramp_steps)
        self.r_total = sum(g.numel() for g in self.gates)
        self._last_live = 1.0
        self._set_xi(0.0)

    @property
    def groups(self) -> list[dict]:
        """The optimiser's groups that hold gates, looked up on every call: ``load_state_dict`` (which Accelerate
        runs when the Trainer wraps the optimiser) replaces the group dicts."""
        ids = {id(g) for g in self.gates}
        return [g for g in self.optimizer.param_groups if any(id(p) in ids for p in g["params"])]

    def target(self, step: int) -> float:
        """The share of ranks that should be alive after ``step`` optimiser steps."""
        p = step / self.total_steps
        if p <= self.start:
            return 1.0
        if p >= self.end:
            return self.keep
        return self.keep + (1.0 - self.keep) * (1.0 - (p - self.start) / (self.end - self.start)) ** 3

    def live_fraction(self) -> float:
        return sum(int(torch.count_nonzero(g.detach())) for g in self.gates) / self.r_total

    @property
    def xi(self) -> float:
        return self.groups[0]["xi"]

    def _set_xi(self, xi: float) -> None:
        for g in self.groups:
            g["xi"] = xi

    def update(self, step: int) -> float:
        """Set xi for the next step from the live share after ``step`` steps; returns the new xi."""
        live, last = self.live_fraction(), self._last_live
        self._last_live = live
        if step / self.total_steps < self.start:
            self._set_xi(0.0)
        elif self.xi == 0.0:
            self._set_xi(self.xi_start)
        elif live > self.target(step) and live >= last:
            self._set_xi(self.xi * self.factor)
        elif live < self.target(step):
            self._set_xi(self.xi / self.factor)
        return self.xi
