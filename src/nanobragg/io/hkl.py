"""Reading structure-factor (HKL) text files and building nanoBragg's F grid.

File format: one reflection per line, ``h k l F`` separated by blanks.
Columns after the fourth (sigma, phase, ...) are ignored.  Blank lines and
lines whose first non-blank character is ``#`` are skipped.

Differences from the C reader (which scans the file as a stream of numbers,
four at a time): a line with fewer than four columns, or with a column that
is not a number, is an error naming the line instead of silently shifting
every following reflection; extra columns are ignored instead of being read
as the next reflection's ``h``.

Non-integer indices.  They produce the C warning text.  The C program takes
the grid bounds from ``(int) h`` (truncation toward zero) and re-reads the
indices with ``fscanf("%d")``, which stops at the decimal point and so also
yields the truncated value (then stumbles on the ``.5`` and stops reading the
file).  We keep truncation toward zero for both the bounds and the index, so
the grid matches C's wherever C reads the line, and we read on.  The line
number in the warning is C's: the 0-based count of reflections read before.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, read_text_lines

#: refuse to allocate F grids with more cells than this (8 GiB of float64).
MAX_GRID_CELLS = 1 << 30


@dataclass
class HKLTable:
    """Reflections of an HKL file, in file order.

    ``hkl``: int64 array (n, 3); ``F``: float64 array (n,); ``warnings``:
    C-style warning lines (without trailing newline) for non-integer indices.
    """

    hkl: np.ndarray
    F: np.ndarray
    warnings: list = field(default_factory=list)


@dataclass
class FGrid:
    """Dense structure-factor grid laid out exactly like C's ``Fhkl``.

    ``grid[h - h_min, k - k_min, l - l_min]`` is F(h, k, l).  Its shape is
    ``(h_range + 1, k_range + 1, l_range + 1)`` where
    ``h_range = h_max - h_min + 1``: C allocates one extra (zero) plane on
    the high side of every axis, and the Fdump file stores it too.
    """

    h_min: int
    h_max: int
    k_min: int
    k_max: int
    l_min: int
    l_max: int
    grid: np.ndarray

    @property
    def bounds(self):
        """``(h_min, h_max, k_min, k_max, l_min, l_max)``."""
        return (self.h_min, self.h_max, self.k_min, self.k_max, self.l_min, self.l_max)

    @property
    def ranges(self):
        """``(h_range, k_range, l_range)`` as C defines them (max - min + 1)."""
        return (self.h_max - self.h_min + 1, self.k_max - self.k_min + 1, self.l_max - self.l_min + 1)


def parse_c_double(token):
    """Parse a number the way C's ``%lg``/``strtod`` would accept it whole.

    Raises ValueError for anything else (Python-only forms such as digit
    separators ``1_000`` are rejected).
    """
    if "_" in token:
        raise ValueError(token)
    return float(token)


def _is_skipped(line):
    """True for blank lines and ``#`` comment lines."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _parse_line(path, number, line):
    """Return ``(h, k, l, F)`` floats of one reflection line."""
    columns = line.split()
    if len(columns) < 4:
        raise InputError(path, f"expected 'h k l F', got {line.strip()!r}", line=number)
    try:
        return tuple(parse_c_double(text) for text in columns[:4])
    except ValueError:
        raise InputError(path, f"malformed number in {line.strip()!r}", line=number) from None


def _index(path, number, name, value, rule):
    """Integer index used for ``value`` (checked by ``rule``); see the module docstring."""
    if not math.isfinite(value):
        raise InputError(path, f"index {name} is not finite ({value})", line=number)
    problem = rule.problem(value)
    if problem:
        raise InputError(path, f"index {name}: {problem}", line=number)
    return int(value)


def _amplitude(path, number, value, rule):
    """F of one line, checked by ``rule`` (finite, within the range of structure factors)."""
    problem = rule.problem(value)
    if problem:
        raise InputError(path, problem, line=number)
    return value


def _warning(name, value, count):
    """C's warning text for a non-integer index, or None if it is integral."""
    if value != math.ceil(value - 0.4):
        return "WARNING: non-integer value for %s (%s) at line %d" % (name, "%g" % value, count)
    return None


