"""soralab.experiments.paper_claims: notebook 08's side-by-side table. Ours is computed from a record's rows."""

import csv

import pytest

from soralab.experiments.paper_claims import NOT_RUN, markdown, ours, paper_claims, read_record, side_by_side


def _rows(sora_score: float, sora_params: int = 60, sora_time: float = 10.0) -> list[dict]:
    rows = []
    for task in ("sst2", "mrpc"):
        for seed in (0, 1):
            rows.append({"task": task, "method": "lora", "seed": seed, "score": 80.0, "params_after_prune": 100,
                         "wall_time_s": 10.0})
            rows.append({"task": task, "method": "sora", "seed": seed, "score": sora_score,
                         "params_after_prune": sora_params, "wall_time_s": sora_time})
    return rows


def test_every_claim_names_its_source_and_number():
    claims = paper_claims()
    assert [c["id"] for c in claims][:2] == ["sora_glue", "sora_llama"]
    assert all(c["claim"] and c["source"] and c["literature"] for c in claims)
    assert any("no public number" in c["literature"] for c in claims), "say which claim has no public number"


@pytest.mark.parametrize("sora, params, holds", [(81.0, 60, True), (79.0, 60, False), (81.0, 100, False)])
def test_sora_glue_holds_only_at_lora_score_with_fewer_parameters(sora, params, holds):
    text, ok = ours("sora_glue", _rows(sora, params))
    assert ok is holds
    assert f"sora avg {sora:.2f} vs LoRA 80.00 over mrpc, sst2" in text and f"{params}%" in text


def test_cost_is_the_median_speed_ratio_of_paired_runs():
    assert ours("sora_cost", _rows(80.0, sora_time=20.0)) == (
        "SoRA at 0.50 of LoRA's speed (median of 4 paired whole runs, range 0.50-0.50)", False)
    assert ours("sora_cost", _rows(80.0, sora_time=10.5))[1] is True


def test_missing_methods_and_claims_without_numbers_are_not_tested():
    lora_only = [r for r in _rows(80.0) if r["method"] == "lora"]
    assert ours("sora_glue", lora_only) == (NOT_RUN, None)
    assert ours("sora_table1", _rows(80.0)) == ("no number to compare here", None)
    table = side_by_side(_rows(81.0))
    assert all(r["ours_paper"] == NOT_RUN and r["holds_paper"] is None for r in table)
    md = markdown(table)
    assert md.count("\n") == len(table) + 1 and "(holds)" in md


def test_the_paper_profiles_column_comes_from_its_results():
    """Notebook 08 in the paper profile turns its own GlueResults into rows for the table's last column."""
    from types import SimpleNamespace

    from soralab.experiments.paper_claims import rows_from_results

    results = [SimpleNamespace(config={"task": r["task"], "method": r["method"], "seed": r["seed"]}, score=r["score"],
                               params_after_prune=r["params_after_prune"], wall_time_s=r["wall_time_s"])
               for r in _rows(81.0)]
    assert rows_from_results(results) == _rows(81.0)
    table = side_by_side(_rows(79.0), rows_from_results(results))
    glue = next(r for r in table if r["id"] == "sora_glue")
    assert glue["holds_cpu"] is False and glue["holds_paper"] is True and "sora avg 81.00" in glue["ours_paper"]


def test_read_record_parses_numbers(tmp_path):
    path = tmp_path / "record.csv"
    cols = ["task", "method", "seed", "metric", "score", "params_after_prune", "trainable_params", "wall_time_s"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow(["sst2", "lora", "0", "accuracy", "87.5", "480386", "480386", "200.1"])
    assert read_record(path) == [{"task": "sst2", "method": "lora", "seed": 0, "metric": "accuracy", "score": 87.5,
                                  "params_after_prune": 480386, "trainable_params": "480386", "wall_time_s": 200.1}]


def test_notebook_08_reads_a_complete_committed_record():
    """Notebook 08's claims table is computed from the CSV its ``record_csv`` parameter names: that file must be
    committed and hold every method the claims compare on the paper's five seeds and all four tasks."""
    import ast
    import json
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "notebooks" / "08_reproduce_the_paper.ipynb"
    cell = next(c for c in json.loads(book.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    name = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "record_csv")
    rows = read_record(book.parent / name)
    runs = {(r["task"], r["method"], r["seed"]) for r in rows}
    assert len(runs) == len(rows), "one row per (task, method, seed)"
    for method in ("lora", "sora", "adalora"):
        for task in ("mrpc", "rte", "stsb", "sst2"):
            assert {s for t, m, s in runs if (t, m) == (task, method)} == {0, 21, 42, 81, 100}, (task, method)
    table = side_by_side(rows)
    assert [r["holds_cpu"] is not None for r in table] == [
        c["id"] in ("sora_glue", "sora_llama", "sora_cost", "adalora_glue") for c in paper_claims()]


def test_a_partial_record_gives_no_verdict_and_degenerate_runs_are_left_out():
    partial = [r for r in _rows(81.0) if not (r["method"] == "sora" and r["task"] == "sst2")]  # SoRA on mrpc only
    assert ours("sora_glue", partial) == ("sora and LoRA have not both run every task (mrpc, sst2)", None)
    assert ours("sora_llama", partial) == ("SoRA and LoRA have not both run sst2", None)
    rows = _rows(81.0)
    rows[1] = {**rows[1], "score": float("nan")}  # one SoRA seed with no score
    text, holds = ours("sora_glue", rows)
    assert holds is True and text.startswith("sora avg 81.00") and text.endswith("(1 degenerate run(s) left out)")
