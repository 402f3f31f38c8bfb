"""GLUE data, offline first (the metrics are in ``metrics.py``, reading the original files in ``glue_files.py``).

``load_glue`` reads the original GLUE TSV files from a local folder (``data_dir=`` or ``$SORALAB_GLUE_DIR``,
laid out as ``<dir>/RTE/train.tsv`` etc.) and falls back to the Hugging Face hub (``nyu-mll/glue``). Either
way the result has HF's column names: the task's text fields, ``label`` and ``idx``.

Three split protocols:

* ``"glue"``: ``train`` and ``validation`` (MNLI: ``validation_matched`` / ``validation_mismatched``).
* ``"paper"``: the SoRA/AdaLoRA authors' protocol. Small tasks (CoLA, MRPC, STS-B, RTE, WNLI) split the GLUE
  dev set in half with the seed: ``validation`` picks the checkpoint, ``test`` is reported. Large tasks
  (SST-2, QNLI, QQP, MNLI) hold out 1,000 training rows as ``validation``; the dev set becomes ``test``
  (MNLI: ``test_matched`` / ``test_mismatched``). MNLI is a deviation: the authors' code halves its
  matched dev set; with two dev sets and 393k training rows, holding out 1,000 rows is simpler and keeps
  both dev sets whole for reporting.
* ``"holdout"``: for choosing hyperparameters without looking at the dev set: a seeded slice of the training set
  (``HOLDOUT_FRACTION`` of it, at most ``PAPER_HOLDOUT`` rows) becomes ``validation``, the rest trains, and the
  GLUE dev set is not loaded into the result at all. ``benchmarks/recipes.py`` selects on it.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch

from ..errors import UsageError
from .glue_files import digest, load_local, local_files
from .validate import check_text_file

ENV_VAR = "SORALAB_GLUE_DIR"
HUB_ID = "nyu-mll/glue"
PAPER_HOLDOUT = 1000  # training rows held out as "validation" for large tasks under the paper protocol
HOLDOUT_FRACTION = 0.2  # "holdout" protocol: share of the training set held out (capped at PAPER_HOLDOUT rows)
SPLIT_PROTOCOLS = ("glue", "paper", "holdout")


class DataUnavailableError(UsageError, RuntimeError):
    """No local GLUE folder was given and the hub could not be reached: the user's setup, not a bug."""


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: HF names, labels, metrics, and where its fields sit in the original TSV files."""

    name: str  # HF config name, e.g. "sst2"
    folder: str  # folder in the GLUE layout, e.g. "SST-2"
    text_fields: tuple[str, ...]  # HF column names of the texts
    label_names: tuple[str, ...]  # class names in HF's order (class id = position); () for regression
    metrics: tuple[str, ...]
    main_metric: str  # MNLI: the accuracy on the matched eval split
    text_columns: tuple[str | int, ...]  # header names of the texts in the TSV (positions if no header)
    label_column: str | int  # header name (or position) of the label in the TSV
    file_labels: tuple[str, ...] = ("0", "1")  # label strings in the TSV, position = class id
    eval_files: tuple[str, ...] = ("dev.tsv",)
    n_columns: int | None = None  # only for header-less files (CoLA): the expected field count
    large: bool = False  # paper protocol: hold out training rows instead of halving the dev set

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """GLUE-protocol eval split names, one per eval file: dev.tsv -> validation, dev_matched.tsv -> ..."""
        return tuple("validation" + f.removeprefix("dev").removesuffix(".tsv") for f in self.eval_files)


_PAIR = ("sentence1", "sentence2")
_NLI = ("entailment", "not_entailment")
_MNLI = ("entailment", "neutral", "contradiction")

TASKS: dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",),
             "matthews_correlation", text_columns=(3,), label_column=1, n_columns=4),
    GlueTask("sst2", "SST-2", ("sentence",), ("negative", "positive"), ("accuracy",), "accuracy",
             text_columns=("sentence",), label_column="label", large=True),
    GlueTask("mrpc", "MRPC", _PAIR, ("not_equivalent", "equivalent"), ("f1", "accuracy"), "f1",
             text_columns=("#1 String", "#2 String"), label_column="Quality"),
    GlueTask("qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy"),
             "accuracy", text_columns=("question1", "question2"), label_column="is_duplicate", large=True),
    GlueTask("stsb", "STS-B", _PAIR, (), ("pearson", "spearmanr"), "pearson",
             text_columns=_PAIR, label_column="score", file_labels=()),
    GlueTask("mnli", "MNLI", ("premise", "hypothesis"), _MNLI, ("accuracy",), "accuracy",
             text_columns=_PAIR, label_column="gold_label", file_labels=_MNLI,
             eval_files=("dev_matched.tsv", "dev_mismatched.tsv"), large=True),
    GlueTask("qnli", "QNLI", ("question", "sentence"), _NLI, ("accuracy",), "accuracy",
             text_columns=("question", "sentence"), label_column="label", file_labels=_NLI, large=True),
    GlueTask("rte", "RTE", _PAIR, _NLI, ("accuracy",), "accuracy",
             text_columns=_PAIR, label_column="label", file_labels=_NLI),
    GlueTask("wnli", "WNLI", _PAIR, ("not_entailment", "entailment"), ("accuracy",), "accuracy",
             text_columns=_PAIR, label_column="label"),
)}


def get_task(task: str | GlueTask) -> GlueTask:
    """Look a task up by name, case-insensitively; "SST-2", "sts-b", "STS_B" and the like are accepted."""
    if isinstance(task, GlueTask):
        return task
    key = str(task).strip().lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise UsageError(f"unknown GLUE task {task!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[key]


# ----------------------------------------------------------------------------------------------- where the data is


def _local_root(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The local GLUE folder ``load_glue`` reads and where it was named; None: the hub."""
    if data_dir is not None:
        if not str(data_dir).strip():
            raise UsageError("data_dir is empty; give the folder in the original GLUE layout, or None for "
                             f"${ENV_VAR} or the hub")
        return Path(data_dir).expanduser(), "given as data_dir"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"from ${ENV_VAR}"
    return None


