"""The papers' claims side by side with ours (notebook 08): each claim, the number its source prints
(``soralab/data/paper_claims.csv``), and what a quality record measured for it.

A quality record is a list of rows with the columns of ``benchmarks/quality_results.csv`` (``task``, ``method``,
``seed``, ``score`` x100, ``params_after_prune``, ``wall_time_s``): the committed CPU/MiniLM record, or the runs of
the paper profile (``rows_from_results``). ``ours(claim_id, rows)`` returns ``(text, holds)``: ``holds`` is None
where the record cannot test the claim (a missing method, or no number to compare).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

CLAIMS_FILE = "paper_claims.csv"
NOT_RUN = "not run"


def paper_claims() -> list[dict[str, str]]:
    """The claims, in order: ``id``, ``claim``, ``source``, ``literature``."""
    text = resources.files("soralab").joinpath("data", CLAIMS_FILE).read_text(encoding="utf-8")
    return list(csv.DictReader(ln for ln in text.splitlines() if ln and not ln.startswith("#")))


def read_record(path: str | Path) -> list[dict]:
    """A quality record's CSV (``benchmarks/quality_results.csv``) as rows with numbers parsed."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{**r, "seed": int(r["seed"]), "score": float(r["score"]),
                 "params_after_prune": int(r["params_after_prune"]), "wall_time_s": float(r["wall_time_s"])}
                for r in csv.DictReader(f)]


def rows_from_results(results: Iterable) -> list[dict]:
    """``GlueResult``s as record rows."""
    return [{"task": r.config["task"], "method": r.config["method"], "seed": r.config["seed"], "score": r.score,
             "params_after_prune": r.params_after_prune, "wall_time_s": r.wall_time_s} for r in results]


def _mean(rows: list[dict], method: str, key: str, task: str | None = None) -> float | None:
    xs = [r[key] for r in rows if r["method"] == method and (task is None or r["task"] == task)]
    return statistics.mean(xs) if xs else None


def _task_mean(rows: list[dict], method: str, tasks: list[str]) -> float | None:
    means = [_mean(rows, method, "score", t) for t in tasks]
    return None if None in means or not means else statistics.mean(means)


def ours(claim_id: str, rows: list[dict]) -> tuple[str, bool | None]:
    """What ``rows`` say about one claim: a short text with the numbers, and whether the claim holds there. A run
    with no score (NaN: degenerate) is left out and counted; a task one of the two methods lacks gives no verdict."""
    degenerate = sum(math.isnan(r["score"]) for r in rows)
    rows = [r for r in rows if not math.isnan(r["score"])]
    text, holds = _ours(claim_id, rows)
    return (text + (f" ({degenerate} degenerate run(s) left out)" if degenerate else "")), holds


def _ours(claim_id: str, rows: list[dict]) -> tuple[str, bool | None]:
    tasks = sorted({r["task"] for r in rows})
    have = {r["method"] for r in rows}
    if claim_id in ("sora_glue", "adalora_glue"):
        other = "sora" if claim_id == "sora_glue" else "adalora"
        if not {other, "lora"} <= have:
            return NOT_RUN, None
        a, b = _task_mean(rows, other, tasks), _task_mean(rows, "lora", tasks)
        if a is None or b is None:
            return f"{other} and LoRA have not both run every task ({', '.join(tasks)})", None
        share = _mean(rows, other, "params_after_prune") / _mean(rows, "lora", "params_after_prune")
        holds = a >= b and (share < 1 if other == "sora" else True)
        return (f"{other} avg {a:.2f} vs LoRA {b:.2f} over {', '.join(tasks)}; {other} at {share:.0%} of LoRA's "
                f"parameters"), holds
    if claim_id == "sora_llama":
        found = [t for t in ("sst2", "rte") if t in tasks]
        if not found or not {"sora", "lora"} <= have:
            return NOT_RUN, None
        pairs = {t: (_mean(rows, "sora", "score", t), _mean(rows, "lora", "score", t)) for t in found}
        if any(None in pair for pair in pairs.values()):
            return f"SoRA and LoRA have not both run {' and '.join(found)}", None
        return ("; ".join(f"{t}: SoRA {s:.2f}, LoRA {lo:.2f}" for t, (s, lo) in pairs.items()),
                all(s >= lo for s, lo in pairs.values()))
    if claim_id == "sora_cost":
        lora = {(r["task"], r["seed"]): r["wall_time_s"] for r in rows if r["method"] == "lora"}
        ratios = [lora[(r["task"], r["seed"])] / r["wall_time_s"] for r in rows
                  if r["method"] == "sora" and (r["task"], r["seed"]) in lora]
        if not ratios:
            return NOT_RUN, None
        speed = statistics.median(ratios)
        return (f"SoRA at {speed:.2f} of LoRA's speed (median of {len(ratios)} paired whole runs, range "
                f"{min(ratios):.2f}-{max(ratios):.2f})"), speed >= 0.9
    return "no number to compare here", None


def side_by_side(cpu_rows: list[dict], paper_rows: list[dict] | None = None) -> list[dict]:
    """One row per claim: the claim, its source and number, ours on the CPU record, ours in the paper profile."""
    out = []
    for c in paper_claims():
        cpu, cpu_holds = ours(c["id"], cpu_rows)
        paper, paper_holds = ours(c["id"], paper_rows) if paper_rows else (NOT_RUN, None)
        out.append({**c, "ours_cpu": cpu, "holds_cpu": cpu_holds, "ours_paper": paper, "holds_paper": paper_holds})
    return out


def markdown(table: list[dict]) -> str:
    def cell(text, holds):
        return text if holds is None else f"{text} ({'holds' if holds else '**does not hold**'})"

    lines = ["| claim | source | paper or literature | ours on CPU (MiniLM) | ours, paper profile |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['source']} | {r['literature']} | {cell(r['ours_cpu'], r['holds_cpu'])} | "
              f"{cell(r['ours_paper'], r['holds_paper'])} |" for r in table]
    return "\n".join(lines)
