"""Tests for soralab.experiments.glue (loading the original GLUE files, split protocols, tokenization) and
soralab.experiments.metrics."""

from __future__ import annotations

import math
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from glue_fixtures import write_glue_fixture
from transformers import EvalPrediction

from soralab.experiments.glue import TASKS, get_task, load_glue, tokenize
from soralab.experiments.metrics import compute_metrics, metrics_fn

REAL_DIR = os.environ.get("SORALAB_GLUE_DIR")  # read before the autouse fixture below unsets it
ALL_TASKS = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may touch the network or depend on the caller's SORALAB_GLUE_DIR."""
    monkeypatch.delenv("SORALAB_GLUE_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_hub(*args, **kwargs):
        raise ConnectionError("network disabled in tests")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)


def _rows(ds: datasets.Dataset) -> list[dict]:
    return [dict(r) for r in ds]


# ----------------------------------------------------------------------------------------------- task table


def test_task_table_matches_hf_glue():
    assert list(TASKS) == ALL_TASKS
    assert TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert TASKS["wnli"].label_names == ("not_entailment", "entailment")
    assert TASKS["rte"].label_names == ("entailment", "not_entailment")
    assert TASKS["cola"].label_names == ("unacceptable", "acceptable")
    assert TASKS["qnli"].text_fields == ("question", "sentence")
    assert TASKS["qqp"].text_fields == ("question1", "question2")
    assert TASKS["mnli"].text_fields == ("premise", "hypothesis")
    assert TASKS["stsb"].is_regression and TASKS["stsb"].num_labels == 1
    assert not TASKS["mnli"].is_regression and TASKS["mnli"].num_labels == 3
    assert {t: TASKS[t].main_metric for t in ("cola", "stsb", "mrpc", "mnli")} == {
        "cola": "matthews_correlation", "stsb": "pearson", "mrpc": "f1", "mnli": "accuracy"}
    assert TASKS["mnli"].eval_splits == ("validation_matched", "validation_mismatched")
    assert TASKS["rte"].eval_splits == ("validation",)
    assert {t for t, s in TASKS.items() if s.large} == {"sst2", "qnli", "qqp", "mnli"}


@pytest.mark.parametrize("task", ALL_TASKS)
def test_each_task_is_consistent_with_its_metrics(task):
    """Label count, label names and main metric agree with what the metric code computes for the task."""
    spec = TASKS[task]
    assert spec.num_labels == (1 if spec.is_regression else len(spec.label_names))
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 20) if spec.is_regression else rng.integers(0, spec.num_labels, 20)
    metrics = compute_metrics(spec, labels[::-1].copy(), labels)
    assert spec.main_metric in metrics and all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("alias,name", [("SST-2", "sst2"), ("sts-b", "stsb"), ("RTE", "rte"), ("CoLA", "cola")])
def test_task_aliases(alias, name):
    assert get_task(alias).name == name


def test_unknown_task_lists_valid_names(tmp_path):
    names = "cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli"
    with pytest.raises(ValueError, match=f"unknown GLUE task 'squad'.*{names}"):
        load_glue("squad", tmp_path)


# ----------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_task_loads_from_its_fixture(tmp_path, task):
    expected = write_glue_fixture(tmp_path, task, n_train=9, n_dev=5, seed=1)
    dd = load_glue(task, tmp_path)
    assert set(dd) == set(expected)
    spec = TASKS[task]
    for split, rows in expected.items():
        ds = dd[split]
        assert ds.column_names == [*spec.text_fields, "label", "idx"]
        assert len(ds) == len(rows)
        got = _rows(ds)
        if spec.is_regression:
            assert [r["label"] for r in got] == pytest.approx([r["label"] for r in rows], rel=1e-6)
            got = [{**g, "label": None} for g in got]
            rows = [{**r, "label": None} for r in rows]
        assert got == rows
    label = dd["train"].features["label"]
    if spec.is_regression:
        assert label.dtype == "float32"
    else:
        assert label.names == list(spec.label_names)


