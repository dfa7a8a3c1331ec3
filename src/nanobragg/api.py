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

import numpy as np
import torch

from .config import checks
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

#: The argument of the factories below that sets each configuration field (errors name it).
ARGUMENTS = {
    "detector.fpixels": "pixels", "detector.spixels": "pixels", "detector.pixel_size": "pixel_size",
    "detector.distance": "distance", "detector.beam_x": "beam_center", "detector.beam_y": "beam_center",
    "detector.rotx": "rotation", "detector.roty": "rotation", "detector.rotz": "rotation",
    "detector.twotheta": "twotheta", "detector.convention": "convention",
    "beam.wavelength": "wavelength", "beam.fluence": "fluence", "beam.polarization": "polarization",
    "crystal.cell": "cell", "crystal.Na": "N", "crystal.Nb": "N", "crystal.Nc": "N", "crystal.shape": "shape",
    "crystal.misset": "misset", "crystal.fgrid": "F", "crystal.default_F": "default_F", "crystal.phi0": "phi0",
    "crystal.osc": "osc", "crystal.phisteps": "phisteps", "crystal.mosaic_spread": "mosaic_spread",
    "crystal.mosaic_domains": "mosaic_domains", "crystal.fudge": "fudge",
    "sampling.oversample": "oversample", "sampling.dmin": "dmin",
}


def _argument(path: str) -> str:
    """The factory argument (or, for ``extra`` fields, the field name) that set ``path``."""
    return ARGUMENTS.get(path, path.partition(".")[2])


def _real(x, name: str):
    """``x`` if it is a real number or a real tensor (kept, graph and all); TypeError naming ``name``."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name}: must be real numbers, got a {x.dtype} tensor")
        return x
    if checks.is_number(x):
        return float(x)
    raise TypeError(f"{name}: must be a number or a tensor, got {type(x).__name__} {x!r}")


def _scale(x, factor, name="value"):
    """x * factor for numbers, tensors (graph kept) and sequences of them; None stays None."""
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return tuple(_scale(v, factor, name) for v in x)
    return _real(x, name) * factor


def angstrom(x):
    """Angstrom -> metres (float, tensor or sequence; tensors keep their graph)."""
    return _scale(x, ANGSTROM)


def mm(x):
    """Millimetres -> metres (float, tensor or sequence; tensors keep their graph)."""
    return _scale(x, MM)


def deg(x):
    """Degrees -> radians (float, tensor or sequence; tensors keep their graph)."""
    return _scale(x, DEG)


def _checked(name: str, config):
    """Check a freshly built record with the shared rules, naming the factory's arguments."""
    checks.check_section(name, config, _argument)
    return config


def unit_cell(a, b, c, alpha=90.0, beta=90.0, gamma=90.0) -> tuple:
    """Cell (a, b, c, alpha, beta, gamma) in metres/radians from Angstrom and degrees.

    Each entry may be a float or a 0-d tensor. Returns a 6-tuple, the form of
    :attr:`CrystalConfig.cell`; ValueError/TypeError naming the bad entry.
    """
    names = ("a", "b", "c", "alpha", "beta", "gamma")
    cell = tuple(_scale(v, ANGSTROM if i < 3 else DEG, names[i]) for i, v in enumerate((a, b, c, alpha, beta, gamma)))
    checks.check_cell(cell, names)
    return cell


def structure_factors(F, lo: Sequence[int] = (0, 0, 0)) -> FGrid:
    """Structure-factor amplitudes on a dense Miller-index grid.

    F: (nh, nk, nl) tensor or array, ``F[i, j, k]`` = |F(lo_h+i, lo_k+j, lo_l+k)|
    (electrons, dimensionless); lo: (3,) lowest h, k, l. Indices outside the
    grid take the crystal's ``default_F``. The returned grid carries C's extra
    zero plane on the high side of each axis; a tensor F keeps its graph.
    """
    try:
        F = torch.as_tensor(F)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"F: must be a (nh, nk, nl) tensor or array of numbers, got {type(F).__name__}") from None
    if F.is_complex() or F.dtype == torch.bool:
        raise TypeError(f"F: must be real numbers, got {F.dtype}")
    F = F if F.is_floating_point() else F.to(torch.float64)
    if F.dim() != 3 or F.numel() == 0:
        raise ValueError(f"F: must have shape (nh, nk, nl), got {tuple(F.shape)}")
    if not isinstance(lo, (tuple, list)) or len(lo) != 3 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lo):
        raise TypeError(f"lo: must be 3 whole numbers (lowest h, k, l), got {lo!r}")
    grid = torch.nn.functional.pad(F, (0, 1, 0, 1, 0, 1))
    h, k, l = (int(v) for v in lo)
    nh, nk, nl = F.shape
    fgrid = FGrid(h, h + nh - 1, k, k + nk - 1, l, l + nl - 1, grid)
    checks.check_structure_factors(fgrid, "F")
    return fgrid


