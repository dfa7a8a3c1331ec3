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

from .cran import new_state, poidev_nb

__all__ = ["poisson_noise_c", "poisson_noise_torch"]

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
def _noise_loop(img, ist, fst, xmin, xmax, ymin, ymax, adc, out):
    """nanoBragg's noise loop (after the int image is written); returns (photons, overloads)."""
    total = 0.0
    overloads = 0
    spixels, fpixels = img.shape
    for s in range(spixels):
        for f in range(fpixels):
            if f < xmin or f > xmax or s < ymin or s > ymax:
                continue
            test = np.float64(poidev_nb(img[s, f], ist, fst))
            total += test
            test += adc
            if test > _ADU_MAX:
                test = _ADU_MAX
                overloads += 1
            out[s, f] = _to_ushort(test)
    return total, overloads


def poisson_noise_c(float_image, seed, roi=None, adc=40.0):
    """Bit-exact C noise image from the float (photons/pixel) image.

    Parameters
    ----------
    float_image : array (S, F)
        The float image, rounded to float32 as C stores it.
    seed : int
        C's ``long seed`` value (``-seed N`` stores ``-N``).
    roi : (xmin, xmax, ymin, ymax), inclusive, optional
        Fast (x) and slow (y) pixel limits; default covers the whole image.
        Pixels outside are 0 and consume no random numbers.
    adc : float
        ADC offset added to each photon count (C default 40).

    Returns
    -------
    noise : uint16 array (S, F), photons : float (C's ``sum``), overloads : int
    """
    img = np.ascontiguousarray(float_image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"float_image must be 2-D, got shape {img.shape}")
    spixels, fpixels = img.shape
    if roi is None:
        roi = (0, fpixels, 0, spixels)
    xmin, xmax, ymin, ymax = (int(v) for v in roi)
    ist, fst = new_state(seed)
    out = np.zeros(img.shape, dtype=np.uint16)
    photons, overloads = _noise_loop(img, ist, fst, xmin, xmax, ymin, ymax, float(adc), out)
    return out, float(photons), int(overloads)


def poisson_noise_torch(image, generator=None, roi=None, adc=40.0):
    """Fast Poisson noise with ``torch.poisson`` -- NOT bit-identical to C.

    Same conventions as :func:`poisson_noise_c` (inclusive ROI, ADC offset,
    clip at 65535 counting overloads, truncation to uint16) but the deviates
    come from torch's generator, so only the statistics match C.  Runs on the
    image's device.

    Returns ``(noise uint16 tensor, photons float, overloads int)``.
    """
    import torch

    lam = torch.as_tensor(image).to(torch.float32)
    spixels, fpixels = lam.shape
    if roi is None:
        roi = (0, fpixels, 0, spixels)
    xmin, xmax, ymin, ymax = (int(v) for v in roi)
    ys = torch.arange(spixels, device=lam.device).unsqueeze(1)
    xs = torch.arange(fpixels, device=lam.device).unsqueeze(0)
    inside = (xs >= xmin) & (xs <= xmax) & (ys >= ymin) & (ys <= ymax)
    counts = torch.poisson(lam.clamp_min(0.0), generator=generator)
    counts = torch.where(inside, counts.to(torch.float64), torch.zeros((), dtype=torch.float64, device=lam.device))
    photons = float(counts.sum())
    adu = torch.where(inside, counts + adc, torch.zeros_like(counts))
    overloads = int((adu > _ADU_MAX).sum())
    noise = adu.clamp(0.0, _ADU_MAX).trunc().to(torch.int32).to(torch.uint16)
    return noise, photons, overloads
