"""Run profiles, record(), and the papermill suite runner."""

import json

import pytest
from nb_fixtures import write_notebook

from soralab.cli import main as cli_main
from soralab.errors import UsageError
from soralab.teaching.profiles import PROFILES, profile, record
from soralab.teaching.suite import run_suite


def test_profile_comes_from_argument_then_env_then_classroom(monkeypatch):
    monkeypatch.delenv("SORALAB_PROFILE", raising=False)
    assert profile().name == "classroom"
    monkeypatch.setenv("SORALAB_PROFILE", "smoke")
    assert profile().name == "smoke"
    assert profile("paper").name == "paper" and profile("paper").model == "microsoft/deberta-v3-base"
    assert profile("smoke", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke, classroom, paper"):
        profile("fast")


def test_profiles_scale_up():
    smoke, classroom = PROFILES["smoke"], PROFILES["classroom"]
    assert smoke.max_train_samples < classroom.max_train_samples and smoke.planted_steps < classroom.planted_steps
    assert PROFILES["paper"].max_train_samples is None and PROFILES["paper"].split_protocol == "paper"


def test_record_writes_only_inside_the_suite(tmp_path, monkeypatch):
    monkeypatch.delenv("SORALAB_SUMMARY", raising=False)
    assert record(a=1) == {"a": 1}
    monkeypatch.setenv("SORALAB_SUMMARY", str(tmp_path / "n.json"))
    record(a=1)
    record(b=2.5)
    assert json.loads((tmp_path / "n.json").read_text()) == {"a": 1, "b": 2.5}
    import numpy as np

    record(c=float("nan"), d=np.float32(0.5), e=np.int64(3))  # strict JSON (NaN as null), numpy scalars as numbers
    text = (tmp_path / "n.json").read_text()
    assert "NaN" not in text and json.loads(text) == {"a": 1, "b": 2.5, "c": None, "d": 0.5, "e": 3}




def test_suite_runs_notebooks_and_summarises(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    write_notebook(books / "01_ok.ipynb", "from soralab.teaching.profiles import profile, record\n"
                                     "P = profile(profile_name)\nrecord(profile=P.name, x=1.5)")
    write_notebook(books / "02_bad.ipynb", "assert False, 'claim does not hold'")
    rows = run_suite("smoke", tmp_path / "out", notebooks_dir=books)
    assert [r["status"] for r in rows][0] == "ok" and rows[0]["numbers"] == {"profile": "smoke", "x": 1.5}
    assert rows[1]["status"].startswith("failed") and "claim does not hold" in rows[1]["status"]
    assert (tmp_path / "out" / "01_ok.ipynb").is_file()
    assert "| 01_ok.ipynb | ok |" in (tmp_path / "out" / "summary.md").read_text()
    assert len(json.loads((tmp_path / "out" / "summary.json").read_text())) == 2
    assert run_suite("smoke", tmp_path / "out2", only=["01"], notebooks_dir=books)[0]["status"] == "ok"
    with pytest.raises(UsageError, match="--only 99: no notebook in .* starts with that"):  # a typo is not "run none"
        run_suite("smoke", tmp_path / "out3", only=["99"], notebooks_dir=books)


def test_suite_runs_notebooks_side_by_side(tmp_path):
    """jobs=2: each notebook in its own process, its kernel told to use cores // 2 threads, the longest declared
    runtime started first (one that declares none counts as longest); the summary keeps the notebooks' order and
    each notebook's own numbers and claims, as one at a time would."""
    from soralab.teaching.suite import cores

    books = tmp_path / "books"
    books.mkdir()
    declared = {1: {"smoke": 1, "classroom": 500}, 2: {"smoke": 5}, 3: None}  # start order: 3, 2, then 1
    for i in (1, 2, 3):
        write_notebook(books / f"0{i}_nb.ipynb", "import os, time\nfrom soralab.teaching.profiles import record\n"
                                                 "from soralab.teaching.claims import check\n"
                                                 f"record(i={i}, threads=os.environ.get('OMP_NUM_THREADS'), "
                                                 "started=time.time())\n"
                                                 f"check('notebook {i} ran', True, {{'i': {i}}})", declared[i])
    rows = run_suite("smoke", tmp_path / "out", notebooks_dir=books, jobs=2)
    threads = str(max(1, cores() // 2))
    started = {r["notebook"]: r["numbers"].pop("started") for r in rows}
    assert [(r["notebook"], r["status"], r["numbers"], r["claims"]) for r in rows] == [
        (f"0{i}_nb.ipynb", "ok", {"i": i, "threads": threads}, 1) for i in (1, 2, 3)]
    assert started["01_nb.ipynb"] > max(started["02_nb.ipynb"], started["03_nb.ipynb"])  # waited for a free worker
    claims = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert [c["claim"] for c in claims] == ["notebook 1 ran", "notebook 2 ran", "notebook 3 ran"]
    with pytest.raises(UsageError, match="jobs must be a whole number >= 1"):
        run_suite("smoke", tmp_path / "out2", notebooks_dir=books, jobs=0)
    write_notebook(books / "04_nb.ipynb", "pass", {"smoke": "fast"})
    with pytest.raises(UsageError, match=r"04_nb.ipynb: metadata soralab.runtime_s.smoke must be seconds .*'fast'"):
        run_suite("smoke", tmp_path / "out3", notebooks_dir=books, jobs=2)
    assert not (tmp_path / "out3").exists()  # refused before anything was written


def test_cli_rejects_unknown_profile(capsys):
    assert cli_main(["notebooks", "--profile", "huge"]) == 2  # a user's mistake: one line, no traceback
    assert capsys.readouterr().err.startswith("soralab: error: unknown profile 'huge'")
    with pytest.raises(ValueError, match="unknown profile"):
        profile("huge")


def test_a_profile_is_resized_one_way():
    """Sizes come from the profile; glue_kwargs refuses them and names the way: profile(P.name, ...)."""
    small = profile("classroom", max_train_samples=200, epochs=1)
    kw = small.glue_kwargs(seed=3, r=4)
    assert (kw["max_train_samples"], kw["num_train_epochs"], kw["seed"], kw["r"]) == (200, 1, 3, 4)
    assert kw["per_device_train_batch_size"] == profile("classroom").batch_size
    with pytest.raises(UsageError, match=r"num_train_epochs is a profile size.*profile\(P.name, epochs=\.\.\.\)"):
        small.glue_kwargs(num_train_epochs=3)
