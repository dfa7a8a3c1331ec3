"""X-ray sources: divergence grid, spectral dispersion, or a source file.

Mirrors the C program's source set-up. Each source is a unit direction
pointing from the sample towards the source, and a wavelength; the incident
beam direction is the negative of the source direction.
"""
from __future__ import annotations

import numpy as np
import torch

from .vectors import rotate_axis, unitize

#: C's fixed distance of generated sources from the sample (m).
SOURCE_DISTANCE = 10.0


def divergence_grid(hsteps, hrange, hstep, vsteps, vrange, vstep, round_div: bool) -> list[tuple[float, float]]:
    """(hdiv, vdiv) angle pairs in C's loop order, trimmed to an ellipse when ``round_div``.

    A point is dropped when 4 * (h'^2/hrange^2 + v'^2/vrange^2) > 1.1, where
    h'^2 = hdiv^2 - hstep^2/4 for even step counts. A zero range gives
    NaN in that test, which keeps the point, as in C.
    """
    pairs = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for ht in range(hsteps):
            for vt in range(vsteps):
                hdiv = hstep * ht - hrange / 2.0
                vdiv = vstep * vt - vrange / 2.0
                test = (np.float64(hdiv * hdiv - hstep * hstep / 4.0 * (1 - hsteps % 2)) / hrange) / np.float64(hrange)
                test += (np.float64(vdiv * vdiv - vstep * vstep / 4.0 * (1 - vsteps % 2)) / vrange) / np.float64(vrange)
                if round_div and test * 4.0 > 1.1:
                    continue
                pairs.append((hdiv, vdiv))
    return pairs


def grid_sources(beam_vector, polar_vector, pairs, wavelength, dispersion, dispstep, dispsteps):
    """Sources for a divergence grid times a wavelength list (C order: angle-major).

    Returns directions (S, 3) (unit, pointing to the source) and wavelengths (S,).
    lambda_i = lambda0 * (1 + dispstep * i - dispersion / 2).
    """
    vert = unitize(torch.linalg.cross(beam_vector, polar_vector))[0]
    start = -SOURCE_DISTANCE * beam_vector
    dirs = []
    for hdiv, vdiv in pairs:
        v = rotate_axis(rotate_axis(start, polar_vector, vdiv), vert, hdiv)
        dirs.extend([v] * dispsteps)
    lam0 = torch.as_tensor(wavelength, dtype=beam_vector.dtype, device=beam_vector.device)
    factors = torch.tensor([1.0 + dispstep * i - dispersion / 2.0 for i in range(dispsteps)],
                           dtype=beam_vector.dtype, device=beam_vector.device)
    lambdas = (lam0 * factors).repeat(len(pairs))
    return unitize(torch.stack(dirs))[0], lambdas


def file_sources(table: np.ndarray, beam_vector, wavelength):
    """Sources from a source file table (n, 5: X Y Z I lambda; NaN = C's default).

    Missing positions default to 10 m up-beam, missing wavelengths to lambda0.
    The intensity column is read but, as in C, does not weight the image.
    """
    dtype, device = beam_vector.dtype, beam_vector.device
    tab = torch.as_tensor(np.asarray(table, dtype=np.float64), dtype=dtype, device=device)
    default_pos = -SOURCE_DISTANCE * beam_vector
    pos = torch.where(torch.isnan(tab[:, :3]), default_pos.expand(len(tab), 3), tab[:, :3])
    lam0 = torch.as_tensor(wavelength, dtype=dtype, device=device).expand(len(tab))
    lambdas = torch.where(torch.isnan(tab[:, 4]), lam0, tab[:, 4])
    return unitize(pos)[0], lambdas
