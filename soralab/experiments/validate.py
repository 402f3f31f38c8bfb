"""Checks and parsing of run options (``GlueConfig`` fields), kept apart from the dataclass that holds them.

``check_options`` checks every option whose value is not ``None`` (``None`` means "the default" or "from the
recipe" and is left to the code that fills it in): its type from the field's annotation, finiteness of every
number, and the option's range from ``RANGES``. ``parse_option`` turns the text of ``--set name=value`` /
``--grid name=v1,v2`` into a value of the field's type, so ``torch_compile=False`` is False and
``target_modules=query,value`` is a list of two names.

``check_files`` checks what lives on disk (model folder, GLUE files, output folder) before any training starts.
"""

from __future__ import annotations

import codecs
import math
import numbers
import os
import re
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

from ..config import GATE_INITS
from ..errors import MissingFileError, UsageError
from .hardware import DEVICES, PRECISIONS

# name: (test on a value of the right type, what a right value looks like)
RANGES: dict[str, tuple[Any, str]] = {
    "max_seq_length": (lambda v: v >= 1, "a positive number of tokens (e.g. 128)"),
    "num_train_epochs": (lambda v: v > 0, "> 0 (e.g. 3)"),
    "learning_rate": (lambda v: v > 0, "> 0 (e.g. 2e-3)"),
    "per_device_train_batch_size": (lambda v: v >= 1, "a positive integer (e.g. 32)"),
    "per_device_eval_batch_size": (lambda v: v >= 1, "a positive integer (e.g. 64)"),
    "weight_decay": (lambda v: v >= 0, ">= 0 (e.g. 0.1)"),
    "max_grad_norm": (lambda v: v >= 0, ">= 0 (0 turns clipping off)"),
    "warmup_ratio": (lambda v: 0 <= v < 1, "a fraction of the training steps in [0, 1) (e.g. 0.06)"),
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32) (transformers' set_seed takes no other)"),
    "r": (lambda v: v >= 1, "a positive integer (e.g. 8)"),
    "lora_alpha": (lambda v: v > 0, "> 0 (e.g. 16)"),
    "lora_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "model_dropout": (lambda v: 0 <= v < 1, "in [0, 1) (e.g. 0.0, or 0.1 as BERT was trained)"),
    "xi": (lambda v: v >= 0, ">= 0 (e.g. 0.5)"),
    "keep": (lambda v: 0 < v <= 1, "a share of ranks in (0, 1] (e.g. 0.5)"),
    "keep_start": (lambda v: 0 <= v < 1, "a share of the run in [0, 1) (e.g. 0.1)"),
    "keep_end": (lambda v: 0 < v <= 1, "a share of the run in (0, 1] (e.g. 0.7)"),
    "head_lr": (lambda v: v > 0, "> 0 (e.g. 5e-3), or None for the learning rate"),
    "gate_lr": (lambda v: v >= 0, ">= 0, or None for the learning rate"),
    "gate_l1_loss": (lambda v: v >= 0, ">= 0"),
    "num_basis": (lambda v: v >= 1, "a positive integer (e.g. 64)"),
    "evals_per_epoch": (lambda v: v >= 1, "a positive integer (e.g. 1)"),
    "max_train_samples": (lambda v: v >= 1, "a positive integer, or None for all"),
    "max_eval_samples": (lambda v: v >= 1, "a positive integer, or None for all"),
}
CHOICES: dict[str, tuple[str, ...]] = {"gate_init": GATE_INITS, "precision": PRECISIONS, "device": DEVICES}
SAVABLE_METHODS = ("lora", "sora", "nola")  # what run_glue(save_model=True) can save (soralab adapters)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "bert-base-uncased", "org/name"


def field_kind(f: Field) -> tuple[str, bool]:
    """``("int" | "float" | "bool" | "str" | "list" | other, optional)`` from a field's annotation text."""
    parts = [p.strip() for p in str(f.type).split("|")]
    base = next((p for p in parts if p != "None"), "str")
    return ("list" if base.startswith("list") else base), "None" in parts


def _type_error(name: str, kind: str, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (None if it is)."""
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        return f"{name} must be an integer, got {value!r}"
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        return f"{name} must be a number, got {value!r}"
    if kind == "bool" and not isinstance(value, bool):
        return f"{name} must be True or False, got {value!r}"
    if kind == "str" and not isinstance(value, str):  # a Path too: the config is saved as JSON and compared
        hint = f" (write str({name}))" if isinstance(value, os.PathLike) else ""
        return f"{name} must be a string{hint}, got {value!r}"
    if kind == "list" and (not isinstance(value, (list, tuple)) or not value
                           or not all(isinstance(v, str) and v for v in value)):
        return f"{name} must be a non-empty list of names, e.g. ['query', 'value'], got {value!r}"
    return None


def _plain(value: Any) -> Any:
    """A value as the saved JSON will hold it: numpy's numbers as int / float, a tuple of names as a list (so that a
    rerun compares equal to the saved configuration, and the result can be written at all)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, float) and type(value) is not float:  # numpy.float64 is a float subclass
        return float(value)
    return list(value) if isinstance(value, tuple) else value


def check_options(config: Any) -> None:
    """Check a ``GlueConfig`` (any dataclass of options); raise ``UsageError`` naming the first bad option. Numpy
    numbers and tuples are stored as plain ints, floats and lists (``_plain``)."""
    for f in fields(config):
        value = getattr(config, f.name)
        if value is None or (f.metadata.get("internal") and value == []):  # from_recipe: nothing came from it
            continue
        kind, _ = field_kind(f)
        if (problem := _type_error(f.name, kind, value)) is not None:
            raise UsageError(problem)
        if (plain := _plain(value)) is not value:
            setattr(config, f.name, plain)
            value = plain
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
            raise UsageError(f"{f.name} must be a finite number, got {value!r}")
        if f.name in RANGES and not RANGES[f.name][0](value):
            raise UsageError(f"{f.name} must be {RANGES[f.name][1]}, got {value!r}")
        if f.name in CHOICES and value not in CHOICES[f.name]:
            raise UsageError(f"{f.name} must be one of {', '.join(CHOICES[f.name])}, got {value!r}")