def test_quirks_are_kept_exactly(tmp_path):
    write_glue_fixture(tmp_path, "rte")
    write_glue_fixture(tmp_path, "sst2")
    write_glue_fixture(tmp_path, "cola", n_dev=3)
    rte = load_glue("rte", tmp_path)["train"]
    assert rte[0]["sentence1"] == '"quoted" start of a field (train 0.0)'
    assert rte[2]["sentence2"] == '"lonely opening quote (train 2.1)'
    assert rte[1]["sentence1"] == 'an unbalanced " quote inside (train 1.0)'
    assert rte[2]["sentence1"] == "it 's a café , naïve (train 2.0)"
    sst2 = load_glue("sst2", tmp_path)
    assert sst2["validation"][0]["sentence"] == '"quoted" start of a field (dev 0.0) '
    cola_dev = tmp_path / "CoLA" / "dev.tsv"
    assert not cola_dev.read_bytes().endswith(b"\n")
    assert len(load_glue("cola", tmp_path)["validation"]) == 3


def test_a_file_is_parsed_once_per_content(tmp_path, monkeypatch):
    """A second load of an unchanged file reuses its parsed columns (a notebook trains many times); an edited file,
    even one of the same size, is parsed again; each load gets its own Dataset objects."""
    import soralab.experiments.glue_files as glue_files

    write_glue_fixture(tmp_path, "sst2", n_train=4)
    parsed, read_tsv = [], glue_files._read_tsv
    monkeypatch.setattr(glue_files, "_read_tsv", lambda path, task: parsed.append(path.name) or read_tsv(path, task))
    glue_files._read_columns.cache_clear()
    first = load_glue("sst2", tmp_path)
    first["train"].set_format("torch")  # changes this Dataset object in place, and no other
    second = load_glue("sst2", tmp_path)
    assert parsed == ["train.tsv", "dev.tsv"]
    assert second["train"].format["type"] is None and _rows(second["train"]) == _rows(first["train"].with_format(None))
    train = tmp_path / "SST-2" / "train.tsv"
    header, row, *rest = train.read_text(encoding="utf-8").split("\n")
    text, label = row.rsplit("\t", 1)
    train.write_text("\n".join([header, f"{text}\t{1 - int(label)}", *rest]), encoding="utf-8")  # same size
    third = load_glue("sst2", tmp_path)
    assert parsed == ["train.tsv", "dev.tsv", "train.tsv"]
    assert third["train"][0]["label"] == 1 - second["train"][0]["label"]
    assert _rows(third["train"])[1:] == _rows(second["train"])[1:]


def test_mrpc_bom_header(tmp_path):
    write_glue_fixture(tmp_path, "mrpc")
    assert (tmp_path / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality\t")
    assert len(load_glue("mrpc", tmp_path)["train"]) == 8


def test_stsb_scores_with_varying_precision(tmp_path):
    (tmp_path / "STS-B").mkdir()
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    body = "".join(f"{i}\tg\tf\ty\t{i}\tnone\tnone\ta {i}\tb {i}\t{s}\n"
                   for i, s in enumerate(["5.000", "3", "1.53333333333333", "0"]))
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / "STS-B" / name).write_text(head + body, encoding="utf-8")
    labels = load_glue("stsb", tmp_path)["train"]["label"]
    assert list(labels) == pytest.approx([5.0, 3.0, 1.53333333333333, 0.0], rel=1e-6)


def test_mnli_uses_gold_label_and_both_dev_files(tmp_path):
    expected = write_glue_fixture(tmp_path, "mnli", n_dev=4, seed=3)
    dd = load_glue("mnli", tmp_path)
    assert list(dd) == ["train", "validation_matched", "validation_mismatched"]
    assert len((tmp_path / "MNLI" / "dev_matched.tsv").read_text().splitlines()[0].split("\t")) == 16
    assert dd["validation_mismatched"]["label"] == [r["label"] for r in expected["validation_mismatched"]]
    assert dd["validation_matched"][3]["premise"] == '"lonely opening quote (dev_matched 3.0)'
    assert dd["train"][5]["hypothesis"] == "plain text 1 (train 5.1)"


def test_env_var_is_used(tmp_path, monkeypatch):
    write_glue_fixture(tmp_path, "wnli", n_train=4)
    monkeypatch.setenv("SORALAB_GLUE_DIR", str(tmp_path))
    assert len(load_glue("wnli")["train"]) == 4


def test_hub_failure_is_one_clear_error():
    with pytest.raises(RuntimeError, match=r"no data_dir.*SORALAB_GLUE_DIR is not set.*network disabled.*Fix"):
        load_glue("rte")


