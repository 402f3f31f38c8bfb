"""Run profiles for the notebooks: ``smoke`` (seconds, CI), ``classroom`` (minutes on a laptop CPU, the
default) and ``paper`` (the paper's protocol on a GPU). A notebook reads its profile once and derives every
size, epoch and step count from it, so the same notebook serves a CI check, a lesson and a reproduction.

Also three notebook utilities: ``quiet()`` (library chatter off), ``env_report()`` (what ran where) and
``record(...)`` (key numbers for the suite's summary).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError

PROFILE_ENV = "SORALAB_PROFILE"
SUMMARY_ENV = "SORALAB_SUMMARY"  # set by the suite runner: where record() writes a notebook's key numbers


# run_glue's options that a profile sets, and the Profile field each comes from
SIZES = {"model_name_or_path": "model", "max_train_samples": "max_train_samples",
         "max_eval_samples": "max_eval_samples", "num_train_epochs": "epochs",
         "per_device_train_batch_size": "batch_size", "max_seq_length": "max_seq_length",
         "split_protocol": "split_protocol"}


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: str
    model: str                      # "minilm" is the packaged all-MiniLM-L6-v2; paper: DeBERTaV3-base from the hub
    tasks: tuple[str, ...]          # GLUE tasks for the multi-task notebooks
    max_train_samples: int | None   # None: the whole training set
    max_eval_samples: int | None
    epochs: float
    batch_size: int
    max_seq_length: int
    seeds: tuple[int, ...]
    split_protocol: str             # "glue" (dev = reported) or "paper" (the authors' split)
    planted_steps: int              # optimiser steps for the planted low-rank toy problems
    n_stages: int                   # sparsifying scheduler: stages after the dense one
    epochs_per_stage: float

    def batch_for(self, n_rows: int, min_batch: int = 1, min_steps: int = 1) -> int:
        """The profile's batch size, raised to ``min_batch``, then lowered until ``n_rows`` rows over the profile's
        epochs make at least ``min_steps`` optimiser steps (AdaLoRA schedules its budget over at least 10): on the
        smoke profile's few rows the batch shrinks."""
        return max(1, min(max(self.batch_size, min_batch), int(n_rows * self.epochs // min_steps)))

    def glue_kwargs(self, **options) -> dict:
        """Keyword arguments for ``run_glue``: this profile's sizes plus ``options`` (seed, method options, ...).

        Sizes come from the profile alone: to shrink or grow one, make a new profile,
        ``profile(P.name, max_train_samples=200)``, the one way a notebook resizes (a size given here is refused).
        """
        sizes = {run: getattr(self, field) for run, field in SIZES.items()}
        given = sorted(set(options) & set(SIZES))
        if given:
            fix = ", ".join(f"{SIZES[k]}=..." for k in given)
            raise UsageError(f"{', '.join(given)} is a profile size; resize the profile instead: "
                             f"P = profile(P.name, {fix})")
        return {**sizes, **options}


PROFILES = {
    "smoke": Profile(
        name="smoke", model="minilm", tasks=("sst2",), max_train_samples=64, max_eval_samples=32, epochs=1,
        batch_size=16, max_seq_length=64, seeds=(1,), split_protocol="glue", planted_steps=150, n_stages=2,
        epochs_per_stage=1),
    # classroom: two tasks that learn on a CPU in minutes (RTE does not with this model: benchmarks/quality_results.md)
    "classroom": Profile(
        name="classroom", model="minilm", tasks=("sst2", "stsb"), max_train_samples=1000, max_eval_samples=400,
        epochs=2, batch_size=16, max_seq_length=128, seeds=(1, 2), split_protocol="glue", planted_steps=400,
        n_stages=4, epochs_per_stage=1),
    "paper": Profile(
        name="paper", model="microsoft/deberta-v3-base",
        tasks=("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"), max_train_samples=None,
        max_eval_samples=None, epochs=20, batch_size=32, max_seq_length=256, seeds=(1, 2, 3, 4, 5),
        split_protocol="paper", planted_steps=3000, n_stages=6, epochs_per_stage=5),
}


def profile(name: str | None = None, **overrides) -> Profile:
    """The profile named ``name``, else ``$SORALAB_PROFILE``, else ``classroom``; ``overrides`` replace fields."""
    name = name or os.environ.get(PROFILE_ENV) or "classroom"
    if name not in PROFILES:
        raise UsageError(f"unknown profile {name!r} (from --profile, {PROFILE_ENV} or the notebook's profile_name); "
                         f"choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[name], **overrides)


def quiet() -> None:
    """Silence what libraries print around a lesson's output: transformers' load reports ("classifier.weight
    MISSING": the head is new, as intended) and progress bars, ``datasets``' "Map:" bars, deprecation notices and
    tqdm's "IProgress not found". Errors still show, and so do soralab's own warnings."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")
    try:
        from tqdm import TqdmWarning

        warnings.filterwarnings("ignore", category=TqdmWarning)
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        pass
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def env_report(p: Profile | None = None) -> dict:
    """Print and return versions, device and profile: what a reader needs to compare numbers."""
    import peft
    import torch
    import transformers

    import soralab

    info = {"python": platform.python_version(), "soralab": soralab.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)",
            "threads": torch.get_num_threads(),  # what this notebook uses: fewer when the suite runs several at once
            "profile": p.name if p else os.environ.get(PROFILE_ENV, "classroom"),
            "glue_dir": os.environ.get("SORALAB_GLUE_DIR", "(hub)")}
    print("  ".join(f"{k}={v}" for k, v in info.items()))
    return info


def record(**numbers) -> dict:
    """Keep a notebook's key numbers for the suite summary (a no-op outside the suite runner)."""
    path = os.environ.get(SUMMARY_ENV)
    if path:
        from ..experiments.results import dumps
        from ..files import atomic_write_text

        old = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
        plain = json.loads(json.dumps({**old, **numbers}, default=float))  # numpy and torch scalars as numbers
        atomic_write_text(path, dumps(plain))  # strict JSON: a NaN is written as null
    return numbers



