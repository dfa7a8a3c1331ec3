"""Poisson noise images, as nanoBragg writes ``noise.img``.

Two modes:

* :func:`poisson_noise_c` reproduces C's noise loop bit for bit (same
  ``ran1``/``poidev`` stream, same ROI walk, ADC offset, overload clipping and
  ``unsigned short`` conversion).  It is sequential by nature and runs as a
  compiled numba loop.
* :func:`poisson_noise_torch` is a fast, device-friendly alternative built on
  ``torch.poisson``.  It is statistically equivalent but NOT bit-identical to
  C (different random stream and sampler); use it when exact reproduction of
  a C run does not matter.
"""

from __future__ import annotations

import numba
import numpy as np

from .cran import CStatics, new_state, poidev_nb

__all__ = ["CNoise", "poisson_noise_c", "poisson_noise_torch"]

_ADU_MAX = 65535.0


@numba.njit(cache=True)
def _to_ushort(test):
    """C's ``(unsigned short)`` of a double on x86-64.

    gcc emits a 32-bit truncating convert and keeps the low 16 bits; values
    outside int32 (and NaN) come out as 0x80000000, i.e. 0.
    """
    if not (-2147483648.0 < test < 2147483648.0):
        return np.uint16(0)
    return np.uint16(np.int64(test) & 0xFFFF)


@numba.njit(cache=True)
def _noise_loop(img, first_row, ist, fst, xmin, xmax, ymin, ymax, adc, out):
    """nanoBragg's noise loop (after the int image is written) over detector rows first_row...;
    returns (photons, overloads)."""
    total = 0.0
    overloads = 0
    rows, fpixels = img.shape
    for r in range(rows):
        s = first_row + r
        for f in range(fpixels):
            if f < xmin or f > xmax or s < ymin or s > ymax:
                continue
            test = np.float64(poidev_nb(img[r, f], ist, fst))
            total += test
            test += adc
            if test > _ADU_MAX:
                test = _ADU_MAX
                overloads += 1
            out[r, f] = _to_ushort(test)
    return total, overloads


def _full_roi(roi, shape):
    """C's inclusive ROI as ints; None covers an image of ``shape`` (S, F)."""
    return tuple(int(v) for v in roi) if roi is not None else (0, shape[1], 0, shape[0])


class CNoise:
    """C's noise image made a band of rows at a time, in order: one ran1/poidev stream throughout.

    ``seed``: C's ``long seed`` value (``-seed N`` stores ``-N``); ``roi``:
    inclusive (xmin, xmax, ymin, ymax) on the detector, None for all of it
    (pixels outside are 0 and consume no random numbers); ``adc``: offset
    added to each photon count (C default 40). ``photons`` (C's ``sum``) and
    ``overloads`` accumulate over the bands. ``statics``: the generators'
    process state after the set-up's draws (``Resolved.rng_statics``: the
    random misset, the mosaic domains), which a positive ``seed`` value
    draws on as C's does; a snapshot is taken, so the same statics give the
    same noise again. None: a fresh process (right for any seed <= 0).
    """

    def __init__(self, seed, roi=None, adc=40.0, statics: CStatics | None = None):
        self.ist, self.fst = new_state(seed, statics)
        self.roi, self.adc = roi, float(adc)
        self.photons, self.overloads = 0.0, 0

    def band(self, float_rows, first_row: int = 0) -> np.ndarray:
        """uint16 noise pixels of float32 rows (R, F) that start at detector row ``first_row``."""
        img = np.ascontiguousarray(float_rows, dtype=np.float32)
        if img.ndim != 2:
            raise ValueError(f"float image must be 2-D, got shape {img.shape}")
        xmin, xmax, ymin, ymax = _full_roi(self.roi, (first_row + img.shape[0], img.shape[1]))
        out = np.zeros(img.shape, dtype=np.uint16)
        photons, overloads = _noise_loop(img, first_row, self.ist, self.fst, xmin, xmax, ymin, ymax, self.adc, out)
        self.photons += float(photons)
        self.overloads += int(overloads)
        return out


def poisson_noise_c(float_image, seed, roi=None, adc=40.0, statics=None):
    """Bit-exact C noise image from the whole float (photons/pixel) image (S, F); see CNoise.

    Returns ``(noise uint16 (S, F), photons float (C's sum), overloads int)``.
    """
    noise = CNoise(seed, roi, adc, statics)
    out = noise.band(float_image)
    return out, noise.photons, noise.overloads


def poisson_noise_torch(image, generator=None, roi=None, adc=40.0, first_row=0):
    """Fast Poisson noise with ``torch.poisson`` -- NOT bit-identical to C.

    Same conventions as :func:`poisson_noise_c` (inclusive ROI, ADC offset,
    clip at 65535 counting overloads, truncation to uint16) but the deviates
    come from torch's generator, so only the statistics match C.  Runs on the
    image's device. ``image`` may be a band of rows starting at detector row
    ``first_row`` (bands given in order with one generator make one stream).

    Returns ``(noise uint16 tensor, photons float, overloads int)``.
    """
    import torch

    lam = torch.as_tensor(image).to(torch.float32)
    rows, fpixels = lam.shape
    xmin, xmax, ymin, ymax = _full_roi(roi, (first_row + rows, fpixels))
    ys = torch.arange(first_row, first_row + rows, device=lam.device).unsqueeze(1)
    xs = torch.arange(fpixels, device=lam.device).unsqueeze(0)
    inside = (xs >= xmin) & (xs <= xmax) & (ys >= ymin) & (ys <= ymax)
    counts = torch.poisson(lam.clamp_min(0.0), generator=generator)
    counts = torch.where(inside, counts.to(torch.float64), torch.zeros((), dtype=torch.float64, device=lam.device))
    photons = float(counts.sum())
    adu = torch.where(inside, counts + adc, torch.zeros_like(counts))
    overloads = int((adu > _ADU_MAX).sum())
    noise = adu.clamp(0.0, _ADU_MAX).trunc().to(torch.int32).to(torch.uint16)
    return noise, photons, overloads
