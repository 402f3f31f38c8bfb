"""SoRA's strength as a target: the share of ranks to keep, reached by steering xi during training.

A constant ``xi`` means different sparsity at different budgets: with the threshold ``t = lr * xi`` per step and
Adam moving a gate by at most about its learning rate per step, whether a gate dies depends on how many steps
there are, the learning-rate schedule and the gate's size. ``KeepSchedule`` fixes the outcome instead, the share of
gate entries still non-zero, and leaves *which* ranks go to the proximal step (the allocation across layers and
modules stays SoRA's own):

* before ``start`` (a share of the run) ``xi = 0``: gates, A and B learn freely;
* from ``start`` to ``end`` the target share of live ranks falls from 1 to ``keep`` on a cubic curve (fast first,
  as AdaLoRA's budget schedule), and stays at ``keep`` after ``end``;
* after every optimiser step ``xi`` is multiplied by a constant factor (``decades`` powers of ten over the ramp)
  while more ranks live than the target and none died in that step; it is held while gates are dying (they die some
  steps after xi rises, so raising it further would overshoot), and divided by the factor while fewer ranks live
  than the target (a dead gate revives when its Adam step beats the threshold);
* with ``final=True`` the cut is made once: at the first step after ``end`` whose live share is within
  ``tolerance`` (2% of the ranks, at least one) of ``keep``, xi drops to 0 and every dead gate is set back to zero
  after each later step, so the survivors train on as a plain LoRA of mixed ranks, no longer shrunk by the threshold
  (``final=False``: xi keeps holding the share to the end).

Why this selects by training: with Adam a gate moves by about ``gate_lr * s`` per step, where ``s`` (at most about
1) measures how consistently its gradient pushes one way, while the proximal step pulls it by ``gate_lr * xi``; so
xi is a bar on ``s``, of order 0.1 to 1 at any budget, and the ranks whose gradients are mostly noise die first.
For that to happen within the run a gate must be able to travel its own size (1 for ``gate_init="ones"``):
``gate_lr(total_steps)`` gives it ``TRAVEL`` times that over the ramp, and ``run_glue`` uses it when ``keep`` is
set and no ``gate_lr`` is given. (With the adapters' learning rate, a few hundred steps move a gate by about 0.1:
only an xi far above 1, which kills every gate regardless of its gradient, could reach zero.)

Call ``update(step)`` explicitly after ``optimizer.step()``; ``callbacks.KeepCallback`` does it in a Trainer.
"""

from __future__ import annotations

import math

import torch

from ..optim import gate_parameters

# The ramp, as shares of the run, and whether the cut is final: the recipe's values (soralab.experiments.recipes.BASE),
# chosen on held-out training data by benchmarks/keep_schedule.py. The quality record's runs used 0.1, 0.7, not final.
START, END, FINAL = 0.05, 0.4, True
TRAVEL = 5.0  # how far (in gate sizes) a gate can move over the ramp at gate_lr(total_steps)


def total_steps(n_rows: int, batch_size: int, epochs: float) -> int:
    """Optimiser steps of a run on one device without accumulation, as the Trainer counts them."""
    return math.ceil(math.ceil(n_rows / batch_size) * epochs)


def xi_for_pull(pull: float, steps: int, lr: float) -> float:
    """The constant xi whose proximal steps pull a gate that its gradient does not hold up by ``pull`` in total over
    ``steps`` steps of a linear warm-up/decay schedule, whose mean learning rate is ``lr / 2``:
    ``pull = steps * lr / 2 * xi``. (The ``keep`` schedule replaces this sizing; notebooks that teach raw xi use it.)
    """
    return pull / (steps * lr / 2)


def pull_of(xi: float, steps: int, lr: float) -> float:
    """The inverse of ``xi_for_pull``: the total pull of ``xi`` over ``steps`` steps at peak learning rate ``lr``."""
    return steps * lr / 2 * xi


def ramp_steps(total_steps: int, start: float = START, end: float = END) -> float:
    return max(1.0, (end - start) * total_steps)


def gate_lr(total_steps: int, start: float = START, end: float = END) -> float:
    """The gates' learning rate for a run of ``total_steps``: a gate can travel ``TRAVEL`` over the ramp."""
    return TRAVEL / ramp_steps(total_steps, start, end)


class KeepSchedule:
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, keep: float, total_steps: int, *,
                 start: float = START, end: float = END, xi_start: float = 0.1, decades: float = 2.0,
                 final: bool = FINAL):
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be a share of ranks in (0, 1], got {keep!r}")
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"need 0 <= start < end <= 1 (shares of the run), got start={start}, end={end}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not xi_start > 0 or not decades > 0:
            raise ValueError(f"xi_start and decades must be > 0, got {xi_start}, {decades}")
        self.gates = gate_parameters(model)
        if not self.gates:
            raise ValueError("KeepSchedule needs a model with SoRA gates; none found")
        self.optimizer = optimizer
        ids = {id(g) for g in self.gates}
        groups = self.groups
        stray = [g.get("name", "?") for g in groups if any(id(p) not in ids for p in g["params"])]
        if stray or sum(len(g["params"]) for g in groups) != len(self.gates):
            raise ValueError("the optimiser must hold every gate, in groups of gates only (soralab.param_groups "
                             f"does this); groups mixing gates with other parameters: {stray}")
        self.keep, self.total_steps, self.start, self.end = keep, total_steps, start, end
        self.xi_start, self.final = xi_start, final
        self.dead: list[torch.Tensor] | None = None  # with final: the masks of the ranks cut, once cut
        self.factor = math.exp(decades * math.log(10) / ramp_steps(total_steps, start, end))
        self.r_total = sum(g.numel() for g in self.gates)
        self.tolerance = max(1, round(0.02 * self.r_total)) / self.r_total  # how near keep a final cut may be made
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
        # one device-to-host sync per step, not one per gate (36 on MiniLM): they add up on a GPU
        return int(torch.stack([torch.count_nonzero(g.detach()) for g in self.gates]).sum()) / self.r_total

    @property
    def xi(self) -> float:
        return self.groups[0]["xi"]

    def _set_xi(self, xi: float) -> None:
        for g in self.groups:
            g["xi"] = xi

    def update(self, step: int) -> float:
        """Set xi for the next step from the live share after ``step`` steps; returns the new xi."""
        if self.dead is not None:  # the final cut is made: what the last step moved off zero goes back
            with torch.no_grad():
                for g, dead in zip(self.gates, self.dead, strict=True):
                    g.masked_fill_(dead, 0.0)
            return self.xi
        live, last = self.live_fraction(), self._last_live
        self._last_live = live
        if self.final and step / self.total_steps >= self.end and abs(live - self.keep) <= self.tolerance:
            self.dead = [g.detach() == 0 for g in self.gates]
            self._set_xi(0.0)
        elif step / self.total_steps < self.start:
            self._set_xi(0.0)
        elif self.xi == 0.0:  # start pulling once there are more live ranks than wanted (keep=1.0: never)
            self._set_xi(self.xi_start if live > self.target(step) else 0.0)
        elif live > self.target(step) and live >= last:
            self._set_xi(self.xi * self.factor)
        elif live < self.target(step):
            self._set_xi(self.xi / self.factor)
        return self.xi