def check_local_data(task: str | GlueTask, data_dir: str | os.PathLike[str] | None = None) -> None:
    """Before any training: the local GLUE files ``load_glue`` would read exist and are UTF-8 text.

    Nothing to check when the data comes from the hub (no ``data_dir`` and no ``$SORALAB_GLUE_DIR``).
    """
    if (local := _local_root(data_dir)) is not None:
        for path in local_files(get_task(task), *local).values():
            check_text_file(path, "GLUE data file")


def data_source(task: str | GlueTask, data_dir: str | os.PathLike[str] | None = None) -> str:
    """What ``load_glue`` would read the task from, as a result records it: ``local:`` and a hash of the task's
    files (the same files anywhere on disk give the same text), or ``hub:`` and the dataset's id."""
    if (local := _local_root(data_dir)) is None:
        return f"hub:{HUB_ID}"
    files = "".join(f"{split}:{digest(path)};" for split, path in sorted(local_files(get_task(task), *local).items()))
    return f"local:{hashlib.blake2b(files.encode(), digest_size=8).hexdigest()}"


def _load_hub(task: GlueTask) -> dict[str, datasets.Dataset]:
    try:
        hub = datasets.load_dataset(HUB_ID, task.name)
    except Exception as err:  # any failure (offline, missing cache, auth) gets one actionable message
        reason = (f"{type(err).__name__}: {err}".splitlines() or [""])[0][:200]
        raise DataUnavailableError(
            f"cannot load GLUE task {task.name!r}: no data_dir was given, {ENV_VAR} is not set, and loading "
            f"{HUB_ID!r} from the Hugging Face hub failed ({reason}). Fix: pass data_dir= or set {ENV_VAR} to a "
            f"folder in the original GLUE layout (e.g. <dir>/{task.folder}/train.tsv), or go online."
        ) from err
    return {split: hub[split] for split in ("train", *task.eval_splits)}


# ----------------------------------------------------------------------------------------------- splits


