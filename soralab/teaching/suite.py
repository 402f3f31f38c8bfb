"""Run the notebook suite with papermill in one profile and write a summary.

    soralab notebooks --profile classroom            # every notebook, executed copies in runs/notebooks/classroom/
    soralab notebooks --profile smoke --only 00 02   # the ones whose names start with 00 or 02
    soralab notebooks --jobs 2                       # two at a time, one core each (CI's way on 2 cores)

With jobs > 1 the notebooks start longest first, by the runtime each declares for the profile in its metadata
(``"soralab": {"runtime_s": {"classroom": 167}}``, seconds alone on the dev machine), so the last one to finish is a
short one; the summary keeps the notebooks' order.

Per notebook the summary holds status, runtime and the key numbers the notebook ``record()``-ed; every claim the
notebooks ``check()``-ed goes to ``claims.json`` and ``claims.md`` (``soralab.teaching.claims``). ``suite_ok`` says
whether the suite passed: every notebook ran, and in the classroom and paper profiles every taught claim held. A
cell that runs longer than ``CELL_TIMEOUT_S`` for the profile (600 s smoke, 3600 s classroom, no limit for paper)
fails its notebook, so a hung cell cannot hold the suite.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..errors import MissingFileError, UsageError
from ..files import atomic_write_text
from .claims import CLAIMS_ENV, failed_taught, read_claims, write_claims
from .profiles import PROFILE_ENV, SUMMARY_ENV, profile

# Longest a single cell may run (s) before papermill stops the notebook as failed: a hung cell must not hold CI until
# its own limit. A classroom cell takes at most a few minutes on a 2-core CPU; paper runs train for hours: no limit.
CELL_TIMEOUT_S = {"smoke": 600, "classroom": 3600, "paper": None}
RESULT_FILES = ("summary.json", "summary.md", "claims.json", "claims.md")


def notebooks_folder(notebooks_dir: str | Path | None = None) -> Path:
    """The notebooks to run: ``notebooks_dir`` if given, else ``./notebooks`` (a clone's root), else the clone this
    package was installed from in editable mode. The notebooks are not inside the package, so a wheel install
    names the folder."""
    if notebooks_dir is not None:
        folder = Path(notebooks_dir)
        if not folder.is_dir():
            raise MissingFileError(f"notebooks folder {folder} does not exist; give the clone's notebooks/ folder")
        return folder
    for folder in (Path.cwd() / "notebooks", Path(__file__).resolve().parents[2] / "notebooks"):
        if folder.is_dir():
            return folder
    raise MissingFileError("no notebooks/ folder here or beside the package (a wheel install ships none); run from "
                           "a clone's root or pass --notebooks-dir path/to/soralab/notebooks")


def _run_one(book: Path, out: Path, profile_name: str, threads: int | None = None) -> tuple[dict, list[dict]]:
    """Execute one notebook with papermill (its kernel sees the profile, where to record, and ``threads`` as
    OMP_NUM_THREADS when given); its summary row and the claims it checked."""
    import papermill as pm

    numbers, checked = out / f"{book.stem}.numbers.json", out / f"{book.stem}.claims.json"
    numbers.unlink(missing_ok=True)
    checked.unlink(missing_ok=True)
    env = {PROFILE_ENV: profile_name, SUMMARY_ENV: str(numbers.resolve()), CLAIMS_ENV: str(checked.resolve())}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env_before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel papermill starts inherits this process's environment
    start, status = time.perf_counter(), "ok"
    try:
        pm.execute_notebook(str(book), str(out / book.name), cwd=str(book.parent), progress_bar=False,
                            kernel_name="python3", execution_timeout=CELL_TIMEOUT_S.get(profile_name))
    except Exception as e:  # papermill raises on the first failing cell; the executed copy shows where
        status = f"failed: {type(e).__name__}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}"
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    mine = read_claims(checked, book.name, profile_name)
    row = {"notebook": book.name, "status": status, "runtime_s": round(time.perf_counter() - start, 1),
           "numbers": json.loads(numbers.read_text()) if numbers.is_file() else {},
           "claims": len(mine), "taught_failed": sum(not c["holds"] for c in mine if c["kind"] == "taught"),
           "tested_not_holding": sum(not c["holds"] for c in mine if c["kind"] == "tested")}
    print(f"{row['notebook']}: {row['status']} in {row['runtime_s']} s  {row['numbers']}", flush=True)
    return row, mine


def declared_runtime(book: Path, profile_name: str) -> float:
    """The runtime (s) a notebook declares for a profile in its metadata, ``soralab.runtime_s``; infinite when it
    declares none, so that a notebook nobody has timed yet starts first rather than last."""
    meta = json.loads(Path(book).read_text(encoding="utf-8")).get("metadata", {})
    seconds = meta.get("soralab", {}).get("runtime_s", {}).get(profile_name)
    if seconds is None:
        return math.inf
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise UsageError(f"{Path(book).name}: metadata soralab.runtime_s.{profile_name} must be seconds (a number "
                         f">= 0), got {seconds!r}")
    return float(seconds)


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_suite(profile_name: str, output_dir: str | Path | None = None, only: list[str] | None = None,
              notebooks_dir: str | Path | None = None, jobs: int = 1) -> list[dict]:
    """Execute the notebooks, ``jobs`` at a time (jobs > 1: each in its own process, with cores // jobs threads;
    a notebook's runtime is then its time beside the others), and write the summary and the claims."""
    profile(profile_name)  # validates the name
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a whole number >= 1 (notebooks run at once), got {jobs!r}")
    notebooks_dir = notebooks_folder(notebooks_dir)
    books = sorted(Path(notebooks_dir).glob("[0-9]*.ipynb"))
    if only is not None:
        unmatched = [o for o in only if not any(b.name.startswith(o) for b in books)]
        if not only or unmatched:
            raise UsageError(f"--only {' '.join(unmatched)}: no notebook in {notebooks_dir} starts with that; give "
                             f"name prefixes such as {', '.join(b.name[:2] for b in books[:3])}" if unmatched else
                             "--only needs at least one notebook name prefix, e.g. --only 00 03")
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
    if not books:
        raise MissingFileError(f"no notebooks in {notebooks_dir}")
    # with jobs > 1, longest first: the pool hands the next notebook in this order to whichever worker is free
    start_order = sorted(books, key=lambda b: -declared_runtime(b, profile_name))
    out = Path(output_dir or f"runs/notebooks/{profile_name}")
    if out.resolve() == Path(notebooks_dir).resolve():
        raise UsageError(f"--output-dir {out} is the notebooks folder: the executed copies would overwrite the "
                         "notebooks themselves; give another folder (default: runs/notebooks/<profile>)")
    out.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:  # an earlier run's summary must not outlive this run if it is interrupted
        (out / name).unlink(missing_ok=True)
    if jobs == 1:
        done = [_run_one(book, out, profile_name) for book in books]
    else:  # spawned workers: each sets its kernel's environment in its own process
        threads = max(1, cores() // jobs)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            ran = dict(zip(start_order, pool.map(_run_one, start_order, [out] * len(books),
                                                 [profile_name] * len(books), [threads] * len(books)), strict=True))
        done = [ran[book] for book in books]
    rows = [row for row, _ in done]
    claims = [c for _, mine in done for c in mine]
    atomic_write_text(out / "summary.json", json.dumps(rows, indent=2))
    write_claims(claims, out)
    lines = ["| notebook | status | runtime (s) | claims | taught failed | tested not holding | key numbers |",
             "|---|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['notebook']} | {r['status']} | {r['runtime_s']} | {r['claims']} | {r['taught_failed']} | "
              f"{r['tested_not_holding']} | "
              + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["numbers"].items())
              + " |" for r in rows]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    return rows


def suite_ok(rows: list[dict], profile_name: str, output_dir: str | Path) -> bool:
    """Every notebook ran, and (classroom, paper) every taught claim held; prints the failed taught claims."""
    claims = json.loads((Path(output_dir) / "claims.json").read_text(encoding="utf-8"))
    failed = failed_taught(claims, profile_name)
    for c in failed:
        print(f"FAILED taught claim in {c['notebook']}: {c['claim']} ({c['evidence']})", flush=True)
    return all(r["status"] == "ok" for r in rows) and not failed