def options(cls: Any) -> dict[str, Field]:
    """The fields of ``cls`` a user sets (not those marked ``internal``, which soralab fills in)."""
    return {f.name: f for f in fields(cls) if not f.metadata.get("internal")}


def parse_option(cls: Any, name: str, text: str) -> Any:
    """The value of option ``name`` of dataclass ``cls`` written as ``text``, parsed by the field's type.

    A whole number given to a float option stays an int (``xi=10`` -> 10): sweep folder names and saved configs
    then read as they did before options were typed, and an int is a valid value for a float option.
    A list option takes comma-separated names (``target_modules=query,value``).
    """
    known = options(cls)
    if name not in known:
        raise UsageError(f"unknown option {name!r}; valid options: {', '.join(known)}")
    kind, optional = field_kind(known[name])
    text = text.strip()
    if optional and text.lower() == "none":
        return None
    if kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise UsageError(f"{name} takes true or false, got {text!r}")
        return text.lower() in _TRUE
    if kind in ("int", "float"):
        try:
            return int(text)
        except ValueError:
            pass
        try:
            if kind == "float":
                return float(text)
        except ValueError:
            pass
        raise UsageError(f"{name} takes {'an integer' if kind == 'int' else 'a number'}, got {text!r}")
    if kind == "list":
        items = [t.strip() for t in text.split(",")]
        if not all(items):
            raise UsageError(f"{name} takes comma-separated names, e.g. query,value; got {text!r}")
        return items
    return text


def user_input(make: Any, *args: Any, **kwargs: Any) -> Any:
    """``make(*args, **kwargs)`` for a constructor that only validates (e.g. ``GlueConfig``): a ValueError or
    TypeError it raises is about the user's input and is re-raised as ``UsageError`` (no traceback on the CLI)."""
    try:
        return make(*args, **kwargs)
    except UsageError:
        raise
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err


# ------------------------------------------------------------------------------------------------ files


def check_run(config: Any, output_dir: str | os.PathLike | None = None, save_model: bool = False) -> None:
    """What ``run_glue`` needs besides valid options, checked before any data or model is loaded: the output
    folder is not a file, the model folder and the local GLUE files exist (the files as UTF-8), and
    ``save_model`` is asked only of a method whose adapter soralab can save."""
    from .glue import check_local_data

    check_output_dir(output_dir)
    if save_model and output_dir is None:
        raise UsageError("save_model=True saves the adapter into output_dir/adapter; give an output_dir")
    if save_model and config.method not in SAVABLE_METHODS:
        raise UsageError(f"save_model=True saves soralab adapters ({', '.join(SAVABLE_METHODS)}); method "
                         f"{config.method!r} has none to save")
    check_model_path(config.model_name_or_path)
    check_local_data(config.task, config.data_dir)


def check_output_dir(path: str | os.PathLike | None, option: str = "output_dir") -> None:
    """An output folder may be missing (it is created) but must not be a file, nor lie below one, and must be
    writable: checked before anything loads or trains, not found out when the first file is written."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {str(path)!r} is a file; give a folder (it is created if missing)")
    _check_writable(path, option)


def check_output_file(path: str | os.PathLike | None, option: str, example: str) -> None:
    """An output file may be missing or replaced, but must not be a folder, and its folder must be creatable."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {str(path)!r} is a folder; give a file name such as {example}")
    _check_writable(path.parent, option, path)


def _check_writable(folder: Path, option: str, target: Path | None = None) -> None:
    """``folder`` exists as a writable folder, or its nearest existing ancestor is one (it can be created)."""
    target = folder if target is None else target
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise UsageError(f"{option} {str(target)!r} cannot be written: {str(base)!r} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {str(target)!r} cannot be written: no permission to write in {str(base)!r}")


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def check_model_path(name: str, option: str = "model_name_or_path") -> None:
    """A local model folder must exist and hold ``config.json``; a hub id (``org/name``) must be in the hub cache
    when the hub is offline (``HF_HUB_OFFLINE=1``), and is otherwise left to the hub."""
    from huggingface_hub import constants

    from .models import resolve_model

    path = Path(resolve_model(name)).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingFileError(f"{option} {name!r} is a folder without config.json; expected a saved "
                                   f"transformers model (save_pretrained) there")
    elif path.exists():
        raise UsageError(f"{option} {name!r} is a file; give a model folder, a hub id or 'minilm'")
    elif not _HUB_ID.fullmatch(name):
        raise MissingFileError(f"{option} {name!r} does not exist; give a saved model folder, a hub id or 'minilm'")
    elif constants.HF_HUB_OFFLINE and not _in_hub_cache(name):
        raise MissingFileError(f"{option} {name!r} is not a local folder, and the hub is offline (HF_HUB_OFFLINE) "
                               f"with no cached copy of it; give a saved model folder or 'minilm'")


def check_text_file(path: Path, option: str) -> None:
    """Refuse a file that is not UTF-8 text (e.g. saved as UTF-16 by a spreadsheet), naming it."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or (
            b"\x00" in head[:4096]):
        raise UsageError(f"{path} ({option}) looks like UTF-16/32 text; GLUE files must be UTF-8: re-save it as UTF-8")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} ({option}) is not UTF-8 text ({err.reason} at byte {err.start}); "
                         f"re-save it as UTF-8") from None
