"""Detector effects of noisify.c: photon scale, flicker, calibration error, photon noise, PSF, read-out noise, ADC.

noisify turns an image in photons per pixel (float) into what an area detector
records, in this order:

1. photons = fluence * r_e^2 * scale * I (fluence*r_e^2 = 1 by default: the input is photons/pixel);
2. per pixel, photons *= 1 + flicker * N(0,1) (source flicker, the ``seed`` stream), then
   photons *= 1 + calibration * N(0,1) (static gain error, the ``calib_seed`` stream), then
   photons = Poisson(photons);
3. a point-spread function (Gaussian or fibre-optic, FWHM in pixels) spreads each pixel's photons
   over a disc of ``radius`` pixels; the photons falling beyond it are added back evenly;
4. adu = photons * gain + adc + read_noise * N(0,1), clipped to 2^31-1 (and 65535 for 16 bits),
   truncated to integers.

Two forms of each step:

* tensor functions (:func:`photon_scale`, :func:`flicker`, :func:`calibration_error`,
  :func:`photon_noise`, :func:`psf_kernel`, :func:`apply_psf`, :func:`read_noise`, :func:`adc`,
  :func:`add_images`): pure functions of torch tensors of shape (S, F) (any dtype, any device;
  the deterministic ones carry gradients), taking their normal deviates from a
  ``torch.Generator`` or as tensors, statistically the same as C but not C's random stream;
* :func:`noisify_c`: C's exact pipeline, every random draw in C's order with C's generators and
  statics shared between the two seeds (numpy float32 in, integer images out, byte-identical to
  the C program's files).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import _noisify_loops as loops

__all__ = [
    "R_E_SQR", "DEFAULT_FLUENCE", "PSF_TYPES", "photon_scale", "flicker", "calibration_error", "photon_noise",
    "psf_kernel", "psf_radius_auto", "apply_psf", "read_noise", "adc", "add_images", "noisify_c", "NoisifyResult",
]

R_E_SQR = 7.94079248018965e-30
#: C's default fluence: with r_e^2 it makes the input photons per pixel (their product is 1 to 1e-16).
DEFAULT_FLUENCE = 125932015286227086360700780544.0
PSF_TYPES = {"gauss": loops.GAUSS, "fiber": loops.FIBER}
#: fibre PSF: g = fwhm * sqrt(1/(2^(2/3)-1))/2 ...: C's constant.
_FIBER_G = 0.652383013252053


def photon_scale(image: torch.Tensor, scale=1.0, fluence=DEFAULT_FLUENCE) -> torch.Tensor:
    """Photons per pixel: (fluence * r_e^2) * scale * image, in the image's dtype (C stores float32)."""
    return (fluence * R_E_SQR) * scale * image


