"""benchmarks/recount_adalora.py: results saved when AdaLoRA's ``params_after_prune`` was its trainable count get the
count ``run_glue`` writes today, from the ranks they kept, and nothing else in them changes."""

import json

import pytest
from benchmark_scripts import load_script
from glue_fixtures import write_glue_fixture

from soralab.errors import UsageError
from soralab.experiments.models import save_tiny_checkpoint
from soralab.experiments.train import RESULT_NAME, run_glue

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def recount():
    return load_script("recount_adalora")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An AdaLoRA run on a tiny model, its result.json, and the run's own count."""
    root = tmp_path_factory.mktemp("recount")
    write_glue_fixture(root / "glue", "sst2", n_train=48, n_dev=16)
    res = run_glue("sst2", "adalora", model_name_or_path=save_tiny_checkpoint(root / "bert"),
                   data_dir=str(root / "glue"), num_train_epochs=2, max_seq_length=32, per_device_train_batch_size=8,
                   output_dir=root / "run" / "seed1", progress=False)
    return root / "run", res


def test_an_old_count_becomes_the_one_run_glue_writes(recount, saved, tmp_path):
    folder, res = saved
    assert res.params_after_prune < res.trainable_params
    path = tmp_path / "seed1" / RESULT_NAME
    path.parent.mkdir()
    old = json.loads((folder / "seed1" / RESULT_NAME).read_text())
    path.write_text(json.dumps({**old, "params_after_prune": old["trainable_params"]}, indent=2))  # as before
    recount.main([str(tmp_path)])
    new = json.loads(path.read_text())
    assert new == {**old, "params_after_prune": res.params_after_prune}
    text = path.read_text()
    recount.main([str(tmp_path)])  # again: nothing changes
    assert path.read_text() == text


def test_a_result_from_another_model_is_refused(recount, saved, tmp_path):
    folder, _ = saved
    path = tmp_path / RESULT_NAME
    old = json.loads((folder / "seed1" / RESULT_NAME).read_text())
    path.write_text(json.dumps({**old, "trainable_params": old["trainable_params"] + 1}))
    with pytest.raises(UsageError, match="rebuilt model trains"):
        recount.main([str(tmp_path)])
    with pytest.raises(UsageError, match="no AdaLoRA result.json"):
        recount.main([str(tmp_path / "empty")])
