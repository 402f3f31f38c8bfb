"""benchmarks/quality_table.py keeps a second record (say, one made with newer defaults) beside the first: its tables go
to their own files, and the Markdown says which dropout the runs had and whether each SoRA-minus-LoRA pair shared a
device. Synthetic rows stand in for saved runs; the GLUE data is not needed."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_table.py"


@pytest.fixture
def table(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("quality_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr(module, "baseline", lambda task, data_dir=None: 50.0)
    return module


def row(method, seed, score, device="CPU, fp32", dropout=0.0):
    return {"task": "mrpc", "method": method, "seed": seed, "metric": "f1", "score": score,
            "params_after_prune": 100 if method == "lora" else 60, "trainable_params": 100, "wall_time_s": 1.0,
            "ranks_kept": None if method == "lora" else 50.0, "device": device, "rows": "all", "dropout": dropout}


def test_a_named_record_writes_its_own_files_and_says_its_dropout(table, tmp_path, monkeypatch):
    data = [row(m, s, 80.0 + s + (m == "sora")) for m in ("lora", "sora") for s in (0, 21, 42)]
    monkeypatch.setattr(table, "rows", lambda root: data)
    table.main("runs/quality-v3", name="quality_v3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality_v3_results.csv", "quality_v3_results.md"]
    text = (tmp_path / "quality_v3_results.md").read_text()
    assert text.startswith("# Quality record v3")
    assert "The pretrained model's dropout: off (6 runs)." in text
    assert "LoRA and SoRA ran on the CPU for every seed" in text
    assert "| mrpc | +1.00 | [+1.00, +1.00] | 3 | 60.0% | 50.0% |" in text


def test_mixed_dropout_and_devices_are_said_not_hidden(table):
    data = [row("lora", 0, 80.0, dropout=None), row("sora", 0, 81.0, device="H200 GPU, bf16")]
    text = table.markdown(data)
    assert "the checkpoint's own, 0.1 (1 run), off (1 run)" in text
    assert "LoRA and SoRA ran on more than one device" in text


def test_against_another_record_pairs_by_seed_and_skips_unshared_seeds(table):
    mine = [row("lora", s, 80.0 + s) for s in (0, 21, 42)]
    theirs = [row("lora", s, 79.0 + s, dropout=None) for s in (0, 21, 81)]
    text = "\n".join(table.against(mine, theirs, "runs/quality"))
    assert "their dropout: the checkpoint's own, 0.1 (3 runs)" in text
    assert "| mrpc | lora | 0, 21 | 90.50 ± 14.85 | 89.50 ± 14.85 | +1.00 [+1.00, +1.00] |" in text
