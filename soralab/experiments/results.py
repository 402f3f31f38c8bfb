"""Run results on disk and the choice of the best evaluation, with NaN handled on purpose.

* JSON stays valid: ``dumps`` writes NaN and infinity as ``null`` (plain ``json.dumps`` writes ``NaN``, which
  is not JSON), and ``read_result`` turns a ``null`` metric back into NaN.
* ``select_best`` never picks an evaluation whose main metric is NaN (``max`` would keep a NaN that came first).
  When every evaluation's main metric is NaN (e.g. a model that predicts one constant value on STS-B, whose
  Pearson correlation is then undefined), the run is *degenerate*: it is kept, so a sweep goes on with its other
  runs, its score is NaN, a warning says why, and ``report`` and the command line show it as degenerate instead
  of a number.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from ..errors import UsageError

REQUIRED = ("config", "history", "best", "final", "main_metric")


class CorruptResultError(UsageError):
    """A ``result.json`` that cannot be read (truncated, empty, not a result); the message names the file."""


def is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _nulls(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nulls(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON: NaN and infinity become ``null``."""
    return json.dumps(_nulls(obj), indent=2, allow_nan=False)


def select_best(history: list[dict], key: str) -> dict:
    """The row with the highest ``key`` (the first on ties), ignoring rows where it is NaN or missing.

    If no row has a number for ``key``, warn and return the last row: the run is degenerate (score NaN).
    """
    scored = [row for row in history if not is_nan(row.get(key, math.nan))]
    if scored:
        return max(scored, key=lambda row: row[key])
    warnings.warn(f"every evaluation's {key} is NaN (e.g. constant predictions, for which a correlation is "
                  f"undefined); the run is recorded as degenerate with score NaN", stacklevel=2)
    return history[-1]


def read_result(path: str | Path) -> dict[str, Any]:
    """The dict saved in a ``result.json``, ``null`` metrics back to NaN; ``CorruptResultError`` naming the file."""
    path = Path(path)
    advice = ("it is not a result soralab wrote whole (soralab writes a result.json in one piece, so another "
              "program or an edit made it): delete it, and a rerun of the sweep redoes that run")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptResultError(f"{path} is not valid JSON ({err}); {advice}") from None
    if not isinstance(data, dict) or any(k not in data for k in REQUIRED) or not isinstance(data["config"], dict):
        raise CorruptResultError(f"{path} is not a soralab result (expected a JSON object with "
                                 f"{', '.join(REQUIRED)}); {advice}")
    if not isinstance(data["history"], list) or not all(isinstance(r, dict) for r in [*data["history"],
                                                                                       data["best"], data["final"]]):
        raise CorruptResultError(f"{path}: 'history' must be a list of rows and 'best'/'final' rows; {advice}")
    for row in [*data["history"], data["best"], data["final"]]:
        for k, v in row.items():
            if v is None and k.startswith("eval_"):
                row[k] = math.nan
    return data
