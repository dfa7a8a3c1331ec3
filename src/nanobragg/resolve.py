"""Resolve an :class:`Experiment` into engine inputs, in the C program's order of decisions.

This is where every default, auto-selection and derived quantity of the C
set-up is computed (pixel counts, fluence, conventions and pivots, step
counts, detector placement, interpolation choice, unit cell and misset,
crystal size, oversampling, sources, mosaic domains, normalisation). The
result holds the :class:`~nanobragg.engine.inputs.RenderInputs` for the
engine and the derived numbers that the command line prints and writes
into image headers. Differentiable parameters given as tensors stay tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .config.checks import MAX_N, ConfigError, RunSize, check_dtype, check_experiment, check_size
from .config.experiment import Experiment
from .engine.inputs import RenderInputs
from .engine.render import with_first_pass
from .geometry import steps as auto
from .geometry.beam import divergence_grid, file_sources, grid_sources
from .geometry.crystal import CellVectors, cells_in_crystal, first_pass_cells, orient_cell, rotated_cells
from .geometry.detector import DetectorGeometry, convention_vectors, resolve_detector
from .physics.structure_factors import FTable
from .units import RTD

R_E_SQR = 7.94079248018965e-30  #: Thomson cross section (m^2)
AVOGADRO = 6.02214179e23
WATER_F, WATER_MW = 2.57, 18.0


__all__ = ["ConfigError", "Resolved", "resolve"]


@dataclass
class Resolved:
    """Engine inputs plus the derived quantities the C program reports."""

    inputs: RenderInputs
    detector: DetectorGeometry
    cell: CellVectors
    wavelength: float
    fluence: float
    phi0: float
    osc: float
    phistep: float
    phisteps: int
    domains: int
    mosaic_spread: float
    sources: int
    divsteps: int
    dispsteps: int
    dispersion: float
    hdiv: tuple
    vdiv: tuple
    thicksteps: int
    thickness: float
    thickstep: float
    mu: float
    oversample: int
    steps: int
    N: tuple
    roi: tuple
    mask: np.ndarray | None
    interpolate: bool
    misset_deg: tuple | None
    notes: list = field(default_factory=list)
    #: C's generator statics after the set-up's draws (rng.ran1.CStatics), which the noise draws on
    rng_statics: object = None


def _t(x, dtype=torch.float64, device=None):
    return torch.as_tensor(x, dtype=dtype, device=device)


def _num(x) -> float:
    """A plain number for decisions and reports, without touching the autograd graph."""
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def _length(v: torch.Tensor) -> float:
    """Length of a cell vector (m); for a batch of orientations, all have the same length."""
    return float(v.detach().reshape(-1, 3)[0].norm())


def _first(v: torch.Tensor) -> torch.Tensor:
    """A (3,) vector, the first of a batch: the engine's reciprocal cell only enters through lengths."""
    return v.reshape(-1, 3)[0]


def _fluence(exp: Experiment) -> tuple[float, list]:
    """Fluence from flux*exposure/beamsize^2 when a flux is given; clip the sample to the beam
    (in ``exp.crystal``: resolve passes its own copy)."""
    beam, xtal = exp.beam, exp.crystal
    notes = []
    fluence = beam.fluence
    if beam.flux != 0.0 and beam.exposure > 0.0 and beam.beamsize >= 0:
        fluence = beam.flux * beam.exposure / beam.beamsize / beam.beamsize
    if beam.beamsize >= 0:
        for name in ("sample_y", "sample_z"):
            if beam.beamsize < getattr(xtal, name):
                notes.append(f"WARNING: clipping sample ({getattr(xtal, name):g} m) with beam ({beam.beamsize:g} m)")
                setattr(xtal, name, beam.beamsize)
    return fluence, notes


def _check_inputs(exp: Experiment):
    xtal = exp.crystal
    if xtal.fgrid is None and _num(xtal.default_F) == 0.0:
        raise ConfigError("structure factors are needed: give -hkl, an Fdump.bin file, or a non-zero -default_F")
    if xtal.cell is None and xtal.matrix is None:
        raise ConfigError("a unit cell is needed: give -cell or -mat")


def _misset(exp: Experiment, seed: int | None, statics=None):
    """Misset angles (rad), drawing C's random orientation when asked."""
    m = exp.crystal.misset
    if isinstance(m, str):
        from .rng.orientation import random_misset

        mseed = exp.crystal.misset_seed if exp.crystal.misset_seed is not None else seed
        if mseed is None:
            label = exp.origins.get("crystal.misset", "crystal.misset")
            raise ConfigError(f"{label}: a random misset needs a seed (the noise seed, or crystal.misset_seed)")
        _, angles = random_misset(mseed, statics)
        return angles, tuple(a * RTD for a in angles)
    return m, None


