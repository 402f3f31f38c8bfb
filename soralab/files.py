"""Writing files so that an interrupted write never leaves a half-written file or folder behind: write to a
temporary name beside the target, then rename it into place (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename. The file gets the mode any
    new file gets (0o666 less the umask), and its bytes reach the disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # (mkstemp's files are 0o600 whatever the umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_folder(path: str | os.PathLike, write: Callable[[Path], None], names: set[str]) -> Path:
    """Write a folder's files as one unit: ``write(tmp)`` fills a new temporary folder beside ``path``, which is
    then renamed to ``path``.

    ``path`` may be missing, empty, or hold only files named in ``names`` (an earlier save, which is replaced); a
    folder holding anything else is refused, never deleted. An earlier save is first renamed aside and removed
    once the new folder is in place: interrupted at any point, ``path`` holds the old files or the new ones (or,
    between the two renames, nothing, with the old folder intact in ``.<name>.<id>.old``), never a mix.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file; give a folder to save into")
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.name not in names and not p.name.endswith(".tmp"))
        if others:
            raise UsageError(f"{path} already holds other files ({', '.join(others[:5])}); save into a new or "
                             f"empty folder (only an earlier save of the same kind is replaced)")
    real = path.resolve()
    real.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = real.parent / f".{real.name}.{tag}.tmp", real.parent / f".{real.name}.{tag}.old"
    tmp.mkdir()
    try:
        write(tmp)
        if real.exists():
            os.replace(real, old)
        try:
            os.replace(tmp, real)
        except BaseException:
            if old.exists() and not real.exists():
                os.replace(old, real)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path
