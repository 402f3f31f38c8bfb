"""The project's own promises: dependency lists agree, notebooks are committed clean."""

import json
import re
import tomllib
from pathlib import Path

import yaml
from nb_fixtures import notebook_parameters

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    assert all(re.search(r"[<>=]", r) for r in wanted), "keep version ranges, not bare names"
    assert not any("==" in r for r in wanted), "pyproject keeps ranges, not pins"


def test_notebooks_are_committed_without_outputs():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, f"{nb_path.name}: strip outputs"


def test_readme_runtimes_are_the_ones_the_notebooks_declare():
    """Each notebook declares its smoke and classroom runtimes in its metadata (the suite starts the longest first
    with --jobs > 1); the README's notebook table shows the same seconds."""
    rows = {m[1]: (m[2], m[3]) for m in re.finditer(r"^\| (\d\d) \| .*\| (\d+) s \| (\d+) s \|$",
                                                    (ROOT / "README.md").read_text(), re.M)}
    books = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert books and sorted(rows) == [b.name[:2] for b in books], "one README table row per notebook"
    for b in books:
        declared = json.loads(b.read_text())["metadata"]["soralab"]["runtime_s"]
        smoke, classroom = (int(x) for x in rows[b.name[:2]])
        assert (smoke, classroom) == (declared["smoke"], declared["classroom"]), b.name


def _relative_imports(path: Path) -> set[str]:
    """Every module a file imports relatively, as a dotted name inside soralab (function-level imports too)."""
    import ast

    package = path.parent.relative_to(ROOT).parts  # ("soralab",) or ("soralab", "experiments")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {".".join([*base, n]) for n in names}
    return found


def test_imports_run_one_way():
    """core (soralab/*.py) <- experiments <- teaching <- cli: nothing imports a layer above its own. (The names
    soralab.__init__ resolves lazily, ``soralab._LAZY``, go through importlib only when used.)"""
    layer = {"soralab.experiments": 1, "soralab.teaching": 2, "soralab.cli": 3}

    def rank(module: str) -> int:
        return next((v for k, v in layer.items() if module == k or module.startswith(k + ".")), 0)

    upward = []
    for path in sorted((ROOT / "soralab").rglob("*.py")):
        me = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for target in _relative_imports(path):
            if rank(target) > rank(me):
                upward.append(f"{me} imports {target}")
    assert not upward, upward


def test_the_command_line_loads_training_only_when_it_trains():
    """``soralab --help`` builds every subcommand's options from GlueConfig; it must not import the training stack
    (transformers' Trainer, soralab's train/allocate/sweep), which took it from about 2.5 s to 6.5 s."""
    import subprocess
    import sys

    code = ("import sys, soralab.cli\n"
            "heavy = ['soralab.experiments.train', 'soralab.experiments.allocate', 'soralab.experiments.sweep',\n"
            "         'transformers.trainer']\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_lazy_public_names_are_listed():
    """soralab.allocate and soralab.xi_values load on first use; dir() (tab completion, help()) still lists them."""
    import soralab

    assert set(soralab.__all__) <= set(dir(soralab))


def test_papermill_commands_in_the_docs_name_real_parameters_and_the_right_folder():
    """Every ``papermill notebooks/...`` line a reader is shown (notebook text, README) sets only parameters the
    notebook has, and runs the kernel in notebooks/ (``--cwd notebooks``) when a parameter is a path relative to
    that folder (``../benchmarks/...``); from the repository root such a path points outside the clone."""
    import shlex

    texts = [("README.md", (ROOT / "README.md").read_text())]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        texts += [(path.name, "".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown"]
    commands = [(where, line) for where, text in texts for line in text.splitlines() if "papermill notebooks/" in line
                or "papermill --" in line]
    assert len(commands) >= 10, commands  # one "Try it" per notebook at least
    for where, line in commands:
        words = shlex.split(line[line.index("papermill"):].strip("`"), comments=True)
        book = ROOT / next(w for w in words if w.endswith(".ipynb"))
        params = notebook_parameters(book)
        given = [words[i + 1] for i, w in enumerate(words) if w == "-p"]
        given += [k for i, w in enumerate(words) if w == "-y" for k in yaml.safe_load(words[i + 1])]
        assert set(given) <= set(params), f"{where}: {line.strip()} sets {set(given) - set(params)}, not parameters"
        relative = [k for k, v in params.items() if isinstance(v, str) and v.startswith("../")]
        if relative:
            assert "--cwd notebooks" in line, f"{where}: {line.strip()} needs --cwd notebooks ({relative})"


def test_readme_lists_every_module():
    """The README's module table is the map a reader opens the package with: every file is on it."""
    readme = (ROOT / "README.md").read_text()
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "soralab").rglob("*.py"))
               if p.name != "__init__.py" and not re.search(rf"^\| (\*\*)?`{re.escape(p.name)}`", readme, re.M)]
    assert not missing, f"add these to the README's module table: {missing}"