def _sources(exp, vecs, lam0):
    """Source directions and wavelengths plus (divsteps, disp, hdiv, vdiv) step info."""
    b = exp.beam
    hdiv = auto.range_steps(b.hdivsteps, b.hdivrange, b.hdivstep)
    vdiv = auto.range_steps(b.vdivsteps, b.vdivrange, b.vdivstep)
    disp = auto.range_steps(b.dispsteps, b.dispersion, b.dispstep)
    if b.sources is not None and len(b.sources):
        dirs, lams = file_sources(b.sources, vecs.beam, lam0)
        zero = dirs.detach().abs().amax(-1) == 0
        if bool(zero.any()):
            row = int(zero.nonzero()[0, 0]) + 1
            raise ConfigError(f"{exp.origins.get('beam.sources', 'beam.sources')}: source {row}: its position "
                              "(missing columns filled in) is zero: it must give a direction")
        return dirs, lams, 0, disp, hdiv, vdiv
    pairs = divergence_grid(hdiv[0], hdiv[1], hdiv[2], vdiv[0], vdiv[1], vdiv[2], b.round_div)
    dirs, lams = grid_sources(vecs.beam, vecs.polar, pairs, lam0, disp[1], disp[2], disp[0])
    return dirs, lams, len(pairs), disp, hdiv, vdiv


def _oversample(sampling, cell, N, lam0, distance, pixel):
    """C's recommended oversampling: ceil(3 * max crystal size / (lambda * distance / pixel))."""
    size = max(_length(cell.a) * _num(N[0]), _length(cell.b) * _num(N[1]), _length(cell.c) * _num(N[2]))
    recommended = math.ceil(3.0 * size / (_num(lam0) * _num(distance) / _num(pixel)))
    recommended = max(recommended, 1)
    return (sampling.oversample if sampling.oversample > 0 else recommended), recommended


def _domain_rotations(spread: float, domains: int, seed: int, statics=None) -> np.ndarray:
    """C's mosaic domain rotations, drawn through the generator ``statics`` (a single domain is the
    identity, but C still draws it: the noise draws on the table it leaves)."""
    from .rng.orientation import mosaic_draws
    from .rng.ran1 import CStatics

    return mosaic_draws(CStatics() if statics is None else statics, seed, domains, spread)


def _ftable(xtal, dtype, device) -> FTable:
    g = xtal.fgrid
    if g is None:
        return FTable.empty(xtal.default_F, dtype, device)
    grid = g.grid if isinstance(g.grid, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(g.grid))
    return FTable(grid.to(dtype=dtype, device=device), (g.h_min, g.k_min, g.l_min), (g.h_max, g.k_max, g.l_max),
                  _t(xtal.default_F, dtype, device), True)


def _thickness(det):
    """Sensor layers (steps, thickness, step) and mu, with C's default mu = 1/thickness."""
    tsteps, thick, tstep = auto.thick_steps(det.thicksteps, det.thickness, det.thickstep)
    if det.attenuation_length is None:
        mu = -1.0
    elif math.isinf(det.attenuation_length) or det.attenuation_length == 0:
        mu = 0.0
    else:
        mu = 1.0 / det.attenuation_length
    if thick > 0.0 and mu < 0.0:
        mu = 1.0 / thick
    return tsteps, thick, tstep, mu


def _f_max(xtal) -> tuple[float, str]:
    """Largest |F| the engine can look up and the field holding it (values only, graph untouched)."""
    top, where = abs(_num(xtal.default_F)), "crystal.default_F"
    g = xtal.fgrid
    if g is not None and math.prod(g.grid.shape) > 0:
        grid = g.grid.detach() if isinstance(g.grid, torch.Tensor) else torch.from_numpy(np.asarray(g.grid))
        top_grid = float(grid.abs().max())
        if top_grid > top:
            top, where = top_grid, "crystal.fgrid"
    return top, where


def _water_background(fluence, water: float):
    """C's I_bg: the water's F^2 r_e^2 fluence times its molecules per unit area (water: thickness in m)."""
    return WATER_F ** 2 * R_E_SQR * _t(fluence) * water ** 3 * 1e6 * AVOGADRO / WATER_MW


def _check_cells(exp: Experiment, N):
    """Cell counts from crystal sizes must stay within the checked range (the size is named)."""
    for n, name in zip(N, ("sample_x", "sample_y", "sample_z")):
        if _num(n) > MAX_N:
            label = exp.origins.get(f"crystal.{name}", f"crystal.{name}")
            raise ConfigError(f"{label}: the crystal size makes {_num(n):g} unit cells along one axis, "
                              f"more than {MAX_N:g}")


