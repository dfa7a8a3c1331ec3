"""Writing the command line's output files: float, SMV, PGM, noise and PNG images."""
from __future__ import annotations

import numpy as np

from ..io import (auto_int_scale, auto_pgm_scale, int_image_from_float, write_file, write_float_image,
                  write_pgm, write_smv)
from ..io.smv import smv_header_values
from ..resolve import Resolved


def header_values(res: Resolved, noise: bool) -> dict:
    """SMV header values from the resolved geometry (C's variables after set-up)."""
    g = res.detector
    f = float
    return smv_header_values(
        fpixels=g.fpixels, spixels=g.spixels, pixel_size=f(g.pixel_size), distance=f(g.distance),
        wavelength=res.wavelength, xbeam=f(g.beam_x), ybeam=f(g.beam_y), fbeam=f(g.Fbeam), sbeam=f(g.Sbeam),
        detsize_s=g.detsize_s, dials_origin=[f(v) for v in g.dials_origin], orgx=f(g.orgx), orgy=f(g.orgy),
        close_distance=f(g.close_distance), phi0=res.phi0, osc=res.osc, twotheta=f(g.twotheta), noise=noise)


def write_float(out, image32: np.ndarray, log, write=write_file) -> None:
    """The float image (C writes it between computing and printing the statistics).

    ``write(path, *parts)`` stores each file (write_file, or a BackgroundWrites' submit).
    """
    if out.floatfile:
        log(f"writing {out.floatfile} as {image32.size} 4-byte floats")
        write_float_image(out.floatfile, image32, write)


def int_image(out, res: Resolved, image32: np.ndarray, stats, int_kernel=None):
    """The int file's pixels (uint16), or None without an int file.

    ``int_kernel``: the compiled int conversion, or None (see int_image_from_float).
    """
    if not out.intfile:
        return None
    return int_image_from_float(image32, auto_int_scale(stats.max_I, out.intfile_scale), out.adc, res.roi, int_kernel)


def write_outputs(out, res: Resolved, image32: np.ndarray, stats, log, ints=None, write=write_file) -> None:
    """Write the SMV (``ints``, from int_image), PGM and noise files (see write_file), printing C's lines."""
    roi = res.roi
    scale = auto_int_scale(stats.max_I, out.intfile_scale)
    log(f"intfile_scale = {scale:g}")
    if out.intfile:
        log(f"writing {out.intfile} as 2-byte integers")
        write_smv(out.intfile, header_values(res, noise=False), ints, write)
    if out.write_pgm and out.pgmfile:
        pgm_scale = auto_pgm_scale(scale, stats.rmsd, out.pgm_scale)
        log(f"pgm_scale = {pgm_scale:g}")
        log(f"writing {out.pgmfile} as 1-byte integers")
        write_pgm(out.pgmfile, image32, pgm_scale, roi, write)
    if out.calculate_noise and out.noisefile:
        write_noise(out, res, image32, log, write)


def write_noise(out, res: Resolved, image32: np.ndarray, log, write=write_file) -> None:
    """Poisson noise image: C's generator bit for bit, or torch's (fast, not identical)."""
    from ..rng.noise import poisson_noise_c, poisson_noise_torch  # numba loads only when noise is made

    if out.noise_rng == "torch":
        import torch
        gen = torch.Generator().manual_seed(abs(int(out.seed)))
        noise, photons, overloads = poisson_noise_torch(torch.from_numpy(image32), gen, res.roi, out.adc)
        noise = noise.numpy()
    else:
        noise, photons, overloads = poisson_noise_c(image32, out.seed, res.roi, out.adc)
    log(f"{photons:.0f} photons on noise image ({overloads} overloads)")
    log(f"writing {out.noisefile} as 2-byte integers")
    write_smv(out.noisefile, header_values(res, noise=True), noise, write)


def write_png(path: str, image32: np.ndarray, linear: bool) -> None:
    """A viewable 8-bit PNG of the float image: log-scaled (default) or linear, via Pillow."""
    from PIL import Image

    from ..io import atomic_open

    v = np.clip(image32.astype(np.float64), 0, None)
    top = np.percentile(v, 99.9) if v.size else 0.0
    top = top if top > 0 else (v.max() if v.size and v.max() > 0 else 1.0)
    scaled = np.clip(v / top, 0, 1) if linear else np.log1p(np.clip(v / top, 0, 1) * 1000.0) / np.log1p(1000.0)
    with atomic_open(path) as handle:
        Image.fromarray((scaled * 255 + 0.5).astype(np.uint8), mode="L").save(handle, format="PNG")