def flicker(photons: torch.Tensor, fraction, normal: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """Source flicker: photons * (1 + fraction * N(0,1)) per pixel (``normal``: the deviates, else drawn)."""
    if normal is None:
        normal = torch.randn(photons.shape, generator=generator, dtype=photons.dtype, device=photons.device)
    return photons * (1.0 + fraction * normal)


def calibration_error(photons: torch.Tensor, fraction, normal: torch.Tensor | None = None, generator=None):
    """Static per-pixel gain error: photons * (1 + fraction * N(0,1)); fix ``generator``'s seed to keep it."""
    return flicker(photons, fraction, normal, generator)


def photon_noise(photons: torch.Tensor, generator=None) -> torch.Tensor:
    """Poisson counts of mean ``photons`` (negative means count 0), same dtype; torch's sampler, not C's."""
    return torch.poisson(photons.clamp_min(0), generator=generator)


def psf_kernel(psf: str, fwhm_pixels: float, radius: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """C's PSF kernel (2r+1, 2r+1): the PSF integrated over each pixel, zero beyond ``radius``.

    ``gauss``: a normalised 2-D Gaussian of FWHM ``fwhm_pixels``, integrated analytically
    (C ``integrate_gauss_over_pixel``); ``fiber``: g/(2 pi (g^2+r^2)^(3/2)) with
    g = 0.652383 * fwhm (C ``integrate_fiber_over_pixel``). Index [r+dy, r+dx].
    """
    kind = PSF_TYPES[psf]
    size = 2 * radius + 1
    kernel = np.zeros(size * size)
    g = fwhm_pixels * _FIBER_G
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            k = size * (size // 2 + dy) + size // 2 + dx
            if kind == loops.GAUSS:
                kernel[k] = _gauss_pixel(dx / fwhm_pixels, dy / fwhm_pixels, 1.0 / fwhm_pixels)
            else:
                kernel[k] = _fiber_pixel(dx, dy, g, 1.0)
    return torch.tensor(kernel.reshape(size, size), dtype=dtype, device=device)


def _gauss_integ(x, y):
    return 0.125 * (math.erf(2 * x * math.sqrt(math.log(2))) * math.erf(y * math.sqrt(math.log(16)))
                    * math.sqrt(math.log(16) / math.log(2)))


def _gauss_pixel(x, y, pix):
    h = pix / 2.0
    return (_gauss_integ(x + h, y + h) - _gauss_integ(x + h, y - h)
            - _gauss_integ(x - h, y + h) + _gauss_integ(x - h, y - h))


def _fiber_integ(x, y, g):
    return math.atan((x * y) / (g * math.sqrt(g * g + x * x + y * y))) / 2.0 / math.pi


def _fiber_pixel(x, y, g, pix):
    h = pix / 2.0
    return (_fiber_integ(x + h, y + h, g) - _fiber_integ(x + h, y - h, g) - _fiber_integ(x - h, y + h, g)
            + _fiber_integ(x - h, y - h, g))


def psf_radius_auto(psf: str, fwhm_pixels: float, max_photons: float, shape) -> int:
    """C's automatic kernel radius: where the PSF of the brightest pixel falls below a tenth of its noise.

    gauss: 1 + ceil(sqrt(-ln(l/I)/ln 16) * fwhm), fiber: 1 + ceil(g I / l), l = sqrt(I)/10;
    at least 1, at most the image's longer side. 0 when there are no photons.
    """
    if max_photons <= 0:
        return 0
    lost = math.sqrt(max_photons) / 10.0
    if psf == "gauss":
        arg = -math.log(lost / max_photons) / math.log(4) / 2
        radius = 1 + math.ceil(math.sqrt(arg) * fwhm_pixels) if arg > 0 else 1
    else:
        radius = 1 + math.ceil(fwhm_pixels * _FIBER_G * (max_photons / lost))
    return int(min(max(radius, 1), max(shape)))


def apply_psf(image: torch.Tensor, psf: str, fwhm_pixels: float, radius: int = 0, c_edges: bool = True) -> torch.Tensor:
    """The image (S, F) blurred by the PSF, the photons beyond ``radius`` added back evenly (C ``apply_psf``).

    ``radius`` 0 picks it from the brightest pixel (:func:`psf_radius_auto`; C then also shrinks it per
    pixel, which only :func:`noisify_c` follows). ``c_edges`` keeps C's edge: what falls one column
    right of the last lands in the next row's first pixel. Differentiable (a convolution in the
    image's dtype); equal to C's float32 sums to rounding. Pixels <= 0 spread nothing.
    """
    S, F = image.shape
    if radius <= 0:
        radius = psf_radius_auto(psf, fwhm_pixels, float(image.detach().max()), image.shape)
        if radius == 0:
            return torch.zeros_like(image)
    radius = min(radius, max(S, F))
    kernel = psf_kernel(psf, fwhm_pixels, radius, dtype=image.dtype, device=image.device)
    src = torch.where(image > 0, image, torch.zeros_like(image))
    # out[y, x] = sum src[y0, x0] k[y - y0 + r, x - x0 + r]: a convolution (flipped correlation), full size
    full = torch.nn.functional.conv2d(src[None, None], kernel.flip(0, 1)[None, None], padding=2 * radius)[0, 0]
    out = full[radius:radius + S, radius:radius + F].clone()
    if c_edges and S > 1:
        out[1:, 0] = out[1:, 0] + full[radius:radius + S - 1, radius + F]
    if psf == "gauss":
        rsq = (radius / fwhm_pixels) ** 2
        lost = src.sum() * math.exp(-math.log(16) * rsq)
    else:
        g = fwhm_pixels * _FIBER_G
        lost = src.sum() * g / math.sqrt(g * g + radius * radius)
    return out + lost / (S * F)


def read_noise(adu: torch.Tensor, sigma, normal: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """Gaussian read-out noise of ``sigma`` ADU added to every pixel."""
    if normal is None:
        normal = torch.randn(adu.shape, generator=generator, dtype=adu.dtype, device=adu.device)
    return adu + sigma * normal


def adc(photons: torch.Tensor, gain=1.0, offset=40.0, bits: int = 16, noise: torch.Tensor | None = None):
    """Detector units: photons * gain + offset (+ ``noise`` in ADU), clipped and truncated as C does.

    Returns ``(values int64 tensor, overloads)``: values clipped at 2^31-1, and at 65535 for
    ``bits`` = 16; overloads are the pixels over the bit depth's ceiling.
    """
    value = photons.to(torch.float64) * gain + offset
    if noise is not None:
        value = value + noise
    ceiling = 65535.0 if bits == 16 else 2147483647.0
    overloads = int((value > ceiling).sum())
    return value.clamp(max=ceiling).trunc().to(torch.int64), overloads


def add_images(*images: torch.Tensor) -> torch.Tensor:
    """The upstream ``float_add``: the pixel-by-pixel sum of photon images of one shape (spots + background)."""
    if not images:
        raise ValueError("add_images needs at least one image")
    shape = images[0].shape
    for img in images[1:]:
        if img.shape != shape:
            raise ValueError(f"images of shapes {tuple(shape)} and {tuple(img.shape)} cannot be added")
    total = images[0]
    for img in images[1:]:
        total = total + img
    return total


class NoisifyResult:
    """Outputs of :func:`noisify_c`: the images (uint16 / uint32, (S, F)) and C's totals."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _c_psf(photons: np.ndarray, shape, psf: str, fwhm_pixels: float, radius: int, log):
    """C ``apply_psf`` on flat float32 ``photons``; returns (new flat float32 image, lost photons)."""
    S, F = shape
    kind = PSF_TYPES[psf]
    if fwhm_pixels <= 0.0:
        log("WARNING: apply_psf function has zero size")
        return photons, 0.0
    kernel_radius = radius
    if kernel_radius <= 0:
        top = max(float(photons.max()), 0.0) if photons.size else 0.0
        log(f"  maximum input photon/pixel: {top:g}")
        if top <= 0.0:
            log("WARNING: no photons, PSF skipped")
            return np.zeros_like(photons), 0.0
        kernel_radius = psf_radius_auto(psf, fwhm_pixels, top, shape)
        log(f"  auto-selected psf_radius = {kernel_radius} pixels")
    kernel_radius = min(kernel_radius, max(S, F))
    kernel = psf_kernel(psf, fwhm_pixels, kernel_radius).numpy().reshape(-1)
    out = np.zeros(S * F + 1, dtype=np.float32)
    lost = loops.psf_loop(photons, F, S, kind, float(fwhm_pixels), int(radius), kernel, int(kernel_radius), out)
    log(f"adding back {lost:g} lost photons")
    return out[:S * F], lost


def noisify_c(image: np.ndarray, *, seed: int, calib_seed: int = 123456789, scale=1.0, fluence=DEFAULT_FLUENCE,
              gain=1.0, adc_offset=40.0, readout=0.0, flicker_fraction=0.0, calibration=0.03, psf: str | None = None,
              psf_fwhm_pixels=0.0, psf_radius: int = 0, bits: int = 16, calculate_noise: bool = True, log=print):
    """C noisify's pipeline on a float32 image (S, F), bit for bit; seeds as C holds them (``-seed N``: -N).

    Returns a :class:`NoisifyResult` with ``int16``/``int32`` (the noiseless image; clipped at
    65535 for both, as C), ``noise16``/``noise32`` (None without noise), ``max_input``,
    ``photons_before_psf``, ``photons`` and ``overloads``.
    """
    from ..rng.ran1 import new_state
    img = np.ascontiguousarray(image, dtype=np.float32)
    S, F = img.shape
    flat = img.reshape(-1)
    if not calculate_noise:
        calibration = readout = flicker_fraction = 0.0
    max_input = max(float(flat.max()), 0.0) if flat.size else 0.0
    photons = (np.float64(fluence * R_E_SQR) * scale * flat.astype(np.float64)).astype(np.float32)
    use_psf = psf is not None and psf_fwhm_pixels > 0.0
    if not calculate_noise and use_psf:
        log(f"  applying PSF to noiseless image width = {psf_fwhm_pixels:g} pixels")
        photons, _ = _c_psf(photons, (S, F), psf, psf_fwhm_pixels, psf_radius, log)
    int16 = np.empty(S * F, dtype=np.uint16)
    int32 = np.empty(S * F, dtype=np.uint32)
    loops.noiseless_loop(photons, float(gain), float(adc_offset), int16, int32)
    result = NoisifyResult(int16=int16.reshape(S, F), int32=int32.reshape(S, F), noise16=None, noise32=None,
                           max_input=max_input, photons_before_psf=None, photons=None, overloads=0)
    if not calculate_noise:
        return result
    ist, fst = new_state(0)
    seeds = np.array([seed, calib_seed], dtype=np.int64)
    photons = photons.copy()
    total = loops.photon_noise_loop(photons, float(flicker_fraction), float(calibration), ist, fst, seeds)
    if use_psf:
        result.photons_before_psf = total
        log("%.0f photons on noise image before PSF" % total)
        photons, _ = _c_psf(photons, (S, F), psf, psf_fwhm_pixels, psf_radius, log)
    noise16 = np.empty(S * F, dtype=np.uint16)
    noise32 = np.empty(S * F, dtype=np.uint32)
    total, overloads = loops.adc_loop(photons, float(gain), float(adc_offset), float(readout), int(bits),
                                      ist, fst, seeds, noise16, noise32)
    result.noise16, result.noise32 = noise16.reshape(S, F), noise32.reshape(S, F)
    result.photons, result.overloads = total, overloads
    return result