def _run_size(exp, geom, N, oversample, roi, tsteps, n_src, phisteps, domains, fluence) -> RunSize:
    """The counts and peak factors :func:`check_size` judges, before the big tensors are built."""
    xmin, xmax, ymin, ymax = roi
    pixels = max(min(xmax, geom.fpixels - 1) - xmin + 1, 0) * max(min(ymax, geom.spixels - 1) - ymin + 1, 0)
    nearest = min(abs(_num(geom.close_distance)), abs(_num(geom.distance)))
    F_max, F_from = _f_max(exp.crystal)
    sizes = [f"crystal.sample_{a}" for a in "xyz" if exp.crystal.__dict__[f"sample_{a}"] > 0]
    b = exp.beam
    return RunSize(
        pixels=pixels, oversample=oversample, auto_oversample=exp.sampling.oversample <= 0, layers=tsteps,
        sources=n_src, phisteps=phisteps, domains=domains, cells=math.prod(_num(n) for n in N),
        size_from=sizes[0] if sizes else "crystal.Na", F_max=F_max, F_from=F_from, fluence=_num(fluence),
        fluence_from="beam.flux" if b.flux != 0.0 and b.exposure > 0.0 else "beam.fluence",
        photons_per_F2=R_E_SQR * _num(fluence), I_bg=_num(_water_background(fluence, _num(exp.crystal.water_size))),
        omega_max=(1.0 if exp.detector.point_pixel else _num(geom.pixel_size) ** 2) / max(nearest, 1e-300) ** 2,
        omega_every_step=exp.sampling.oversample_omega)


def _source_count(exp, disp, hdiv, vdiv) -> int:
    """Sources the set-up will make (an upper bound for a round divergence grid)."""
    b = exp.beam
    if b.sources is not None and len(b.sources):
        return len(b.sources)
    return hdiv[0] * vdiv[0] * disp[0]


def _roi(det, fpixels, spixels):
    xmin, xmax, ymin, ymax = det.roi if det.roi is not None else (-1, -1, -1, -1)
    return (max(xmin, 0) if xmin >= 0 else 0, xmax if xmax >= 0 else fpixels,
            ymin if ymin >= 0 else 0, ymax if ymax >= 0 else spixels)


def _interpolation_choice(xtal) -> bool:
    """C decides interpolation from -N before -xtalsize turns sizes into cell counts."""
    if xtal.interpolate is not None:
        return bool(xtal.interpolate)
    return any(_num(n) <= 2 for n in (xtal.Na, xtal.Nb, xtal.Nc))


