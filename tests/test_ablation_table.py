"""benchmarks/ablation_table.py (and keep_schedule.py, which uses its ``scores``) pair runs by seed only within one
setting: device and precision, training rows, the model's dropout. Synthetic results stand in for saved runs."""

from types import SimpleNamespace

import pytest
from benchmark_scripts import load_script


def run(method, seed, score, rows=None, dropout=None, where="cpu"):
    config = {"task": "sst2", "method": method, "seed": seed, "keep": 0.5 if method == "sora" else None,
              "max_train_samples": rows, "model_dropout": dropout, "precision": "fp32"}
    return SimpleNamespace(config=config, score=score, environment={"device": where})


def test_runs_on_other_rows_or_dropout_do_not_pair():
    table = load_script("ablation_table")
    sora = table.scores([run("sora", s, 86.0 + s, rows=20000) for s in (0, 21)], "sst2", "sora", keep=0.5)
    lora = table.scores([run("lora", s, 87.0 + s) for s in (0, 21)] +  # all rows: not sora's 20,000
                        [run("lora", s, 88.0 + s, rows=20000, dropout=0.0) for s in (0, 21)], "sst2", "lora")
    assert set(sora) == {("CPU, fp32, 20000 rows", 0), ("CPU, fp32, 20000 rows", 21)}
    where = "CPU, fp32, 20000 rows"
    assert table.on(where, lora) == {}  # nothing on sora's setting: no pair
    assert table.interval(table.paired(*table.pair(table.on(where, sora), table.on(where, lora)))) == \
        "fewer than two same-device pairs"
    assert table.on("CPU, fp32, 20000 rows, dropout 0.0", lora) == {0: 88.0, 21: 109.0}


def test_two_runs_of_one_setting_and_seed_are_refused():
    table = load_script("ablation_table")
    with pytest.raises(SystemExit, match="two runs of sst2 / lora on CPU, fp32 with seed 0"):
        table.scores([run("lora", 0, 87.0), run("lora", 0, 88.0)], "sst2", "lora")
