"""The claims a notebook teaches, checked where a student sees them and collected into one table by the suite.

A notebook states each claim once, through ``check``::

    check("pruning leaves the outputs unchanged", max_diff < 1e-5, {"max |diff|": max_diff})
    check("SoRA matches LoRA at 70% of its parameters", sora >= lora, {"SoRA": sora, "LoRA": lora}, kind="tested")

Two kinds. ``taught``: mechanics the code guarantees (pruning preserves outputs, a zero gate is a dead rank); a
failure is a bug, and the suite runner exits non-zero on one in the classroom and paper profiles. ``tested``: a
paper's claim under experiment, reported either way; it never fails the suite. The smoke profile (seconds, CI) runs
models too small for either kind to mean much: the runner records its claims and does not enforce them. ``check``
itself never raises on a claim that fails; a notebook that writes ``assert check(...)`` stops there, in every
profile, which it does for mechanics that must hold even at smoke sizes (pruning keeps the logits, ...).

Under the suite runner (``soralab notebooks``) every check is also appended to the file named by
``$SORALAB_CLAIMS``; the runner writes all notebooks' claims to ``claims.json`` and ``claims.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import atomic_write_text

CLAIMS_ENV = "SORALAB_CLAIMS"
KINDS = ("taught", "tested")
ENFORCED_PROFILES = ("classroom", "paper")  # where a failed taught claim fails the suite
FIELDS = ("notebook", "claim", "kind", "holds", "evidence", "profile")


def _evidence(evidence: str | Mapping[str, Any]) -> str:
    if isinstance(evidence, str):
        return evidence
    if not isinstance(evidence, Mapping):
        raise UsageError(f"evidence must be a string or a mapping of names to numbers, got {type(evidence).__name__}")
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}"
                     for k, v in evidence.items())


def _truth(holds: Any) -> bool:
    """``holds`` as a bool: True/False, or a 0-d boolean of numpy or torch (``a > b``, ``(a == b).all()``). Anything
    else is refused: ``bool(nan)`` is True, so a NaN (or a number, or None) would read as a claim that holds."""
    if isinstance(holds, bool) or (str(getattr(holds, "dtype", "")) in ("bool", "torch.bool")
                                   and getattr(holds, "ndim", None) == 0):
        return bool(holds)
    raise UsageError(f"a claim holds or not: pass True or False (a comparison's result), got {holds!r} of type "
                     f"{type(holds).__name__}")


def check(claim: str, holds: Any, evidence: str | Mapping[str, Any], *, kind: str = "taught") -> bool:
    """Print whether ``claim`` holds, with its evidence; record it for the suite; return whether it holds.
    ``holds`` is True or False; a claim checked twice (in a loop, say) is recorded twice."""
    if kind not in KINDS:
        raise UsageError(f"a claim's kind is 'taught' (mechanics: must hold) or 'tested' (a paper's claim under "
                         f"experiment), got {kind!r}")
    if not isinstance(claim, str) or not claim.strip():
        raise UsageError("state the claim as a non-empty sentence")
    holds = _truth(holds)
    text = _evidence(evidence)
    mark = "holds" if holds else ("FAILS (a bug)" if kind == "taught" else "does not hold here")
    print(f"[{kind} claim {mark}] {claim} ({text})")
    path = os.environ.get(CLAIMS_ENV)
    if path:
        old = json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else []
        row = {"claim": claim, "kind": kind, "holds": holds, "evidence": text}
        atomic_write_text(path, json.dumps([*old, row], indent=2))
    return holds


def check_learned(results: Mapping[str, Any], margin: float = 0.0) -> bool:
    """The taught claim under every GLUE lesson: each run it reads learned, i.e. beats the majority-class score of
    its own eval split by more than ``margin`` points (``GlueResult.above_baseline``). A run at chance would make
    the lesson's comparison meaningless, so a failure here is a budget that does not learn: a bug to fix."""
    if not results:
        raise UsageError("check_learned needs the runs it vouches for: got none")
    missing = [name for name, r in results.items() if r.baseline is None]
    if missing:
        raise UsageError(f"no majority-class baseline recorded for {', '.join(missing)}: results saved before soralab "
                         f"recorded one; run them again (delete their result.json)")
    evidence = {name: f"{r.score:.1f} vs {r.baseline:.1f}" for name, r in results.items()}
    return check(f"every GLUE run here learned: above its majority-class score by more than {margin:g} points",
                 all(r.above_baseline(margin) for r in results.values()), evidence)


def read_claims(path: str | Path, notebook: str, profile: str) -> list[dict]:
    """The claims a notebook recorded under the suite, each with its notebook and profile."""
    path = Path(path)
    if not path.is_file():
        return []
    return [{"notebook": notebook, **row, "profile": profile} for row in json.loads(path.read_text(encoding="utf-8"))]


def write_claims(claims: list[dict], folder: str | Path) -> None:
    """``claims.json`` and ``claims.md`` in ``folder``: one row per claim, in notebook order."""
    folder = Path(folder)
    atomic_write_text(folder / "claims.json", json.dumps([{k: c[k] for k in FIELDS} for c in claims], indent=2))

    def cell(text: str) -> str:  # a "|" in a claim (|g|_1) or its evidence would split the Markdown row
        return str(text).replace("|", "\\|")

    lines = ["| notebook | claim | kind | holds | evidence |", "|---|---|---|---|---|"]
    lines += [f"| {c['notebook']} | {cell(c['claim'])} | {c['kind']} | {'yes' if c['holds'] else '**no**'} | "
              f"{cell(c['evidence'])} |" for c in claims]
    atomic_write_text(folder / "claims.md", "\n".join(lines) + "\n")


def failed_taught(claims: list[dict], profile: str) -> list[dict]:
    """Taught claims that failed, where the profile enforces them (classroom, paper); none in smoke."""
    if profile not in ENFORCED_PROFILES:
        return []
    return [c for c in claims if c["kind"] == "taught" and not c["holds"]]