def resolve(exp: Experiment, seed: int | None = None, dtype=torch.float64, device=None) -> Resolved:
    """Turn the configuration into engine inputs, following nanoBragg.c's set-up order.

    A pure function: the caller's experiment is not modified (C clips the
    crystal to the beam in place; here a copy is clipped).

    ``seed`` is the noise seed as C stores it (negative), used by
    ``-misset random`` when no misset seed is given. Geometry is computed
    in float64 and the engine inputs are then cast to ``dtype``. Every field
    is checked first (:func:`nanobragg.config.checks.check_experiment`), and
    the run's size (:func:`~nanobragg.config.checks.check_size`) before its
    large tensors are built: ConfigError names the offending value.
    """
    check_dtype(dtype)
    check_experiment(exp)
    _check_inputs(exp)
    exp = replace(exp, crystal=replace(exp.crystal))  # the caller's experiment is never modified
    det, beam, xtal, smp = exp.detector, exp.beam, exp.crystal, exp.sampling
    fluence, notes = _fluence(exp)
    f64 = torch.float64
    vecs = convention_vectors(det, beam.beam_vector, beam.polar_vector, xtal.spindle_axis,
                              dtype=f64, device=device)
    phisteps, osc, phistep = auto.phi_steps(xtal.phisteps, _num(xtal.osc), _num(xtal.phistep))
    tsteps, thick, tstep, mu = _thickness(det)
    domains, spread, warn = auto.mosaic_steps(xtal.mosaic_domains, xtal.mosaic_spread)
    notes += warn
    geom = resolve_detector(det, vecs, dtype=f64, device=device)
    interpolate = _interpolation_choice(xtal)
    from .rng.ran1 import CStatics

    statics = CStatics()  # C's generator statics: the misset, mosaic and noise draws share them
    misset, misset_deg = _misset(exp, seed, statics)
    cell = orient_cell(xtal.cell, xtal.matrix, beam.wavelength, misset, dtype=f64, device=device)
    N = tuple(cells_in_crystal(s, _length(v), n) for s, v, n in
              ((xtal.sample_x, cell.a, xtal.Na), (xtal.sample_y, cell.b, xtal.Nb), (xtal.sample_z, cell.c, xtal.Nc)))
    _check_cells(exp, N)
    oversample, _ = _oversample(smp, cell, N, beam.wavelength, geom.distance, geom.pixel_size)
    disp = auto.range_steps(beam.dispsteps, beam.dispersion, beam.dispstep)
    hdiv = auto.range_steps(beam.hdivsteps, beam.hdivrange, beam.hdivstep)
    vdiv = auto.range_steps(beam.vdivsteps, beam.vdivrange, beam.vdivstep)
    n_domains = len(xtal.mosaic_umats) if xtal.mosaic_umats is not None else domains
    check_size(_run_size(exp, geom, N, oversample, _roi(det, geom.fpixels, geom.spixels), tsteps,
                         _source_count(exp, disp, hdiv, vdiv), phisteps, n_domains, fluence),
               dtype, exp.origins)
    ftable = _ftable(xtal, f64, device)
    interpolate = interpolate and ftable.populated
    dirs, lams, divsteps, disp, hdiv, vdiv = _sources(exp, vecs, beam.wavelength)
    umats = (xtal.mosaic_umats if xtal.mosaic_umats is not None
             else _domain_rotations(spread, domains, xtal.mosaic_seed, statics))
    umats = _t(np.asarray(umats) if not isinstance(umats, torch.Tensor) else umats, f64, device)
    phis = [_t(xtal.phi0, f64, device) + phistep * i for i in range(phisteps)]
    cells = rotated_cells(cell, vecs.spindle, phis, umats)
    phi0_cells = first_pass_cells(cell, vecs.spindle, phis, umats)  # C's very first spindle pass
    n_src = len(lams)
    steps = n_src * len(umats) * phisteps * oversample * oversample
    water = _num(xtal.water_size)
    i_bg = _water_background(fluence, water)
    inputs = RenderInputs(
        pix0=geom.pix0, fdet=geom.fdet, sdet=geom.sdet, odet=geom.odet, beam=vecs.beam,
        pixel_size=geom.pixel_size, distance=geom.distance, close_distance=geom.close_distance,
        fpixels=geom.fpixels, spixels=geom.spixels, oversample=oversample,
        thick_offsets=_t([i * tstep for i in range(tsteps)], f64, device), thickstep=_t(tstep, f64, device),
        mu=_t(mu, f64, device), absorb=thick != 0.0, curved=det.curved, point_pixel=det.point_pixel,
        source_dirs=dirs, source_lambdas=lams, cells=cells,
        recip=torch.stack([_first(cell.a_star), _first(cell.b_star), _first(cell.c_star)]),
        N=torch.stack([_t(n, f64, device) for n in N]), N_axes=tuple(_num(n) > 1 for n in N), shape=xtal.shape,
        fudge=_t(xtal.fudge, f64, device),
        ftable=ftable, interpolate=interpolate, kahn=_t(beam.polarization, f64, device),
        polar_vector=vecs.polar, nopolar=beam.nopolar, dmin=_num(smp.dmin),
        oversample_thick=smp.oversample_thick, oversample_polar=smp.oversample_polar,
        oversample_omega=smp.oversample_omega, water=water != 0.0, I_bg=_t(i_bg, f64, device),
        scale=R_E_SQR * _t(fluence, f64, device) / steps, phi0_cells=phi0_cells,
    )
    inputs = with_first_pass(inputs, _roi(det, geom.fpixels, geom.spixels), det.mask).to(dtype=dtype)
    return Resolved(
        inputs=inputs, detector=geom, cell=cell, wavelength=_num(beam.wavelength), fluence=_num(fluence),
        phi0=_num(xtal.phi0), osc=osc, phistep=phistep, phisteps=phisteps, domains=len(umats),
        mosaic_spread=spread, sources=n_src, divsteps=divsteps, dispsteps=disp[0], dispersion=disp[1],
        hdiv=hdiv, vdiv=vdiv, thicksteps=tsteps, thickness=thick, thickstep=tstep, mu=mu,
        oversample=oversample, steps=steps, N=tuple(_num(n) for n in N),
        roi=_roi(det, geom.fpixels, geom.spixels), mask=det.mask, interpolate=interpolate,
        misset_deg=misset_deg, notes=notes, rng_statics=statics)
