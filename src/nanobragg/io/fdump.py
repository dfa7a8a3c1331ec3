"""Fdump.bin: nanoBragg's cache of the dense structure-factor grid.

Layout (as the C program writes it): the ASCII line
``"h_min h_max k_min k_max l_min l_max\\n"`` followed by one form feed
(``\\f``), then the whole grid including the high padding planes,
``(h_range+1) * (k_range+1) * (l_range+1)`` native-endian float64 values
with l varying fastest, then k, then h.

The reader takes the data to start right after the form feed.  (C's
``fscanf`` format there skips *any* whitespace, so it can swallow data
bytes that happen to look like blanks; that is not reproduced.)
"""


import numpy as np

from .atomic import atomic_write
from .errors import InputError, open_error
from .hkl import FGrid, grid_shape

#: the six header integers never take more than this many bytes.
_MAX_HEADER = 256


def fdump_bytes(fgrid):
    """The bytes of the Fdump file C would write for ``fgrid``."""
    header = "%d %d %d %d %d %d\n\f" % tuple(int(b) for b in fgrid.bounds)
    expected = tuple(r + 1 for r in fgrid.ranges)
    grid = np.asarray(fgrid.grid)
    if grid.shape != expected:
        raise ValueError(f"F grid shape {grid.shape} does not match its bounds {expected}")
    data = np.ascontiguousarray(grid, dtype=np.dtype(np.float64).newbyteorder("="))
    return header.encode("ascii") + data.tobytes()


def write_fdump(path, fgrid):
    """Write ``fgrid`` to ``path`` in C's Fdump layout (atomically)."""
    atomic_write(path, fdump_bytes(fgrid))


def _parse_header(path, raw):
    """Return ``(bounds, data_offset)`` from the start of an Fdump file."""
    end = raw.find(b"\f", 0, _MAX_HEADER)
    if end < 0:
        raise InputError(path, "not an Fdump file (no form feed after the index ranges)")
    try:
        numbers = [int(text) for text in raw[:end].decode("ascii").split()]
    except (UnicodeDecodeError, ValueError):
        numbers = []
    if len(numbers) != 6:
        raise InputError(path, "not an Fdump file (header is not six integers)")
    return tuple(numbers), end + 1


def read_fdump(path, budget=None):
    """Read an Fdump file written by nanoBragg (C or this package) into an FGrid.

    The header is read first: a grid larger than ``budget`` bytes (the memory
    budget) is refused before its data are read. InputError if the file is
    missing, malformed, truncated, or longer than its header says. The
    values themselves are checked with the configuration
    (:mod:`nanobragg.config.checks`: finite structure factors).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MAX_HEADER)
            bounds, offset = _parse_header(path, head)
            shape = grid_shape(bounds, path, budget)
            expected = int(np.prod(shape)) * 8
            handle.seek(offset)
            raw = handle.read(expected + 1)
    except OSError as exc:
        raise open_error(path, exc) from exc
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        found = f"{len(raw)}" if len(raw) < expected else f"more than {expected}"
        raise InputError(path, f"Fdump file {state}: {found} data bytes, expected {expected}")
    data = np.frombuffer(raw, dtype="=f8").reshape(shape).copy()
    return FGrid(*bounds, grid=data)
