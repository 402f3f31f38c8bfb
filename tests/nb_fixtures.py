"""A one-cell notebook in the suite's shape (a parameters cell, then code), for tests of the suite runner; and the
committed notebooks' own parameters, for twins that must use the values a notebook runs with."""

import ast
import json
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_parameters(path) -> dict:
    """A notebook's papermill parameters, name -> literal value, from its cell tagged ``parameters`` (a path, or a
    file name in notebooks/)."""
    path = Path(path) if Path(path).is_absolute() else NOTEBOOKS / path
    cell = next(c for c in json.loads(path.read_text())["cells"]
                if "parameters" in c.get("metadata", {}).get("tags", []))
    return {t.id: ast.literal_eval(node.value) for node in ast.parse("".join(cell["source"])).body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def write_notebook(path, code: str, runtime_s: dict | None = None) -> None:
    """``runtime_s``: the runtimes it declares per profile (metadata ``soralab.runtime_s``), if any."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile_name = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if runtime_s is not None:
        nb.metadata["soralab"] = {"runtime_s": runtime_s}
    nbformat.write(nb, path)
