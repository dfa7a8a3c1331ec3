"""The image in bands of rows, so that a run's memory stays within its budget at any detector size.

The engine renders a band of rows at a time; each band's float32 pixels go
to the float file as soon as they are made. An image that fits in one band
stays in memory for the second pass (int, PGM, noise and PNG files, the
statistics); a larger one is read back from the float file, one band at a
time (from a scratch file when the float file cannot be read back: a FIFO,
a device, or no float file at all).
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterator, Optional

import numpy as np

from ..io import OutputFile, QueuedWrites

#: Bytes held per pixel of a band at the peak: while one band renders, the engine's buffer
#: (float64 at most, 8), its float32 copy (4), the previous band's float32 pixels still being
#: written (4) and the flat indices of a masked band (8); in the second pass fewer (the float,
#: int, noise and PGM pixels of two bands).
BYTES_PER_PIXEL = 24
#: Bytes per float-file pixel.
FLOAT_BYTES = 4


def band_rows(fpixels: int, budget_bytes: int) -> int:
    """Rows per band so that a band's pixels hold at most ``budget_bytes`` (at least one row)."""
    return max(1, budget_bytes // (BYTES_PER_PIXEL * max(fpixels, 1)))


class FloatStore:
    """The float32 image (S, F): put band by band while rendering, read band by band afterwards.

    ``float_file`` is the run's float-file output (or None). ``writes``
    writes it in the background. ``image[s]`` gives row s (as the trace needs).
    """

    def __init__(self, shape: tuple, rows: int, float_file: Optional[OutputFile], writes: QueuedWrites):
        self.shape, self.rows, self._writes = tuple(shape), max(1, int(rows)), writes
        self.whole = self.rows >= self.shape[0]
        self._held: Optional[np.ndarray] = None
        self._files = [float_file] if float_file is not None else []
        self._scratch = None
        if not self.whole and (float_file is None or float_file.in_place):
            # an unnamed temporary file, discarded at the end (never renamed into place)
            self._scratch = OutputFile(os.path.join(tempfile.gettempdir(), "nanobragg-float-scratch.bin"))
            self._files.append(self._scratch)

    def band_starts(self) -> range:
        """First row of every band."""
        return range(0, self.shape[0], self.rows)

    def put(self, first_row: int, band32: np.ndarray) -> None:
        """Store the float32 rows (R, F) starting at ``first_row`` (bands in order)."""
        band32 = np.ascontiguousarray(band32, dtype="<f4")
        if self.whole:
            self._held = band32
        offset = first_row * self.shape[1] * FLOAT_BYTES
        for out in self._files:
            self._writes.write(out, band32, offset)

    def _readable(self) -> OutputFile:
        return self._scratch if self._scratch is not None else self._files[0]

    def band(self, first_row: int) -> np.ndarray:
        """The float32 rows of the band starting at ``first_row``."""
        if self._held is not None:
            return self._held[first_row:first_row + self.rows]
        self._writes.wait()
        count = min(self.rows, self.shape[0] - first_row)
        band = np.empty((count, self.shape[1]), dtype="<f4")
        self._readable().read_into(band, first_row * self.shape[1] * FLOAT_BYTES)
        return band

    def bands(self) -> Iterator[tuple]:
        """(first row, float32 rows) of every band, in order."""
        for first in self.band_starts():
            yield first, self.band(first)

    def __getitem__(self, row: int) -> np.ndarray:
        first = row - row % self.rows
        return self.band(first)[row - first]

    def close(self) -> None:
        """Discard the scratch file, if any."""
        if self._scratch is not None:
            self._scratch.abort()
