"""noisify.c's sequential loops, compiled, bit for bit: the noise draws and the PSF.

The C program keeps one set of generator statics (ran1's shuffle table, gaussdev's
spare deviate, poidev's cache) for all its seed variables: ``seed`` (flicker,
photon and read-out noise) and ``calib_seed`` (calibration error) draw from the
same table, each with its own ``long``. Here one state array holds the statics
and the two ``long`` values live in ``seeds`` (0: seed, 1: calib_seed), swapped in
for each draw.
"""
import math

import numba
import numpy as np

from ..rng.cran import gaussdev_nb, poidev_nb
from ..rng.ran1 import IDUM

UNKNOWN, FIBER, GAUSS = 0, 1, 2
_LOG16 = math.log(16)
_LOG4 = math.log(4)


@numba.njit(cache=True)
def _gauss(ist, fst, seeds, which):
    ist[IDUM] = seeds[which]
    value = gaussdev_nb(ist, fst)
    seeds[which] = ist[IDUM]
    return value


@numba.njit(cache=True)
def _poisson(ist, fst, seeds, mean):
    ist[IDUM] = seeds[0]
    value = poidev_nb(np.float32(mean), ist, fst)
    seeds[0] = ist[IDUM]
    return value


@numba.njit(cache=True)
def photon_noise_loop(photons, flicker, calibration, ist, fst, seeds):
    """C's first noise pass, in place on float32 ``photons`` (flat): flicker, calibration, Poisson.

    Returns the photon total (C's ``sum``, before any PSF).
    """
    total = 0.0
    for i in range(photons.shape[0]):
        p = np.float64(photons[i])
        if flicker > 0.0:
            p *= 1.0 + flicker * np.float64(_gauss(ist, fst, seeds, 0))
        if calibration > 0.0:
            p *= 1.0 + calibration * np.float64(_gauss(ist, fst, seeds, 1))
        photons[i] = _poisson(ist, fst, seeds, p)
        total += np.float64(photons[i])
    return total


@numba.njit(cache=True)
def _to_uint(value):
    """C's ``(unsigned int)`` of a double on x86-64 (64-bit truncating convert, low 32 bits)."""
    if not (-9.2e18 < value < 9.2e18):
        return np.uint32(0)
    return np.uint32(np.int64(value) & 0xFFFFFFFF)


@numba.njit(cache=True)
def _to_ushort(value):
    """C's ``(unsigned short)`` of a double on x86-64 (32-bit truncating convert, low 16 bits)."""
    if not (-2147483648.0 < value < 2147483648.0):
        return np.uint16(0)
    return np.uint16(np.int64(value) & 0xFFFF)


@numba.njit(cache=True)
def adc_loop(photons, gain, adc, readout, bits, ist, fst, seeds, out16, out32):
    """C's ADC pass: adu = photons*gain + adc (+ read-out noise), clipped and truncated to 16 and 32 bits.

    ``readout`` > 0 draws one Gaussian per pixel from the ``seed`` stream. Overloads are counted
    against ``bits``. Returns (photon total, overloads).
    """
    total = 0.0
    overloads = 0
    for i in range(photons.shape[0]):
        total += np.float64(photons[i])
        adu = np.float64(photons[i]) * gain + adc
        if readout > 0.0:
            adu += readout * np.float64(_gauss(ist, fst, seeds, 0))
        if adu > 2147483647.0:
            adu = 2147483647.0
            if bits == 32:
                overloads += 1
        out32[i] = _to_uint(adu)
        if adu > 65535.0:
            adu = 65535.0
            if bits == 16:
                overloads += 1
        out16[i] = _to_ushort(adu)
    return total, overloads


@numba.njit(cache=True)
def noiseless_loop(photons, gain, adc, out16, out32):
    """C's noiseless int image: adu = photons*gain + adc, clipped to 65535 (also for 32 bits), truncated."""
    for i in range(photons.shape[0]):
        adu = np.float64(photons[i]) * gain + adc
        if adu > 2147483647.0:
            adu = 2147483647.0
        if adu > 65535.0:
            adu = 65535.0
        out32[i] = _to_uint(adu)
        out16[i] = _to_ushort(adu)


@numba.njit(cache=True)
def psf_loop(inimage, xpixels, ypixels, psftype, fwhm_pixels, user_radius, kernel, kernel_radius, out):
    """C's ``apply_psf`` after the kernel is built: every positive pixel spread over its radius.

    ``out`` (float32, pixels + 1: C's write one past the end lands in the extra slot) is filled
    in C's order (source pixels in raster order, dx outer, dy inner, float32 sums); a
    contribution at x == xpixels lands at (y+1, 0), as in C. With ``user_radius`` 0 each
    pixel's radius follows from its value (C's automatic radius; a pixel under 0.01 photons,
    where C takes the square root of a negative number and crashes, gets radius 1).
    Returns the lost photons added back (their total is spread evenly over the image).
    """
    pixels = xpixels * ypixels
    g = fwhm_pixels * 0.652383013252053
    ksize = 2 * kernel_radius + 1
    maxwidth = max(xpixels, ypixels)
    total_lost = 0.0
    for i in range(pixels):
        x0 = i % xpixels
        y0 = (i - x0) // xpixels
        value = np.float64(inimage[i])
        if inimage[i] <= 0.0:
            continue
        if user_radius != 0:
            radius = user_radius
        else:
            lost = math.sqrt(value) / 10.0
            radius = 1
            if psftype == GAUSS:
                arg = -math.log(lost / value) / _LOG16
                if arg > 0.0:
                    radius = 1 + int(math.ceil(math.sqrt(arg) * fwhm_pixels))
            if psftype == FIBER:
                radius = 1 + int(math.ceil(g * (value / lost)))
        if radius == 0:
            radius = 1
        if radius > maxwidth:
            radius = maxwidth
        if radius > kernel_radius:
            radius = kernel_radius
        if psftype == GAUSS:
            rsq = np.float64(radius) / fwhm_pixels
            rsq = rsq * rsq
            lost = value * math.exp(-_LOG16 * rsq)
        else:
            lost = value * g / math.sqrt(g * g + radius * radius)
        total_lost += lost
        for dx in range(-radius, radius + 1):
            for dy in range(-radius, radius + 1):
                k = ksize * (ksize // 2 + dy) + ksize // 2 + dx
                if kernel[k] == 0.0:
                    continue
                if dx * dx + dy * dy > radius * radius:
                    continue
                x = x0 + dx
                y = y0 + dy
                if x < 0 or x > xpixels:
                    continue
                if y < 0 or y > ypixels:
                    continue
                j = y * xpixels + x
                if j < 0 or j > pixels:
                    continue
                out[j] = np.float32(np.float64(out[j]) + value * kernel[k])
    spread = total_lost / pixels
    for i in range(pixels):
        out[i] = np.float32(np.float64(out[i]) + spread)
    return total_lost
