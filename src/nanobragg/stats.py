"""Image statistics as the C program prints them after rendering.

C accumulates over the float (32-bit) image: mean and rms over the pixels it
rendered (ROI and mask), rmsd over all ROI pixels about that mean, and the
maximum with the position of that pixel's last sub-pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def image_stats(image32: np.ndarray, active: np.ndarray, roi, pixel_size: float, oversample: int) -> ImageStats:
    """C's max_I, mean, rms and rmsd for a float32 image (S, F).

    mean = sum/n, rms = sqrt(sum v^2/(n-1)) over rendered pixels;
    rmsd = sqrt(sum (v-mean)^2/(m-1)) over the m ROI pixels (n, m at least 1 and 2).
    """
    act = image32[active].astype(np.float64)
    n = max(act.size, 1)
    mean = act.sum() / n
    rms = np.sqrt(np.dot(act, act) / (max(act.size, 2) - 1))
    xmin, xmax, ymin, ymax = roi
    window = image32[max(ymin, 0):ymax + 1, max(xmin, 0):xmax + 1].astype(np.float64).reshape(-1) - mean
    rmsd = np.sqrt(np.dot(window, window) / (max(window.size, 2) - 1))
    masked = np.where(active, image32, -np.inf).reshape(-1)
    k = int(np.argmax(masked)) if masked.size else 0
    if masked.size and masked[k] > 0.0:
        max_I = float(masked[k])
        mx, my = last_subpixel(k, image32.shape[1], pixel_size, oversample)
    else:
        max_I, mx, my = 0.0, 0.0, 0.0
    return ImageStats(float(max_I), float(mx), float(my), float(mean), float(rms), float(rmsd))
