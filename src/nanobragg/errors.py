"""The package's errors, in one place.

Every refusal is one line naming where the bad value came from (a flag, a
file and line, an API argument):

* :class:`UsageError`: a bad command line (unknown flag, missing value);
* :class:`ConfigError`: a configuration the simulation cannot run with, and
  :class:`CheckError` (with :class:`CheckTypeError`) for a value a rule of
  :mod:`nanobragg.config.checks` refuses, naming its dotted field;
* :class:`InputError`: bad or unreadable input files.

``UsageError``, ``ConfigError`` and ``CheckError`` are ``ValueError``; ``CheckTypeError`` is also
a ``TypeError``. The commands turn each into one line on stderr and exit status 2.
"""
from __future__ import annotations

from typing import Optional


class UsageError(ValueError):
    """Bad command line; the message is one line naming the flag."""


class ConfigError(ValueError):
    """A configuration the simulation cannot run with (the message is one line)."""


class CheckError(ConfigError):
    """A value refused by a rule: ``field`` is its dotted path (None for the run as a whole)."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.field = field


class CheckTypeError(CheckError, TypeError):
    """A value of the wrong type or shape (also a TypeError, as Python's own checks raise)."""


class InputError(Exception):
    """Bad or unreadable input: the message is one line naming the file.

    Raised for a missing file or folder, a malformed number or line
    (with its 1-based line number), a truncated file or an empty table.
    """

    def __init__(self, path, message=None, line=None):
        """``InputError(path, message, line=None)`` or ``InputError(message)``.

        The two-argument form gives ``"<path>[, line N]: <message>"``.
        """
        if message is None:
            self.path, self.line = None, None
            super().__init__(str(path))
            return
        self.path, self.line = str(path), line
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")
