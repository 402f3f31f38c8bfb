"""soralab.teaching.claims: a notebook's claims are printed where they are checked, collected by the suite into
claims.json / claims.md, and a failed taught claim fails the suite in the classroom and paper profiles only."""

import json

import pytest
from nb_fixtures import write_notebook

from soralab.cli import main as cli_main
from soralab.errors import UsageError
from soralab.teaching.claims import CLAIMS_ENV, check, check_learned, failed_taught
from soralab.teaching.suite import run_suite, suite_ok


def test_check_prints_returns_and_records(tmp_path, monkeypatch, capsys):
    assert check("two plus two is four", 2 + 2 == 4, {"sum": 4}) is True  # nothing recorded outside the suite
    assert "[taught claim holds] two plus two is four (sum=4)" in capsys.readouterr().out
    monkeypatch.setenv(CLAIMS_ENV, str(tmp_path / "c.json"))
    assert check("SoRA beats LoRA", 0.81 > 0.86, {"SoRA": 0.81, "LoRA": 0.86}, kind="tested") is False
    assert "[tested claim does not hold here]" in capsys.readouterr().out
    check("a gate at zero is a dead rank", False, "active rank 3 with 2 non-zero gates")
    check("a gate at zero is a dead rank", True, "active rank 2 with 2 non-zero gates")  # twice: both recorded
    rows = json.loads((tmp_path / "c.json").read_text())
    assert [(r["claim"], r["kind"], r["holds"]) for r in rows] == [("SoRA beats LoRA", "tested", False),
                                                                   ("a gate at zero is a dead rank", "taught", False),
                                                                   ("a gate at zero is a dead rank", "taught", True)]
    assert failed_taught([{**r, "notebook": "x"} for r in rows], "classroom") == [{**rows[1], "notebook": "x"}]
    assert rows[0]["evidence"] == "SoRA=0.81, LoRA=0.86"


@pytest.mark.parametrize("args, match", [(("x", True, "e"), None), (("", True, "e"), "non-empty"),
                                         (("x", True, 3.0), "evidence must be"),
                                         (("x", float("nan"), "e"), "pass True or False.*got nan"),  # bool(nan) is True
                                         (("x", None, "e"), "pass True or False"), (("x", 1, "e"), "of type int"),
                                         (("x", __import__("numpy").bool_(True), "e"), None),
                                         (("x", __import__("torch").tensor([1.0, 2.0]).gt(0).all(), "e"), None)])
def test_check_refuses_bad_input(args, match):
    if match:
        with pytest.raises(UsageError, match=match):
            check(*args)
    else:
        assert check(*args) is True


def test_check_refuses_an_unknown_kind():
    with pytest.raises(UsageError, match="'taught'.*'tested'"):
        check("x", True, "e", kind="paper")


def test_only_taught_claims_in_enforced_profiles_fail():
    claims = [{"kind": "taught", "holds": False}, {"kind": "tested", "holds": False}, {"kind": "taught", "holds": True}]
    assert failed_taught(claims, "classroom") == [claims[0]] and failed_taught(claims, "paper") == [claims[0]]
    assert failed_taught(claims, "smoke") == []




