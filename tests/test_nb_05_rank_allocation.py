"""Twin of notebooks/05_where_the_rank_goes.ipynb: the rank matrix is gate_report rearranged (sums, bounds), the
allocation is not uniform and differs between tasks, and the heatmaps draw; plus the start the comparison rests on
(same seed and label count -> identical initial adapters, another seed -> another A). On a tiny BERT checkpoint and
GLUE fixtures, with a constant xi (the notebook uses the recipe's keep) so that a four-step run surely kills gates."""


import numpy as np
import pytest
import torch
from glue_fixtures import write_glue_fixture

import soralab
from soralab.experiments.models import save_tiny_checkpoint
from soralab.experiments.sparsity import total_steps, xi_for_pull
from soralab.experiments.train import GlueConfig, run_glue, setup
from soralab.export import adapter_state
from soralab.teaching.plots import MODULE_TYPES, plot_rank_heatmap, rank_matrix

TASKS = ("sst2", "rte")
R_MAX = 8
GATE_LR = 0.5  # 4 steps here instead of the notebook's 40 at 0.05: the same possible movement of a gate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb05")
    for task in TASKS:
        write_glue_fixture(root / "glue", task, n_train=32, n_dev=8)
    kw = dict(model_name_or_path=save_tiny_checkpoint(root / "bert"), data_dir=str(root / "glue"), max_seq_length=32,
              per_device_train_batch_size=8, num_train_epochs=1, r=R_MAX, seed=1)
    kw.update(gate_init="ones", gate_lr=GATE_LR)  # as in the notebook: equal gates, a gate learning rate of their own
    return {"kw": kw, "xi": xi_for_pull(1.2, total_steps(32, 8, 1), GATE_LR)}  # a pull of 1.2 on gates that start at 1


@pytest.fixture(scope="module")
def results(tiny):
    return {t: run_glue(t, "sora", progress=False, **tiny["kw"], xi=tiny["xi"]) for t in TASKS}


def _adapters(model):
    return torch.cat([p.detach().flatten() for p in adapter_state(model).values()])


def test_same_seed_and_label_count_start_from_the_same_adapters(tiny):
    start = {t: _adapters(setup(GlueConfig(task=t, method="sora", **tiny["kw"])).model) for t in TASKS}
    assert torch.equal(start["sst2"], start["rte"])
    other_seed = _adapters(setup(GlueConfig(task="rte", method="sora", **{**tiny["kw"], "seed": 2})).model)
    assert not torch.equal(start["rte"], other_seed)


def test_rank_matrix_is_gate_report_rearranged(results):
    for res in results.values():
        report = soralab.gate_report(res.model)
        mat = rank_matrix(res.active_ranks)
        assert res.active_ranks == report.ranks()
        assert mat.shape == (2, len(MODULE_TYPES))  # 2 blocks x 6 module types
        assert mat.sum() == report.active_rank == mat.sum(axis=0).sum() == mat.sum(axis=1).sum()
        assert mat.min() >= 0 and mat.max() <= R_MAX
        assert 0 < report.active_rank < report.r_max


def test_rank_matrix_places_each_module():
    ranks = {"bert.encoder.layer.1.attention.self.key": 3, "bert.encoder.layer.0.intermediate.dense": 5,
             "bert.encoder.layer.0.output.dense": 2, "bert.encoder.layer.1.attention.output.dense": 7}
    mat = rank_matrix(ranks)
    assert mat.shape == (2, 6) and mat.sum() == 17
    assert mat[1, MODULE_TYPES.index("key")] == 3 and mat[0, MODULE_TYPES.index("ffn-in")] == 5
    assert mat[0, MODULE_TYPES.index("ffn-out")] == 2 and mat[1, MODULE_TYPES.index("attn-out")] == 7


def test_allocation_is_not_uniform_differs_between_tasks_and_heatmaps_draw(results):
    mats = {task: rank_matrix(res.active_ranks) for task, res in results.items()}
    assert (mats["sst2"] != mats["rte"]).any(), "from identical adapters the tasks end with different allocations"
    for task, res in results.items():
        mat = mats[task]
        assert len(np.unique(mat)) > 1, task
        fig = plot_rank_heatmap(res.active_ranks, r_max=R_MAX, title=task)
        assert fig.axes[0].images[0].get_array().sum() == mat.sum()
