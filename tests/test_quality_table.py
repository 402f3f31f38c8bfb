"""benchmarks/quality_table.py keeps a second record (say, one made with newer defaults) beside the first: its tables go
to their own files, and the Markdown says which dropout the runs had and whether each SoRA-minus-LoRA pair shared a
device. Its runs are kept in committed records that outlive runs/, and a table never drops a committed row whose run
is gone. Synthetic rows stand in for saved runs; the GLUE data is not needed."""

import pytest
from benchmark_scripts import load_script


@pytest.fixture
def table(tmp_path, monkeypatch):
    module = load_script("quality_table")
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
    table.main(str(tmp_path / "no-runs-here"), name="quality_v3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality_v3_results.csv", "quality_v3_results.md"]
    text = (tmp_path / "quality_v3_results.md").read_text()
    assert text.startswith("# Quality record v3 (today's defaults: model dropout off): LoRA and SoRA on one GLUE task "
                           "(MiniLM)\n")  # the methods and tasks it holds, not the ones it may hold one day
    assert "The pretrained model's dropout: off (6 runs)." in text
    assert "Every run ran on one device and precision (CPU, fp32), so each pair shares them." in text
    assert "| mrpc | +1.00 | no spread | 3 | 60.0% | 50.0% |" in text  # every pair +1: no interval to print


def test_sora_is_set_against_adalora_as_against_lora_paired_by_seed(table):
    lora_sora = [row(m, s, 80.0 + s + (m == "sora")) for m in ("lora", "sora") for s in (0, 21, 42)]
    assert "SoRA minus AdaLoRA" not in table.markdown(lora_sora)  # no AdaLoRA runs, no table
    data = lora_sora + [row("adalora", s, 80.5 + s) for s in (0, 21)]  # two seeds: two pairs, seed 42 unpaired
    text = table.markdown(data)
    assert "## SoRA minus AdaLoRA, paired by seed (95% t-interval over seeds)" in text
    assert "| mrpc | +0.50 | no spread | 2 | 100.0% | 50.0% |" in text
    assert "| mrpc | +1.00 | no spread | 3 | 60.0% | 50.0% |" in text  # SoRA minus LoRA as before
    assert "AdaLoRA's count is at the ranks its allocator left" in text  # params_after_prune 60 < trainable 100
    old = lora_sora + [{**row("adalora", s, 80.5 + s), "params_after_prune": 100} for s in (0, 21)]
    assert "AdaLoRA's count is its trainable parameters" in table.markdown(old)  # runs counted before 2026-11-29
    assert "mixes two ways of counting" in table.markdown(old[:-1] + data[-1:])  # one old, one recounted


def test_mixed_dropout_and_devices_are_said_not_hidden(table):
    data = [row("lora", 0, 80.0, dropout=None), row("sora", 0, 81.0, device="H200 GPU, bf16")]
    text = table.markdown(data)
    assert "the checkpoint's own, 0.1 (1 run), off (1 run)" in text
    assert "The runs ran on more than one device or precision" in text
    same_cpu = [row("lora", 0, 80.0), row("sora", 0, 81.0, device="CPU, bf16")]  # one CPU, two precisions
    assert "The runs ran on more than one device or precision" in table.markdown(same_cpu)
    others_elsewhere = [row("lora", 0, 80.0), row("sora", 0, 81.0), row("adalora", 0, 80.0, device="H200 GPU, bf16")]
    assert ("so each SoRA-minus-LoRA pair shares them; the other methods' runs did not all"
            in table.markdown(others_elsewhere))


def test_a_degenerate_run_is_left_out_and_counted_and_a_seed_twice_is_refused(table):
    assert table.mean_std([80.0, float("nan"), 82.0]) == "81.00 ± 1.41 (1 degenerate left out)"
    assert table.mean_std([float("nan")]) == " (1 degenerate left out)"
    with pytest.raises(SystemExit, match="two runs of mrpc / lora with seed 0"):
        table.by_seed([row("lora", 0, 80.0), row("lora", 0, 81.0)])