def test_hub_success_keeps_train_and_validation(monkeypatch):
    rows = {"sentence": ["a", "b"], "label": [0, 1], "idx": [0, 1]}
    fake = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows) for s in ("train", "validation", "test")})
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or fake)
    assert list(load_glue("sst2")) == ["train", "validation"]
    assert calls == [("nyu-mll/glue", "sst2")]


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*does not exist.*RTE/train.tsv"):
        load_glue("rte", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"missing .*RTE/train\.tsv.*original GLUE layout"):
        load_glue("rte", tmp_path)
    write_glue_fixture(tmp_path, "mnli")
    (tmp_path / "MNLI" / "dev_mismatched.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing .*MNLI/dev_mismatched\.tsv"):
        load_glue("mnli", tmp_path)


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(line)


def test_malformed_rows(tmp_path):
    write_glue_fixture(tmp_path, "rte", n_train=3)
    _append(tmp_path / "RTE" / "train.tsv", "3\tonly two fields\n")
    with pytest.raises(ValueError, match=r"RTE/train\.tsv, line 5: expected 4 tab-separated fields, found 2"):
        load_glue("rte", tmp_path)
    write_glue_fixture(tmp_path, "cola", n_dev=2)  # no header: width comes from the layout
    _append(tmp_path / "CoLA" / "dev.tsv", "\ngj04\t1\t\tfine\textra")
    with pytest.raises(ValueError, match=r"CoLA/dev\.tsv, line 3: expected 4 tab-separated fields, found 5"):
        load_glue("cola", tmp_path)