def read_hkl(path):
    """Read an HKL file into an HKLTable; InputError on bad input.

    Indices and amplitudes are checked line by line with the rules of
    :mod:`nanobragg.config.checks` (finite, at most 2^20 and 1e15 in size).
    """
    from ..config.checks import MILLER_INDEX, STRUCTURE_FACTOR

    rows, values, warnings = [], [], []
    for number, line in enumerate(read_text_lines(path), start=1):
        if _is_skipped(line):
            continue
        h, k, l, F = _parse_line(path, number, line)
        indices = [_index(path, number, name, v, MILLER_INDEX) for name, v in zip("hkl", (h, k, l))]
        for name, value in zip("hkl", (h, k, l)):
            text = _warning(name, value, len(rows))
            if text:
                warnings.append(text)
        rows.append(indices)
        values.append(_amplitude(path, number, F, STRUCTURE_FACTOR))
    if not rows:
        raise InputError(path, "no reflections (h k l F lines) found")
    hkl = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return HKLTable(hkl=hkl, F=np.array(values, dtype=np.float64), warnings=warnings)


def grid_shape(bounds, path="<grid>", budget=None):
    """Shape of the FGrid for ``bounds`` (C's padding planes included), refused when it cannot be held.

    InputError for an empty index range, more than MAX_GRID_CELLS cells, or a
    float64 grid larger than ``budget`` bytes (the memory budget), naming the
    file, the grid and the budget.
    """
    h_min, h_max, k_min, k_max, l_min, l_max = (int(b) for b in bounds)
    ranges = (h_max - h_min + 1, k_max - k_min + 1, l_max - l_min + 1)
    if min(ranges) < 1:
        raise InputError(path, f"empty index range h {h_min}..{h_max} k {k_min}..{k_max} l {l_min}..{l_max}")
    shape = tuple(r + 1 for r in ranges)
    size = "x".join(str(n) for n in shape)
    if math.prod(shape) > MAX_GRID_CELLS:
        raise InputError(path, f"index range too large for an F grid ({size} cells)")
    if budget is not None and math.prod(shape) * 8 > budget:
        raise InputError(path, f"the F grid of {size} cells ({math.prod(shape) * 8 / 2 ** 20:.4g} MB) does not "
                               f"fit the memory budget of {budget / 2 ** 20:.4g} MB")
    return shape


def empty_grid(bounds, path="<grid>", budget=None):
    """Zero FGrid for ``bounds = (h_min, h_max, k_min, k_max, l_min, l_max)`` (see :func:`grid_shape`)."""
    shape = grid_shape(bounds, path, budget)
    h_min, h_max, k_min, k_max, l_min, l_max = (int(b) for b in bounds)
    grid = np.zeros(shape, dtype=np.float64)
    return FGrid(h_min, h_max, k_min, k_max, l_min, l_max, grid)


def hkl_grid(table, default_F=0.0, path="<hkl>", budget=None):
    """Dense FGrid from an HKLTable, as C builds ``Fhkl``; refused beyond ``budget`` bytes before it is allocated.

    Bounds are the min/max of the indices.  When ``default_F != 0`` (C's
    test, so -0.0 counts as zero) every cell except the high padding planes
    is set to it; then each listed reflection is stored, later lines
    overwriting earlier ones.
    """
    hkl = np.asarray(table.hkl, dtype=np.int64)
    if hkl.size == 0:
        raise InputError(path, "no reflections to build an F grid from")
    low, high = hkl.min(axis=0), hkl.max(axis=0)
    fgrid = empty_grid((low[0], high[0], low[1], high[1], low[2], high[2]), path, budget)
    if default_F != 0.0:
        h_range, k_range, l_range = fgrid.ranges
        fgrid.grid[:h_range, :k_range, :l_range] = default_F
    F = np.asarray(table.F, dtype=np.float64)
    cells = np.ravel_multi_index(tuple((hkl - low).T), fgrid.grid.shape)
    # numpy leaves the winner of repeated fancy-index writes unspecified:
    # keep only the last occurrence of each cell explicitly.
    _, last = np.unique(cells[::-1], return_index=True)
    keep = len(cells) - 1 - last
    fgrid.grid.reshape(-1)[cells[keep]] = F[keep]
    return fgrid