def test_against_another_record_pairs_by_seed_and_skips_unshared_seeds(table):
    mine = [row("lora", s, 80.0 + s) for s in (0, 21, 42)]
    theirs = [row("lora", s, 79.0 + s, dropout=None) for s in (0, 21, 81)]
    text = "\n".join(table.against(mine, theirs, "runs/quality"))
    assert "their dropout: the checkpoint's own, 0.1 (3 runs)" in text
    assert "| mrpc | lora | 0, 21 | 90.50 ± 14.85 | 89.50 ± 14.85 | +1.00, no spread |" in text
    assert "Both records ran on CPU, fp32." in text
    elsewhere = "\n".join(table.against(mine, [{**r, "device": "H200 GPU, bf16"} for r in theirs], "runs/quality"))
    assert "These runs ran on CPU, fp32, those on H200 GPU, bf16: a difference here also holds that change." \
        in elsewhere


def test_runs_are_kept_in_the_committed_records_and_restored_where_missing(table, tmp_path, monkeypatch):
    root = tmp_path / "runs" / "quality-v3"
    run = root / "mrpc" / "lora" / "default" / "seed0" / "result.json"
    run.parent.mkdir(parents=True)
    run.write_text('{"score": 1}')
    (run.parent / "adapter.safetensors").write_bytes(b"weights")  # not a result: never copied
    seen = []
    monkeypatch.setattr(table, "rows", lambda where: seen.append(where) or [row("lora", 0, 80.0)])
    table.main(str(root), name="quality_v3")
    keep = tmp_path / "records" / "quality_v3"
    assert seen == [keep]  # the table reads the committed copy, not runs/
    assert [p.relative_to(keep).as_posix() for p in keep.rglob("*") if p.is_file()] == \
        ["mrpc/lora/default/seed0/result.json"]
    run.write_text('{"score": 2}')  # a rerun replaces its kept copy
    assert table.mirror(root, keep, overwrite=True) == 1
    assert (keep / "mrpc/lora/default/seed0/result.json").read_text() == '{"score": 2}'
    fresh = tmp_path / "fresh-clone-runs"
    assert table.mirror(keep, fresh, overwrite=False) == 1  # --restore: back where a sweep reuses it
    assert table.mirror(keep, fresh, overwrite=False) == 0  # and never over a run that is there


def test_against_a_committed_csv_when_the_other_runs_are_gone(table, tmp_path):
    other = tmp_path / "quality_results.csv"
    other.write_text("task,method,seed,metric,score,params_after_prune,trainable_params,wall_time_s\n"
                     "mrpc,lora,0,f1,79.0,100,100,1.0\nmrpc,lora,21,f1,100.0,100,100,1.0\n")
    text = "\n".join(table.against([row("lora", s, 80.0 + s) for s in (0, 21)], table.from_csv(other), str(other)))
    assert "their dropout: not in the CSV (2 runs)" in text
    assert "Those runs' device and precision are not in their CSV; these ran on CPU, fp32." in text
    assert "| mrpc | lora | 0, 21 | 90.50 ± 14.85 | 89.50 ± 14.85 | +1.00, no spread |" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("task,score\nmrpc,1\n")
    with pytest.raises(SystemExit, match="not a record's CSV"):
        table.from_csv(bad)


def test_a_table_never_drops_committed_rows_whose_runs_are_gone(table, tmp_path, monkeypatch):
    (tmp_path / "quality_v3_results.csv").write_text(
        "task,method,seed,metric,score,params_after_prune,trainable_params,wall_time_s\n"
        "mrpc,lora,0,f1,87.0,100,100,1.0\nmrpc,lora,81,f1,86.0,100,100,1.0\n")
    monkeypatch.setattr(table, "rows", lambda where: [row("lora", 81, 86.0)])  # seed 0's result.json is gone
    with pytest.raises(SystemExit, match=r"holds 1 run\(s\) .* e\.g\. mrpc lora 0; the table would drop them"):
        table.main(str(tmp_path / "no-runs-here"), name="quality_v3")
    assert "mrpc,lora,0" in (tmp_path / "quality_v3_results.csv").read_text()  # untouched
