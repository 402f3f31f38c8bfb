"""A one-cell notebook in the suite's shape (a parameters cell, then code), for tests of the suite runner."""

import nbformat


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