def test_header_missing_column(tmp_path):
    write_glue_fixture(tmp_path, "qnli")
    path = tmp_path / "QNLI" / "train.tsv"
    path.write_text(path.read_text(encoding="utf-8").replace("question\t", "query\t", 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"header lacks column\(s\) \['question'\]"):
        load_glue("qnli", tmp_path)


@pytest.mark.parametrize("task,line,bad,allowed", [
    ("rte", "2\ta\tb\tmaybe\n", "'maybe'", "entailment, not_entailment"),
    ("sst2", "great \t7\n", "'7'", "0, 1"),
    ("stsb", "2\tg\tf\ty\t2\tn\tn\ta\tb\thigh\n", "'high'", r"\[0, 5\]"),
    ("stsb", "2\tg\tf\ty\t2\tn\tn\ta\tb\t5.5\n", "'5.5'", r"\[0, 5\]"),
])
def test_bad_labels(tmp_path, task, line, bad, allowed):
    write_glue_fixture(tmp_path, task, n_train=2)
    folder = TASKS[task].folder
    _append(tmp_path / folder / "train.tsv", line)
    with pytest.raises(ValueError, match=rf"{folder}/train\.tsv, line 4: bad label {bad}; allowed labels: .*{allowed}"):
        load_glue(task, tmp_path)


def test_bad_arguments(tmp_path):
    write_glue_fixture(tmp_path, "rte")
    with pytest.raises(ValueError, match="split_protocol 'adalora'.*glue, paper"):
        load_glue("rte", tmp_path, split_protocol="adalora")
    with pytest.raises(ValueError, match="max_train_samples must be a positive"):
        load_glue("rte", tmp_path, max_train_samples=0)
    with pytest.raises(ValueError, match="max_eval_samples must be a positive"):
        load_glue("rte", tmp_path, max_eval_samples=-3)


# ----------------------------------------------------------------------------------------------- protocols


def test_paper_protocol_small_task_halves_dev(tmp_path):
    write_glue_fixture(tmp_path, "rte", n_train=7, n_dev=11)
    dd = load_glue("rte", tmp_path, split_protocol="paper", seed=5)
    assert list(dd) == ["train", "validation", "test"]
    assert (len(dd["train"]), len(dd["validation"]), len(dd["test"])) == (7, 5, 6)
    val, test = set(dd["validation"]["idx"]), set(dd["test"]["idx"])
    assert not val & test and val | test == set(range(11))
    # texts travel with their idx: the halves are real rows of dev.tsv
    assert dd["test"][0]["sentence1"].endswith(f"(dev {dd['test'][0]['idx']}.0)")
    again = load_glue("rte", tmp_path, split_protocol="paper", seed=5)
    assert again["validation"]["idx"] == dd["validation"]["idx"]
    other = load_glue("rte", tmp_path, split_protocol="paper", seed=6)
    assert set(other["validation"]["idx"]) != val


def test_paper_protocol_large_task_holds_out_1000(tmp_path):
    write_glue_fixture(tmp_path, "sst2", n_train=1050, n_dev=6)
    dd = load_glue("sst2", tmp_path, split_protocol="paper")
    assert list(dd) == ["train", "validation", "test"]
    assert (len(dd["train"]), len(dd["validation"]), len(dd["test"])) == (50, 1000, 6)
    train, val = set(dd["train"]["idx"]), set(dd["validation"]["idx"])
    assert not train & val and train | val == set(range(1050))
    assert dd["test"]["idx"] == list(range(6))


def test_paper_protocol_mnli_and_too_small_train(tmp_path):
    write_glue_fixture(tmp_path, "mnli", n_train=1003, n_dev=4)
    dd = load_glue("mnli", tmp_path, split_protocol="paper", max_eval_samples=2)
    assert {k: len(v) for k, v in dd.items()} == {"train": 3, "validation": 2, "test_matched": 2,
                                                  "test_mismatched": 2}
    write_glue_fixture(tmp_path, "qnli", n_train=1000)
    with pytest.raises(ValueError, match="holds out 1000 training rows, but train has only 1000"):
        load_glue("qnli", tmp_path, split_protocol="paper")


def test_subsets_are_deterministic(tmp_path):
    write_glue_fixture(tmp_path, "mrpc", n_train=40, n_dev=30)

    def pick(seed):
        dd = load_glue("mrpc", tmp_path, max_train_samples=10, max_eval_samples=7, seed=seed)
        return dd["train"]["idx"], dd["validation"]["idx"]

    first = pick(1)
    torch.manual_seed(999)
    np.random.seed(999)
    pick(2)  # other calls and global RNG state in between must not matter
    assert pick(1) == first
    assert (len(first[0]), len(first[1])) == (10, 7)
    assert pick(2) != first
    capped = load_glue("mrpc", tmp_path, max_eval_samples=500)
    assert capped["validation"]["idx"] == list(range(30))
    paper = load_glue("mrpc", tmp_path, split_protocol="paper", max_eval_samples=4)
    assert (len(paper["train"]), len(paper["validation"]), len(paper["test"])) == (40, 4, 4)


# ----------------------------------------------------------------------------------------------- metrics


def test_metrics_hand_computed():
    # CoLA: TP=1 FP=1 TN=2 FN=0 -> MCC = (1*2 - 1*0) / sqrt(2*1*3*2) = 1/sqrt(3)
    assert compute_metrics("cola", [1, 1, 0, 0], [1, 0, 0, 0]) == {"matthews_correlation": pytest.approx(3 ** -0.5)}
    # MRPC: TP=2 FP=1 FN=1 TN=1 -> F1 = 4/6, accuracy 3/5
    assert compute_metrics("mrpc", [1, 1, 0, 1, 0], [1, 0, 0, 1, 1]) == {"f1": pytest.approx(2 / 3),
                                                                         "accuracy": pytest.approx(0.6)}
    # STS-B: deviations (-1,0,1) vs (-1,1,0) -> cov 1, variances 2 and 2 -> r = 0.5; same ranks -> rho = 0.5
    assert compute_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == {"pearson": pytest.approx(0.5),
                                                                         "spearmanr": pytest.approx(0.5)}
    # monotone but not linear: Spearman is exactly 1, Pearson is not
    m = compute_metrics("stsb", [1, 2, 3, 4], [1, 2, 3, 100])
    assert m["spearmanr"] == pytest.approx(1.0) and m["pearson"] < 0.8
    assert compute_metrics("mnli", [0, 1, 2, 2], [0, 2, 2, 1]) == {"accuracy": 0.5}
    # QQP: TP=1 FP=0 FN=1 -> F1 = 2/3, accuracy 2/3
    assert compute_metrics("qqp", [1, 0, 0], [1, 0, 1]) == pytest.approx({"f1": 2 / 3, "accuracy": 2 / 3})


def test_metrics_agree_with_sklearn_scipy_on_random_data():
    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    p, r = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    assert compute_metrics("cola", p, r)["matthews_correlation"] == pytest.approx(matthews_corrcoef(r, p))
    assert compute_metrics("qqp", p, r)["f1"] == pytest.approx(f1_score(r, p))
    x, y = rng.normal(size=30), rng.normal(size=30)
    assert compute_metrics("stsb", x, y)["pearson"] == pytest.approx(pearsonr(x, y)[0])


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics("rte", [0, 1], [0])
    with pytest.raises(ValueError, match="metrics_fn"):
        compute_metrics("rte", [[0.1, 0.9]], [1])


def test_metrics_fn_takes_logits():
    fn = metrics_fn("rte")
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert fn(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 1]))) == {"accuracy": pytest.approx(2 / 3)}
    assert fn((logits, np.array([0, 1, 0]))) == {"accuracy": 1.0}
    assert fn(EvalPrediction(predictions=(logits, np.zeros((3, 4))), label_ids=np.array([1, 1, 1])))["accuracy"] == (
        pytest.approx(1 / 3))
    reg = metrics_fn("stsb")(EvalPrediction(predictions=np.array([[1.0], [2.0], [3.0]]),
                                            label_ids=np.array([1.0, 3.0, 2.0])))
    assert reg == {"pearson": pytest.approx(0.5), "spearmanr": pytest.approx(0.5)}