def _split3(N, name):
    """(Na, Nb, Nc) from a number, a sequence of 3 or a (3,) tensor; TypeError naming ``name`` otherwise."""
    if isinstance(N, torch.Tensor) and N.dim() == 1 and len(N) == 3:
        return N[0], N[1], N[2]
    if isinstance(N, (tuple, list)) and len(N) == 3:
        return tuple(_real(v, name) for v in N)
    if isinstance(N, torch.Tensor) and N.dim() == 0 or checks.is_number(N):
        v = _real(N, name)
        return v, v, v
    raise TypeError(f"{name}: must be a number, 3 numbers or a (3,) tensor, got {N!r}")


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
    Na, Nb, Nc = _split3(N, "N")
    spread = -1.0 if mosaic_spread is None else _scale(mosaic_spread, DEG, "mosaic_spread")
    if F is not None and not isinstance(F, FGrid):
        raise TypeError(f"F: must be a grid from nanobragg.api.structure_factors, got {type(F).__name__}")
    return _checked("crystal", CrystalConfig(
        cell=cell, misset=misset if isinstance(misset, str) else _scale(_as_angles(misset), DEG, "misset"),
        Na=Na, Nb=Nb, Nc=Nc, shape=shape, fgrid=F, default_F=_real(default_F, "default_F"),
        phi0=_scale(phi0, DEG, "phi0"), osc=-1.0 if osc is None else _scale(osc, DEG, "osc"), phisteps=phisteps,
        mosaic_spread=spread, mosaic_domains=mosaic_domains, fudge=_real(fudge, "fudge"), **extra))


def _as_angles(v):
    """Keep tensors (any shape) whole; turn sequences of three into tuples; TypeError otherwise."""
    if v is None or isinstance(v, torch.Tensor):
        return v
    if isinstance(v, (tuple, list)) and len(v) == 3:
        return tuple(v)
    raise TypeError(f"misset: must be three angles (degrees), a (B, 3) tensor, 'random' or None, got {v!r}")


def _pixels(pixels) -> tuple:
    """(spixels, fpixels) from an int or a pair of ints; TypeError naming ``pixels`` otherwise."""
    pair = (pixels, pixels) if not isinstance(pixels, (tuple, list)) else tuple(pixels)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"pixels: must be a whole number or (spixels, fpixels), got {pixels!r}")
    return int(pair[0]), int(pair[1])


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
    s, f = _pixels(pixels)
    if beam_center is not None and (isinstance(beam_center, str) or len(beam_center) != 2):
        raise TypeError(f"beam_center: must be (Xbeam, Ybeam) in mm or None, got {beam_center!r}")
    bx, by = (None, None) if beam_center is None else (beam_center[0], beam_center[1])
    rx, ry, rz = _split3(rotation, "rotation")
    return _checked("detector", DetectorConfig(
        fpixels=f, spixels=s, pixel_size=_scale(pixel_size, MM, "pixel_size"), distance=_scale(distance, MM, "distance"),
        beam_x=_scale(bx, MM, "beam_center"), beam_y=_scale(by, MM, "beam_center"), rotx=_scale(rx, DEG, "rotation"),
        roty=_scale(ry, DEG, "rotation"), rotz=_scale(rz, DEG, "rotation"), twotheta=_scale(twotheta, DEG, "twotheta"),
        convention=convention, **extra))


def beam(wavelength=1.0, fluence=DEFAULT_FLUENCE, polarization=0.0, nopolar: bool = False,
         **extra: Any) -> BeamConfig:
    """The incident beam.

    wavelength: Angstrom; fluence: photons/m^2; polarization: Kahn factor
    (0 = unpolarized, 1 = fully polarized along the convention's E vector).
    ``extra``: any other BeamConfig field (SI units: dispersion, divergence, ...).
    """
    return _checked("beam", BeamConfig(
        wavelength=_scale(wavelength, ANGSTROM, "wavelength"), fluence=_real(fluence, "fluence"),
        polarization=_real(polarization, "polarization"), nopolar=nopolar, **extra))


