"""Error type shared by all nanobragg file readers and writers."""


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
