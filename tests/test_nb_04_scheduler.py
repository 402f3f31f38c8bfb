"""Twin of notebooks/04_sparsifying_scheduler.ipynb: xi sizing, the three schedules, why dead gates stay dead,
and the stage table's claims, on a tiny BERT checkpoint and a tiny SST-2 fixture."""

import itertools
import math

import pytest
import torch
from glue_fixtures import TINY_BERT_IN_PLUS_OUT, write_glue_fixture
from nb_fixtures import notebook_parameters

import soralab
from soralab.experiments.models import save_tiny_checkpoint
from soralab.experiments.recipes import recipe
from soralab.experiments.scheduler import XI_SCHEDULES, sparsify
from soralab.experiments.sparsity import pull_of, total_steps, xi_for_pull
from soralab.teaching.plots import plot_sparsify
from soralab.teaching.profiles import profile

LR = recipe("sst2", "sora")["learning_rate"]


def xi_for(pull: float, steps: int) -> float:
    """The notebook's sizing (the package's): over a linear warm-up/decay stage the mean lr is lr/2."""
    return xi_for_pull(pull, steps, LR)


@pytest.mark.parametrize("start, end, n", [(50.0, 100.0, 2), (6.67, 13.3, 4), (0.019, 0.039, 6), (1.0, 1.0, 3)])
def test_schedules_share_end_points_and_are_ordered(start, end, n):
    xis = {kind: soralab.xi_values(start, end, n, kind) for kind in XI_SCHEDULES}
    for values in xis.values():
        assert len(values) == n and values[0] == pytest.approx(start) and values[-1] == pytest.approx(end)
    tol = 1e-9 * end
    ordered = zip(xis["exp_linear"], xis["linear"], xis["log_linear"], strict=True)
    assert all(e <= li + tol and li <= g + tol for e, li, g in ordered)
    if n > 2 and end > start:  # strictly in between
        assert xis["exp_linear"][1] < xis["linear"][1] < xis["log_linear"][1]


def test_classroom_sizing_keeps_every_xi_above_three_on_short_stages():
    """With the notebook's own pulls (its parameters cell), the classroom stages are short and every xi is at least
    3, the condition under which the notebook asserts that a dead rank stays dead."""
    nb = notebook_parameters("04_sparsifying_scheduler.ipynb")
    c = profile("classroom")
    steps = total_steps(min(c.max_train_samples, nb["max_train"]), c.batch_size, c.epochs_per_stage)
    xis = soralab.xi_values(xi_for(nb["first_stage_shrink"], steps), xi_for(nb["last_stage_shrink"], steps),
                            c.n_stages, "linear")  # the notebook's default schedule
    assert steps <= 100 and min(xis) >= 3
    assert xis[-1] == pytest.approx(nb["last_stage_shrink"] / (steps * LR / 2))
    total = c.n_stages * (nb["first_stage_shrink"] + nb["last_stage_shrink"]) / 2  # linear: the mean pull per stage
    assert pull_of(sum(xis), steps, LR) == pytest.approx(total)  # total pull on an unsupported gate
    assert sum(xis) * steps * LR / 2 == pytest.approx(total)  # the same, by the formula the notebook states


def _zeroed_gate_after(xi: float, grads: list[float], lr: float = 1e-2) -> float:
    """A gate already at 0, fresh ProximalAdamW (as each stage), the given gradients: where does it end?"""
    g = torch.nn.Parameter(torch.zeros(1))
    opt = soralab.ProximalAdamW([{"params": [g], "weight_decay": 0.0, "xi": xi, "name": "gates"}], lr=lr)
    moved = 0.0
    for grad in grads:
        g.grad = torch.tensor([grad])
        opt.step()
        moved = max(moved, abs(g.item()))
    return moved


@pytest.mark.parametrize("grads", [[1.0] * 100, [(-1.0) ** k for k in range(100)], [1.1**k for k in range(100)],
                                   torch.randn(100, generator=torch.Generator().manual_seed(0)).tolist()])
def test_a_dead_gate_stays_dead_when_xi_is_three_but_revives_when_xi_is_tiny(grads):
    assert _zeroed_gate_after(3.0, grads) == 0.0
    assert _zeroed_gate_after(0.02, grads) > 0.0


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb04")
    write_glue_fixture(root / "glue", "sst2", n_train=40, n_dev=8)
    model = save_tiny_checkpoint(root / "bert")
    steps = math.ceil(40 / 8)  # per stage
    return sparsify("sst2", xi_start=xi_for(0.5, steps), xi_end=xi_for(1.0, steps), n_stages=3, schedule="linear",
                    epochs_per_stage=1, dense_epochs=1, memorization_samples=min(1000, 40), model_name_or_path=model,
                    data_dir=str(root / "glue"), max_seq_length=32, per_device_train_batch_size=8, seed=1,
                    progress=False)


def test_stage_table_claims(result):
    stages = result.stages
    params = [s.nonzero_params for s in stages]
    assert [s.xi for s in stages] == [0.0, *soralab.xi_values(100.0, 200.0, 3, "linear")]  # lr 2e-3, 5 steps
    dense = sum(m.r * (m.in_features + m.out_features) for _, m in soralab.adapter_modules(result.model))
    assert params[0] == dense == 8 * TINY_BERT_IN_PLUS_OUT
    assert all(a >= b for a, b in itertools.pairwise(params)) and params[-1] < params[0]
    assert stages[-1].active_rank == soralab.gate_report(result.model).active_rank
    assert stages[0].memorization_rel == 100.0 and stages[0].generalization_rel == 100.0
    for s in stages[1:]:
        assert s.memorization_rel == pytest.approx(100 * s.memorization / stages[0].memorization)
        assert s.generalization_rel == pytest.approx(100 * s.generalization / stages[0].generalization)
    fig = plot_sparsify(result, baseline=50.0)
    memorization, generalization, majority = fig.axes[0].lines
    assert list(memorization.get_xdata()) == params and fig.axes[0].get_xscale() == "log"
    assert list(generalization.get_ydata()) == pytest.approx([100 * s.generalization for s in stages])  # x100
    assert list(majority.get_ydata()) == [50.0, 50.0]
    assert "| 3 | 200 |" in result.table()
    assert f"| {100 * stages[0].memorization:.2f} | {100 * stages[0].generalization:.2f} | 100.0 | 100.0 |" in \
        result.table(), "scores x100 in the table, as everywhere"
