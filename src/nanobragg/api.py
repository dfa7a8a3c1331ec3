"""The Python API: build an experiment in everyday units and render it, differentiably.

The factories below return the configuration dataclasses of
:mod:`nanobragg.config` (SI units inside: metres, radians), converting from
the units crystallographers type: Angstrom, millimetres, degrees. Every
number may be a Python float or a torch tensor; tensors (also with
``requires_grad``) are carried through unchanged in value and graph, so
``simulate(...)`` is differentiable with respect to them.

Exported names
--------------
Unit helpers: :func:`angstrom`, :func:`mm`, :func:`deg` (to metres/radians).
Factories: :func:`unit_cell`, :func:`structure_factors`, :func:`crystal`,
:func:`detector`, :func:`beam`, :func:`sampling`, :func:`experiment`.
Rendering: :func:`simulate` (image tensor), :func:`render` (image plus the
C program's derived quantities).
The dataclasses themselves are re-exported: :class:`Experiment`,
:class:`CrystalConfig`, :class:`DetectorConfig`, :class:`BeamConfig`,
:class:`SamplingConfig`, :class:`FGrid`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

import torch

from .config.experiment import (DEFAULT_FLUENCE, BeamConfig, CrystalConfig, DetectorConfig,
                                Experiment, SamplingConfig)
from .engine.image import RenderedImage, render_image
from .io.hkl import FGrid
from .resolve import Resolved, resolve

__all__ = [
    "angstrom", "mm", "deg", "unit_cell", "structure_factors", "crystal", "detector", "beam",
    "sampling", "experiment", "simulate", "render", "Rendering",
    "Experiment", "CrystalConfig", "DetectorConfig", "BeamConfig", "SamplingConfig", "FGrid",
    "DEFAULT_FLUENCE",
]

ANGSTROM = 1e-10  #: metres per Angstrom
MM = 1e-3  #: metres per millimetre
DEG = math.pi / 180.0  #: radians per degree


def _scale(x, factor):
    """x * factor for floats, tensors (graph kept) and sequences of them; None stays None."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x * factor
    if isinstance(x, (tuple, list)):
        return tuple(_scale(v, factor) for v in x)
    return float(x) * factor


def angstrom(x):
    """Angstrom -> metres (float, tensor or sequence; tensors keep their graph)."""
    return _scale(x, ANGSTROM)


def mm(x):
    """Millimetres -> metres (float, tensor or sequence; tensors keep their graph)."""
    return _scale(x, MM)


def deg(x):
    """Degrees -> radians (float, tensor or sequence; tensors keep their graph)."""
    return _scale(x, DEG)


def unit_cell(a, b, c, alpha=90.0, beta=90.0, gamma=90.0) -> tuple:
    """Cell (a, b, c, alpha, beta, gamma) in metres/radians from Angstrom and degrees.

    Each entry may be a float or a 0-d tensor. Returns a 6-tuple, the form of
    :attr:`CrystalConfig.cell`.
    """
    return angstrom((a, b, c)) + deg((alpha, beta, gamma))


def structure_factors(F, lo: Sequence[int] = (0, 0, 0)) -> FGrid:
    """Structure-factor amplitudes on a dense Miller-index grid.

    F: (nh, nk, nl) tensor or array, ``F[i, j, k]`` = |F(lo_h+i, lo_k+j, lo_l+k)|
    (electrons, dimensionless); lo: (3,) lowest h, k, l. Indices outside the
    grid take the crystal's ``default_F``. The returned grid carries C's extra
    zero plane on the high side of each axis; a tensor F keeps its graph.
    """
    F = torch.as_tensor(F)
    F = F if F.is_floating_point() else F.to(torch.float64)
    if F.dim() != 3:
        raise ValueError(f"F must have shape (nh, nk, nl), got {tuple(F.shape)}")
    grid = torch.nn.functional.pad(F, (0, 1, 0, 1, 0, 1))
    h, k, l = (int(v) for v in lo)
    nh, nk, nl = F.shape
    return FGrid(h, h + nh - 1, k, k + nk - 1, l, l + nl - 1, grid)


def _split3(N):
    """(Na, Nb, Nc) from a number, a sequence of 3 or a (3,) tensor."""
    if isinstance(N, torch.Tensor) and N.dim() == 1:
        return N[0], N[1], N[2]
    if isinstance(N, (tuple, list)):
        return tuple(N)
    return N, N, N


def crystal(cell, N=1.0, shape: str = "square", misset=None, F: Optional[FGrid] = None,
            default_F=0.0, phi0=0.0, osc=None, phisteps: int = -1, mosaic_spread=None,
            mosaic_domains: int = -1, fudge=1.0, **extra: Any) -> CrystalConfig:
    """A crystal.

    cell: 6-tuple from :func:`unit_cell` (metres, radians).
    N: cells along a, b, c: number, (3,) sequence or (3,) tensor (float
    tensors give gradients with the ``gauss`` and ``round`` shapes).
    shape: ``square``, ``round``, ``gauss`` or ``tophat``.
    misset: (3,) degrees (x, then y, then z rotation), a (B, 3) tensor for a
    batch of orientations (images come back as (B, S, F)), ``"random"``, or None.
    F: :func:`structure_factors` grid; default_F: F outside it (or everywhere).
    phi0, osc, mosaic_spread: degrees; ``extra``: any other CrystalConfig field (SI).
    """
    Na, Nb, Nc = _split3(N)
    spread = -1.0 if mosaic_spread is None else deg(mosaic_spread)
    return CrystalConfig(
        cell=cell, misset=misset if isinstance(misset, str) else deg(_as_angles(misset)),
        Na=Na, Nb=Nb, Nc=Nc, shape=shape, fgrid=F, default_F=default_F, phi0=deg(phi0),
        osc=-1.0 if osc is None else deg(osc), phisteps=phisteps, mosaic_spread=spread,
        mosaic_domains=mosaic_domains, fudge=fudge, **extra)