def _permutation(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n) that ignores global RNG state (torch.randperm, as the authors' code)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def _paper_splits(task: GlueTask, splits: dict[str, datasets.Dataset], seed: int) -> dict[str, datasets.Dataset]:
    train = splits["train"]
    if task.large:
        if len(train) <= PAPER_HOLDOUT:
            raise UsageError(f"paper protocol for {task.name} holds out {PAPER_HOLDOUT} training rows, "
                             f"but train has only {len(train)}")
        perm = _permutation(len(train), seed)
        out = {"train": train.select(perm[PAPER_HOLDOUT:]), "validation": train.select(perm[:PAPER_HOLDOUT])}
        out.update({s.replace("validation", "test"): splits[s] for s in task.eval_splits})
        return out
    dev = splits["validation"]
    perm, half = _permutation(len(dev), seed), len(dev) // 2
    return {"train": train, "validation": dev.select(perm[:half]), "test": dev.select(perm[half:])}


def _holdout_splits(splits: dict[str, datasets.Dataset], seed: int) -> dict[str, datasets.Dataset]:
    train = splits["train"]
    n = min(PAPER_HOLDOUT, int(len(train) * HOLDOUT_FRACTION))
    if n < 1:
        raise UsageError(f"the holdout protocol needs at least {math.ceil(1 / HOLDOUT_FRACTION)} training rows, "
                         f"got {len(train)}")
    perm = _permutation(len(train), seed)
    return {"train": train.select(perm[n:]), "validation": train.select(perm[:n])}


def load_glue(task: str | GlueTask, data_dir: str | os.PathLike[str] | None = None, *,
              max_train_samples: int | None = None, max_eval_samples: int | None = None, seed: int = 42,
              split_protocol: str = "glue") -> datasets.DatasetDict:
    """Load a GLUE task as a DatasetDict with columns ``<text fields>, label, idx``.

    ``idx`` is the row number in the GLUE file the row came from (kept through splitting and subsetting).
    ``seed`` drives both the paper-protocol split and the ``max_*_samples`` subsets, which are seeded random
    subsets taken after the split; ``max_eval_samples`` caps every split except ``train``.
    """
    spec = get_task(task)
    if split_protocol not in SPLIT_PROTOCOLS:
        raise UsageError(f"unknown split_protocol {split_protocol!r}; use one of {', '.join(SPLIT_PROTOCOLS)}")
    for name, cap in (("max_train_samples", max_train_samples), ("max_eval_samples", max_eval_samples)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
            raise UsageError(f"{name} must be a positive integer or None, got {cap!r}")
    local = _local_root(data_dir)
    splits = _load_hub(spec) if local is None else load_local(spec, *local)
    if split_protocol == "paper":
        splits = _paper_splits(spec, splits, seed)
    elif split_protocol == "holdout":
        splits = _holdout_splits(splits, seed)
    out = {}
    for name, ds in splits.items():
        cap = max_train_samples if name == "train" else max_eval_samples
        out[name] = ds if cap is None or cap >= len(ds) else ds.select(_permutation(len(ds), seed)[:cap])
    return datasets.DatasetDict(out)


def tokenize(dataset_dict: Mapping[str, datasets.Dataset], tokenizer: Any, task: str | GlueTask,
             max_length: int = 128) -> datasets.DatasetDict:
    """Tokenize the task's text fields (truncated, unpadded; pad later with a data collator).

    Keeps ``label``; drops the text columns and ``idx``.
    """
    spec = get_task(task)

    def encode(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(*(batch[field] for field in spec.text_fields), truncation=True, max_length=max_length)

    drop = {*spec.text_fields, "idx"}
    # A fingerprint of our own: by default `map` hashes `encode`, and with it the whole tokenizer, on every call.
    key = f"{getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}|{len(tokenizer)}|{spec.name}|{max_length}"
    return datasets.DatasetDict({
        name: ds.map(encode, batched=True, remove_columns=[c for c in ds.column_names if c in drop],
                     new_fingerprint=hashlib.sha256(f"{ds._fingerprint}|{key}".encode()).hexdigest()[:16])
        for name, ds in dataset_dict.items()
    })
