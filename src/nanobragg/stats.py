"""Image statistics as the C program prints them after rendering.

C accumulates over the float (32-bit) image: mean and rms over the pixels it
rendered (ROI and mask), rmsd over all ROI pixels about that mean, and the
maximum with the position of that pixel's last sub-pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


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
    Sums are taken in float64 with torch (multi-threaded); the maximum is the
    first in row-major order, as C's strictly-greater test finds it.
    """
    v = torch.from_numpy(np.ascontiguousarray(image32, dtype=np.float32))
    act = torch.from_numpy(np.asarray(active, dtype=bool))
    full = bool(act.all())
    vals = (v.reshape(-1) if full else v[act]).double()
    n = max(vals.numel(), 1)
    mean = float(vals.sum()) / n
    rms = math.sqrt(float((vals * vals).sum()) / (max(vals.numel(), 2) - 1))
    xmin, xmax, ymin, ymax = roi
    window = v[max(ymin, 0):ymax + 1, max(xmin, 0):xmax + 1].double() - mean
    rmsd = math.sqrt(float((window * window).sum()) / (max(window.numel(), 2) - 1))
    masked = (v if full else torch.where(act, v, torch.tensor(-math.inf))).reshape(-1)
    k = int(torch.argmax(masked)) if masked.numel() else 0
    if masked.numel() and float(masked[k]) > 0.0:
        mx, my = last_subpixel(k, image32.shape[1], pixel_size, oversample)
        return ImageStats(float(masked[k]), mx, my, mean, rms, rmsd)
    return ImageStats(0.0, 0.0, 0.0, mean, rms, rmsd)
