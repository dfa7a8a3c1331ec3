"""Multi-column numeric text files: ``-sourcefile`` (and C's read_text_file)."""

import re

import numpy as np

from .errors import InputError, read_text_lines
from .hkl import parse_c_double

#: column separators accepted by nanoBragg's text reader (plus CR).
_DELIMITERS = " \t,;:!\r"
_SPLIT = re.compile("[" + re.escape(_DELIMITERS) + "]+")

#: columns of a source file.
SOURCE_COLUMNS = ("X", "Y", "Z", "I", "lambda")


def _fields(line):
    """Non-empty fields of a line split at any run of delimiters."""
    return [field for field in _SPLIT.split(line) if field]


def read_text_columns(path, ncols):
    """Read a numeric table with ``ncols`` columns; missing trailing columns are NaN.

    Like nanoBragg's read_text_file: fields are separated by runs of blank,
    tab, comma, semicolon, colon or ``!``; blank lines are skipped; columns
    beyond ``ncols`` are ignored.  Unlike it, lines starting with ``#`` are
    comments, and a field that is not a number is an InputError naming the
    line (C would read it as 0).  A file without data lines is an InputError.
    Returns a float64 array (rows, ncols).
    """
    rows = []
    for number, line in enumerate(read_text_lines(path), start=1):
        fields = _fields(line)
        if not fields or fields[0].startswith("#"):
            continue
        row = [np.nan] * ncols
        for column, text in enumerate(fields[:ncols]):
            try:
                row[column] = parse_c_double(text)
            except ValueError:
                raise InputError(path, f"malformed number {text!r}", line=number) from None
        rows.append(row)
    if not rows:
        raise InputError(path, "no data lines found")
    return np.array(rows, dtype=np.float64).reshape(-1, ncols)


def read_source_file(path):
    """Read a ``-sourcefile``: float64 array (n, 5) of X Y Z I lambda.

    Missing columns are NaN; nanoBragg then substitutes its defaults
    (position along the beam, intensity 1, the nominal wavelength).
    Positions in metres, lambda in metres, as in the C program.
    """
    return read_text_columns(path, len(SOURCE_COLUMNS))
