"""A wheel install, not an editable one: the package data (the literature's rows) ships inside it, `soralab report`
prints them, and the notebook suite runs from the wheel when given the clone's notebooks folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soralab.experiments.train import RESULT_NAME, GlueConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory):
    """The project built as a wheel and installed, without its dependencies, into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools builds in the source's build/ folder, and two pytest-xdist workers building from
    # the clone at once (each runs this module-scoped fixture) trip over each other there
    src = tmp / "src"
    shutil.copytree(ROOT / "soralab", src / "soralab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp / "dist").glob("soralab-*.whl"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                              str(tmp / "site"), str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    return tmp / "site"


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m soralab.cli ...`` from ``cwd`` (outside the clone) with the wheel's copy first on the path."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_is_what_runs_and_holds_its_data(wheel_site, tmp_path):
    out = run(wheel_site, tmp_path, "-c", "import soralab, importlib.resources as r; print(soralab.__file__); "
              "print(sorted(p.name for p in r.files('soralab').joinpath('data').iterdir()))")
    assert out.returncode == 0, out.stderr[-2000:]
    where, data = out.stdout.splitlines()[:2]
    assert Path(where).is_relative_to(wheel_site)  # not the clone
    assert "reference_glue.csv" in data and "reference_aflora.csv" in data


def test_report_from_the_wheel_prints_the_literature(wheel_site, tmp_path):
    config = GlueConfig(task="rte", method="lora").to_dict()
    row = {"step": 10, "epoch": 1.0, "eval_validation_accuracy": 0.6}
    result = {"config": config, "history": [row], "best": row, "final": row, "main_metric": "accuracy",
              "trainable_params": 100, "params_after_prune": 100, "wall_time_s": 1.0}
    folder = tmp_path / "sweep" / "rte" / "lora" / "default" / "seed1"
    folder.mkdir(parents=True)
    (folder / RESULT_NAME).write_text(json.dumps(result))
    out = run(wheel_site, tmp_path, "-m", "soralab.cli", "report", str(tmp_path / "sweep"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| lora |" in out.stdout and "60.00" in out.stdout
    assert "AdaLoRA" in out.stdout and "DeBERTaV3-base" in out.stdout  # the packaged literature rows


def test_notebook_suite_from_the_wheel(wheel_site, tmp_path):
    missing = run(wheel_site, tmp_path, "-m", "soralab.cli", "notebooks", "--profile", "smoke", "--only", "01")
    assert missing.returncode == 2 and "--notebooks-dir" in missing.stderr  # a wheel ships no notebooks
    out = run(wheel_site, tmp_path, "-m", "soralab.cli", "notebooks", "--profile", "smoke", "--only", "01",
              "--notebooks-dir", str(ROOT / "notebooks"), "--output-dir", str(tmp_path / "nb"))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert json.loads((tmp_path / "nb" / "summary.json").read_text())[0]["status"] == "ok"
