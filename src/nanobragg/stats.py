"""Image statistics as the C program prints them after rendering.

C accumulates over the float (32-bit) image: mean and rms over the pixels it
rendered (ROI and mask), rmsd over all ROI pixels about that mean, and the
maximum with the position of that pixel's last sub-pixel. The sums come from
the engine's running totals (:mod:`nanobragg.engine.totals`), so a large
image is not read again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Below this ratio sum((v-mean)^2) / sum(v^2), rmsd is summed again from the pixels
#: (the closed form would lose more than 6 of float64's 16 digits).
CANCELLATION_LIMIT = 1e-6
#: Rows per block of the exact rmsd pass (keeps the float64 copy in cache).
_ROWS = 1 << 16


@dataclass
class ImageStats:
    max_I: float
    max_x: float  #: m, fast position of the max pixel's last sub-pixel
    max_y: float
    mean: float
    rms: float
    rmsd: float


def last_subpixel(index: int, fpixels: int, pixel_size: float, oversample: int) -> tuple[float, float]:
    """(F, S) in metres of a pixel's last sub-pixel, where C reports the maximum."""
    sub = pixel_size / oversample
    s, f = divmod(index, fpixels)
    return (sub * (f * oversample + oversample - 1) + sub / 2.0,
            sub * (s * oversample + oversample - 1) + sub / 2.0)


def _window(roi, shape):
    """(rows, columns) ranges of C's inclusive ROI on an image of ``shape`` (S, F)."""
    xmin, xmax, ymin, ymax = roi
    return range(shape[0])[max(ymin, 0):max(ymax + 1, 0)], range(shape[1])[max(xmin, 0):max(xmax + 1, 0)]


def whole_image(image32: np.ndarray):
    """The ``bands`` argument of image_stats for an image held whole: one band from row 0."""
    return lambda: iter([(0, image32)])


def _sum_sq_about(bands, rows: range, cols: range, mean: float) -> float:
    """sum (v - mean)^2 in float64 over the ROI window, from ``bands()`` = iterator of
    (first row, float32 rows (R, F)), a block of rows at a time."""
    total = 0.0
    for first, band in bands():
        lo, hi = max(rows.start, first), min(rows.stop, first + band.shape[0])
        if lo >= hi:
            continue
        window = torch.from_numpy(np.ascontiguousarray(band[lo - first:hi - first, cols.start:cols.stop]))
        step = max(1, _ROWS // max(window.shape[1], 1))
        for block in window.split(step):
            d = block.double() - mean
            total += float((d * d).sum())
    return total


def image_stats(totals, shape, roi, pixel_size: float, oversample: int, bands) -> ImageStats:
    """C's max_I, mean, rms and rmsd of a float32 image of ``shape`` (S, F) from its engine totals.

    mean = sum/n, rms = sqrt(sum v^2/(n-1)) over the n rendered pixels;
    rmsd = sqrt(sum (v-mean)^2/(m-1)) over the m ROI pixels (n, m at least 1
    and 2). Skipped pixels are 0, so the ROI sums of v and v^2 equal the
    rendered ones and sum (v-mean)^2 = S2 - 2 mean S1 + m mean^2; where that
    cancels badly it is summed from the pixels instead, read from
    ``bands()`` (an iterator of (first row, float32 rows); see whole_image).
    The maximum is the first in row-major order, as C's strictly-greater test finds it.
    """
    rows, cols = _window(roi, shape)
    m = len(rows) * len(cols)
    n = max(totals.count, 1)
    s1, s2 = float(totals.sum[0]), float(totals.sum_sq[0])
    mean = s1 / n
    rms = math.sqrt(s2 / (max(totals.count, 2) - 1))
    dev = s2 - 2.0 * mean * s1 + m * mean * mean
    if not dev > CANCELLATION_LIMIT * s2:
        dev = _sum_sq_about(bands, rows, cols, mean)
    rmsd = math.sqrt(max(dev, 0.0) / (max(m, 2) - 1))
    top = float(totals.max[0])
    if top > 0.0:
        mx, my = last_subpixel(int(totals.argmax[0]), shape[1], pixel_size, oversample)
        return ImageStats(top, mx, my, mean, rms, rmsd)
    return ImageStats(0.0, 0.0, 0.0, mean, rms, rmsd)