def test_suite_collects_claims_and_fails_on_a_taught_one(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    write_notebook(books / "01_a.ipynb", "from soralab.teaching.claims import check\n"
                                    "check('merge keeps outputs', True, {'max diff': 0.0})\n"
                                    "check('SoRA beats LoRA', False, {'gap': -1.5}, kind='tested')")
    write_notebook(books / "02_b.ipynb", "from soralab.teaching.claims import check\n"
                                    "check('prune keeps outputs', False, {'max |diff|': 0.3})")
    rows = run_suite("classroom", tmp_path / "out", notebooks_dir=books)
    assert [r["status"] for r in rows] == ["ok", "ok"] and [r["claims"] for r in rows] == [2, 1]
    claims = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert [(c["notebook"], c["claim"], c["holds"], c["profile"]) for c in claims] == [
        ("01_a.ipynb", "merge keeps outputs", True, "classroom"), ("01_a.ipynb", "SoRA beats LoRA", False, "classroom"),
        ("02_b.ipynb", "prune keeps outputs", False, "classroom")]
    assert "| 02_b.ipynb | prune keeps outputs | taught | **no** | max \\|diff\\|=0.3 |" in (
        tmp_path / "out" / "claims.md").read_text()  # a "|" in a cell is escaped, so the row keeps its columns
    assert [(r["taught_failed"], r["tested_not_holding"]) for r in rows] == [(0, 1), (1, 0)]
    assert "| 01_a.ipynb | ok |" in (tmp_path / "out" / "summary.md").read_text()
    assert not suite_ok(rows, "classroom", tmp_path / "out")
    assert suite_ok(rows[:1], "classroom", tmp_path / "out") is False  # claims.json still holds 02's failure
    only_tested = run_suite("classroom", tmp_path / "out2", only=["01"], notebooks_dir=books)
    assert suite_ok(only_tested, "classroom", tmp_path / "out2")  # a tested claim never fails the suite
    (tmp_path / "out2" / "claims.json").write_text("[]")  # what an interrupted rerun must not leave behind
    with pytest.raises(UsageError, match="--only 9: no notebook"):
        run_suite("classroom", tmp_path / "out2", only=["01", "9"], notebooks_dir=books)
    with pytest.raises(UsageError, match="--only needs at least one"):
        run_suite("classroom", tmp_path / "out2", only=[], notebooks_dir=books)
    with pytest.raises(UsageError, match="would overwrite the notebooks themselves"):
        run_suite("classroom", books, notebooks_dir=books)
    assert (tmp_path / "out2" / "claims.json").read_text() == "[]"  # refused before anything was touched
    smoke = run_suite("smoke", tmp_path / "out3", notebooks_dir=books)
    assert suite_ok(smoke, "smoke", tmp_path / "out3")  # smoke records claims but does not enforce them
    assert cli_main(["notebooks", "--profile", "classroom", "--notebooks-dir", str(books), "--output-dir",
                     str(tmp_path / "out4")]) == 1


def test_an_interrupted_suite_leaves_no_summary_of_an_earlier_run(tmp_path, monkeypatch):
    import soralab.teaching.suite as suite

    books, out = tmp_path / "books", tmp_path / "out"
    books.mkdir()
    write_notebook(books / "01_a.ipynb", "pass")
    out.mkdir()
    for name in suite.RESULT_FILES:
        (out / name).write_text("an earlier run's")

    def interrupted(*args, **kwargs):  # (a Ctrl-C would do the same; under xdist it would stop the test session)
        raise RuntimeError("the run stopped mid-way")

    monkeypatch.setattr(suite, "_run_one", interrupted)
    with pytest.raises(RuntimeError, match="mid-way"):
        run_suite("classroom", out, notebooks_dir=books)
    assert not any((out / name).exists() for name in suite.RESULT_FILES)


def _result(score, baseline):
    from soralab.experiments.run_config import GlueResult

    return GlueResult(config={}, history=[], best={"eval_validation_accuracy": score / 100}, final={},
                      main_metric="accuracy", trainable_params=1, params_after_prune=1, baseline=baseline)


def test_check_learned_needs_every_run_above_its_own_baseline(capsys):
    assert check_learned({"lora": _result(80.0, 50.0), "sora": _result(61.0, 50.0)}, margin=10)
    assert "lora=80.0 vs 50.0, sora=61.0 vs 50.0" in capsys.readouterr().out
    assert not check_learned({"lora": _result(80.0, 50.0), "sora": _result(60.0, 50.0)}, margin=10)  # not *more*
    assert not check_learned({"at chance": _result(53.75, 53.75)})
    with pytest.raises(UsageError, match="no majority-class baseline recorded for old"):
        check_learned({"old": _result(80.0, None)})
    with pytest.raises(UsageError, match="got none"):
        check_learned({})  # all() of nothing is True: vouching for no run would read as a claim that holds


def test_quiet_silences_library_chatter(capsys):
    import warnings

    import transformers

    from soralab.teaching.profiles import quiet

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet()
        warnings.warn("old API", FutureWarning, stacklevel=1)
        warnings.warn("soralab says", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["soralab says"]
    assert transformers.logging.get_verbosity() == transformers.logging.ERROR
    transformers.logging.set_verbosity_warning()