def _as_angles(v):
    """Keep tensors (any shape) whole; turn sequences into tuples."""
    if v is None or isinstance(v, torch.Tensor):
        return v
    return tuple(v)


def detector(pixels=(1024, 1024), pixel_size=0.1, distance=100.0, beam_center=None,
             rotation=(0.0, 0.0, 0.0), twotheta=0.0, convention: str = "mosflm",
             **extra: Any) -> DetectorConfig:
    """A flat pixel-array detector.

    pixels: int or (spixels, fpixels), the image shape (rows = slow, columns = fast).
    pixel_size, distance: mm. beam_center: (Xbeam, Ybeam) mm in the
    convention's sense (MOSFLM: Xbeam along slow, Ybeam along fast), or None
    for the detector centre. rotation: (rotx, roty, rotz) degrees;
    twotheta: degrees. ``extra``: any other DetectorConfig field (SI units).
    """
    s, f = (pixels, pixels) if isinstance(pixels, int) else pixels
    bx, by = (None, None) if beam_center is None else (beam_center[0], beam_center[1])
    rx, ry, rz = _split3(rotation)
    return DetectorConfig(
        fpixels=int(f), spixels=int(s), pixel_size=mm(pixel_size), distance=mm(distance),
        beam_x=mm(bx), beam_y=mm(by), rotx=deg(rx), roty=deg(ry), rotz=deg(rz),
        twotheta=deg(twotheta), convention=convention, **extra)


def beam(wavelength=1.0, fluence=DEFAULT_FLUENCE, polarization=0.0, nopolar: bool = False,
         **extra: Any) -> BeamConfig:
    """The incident beam.

    wavelength: Angstrom; fluence: photons/m^2; polarization: Kahn factor
    (0 = unpolarized, 1 = fully polarized along the convention's E vector).
    ``extra``: any other BeamConfig field (SI units: dispersion, divergence, ...).
    """
    return BeamConfig(wavelength=angstrom(wavelength), fluence=fluence, polarization=polarization,
                      nopolar=nopolar, **extra)


def sampling(oversample: int = 1, dmin=0.0, **extra: Any) -> SamplingConfig:
    """Sub-pixel sampling: ``oversample`` per pixel edge; dmin: resolution cut-off in Angstrom (0 = off)."""
    return SamplingConfig(oversample=oversample, dmin=float(dmin) * ANGSTROM, **extra)


def experiment(detector: DetectorConfig, beam: BeamConfig, crystal: CrystalConfig,
               sampling: Optional[SamplingConfig] = None) -> Experiment:
    """Bundle the parts; sampling defaults to oversample 1 (not C's automatic choice)."""
    smp = sampling if sampling is not None else SamplingConfig(oversample=1)
    return Experiment(detector=detector, beam=beam, crystal=crystal, sampling=smp)


@dataclass
class Rendering:
    """One rendered image and how it was set up."""

    image: torch.Tensor  #: (spixels, fpixels) photons per pixel; (B, spixels, fpixels) for B orientations
    resolved: Resolved  #: derived set-up (pixel counts, step counts, oriented cell, ...)
    rendered: RenderedImage  #: engine record (active-pixel mask, solid-angle sum, value totals)


def render(exp: Experiment, dtype=torch.float64, device=None, seed: Optional[int] = None,
           budget: Optional[int] = None) -> Rendering:
    """Resolve and render; see :func:`simulate` for the arguments (no interpolation with a batch)."""
    res = resolve(exp, seed=seed, dtype=dtype, device=device)
    out = render_image(res.inputs, res.roi, res.mask, budget=budget)
    return Rendering(out.image, res, out)


def simulate(exp: Experiment, dtype=torch.float64, device=None, seed: Optional[int] = None,
             budget: Optional[int] = None) -> torch.Tensor:
    """Render the image: (spixels, fpixels) tensor of photons per pixel.

    dtype: engine precision (float32 or float64; geometry is set up in
    float64 either way). device: torch device (default: CPU). seed: C's
    noise seed (negative) for ``misset="random"``. budget: engine memory
    budget in bytes. With ``crystal.misset`` a (B, 3) tensor (radians) the
    result is (B, spixels, fpixels), one image per orientation, rendered in
    one pass (or one by one when tricubic interpolation is on: C's fallback
    from it is decided per image).
    """
    res = resolve(exp, seed=seed, dtype=dtype, device=device)
    if res.inputs.cells.dim() == 4 and res.interpolate:
        return torch.stack([simulate(_one_orientation(exp, row), dtype, device, seed, budget)
                            for row in exp.crystal.misset])
    return render_image(res.inputs, res.roi, res.mask, budget=budget).image


def _one_orientation(exp: Experiment, misset: torch.Tensor) -> Experiment:
    return replace(exp, crystal=replace(exp.crystal, misset=misset))
