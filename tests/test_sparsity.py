"""KeepSchedule: SoRA's strength as a share of ranks to keep, reached by steering xi."""

import itertools

import pytest
import torch
from torch import nn

import soralab
from soralab.experiments.run_config import ADDED_LATER, KEEP_SCHEDULE
from soralab.experiments.sparsity import KeepSchedule, gate_lr


def _model(seed=0, r=8, gate_init="ones"):
    torch.manual_seed(seed)
    base = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4))
    return soralab.inject(base, soralab.SoRAConfig(r=r, lora_alpha=r, target_modules=["0", "1"], gate_init=gate_init))


def _train(model, keep, steps, seed=0, watch=None, **schedule):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 16, generator=g)
    w = torch.randn(16, 4, generator=g) @ torch.diag(torch.tensor([3.0, 1.0, 0.3, 0.1]))  # ranks of unequal use
    y = x @ w
    ramp = {k: schedule[k] for k in ("start", "end") if k in schedule}  # the gates' lr as run_glue sizes it
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-2, weight_decay=0.1, gate_lr=gate_lr(steps, **ramp)),
                                lr=1e-2)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / steps)  # the Trainer's linear decay
    schedule = KeepSchedule(model, opt, keep, steps, **schedule)
    xis = []
    for step in range(1, steps + 1):
        i = torch.randint(0, 256, (32,), generator=g)
        loss = ((model(x[i]) - y[i]) ** 2).mean()
        loss.backward()
        opt.step()
        decay.step()
        opt.zero_grad()
        xis.append(schedule.update(step))
        if watch is not None:
            watch(step)
    return schedule, xis


# the schedule the quality record's first SoRA runs used, as KeepSchedule's arguments
RECORD = {k.removeprefix("keep_"): ADDED_LATER[k] for k in KEEP_SCHEDULE}


@pytest.mark.parametrize("how", [{}, RECORD], ids=["default", "record"])
@pytest.mark.parametrize("steps", [60, 600])
@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75])
def test_reaches_the_share_to_keep_at_any_budget(keep, steps, how, one_thread):
    model = _model()
    schedule, xis = _train(model, keep, steps, **how)
    live = schedule.live_fraction()
    assert abs(live - keep) <= 2 / 16, (keep, steps, live)  # within two of the 16 ranks
    assert xis[0] == 0.0 and max(xis) > 0  # free start, then a positive strength
    report = soralab.gate_report(model)
    assert report.active_rank == round(live * report.r_max)


def test_final_cut_stays_cut_and_frees_the_survivors(one_thread):
    model = _model()
    gates = soralab.optim.gate_parameters(model)
    snapshots = {}  # the gates after each update
    schedule, xis = _train(model, 0.5, 300, final=True,
                           watch=lambda step: snapshots.__setitem__(step, [g.detach().clone() for g in gates]))
    assert schedule.dead is not None, "the cut was never made"
    same_as_cut = {t: all(torch.equal(a == 0, d) for a, d in zip(snapshots[t], schedule.dead, strict=True))
                   for t in snapshots}
    cut = next(t for t in range(1, 301) if xis[t - 1] == 0.0 and t >= schedule.end * 300)
    assert abs(schedule.live_fraction() - 0.5) <= 1 / 16  # within one of the 16 ranks
    assert all(x == 0.0 for x in xis[cut - 1:])  # no threshold after the cut: the survivors are not shrunk
    assert all(same_as_cut[t] for t in range(cut, 301))  # the same ranks stay exactly zero at every step
    moved = [not torch.equal(a, b) for a, b in zip(snapshots[cut], snapshots[300], strict=True)]
    assert any(moved), "the surviving gates should train on after the cut"


def test_target_falls_from_one_to_keep():
    model = _model()
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-2), lr=1e-2)
    s = KeepSchedule(model, opt, 0.3, 100, start=0.1, end=0.7)
    targets = [s.target(t) for t in range(101)]
    assert targets[0] == 1.0 and targets[10] == 1.0 and targets[70] == pytest.approx(0.3) and targets[100] == 0.3
    assert all(a >= b for a, b in itertools.pairwise(targets))


def test_follows_the_optimiser_when_its_groups_are_replaced():
    """Accelerate reloads the optimiser's state when the Trainer wraps it, which replaces the group dicts."""
    model = _model()
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-2), lr=1e-2)
    s = KeepSchedule(model, opt, 0.5, 10, start=0.0)
    opt.load_state_dict(opt.state_dict())
    s.update(1)
    s.update(2)
    gates = [g for g in opt.param_groups if g["name"] == "gates"]
    assert gates[0]["xi"] == s.xi > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(keep=0.0), "keep must be"), (dict(keep=1.2), "keep must be"),
    (dict(keep=0.5, start=0.8, end=0.5), "start < end"), (dict(keep=0.5, total_steps=0), "total_steps"),
    (dict(keep=0.5, decades=0.0), "decades must be > 0"),
])
def test_bad_settings(kwargs, message):
    model = _model()
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-2), lr=1e-2)
    kwargs.setdefault("total_steps", 10)
    with pytest.raises(ValueError, match=message):
        KeepSchedule(model, opt, **kwargs)


def test_needs_gates_in_their_own_group():
    model = _model()
    with pytest.raises(ValueError, match="groups of gates only"):
        KeepSchedule(model, torch.optim.AdamW(model.parameters()), 0.5, 10)
    lora = soralab.inject(nn.Sequential(nn.Linear(4, 4)), soralab.LoRAConfig(r=2, target_modules=["0"]))
    with pytest.raises(ValueError, match="needs a model with SoRA gates"):
        KeepSchedule(lora, torch.optim.AdamW(lora.parameters()), 0.5, 10)


@pytest.mark.parametrize("how", [{}, RECORD], ids=["default", "record"])
def test_keep_one_never_pulls_a_gate(how, one_thread):
    """keep=1.0 is SoRA's gates with no sparsity: xi stays 0 at every step, so no gate is pulled and every rank
    lives (the schedule used to start xi at 0.1 whatever the target, and cut the ranks that died meanwhile)."""
    model = _model()
    schedule, xis = _train(model, 1.0, 120, **how)
    assert set(xis) == {0.0} and schedule.live_fraction() == 1.0
