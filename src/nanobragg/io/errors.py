"""Reading helpers shared by all nanobragg file readers and writers; their error type is
:class:`nanobragg.errors.InputError` (re-exported here)."""
from ..errors import InputError

__all__ = ["InputError", "open_error", "read_bytes", "read_text_lines"]


def open_error(path, exc):
    """Turn an OSError raised while opening ``path`` into an InputError."""
    reason = exc.strerror or exc.__class__.__name__
    return InputError(path, f"cannot open file ({reason})")


def read_bytes(path):
    """Return the whole content of ``path``; InputError if it can't be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise open_error(path, exc) from exc


def read_text_lines(path):
    """Return the lines of text file ``path``, split at ``\\n`` only.

    Decoded as latin-1 (never fails); a trailing ``\\r`` (DOS line end) is
    dropped.  Line ``i`` of the file is element ``i - 1`` of the result.
    """
    text = read_bytes(path).decode("latin-1")
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
