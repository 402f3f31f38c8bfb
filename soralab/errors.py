"""Error types that mark a user's mistake (a bad option, a bad or missing file), not a bug in soralab.

They subclass the built-in types a caller would expect (``ValueError``, ``FileNotFoundError``), so code that
catches those keeps working. The command line prints them as ``soralab: error: <message>`` and exits 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class UsageError(ValueError):
    """A value or file the user gave is wrong; the message names it and says what would be right."""


class MissingFileError(UsageError, FileNotFoundError):
    """A file or folder the user named does not exist (or is not what it must be)."""


class WrongTypeError(UsageError, TypeError):
    """Something the user named has the wrong type (e.g. a target module that is not a linear layer)."""


class NonFiniteError(UsageError):
    """A tensor or number holds NaN or infinity where only finite values make sense."""


def usage_errors_exit(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a command-line entry point: a ``UsageError`` prints ``<prog>: error: <message>`` on stderr and
    returns exit code 2 (as argparse does for a bad flag). Every other exception propagates with its traceback."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                return main(*args, **kwargs)
            except UsageError as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return 2

        return run

    return wrap
