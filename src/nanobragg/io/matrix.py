"""MOSFLM orientation matrix files (``-mat``)."""

import numpy as np

from .errors import InputError, read_text_lines
from .hkl import parse_c_double


def _first_numbers(path, count):
    """The first ``count`` whitespace-separated numbers of a text file."""
    numbers = []
    for number, line in enumerate(read_text_lines(path), start=1):
        for token in line.split():
            try:
                numbers.append(parse_c_double(token))
            except ValueError:
                raise InputError(path, f"malformed number {token!r}", line=number) from None
            if len(numbers) == count:
                return numbers
    raise InputError(path, f"expected {count} numbers, found {len(numbers)}")


def read_mosflm_matrix(path):
    """Read the 3x3 A matrix at the top of a MOSFLM matrix file.

    The first nine numbers are read in file order; everything after them
    (MOSFLM's missetting angles, U matrix, cell, ...) is ignored.  Row i of
    the result is file row i, holding component i (x, y, z) of a*, b*, c*:
    so the *columns* are the reciprocal vectors a*, b*, c*, still multiplied
    by the wavelength as MOSFLM writes them (units 1/Angstrom * lambda).
    InputError if fewer than nine numbers precede the first non-number.
    """
    return np.array(_first_numbers(path, 9), dtype=np.float64).reshape(3, 3)
