"""Running totals of the rendered values, gathered chunk by chunk.

C prints statistics of its float image (mean, rms, rmsd, the maximum and
its position) and the solid angle the detector subtends. The engine sums
them while each chunk is still in cache, in the compiled kernel itself when
one is used, so no extra pass over a large image is needed afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def chunk_totals(value: torch.Tensor, omega: torch.Tensor, pixels: torch.Tensor, keep) -> tuple:
    """Totals of the first ``keep`` rows of a chunk (the rest is padding).

    value: (P, B) pixel values; omega: (P,) solid angles; pixels: (P,) int64
    flat pixel indices; keep: int or 0-d int64 tensor. Returns (omega_sum (),
    sum (B,), sum_sq (B,), max (B,), argmax (B,)): sums in float64 of the
    values rounded to float32, as C sums its float image; the largest
    float32 value and the flat index of its first pixel in the chunk (C's
    strictly-greater test).
    """
    v32 = value.detach().to(torch.float32)
    omega = omega.detach()
    if isinstance(keep, int) and keep == value.shape[0]:  # an eager chunk: no padding to mask
        v64 = v32.to(torch.float64)
        vmax, vpos = v32.max(0)
        return omega.sum(), v64.sum(0), (v64 * v64).sum(0), vmax, pixels[vpos]
    valid = torch.arange(value.shape[0], device=value.device) < keep
    v64 = torch.where(valid[:, None], v32.to(torch.float64), 0.0)
    vmax, vpos = torch.where(valid[:, None], v32, -math.inf).max(0)
    return torch.where(valid, omega, 0.0).sum(), v64.sum(0), (v64 * v64).sum(0), vmax, pixels[vpos]


@dataclass
class ImageTotals:
    """Totals over all rendered pixels of a (B, S, F) or (S, F) image."""
    count: int  #: pixels rendered
    omega: torch.Tensor  #: () sum of C's omega_pixel over the rendered pixels' sub-pixels and layers
    sum: torch.Tensor  #: (B,) float64
    sum_sq: torch.Tensor  #: (B,) float64
    max: torch.Tensor  #: (B,) float32 largest value (-inf when nothing was rendered)
    argmax: torch.Tensor  #: (B,) int64 flat (row-major) pixel index of the first largest value


def merge_totals(count: int, parts: list) -> ImageTotals:
    """Combine chunk totals, in rendering (row-major) order, into image totals.

    The first chunk holding the largest value wins, as C's scan does.
    """
    if not parts:
        zero = torch.zeros(1, dtype=torch.float64)
        return ImageTotals(0, zero[0], zero, zero, torch.full((1,), -math.inf), torch.zeros(1, dtype=torch.long))
    omega, sums, sqs, maxes, where = (torch.stack(x) for x in zip(*parts))
    best = torch.argmax(maxes, 0)[None]  # (1, B): first chunk on ties
    return ImageTotals(count, omega.sum(), sums.sum(0), sqs.sum(0), maxes.gather(0, best)[0], where.gather(0, best)[0])


def combine_totals(parts: list) -> ImageTotals:
    """Totals of an image rendered in parts (bands of rows, in row order), as merge_totals combines chunks."""
    return merge_totals(sum(t.count for t in parts), [(t.omega, t.sum, t.sum_sq, t.max, t.argmax) for t in parts])