def sampling(oversample: int = 1, dmin=0.0, **extra: Any) -> SamplingConfig:
    """Sub-pixel sampling: ``oversample`` per pixel edge; dmin: resolution cut-off in Angstrom (0 = off)."""
    return _checked("sampling", SamplingConfig(oversample=oversample, dmin=_scale(dmin, ANGSTROM, "dmin"), **extra))


def experiment(detector: DetectorConfig, beam: BeamConfig, crystal: CrystalConfig,
               sampling: Optional[SamplingConfig] = None) -> Experiment:
    """Bundle the parts; sampling defaults to oversample 1 (not C's automatic choice).

    The whole experiment is checked (:func:`nanobragg.config.checks.check_experiment`);
    errors name the factory arguments.
    """
    smp = sampling if sampling is not None else SamplingConfig(oversample=1)
    for name, part, kind in (("detector", detector, DetectorConfig), ("beam", beam, BeamConfig),
                             ("crystal", crystal, CrystalConfig), ("sampling", smp, SamplingConfig)):
        if not isinstance(part, kind):
            raise TypeError(f"{name}: must be a {kind.__name__} (see nanobragg.api.{name}), got {type(part).__name__}")
    exp = Experiment(detector=detector, beam=beam, crystal=crystal, sampling=smp,
                     origins={path: _argument(path) for path in checks.RULES})
    exp.origins.update({p: _argument(p) for p in ("detector.roi", "beam.sources", "crystal.cell", "crystal.misset",
                                                  "crystal.fgrid", "crystal.matrix", "crystal.mosaic_umats")})
    checks.check_experiment(exp)
    return exp


@dataclass
class Rendering:
    """One rendered image and how it was set up."""

    image: torch.Tensor  #: (spixels, fpixels) photons per pixel; (B, spixels, fpixels) for B orientations
    resolved: Resolved  #: derived set-up (pixel counts, step counts, oriented cell, ...)
    rendered: RenderedImage  #: engine record (active-pixel mask, solid-angle sum, value totals)


def render(exp: Experiment, dtype=torch.float64, device=None, seed: Optional[int] = None,
           budget: Optional[int] = None) -> Rendering:
    """Resolve and render; see :func:`simulate` for the arguments (no interpolation with a batch)."""
    res, budget = _resolve_checked(exp, dtype, device, seed, budget)
    out = render_image(res.inputs, res.roi, res.mask, budget=budget)
    return Rendering(out.image, res, out)


def _resolve_checked(exp, dtype, device, seed, budget) -> tuple[Resolved, int]:
    """Check simulate()/render()'s arguments and resolve; returns (resolved, budget in bytes).

    resolve() checks the experiment itself; then the image (all B orientations)
    and one pixel's sums over every orientation must fit the memory budget, since
    the API returns the whole image as one tensor. Nothing large is allocated before.
    """
    if not isinstance(exp, Experiment):
        raise TypeError(f"exp: must be an Experiment (see nanobragg.api.experiment), got {type(exp).__name__}")
    checks.check_dtype(dtype)
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: {device!r} is not a torch device") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: cuda was asked for and no CUDA device is available")
    if seed is not None:
        checks.check_value("output.seed", seed, {"output.seed": "seed"})
    budget = checks.check_budget(budget, "budget")
    res = resolve(exp, seed=seed, dtype=dtype, device=device)
    checks.check_memory(exp, torch.finfo(dtype).bits // 8, budget, exp.origins or None, "budget", res.inputs.batch)
    return res, budget


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
    res, budget = _resolve_checked(exp, dtype, device, seed, budget)
    if res.inputs.cells.dim() == 4 and res.interpolate:
        return torch.stack([simulate(_one_orientation(exp, row), dtype, device, seed, budget)
                            for row in exp.crystal.misset])
    return render_image(res.inputs, res.roi, res.mask, budget=budget).image


def _one_orientation(exp: Experiment, misset: torch.Tensor) -> Experiment:
    return replace(exp, crystal=replace(exp.crystal, misset=misset))