# ----------------------------------------------------------------------------------------------- tokenize


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from soralab.experiments.models import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())  # a required dependency: missing fails, never skips


def test_tokenize_pairs_and_truncation(tmp_path, tokenizer):
    write_glue_fixture(tmp_path, "rte", n_train=5, n_dev=3)
    dd = load_glue("rte", tmp_path)
    enc = tokenize(dd, tokenizer, "rte", max_length=8)
    assert set(enc) == {"train", "validation"}
    assert "sentence1" not in enc["train"].column_names and "idx" not in enc["train"].column_names
    assert {"input_ids", "attention_mask", "label"} <= set(enc["train"].column_names)
    assert enc["train"]["label"] == dd["train"]["label"]
    assert all(len(ids) <= 8 for ids in enc["train"]["input_ids"])
    full = tokenize(dd, tokenizer, "rte")["train"]["input_ids"]
    assert full[0].count(tokenizer.sep_token_id) == 2 and full[0][0] == tokenizer.cls_token_id
    assert full[0] == tokenizer(dd["train"][0]["sentence1"], dd["train"][0]["sentence2"])["input_ids"]
    assert len(set(map(len, full))) > 1  # no padding


# ----------------------------------------------------------------------------------------------- real data

REAL_SKIP = "set SORALAB_GLUE_DIR to the real GLUE folder (e.g. /work/shared/data/glue) to run"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DIR or not Path(REAL_DIR).is_dir(), reason=REAL_SKIP)
def test_real_glue_files():
    sizes = {"sst2": (67349, 872), "rte": (2490, 277), "mrpc": (3668, 408), "stsb": (5749, 1500),
             "wnli": (635, 71)}
    data = {t: load_glue(t, REAL_DIR) for t in sizes}
    assert {t: (len(d["train"]), len(d["validation"])) for t, d in data.items()} == sizes

    def counts(task, split):
        return np.bincount(np.asarray(data[task][split]["label"]), minlength=2).tolist()

    assert counts("sst2", "train") == [29780, 37569] and counts("sst2", "validation") == [428, 444]
    assert counts("rte", "train") == [1249, 1241] and counts("rte", "validation") == [146, 131]
    assert counts("mrpc", "train") == [1194, 2474] and counts("mrpc", "validation") == [129, 279]
    assert counts("wnli", "train") == [323, 312] and counts("wnli", "validation") == [40, 31]
    row = data["rte"]["train"][2164]
    assert row["idx"] == 2164 and row["sentence1"].startswith('"That film wasn')
    assert all(s.endswith(" ") for s in data["sst2"]["validation"]["sentence"])
    scores = np.asarray(data["stsb"]["train"]["label"])
    assert scores.min() >= 0 and scores.max() <= 5 and math.isclose(float(scores[0]), 5.0)
    paper = load_glue("sst2", REAL_DIR, split_protocol="paper")
    assert (len(paper["train"]), len(paper["validation"]), len(paper["test"])) == (66349, 1000, 872)


def test_an_empty_data_dir_is_refused_not_read_as_the_working_directory():
    from soralab.errors import UsageError

    with pytest.raises(UsageError, match="data_dir is empty"):
        load_glue("rte", "")
