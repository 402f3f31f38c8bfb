"""Error types that mark a user's mistake (a bad option, a bad or missing file), not a bug in soralab.

They subclass the built-in types a caller would expect (``ValueError``, ``FileNotFoundError``), so code that
catches those keeps working. The command line prints them as ``soralab: error: <message>`` and exits 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A value or file the user gave is wrong; the message names it and says what would be right."""


class MissingFileError(UsageError, FileNotFoundError):
    """A file or folder the user named does not exist (or is not what it must be)."""


class NonFiniteError(UsageError):
    """A tensor or number holds NaN or infinity where only finite values make sense."""
