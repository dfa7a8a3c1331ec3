"""The Python API: build an experiment in the command line's units and render it, differentiably.

The factories below return the configuration dataclasses of
:mod:`nanobragg.config` (SI units inside: metres, radians). Every argument is
in the unit the command line uses for it (Angstrom, mm, um, mrad, percent,
degrees), converted through one table: :data:`ARGUMENTS` names the
configuration fields each argument sets, and the field's rule in
:data:`nanobragg.config.checks.RULES` gives its unit (the unit error messages
report it in). :mod:`nanobragg.simulator` reads the same table. Every number
may be a Python float or a torch tensor; tensors (also with
``requires_grad``) are carried through unchanged in value and graph, so
``simulate(...)`` is differentiable with respect to them.

Exported names
--------------
Unit helpers: :func:`angstrom`, :func:`mm`, :func:`deg` (to metres/radians).
Factories: :func:`unit_cell`, :func:`structure_factors`, :func:`crystal`,
:func:`detector`, :func:`beam`, :func:`sampling`, :func:`experiment`.
Rendering: :func:`simulate`, the one way to render, returning a
:class:`Simulation` (the image and which path rendered it).
Realistic images: :func:`background` (nonBragg's amorphous scattering from a ``.stol`` table) and
:func:`detector_effects` (noisify's detector), options of :func:`simulate`.
The dataclasses themselves are re-exported: :class:`Experiment`,
:class:`CrystalConfig`, :class:`DetectorConfig`, :class:`BeamConfig`,
:class:`SamplingConfig`, :class:`FGrid`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
import torch

from .config import checks
from .config.experiment import DEFAULT_FLUENCE, BeamConfig, CrystalConfig, DetectorConfig, Experiment, SamplingConfig
from .engine.image import RenderedImage, prepare_render, run_render
from .io.hkl import FGrid
from .physics.shapes import DEFAULT as DEFAULT_SHAPE
from .physics.shapes import SHAPES
from .resolve import Resolved, resolve
from .units import ANGSTROM, DEG, MM

__all__ = [
    "angstrom", "mm", "deg", "unit_cell", "structure_factors", "crystal", "detector", "beam",
    "sampling", "experiment", "simulate", "Simulation", "background", "detector_effects", "Background",
    "DetectorEffects", "ARGUMENTS", "FIELD_ARGUMENT", "unit", "SHAPES",
    "Experiment", "CrystalConfig", "DetectorConfig", "BeamConfig", "SamplingConfig", "FGrid",
    "DEFAULT_FLUENCE", "ANGSTROM", "MM", "DEG",
]

#: The API's arguments: factory -> argument -> the configuration fields it sets. Several fields
#: take a sequence (or a 1-d tensor) of as many values; ``N``, ``sample_size`` and ``detector_size``
#: also take one number for all. The unit of each is its field's rule's in checks.RULES (the
#: command line's unit; fields without a rule, such as ``roi`` or ``mask``, are taken as given).
#: Seeds are the numbers typed after ``-seed``/``-mosaic_seed``/``-misset_seed`` (C stores -N).
ARGUMENTS: dict[str, dict[str, tuple]] = {
    "detector": {
        "pixels": ("spixels", "fpixels"), "detector_size": ("detsize_s", "detsize_f"),
        "pixel_size": ("pixel_size",), "distance": ("distance",), "close_distance": ("close_distance",),
        "beam_center": ("beam_x", "beam_y"), "close_point": ("close_x", "close_y"), "origin": ("orgx", "orgy"),
        "detector_rotation": ("rotx", "roty", "rotz"), "twotheta": ("twotheta",),
        "twotheta_axis": ("twotheta_axis",), "convention": ("convention",), "pivot": ("pivot",),
        "fdet_vector": ("fdet_vector",), "sdet_vector": ("sdet_vector",), "odet_vector": ("odet_vector",),
        "pix0_vector": ("pix0_vector",), "curved": ("curved",), "point_pixel": ("point_pixel",),
        "thickness": ("thickness",), "attenuation_length": ("attenuation_length",),
        "thicksteps": ("thicksteps",), "thickstep": ("thickstep",), "roi": ("roi",), "mask": ("mask",),
    },
    "beam": {
        "wavelength": ("wavelength",), "dispersion": ("dispersion",), "dispsteps": ("dispsteps",),
        "dispstep": ("dispstep",), "hdivrange": ("hdivrange",), "vdivrange": ("vdivrange",),
        "hdivstep": ("hdivstep",), "vdivstep": ("vdivstep",), "hdivsteps": ("hdivsteps",),
        "vdivsteps": ("vdivsteps",), "round_div": ("round_div",), "fluence": ("fluence",), "flux": ("flux",),
        "exposure": ("exposure",), "beamsize": ("beamsize",), "polarization": ("polarization",),
        "nopolar": ("nopolar",), "beam_vector": ("beam_vector",), "polar_vector": ("polar_vector",),
        "sources": ("sources",),
    },
    "crystal": {
        "cell": ("cell",), "matrix": ("matrix",), "misset": ("misset",), "misset_seed": ("misset_seed",),
        "mosaic_spread": ("mosaic_spread",), "mosaic_domains": ("mosaic_domains",),
        "mosaic_seed": ("mosaic_seed",), "mosaic_umats": ("mosaic_umats",), "spindle_axis": ("spindle_axis",),
        "N": ("Na", "Nb", "Nc"), "sample_size": ("sample_x", "sample_y", "sample_z"), "shape": ("shape",),
        "fudge": ("fudge",), "phi0": ("phi0",), "osc": ("osc",), "phistep": ("phistep",),
        "phisteps": ("phisteps",), "structure_factors": ("fgrid",), "default_F": ("default_F",),
        "interpolate": ("interpolate",), "water_size": ("water_size",),
    },
    "sampling": {
        "oversample": ("oversample",), "oversample_thick": ("oversample_thick",),
        "oversample_polar": ("oversample_polar",), "oversample_omega": ("oversample_omega",), "dmin": ("dmin",),
    },
}
#: Arguments whose one number stands for all of their fields (as -N, -samplesize and -detsize do).
_BROADCAST = ("N", "sample_size", "detector_size")
#: Dotted configuration field -> the API argument that sets it (errors name it).
FIELD_ARGUMENT = {f"{section}.{f}": name for section, table in ARGUMENTS.items()
                  for name, fields in table.items() for f in fields}
#: Units of the fields without a rule, for the docs and the Simulator (checks.RULES has the others).
_UNITS = {"crystal.misset": "deg", "crystal.cell": "A, deg", "crystal.fgrid": "electrons",
          "crystal.default_F": "electrons", "crystal.Na": "cells", "crystal.Nb": "cells", "crystal.Nc": "cells"}


def unit(path: str) -> tuple[str, float]:
    """(unit name, SI value of one unit) of the dotted field ``path``: what the API and the
    Simulator take it in; ("", 1.0) for fields taken as given (counts, names, arrays)."""
    if path in _UNITS:
        return _UNITS[path], DEG if path == "crystal.misset" else 1.0
    rule = checks.RULES.get(path)
    if isinstance(rule, checks.Real):
        return rule.unit, rule.factor
    return (getattr(rule, "unit", "") or ""), 1.0


def _argument(path: str) -> str:
    """The factory argument that set the dotted field ``path`` (errors name it)."""
    return FIELD_ARGUMENT.get(path, path.partition(".")[2])


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


def unit_cell(a, b, c, alpha=90.0, beta=90.0, gamma=90.0) -> tuple:
    """Cell (a, b, c, alpha, beta, gamma) in metres/radians from Angstrom and degrees.

    Each entry may be a float or a 0-d tensor. Returns a 6-tuple, the form of
    :attr:`CrystalConfig.cell` that ``crystal(cell=...)`` takes; ValueError/TypeError
    naming the bad entry.
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


def _split(value, name: str, count: int, broadcast: bool) -> tuple:
    """``count`` values from a sequence of ``count`` or a (count,) tensor (or one number for all
    when ``broadcast``); TypeError naming ``name`` otherwise."""
    if isinstance(value, torch.Tensor) and value.dim() == 1 and len(value) == count:
        return tuple(value[i] for i in range(count))
    if isinstance(value, (tuple, list)) and len(value) == count:
        return tuple(value)
    if broadcast and (isinstance(value, torch.Tensor) and value.dim() == 0 or checks.is_number(value)):
        return (value,) * count
    what = f"{count} numbers or a ({count},) tensor"
    what = f"a number, {what}" if broadcast else what
    raise TypeError(f"{name}: must be {what}, got {value!r}")


def _field_value(path: str, name: str, value):
    """One field's value from the user's: scaled to SI by the field's unit, a seed negated as C stores it."""
    rule = checks.RULES.get(path)
    if rule is checks.SEED:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name}: a seed must be a whole number, got {value!r}")
        return -int(value)
    if isinstance(rule, checks.Real):
        if rule.unset and checks.is_number(value) and float(value) in rule.unset and rule.factor != 1.0:
            return float(value)  # C's "not given" sentinels stay as they are
        return _scale(value, rule.factor, name)
    return value


def _pixels(pixels) -> tuple:
    """(spixels, fpixels) from an int or a pair of ints; TypeError naming ``pixels`` otherwise."""
    pair = (pixels, pixels) if not isinstance(pixels, (tuple, list)) else tuple(pixels)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"pixels: must be a whole number or (spixels, fpixels), got {pixels!r}")
    return int(pair[0]), int(pair[1])


def _misset(v):
    """Keep tensors (any shape) whole; turn sequences of three into tuples; TypeError otherwise."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, torch.Tensor):
        return _real(v, "misset") * DEG
    if isinstance(v, (tuple, list)) and len(v) == 3:
        return _scale(tuple(v), DEG, "misset")
    raise TypeError(f"misset: must be three angles (degrees), a (B, 3) tensor, 'random' or None, got {v!r}")


def _grid(grid):
    if grid is not None and not isinstance(grid, FGrid):
        raise TypeError(f"structure_factors: must be a grid from nanobragg.api.structure_factors, "
                        f"got {type(grid).__name__}")
    return grid


#: Arguments whose None means "not given" although their field's default is C's -1 sentinel.
_NONE_IS_UNSET = ("osc", "mosaic_spread")
#: Arguments converted by their own function (the others: by the table and the fields' units).
_SPECIAL = {"pixels": _pixels, "misset": _misset, "structure_factors": _grid}


def _build(section: str, cls, arguments: dict):
    """The record ``cls`` of ``section`` from the user's arguments (None: not given, the default),
    converted through :data:`ARGUMENTS` and checked by the shared rules (errors name the arguments)."""
    table, fields = ARGUMENTS[section], {}
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, value in arguments.items():
        if name not in table:
            raise TypeError(f"{section}(): unknown argument {name!r}; known: {', '.join(table)}")
        targets = table[name]
        if value is None and (name in _NONE_IS_UNSET or all(defaults[f] is None for f in targets)):
            continue  # not given: the record's default (C's "unset")
        if name in _SPECIAL:
            value = _SPECIAL[name](value)
        values = _split(value, name, len(targets), name in _BROADCAST) if len(targets) > 1 else (value,)
        for target, v in zip(targets, values):
            path = f"{section}.{target}"
            fields[target] = v if name in _SPECIAL else _field_value(path, name, v)
    config = cls(**fields)
    checks.check_section(section, config, _argument)
    return config


def crystal(cell, N=1.0, shape: str = DEFAULT_SHAPE, misset=None, structure_factors: Optional[FGrid] = None,
            default_F=0.0, phi0=0.0, osc=None, phisteps: int = -1, mosaic_spread=None,
            mosaic_domains: int = -1, fudge=1.0, **options) -> CrystalConfig:
    """A crystal.

    cell: 6-tuple from :func:`unit_cell` (or any reader returning that form).
    N: cells along a, b, c: number, (3,) sequence or (3,) tensor (differentiable with the shapes
    whose ``SHAPES[shape].n_differentiable``). shape: a name of :data:`SHAPES`.
    misset: (3,) degrees (x, then y, then z rotation), a (B, 3) tensor for a
    batch of orientations (images come back as (B, S, F)), ``"random"``, or None.
    structure_factors: :func:`structure_factors` grid; default_F: F outside it (or everywhere).
    phi0, osc, mosaic_spread: degrees (None: not given). ``options``: the other arguments of
    ``ARGUMENTS["crystal"]`` (phistep deg, sample_size mm, water_size um, mosaic_seed, ...).
    """
    return _build("crystal", CrystalConfig, dict(
        cell=cell, N=N, shape=shape, misset=misset, structure_factors=structure_factors, default_F=default_F,
        phi0=phi0, osc=osc, phisteps=phisteps, mosaic_spread=mosaic_spread, mosaic_domains=mosaic_domains,
        fudge=fudge, **options))


def detector(pixels=(1024, 1024), pixel_size=0.1, distance=100.0, beam_center=None,
             detector_rotation=(0.0, 0.0, 0.0), twotheta=0.0, convention: str = "mosflm",
             **options) -> DetectorConfig:
    """A flat pixel-array detector.

    pixels: int or (spixels, fpixels), the image shape (rows = slow, columns = fast).
    pixel_size, distance: mm. beam_center: (Xbeam, Ybeam) mm in the
    convention's sense (MOSFLM: Xbeam along slow, Ybeam along fast), or None
    for the detector centre. detector_rotation: (rotx, roty, rotz) degrees;
    twotheta: degrees. ``options``: the other arguments of ``ARGUMENTS["detector"]``
    (origin pixels, close_distance mm, thickness um, pivot, roi, mask, ...).
    """
    if beam_center is not None and (isinstance(beam_center, str) or not hasattr(beam_center, "__len__")
                                    or len(beam_center) != 2):
        raise TypeError(f"beam_center: must be (Xbeam, Ybeam) in mm or None, got {beam_center!r}")
    return _build("detector", DetectorConfig, dict(
        pixels=pixels, pixel_size=pixel_size, distance=distance, beam_center=beam_center,
        detector_rotation=detector_rotation, twotheta=twotheta, convention=convention, **options))


def beam(wavelength=1.0, fluence=DEFAULT_FLUENCE, polarization=0.0, nopolar: bool = False,
         **options) -> BeamConfig:
    """The incident beam.

    wavelength: Angstrom; fluence: photons/m^2; polarization: Kahn factor
    (0 = unpolarized, 1 = fully polarized along the convention's E vector).
    ``options``: the other arguments of ``ARGUMENTS["beam"]`` (dispersion in percent,
    divergence in mrad, beamsize mm, flux photons/s, exposure s, sources, ...).
    """
    return _build("beam", BeamConfig, dict(wavelength=wavelength, fluence=fluence, polarization=polarization,
                                           nopolar=nopolar, **options))


def sampling(oversample: int = 1, dmin=0.0, **options) -> SamplingConfig:
    """Sub-pixel sampling: ``oversample`` per pixel edge; dmin: resolution cut-off in Angstrom (0 = off);
    ``options``: oversample_thick, oversample_polar, oversample_omega (C's -oversample_* flags)."""
    return _build("sampling", SamplingConfig, dict(oversample=oversample, dmin=dmin, **options))


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
                     origins={path: _argument(path) for path in (*checks.RULES, *FIELD_ARGUMENT)})
    checks.check_experiment(exp)
    return exp


@dataclass
class Simulation:
    """One rendered image and how it was rendered (what :func:`simulate` returns)."""

    image: torch.Tensor  #: (spixels, fpixels) photons per pixel; (B, spixels, fpixels) for B orientations
    resolved: Resolved  #: derived set-up (pixel counts, step counts, oriented cell, ...)
    rendered: Optional[RenderedImage]  #: engine record (active pixels, value totals); None when rendered one by one
    compiled: bool  #: the ahead-of-time compiled kernel rendered it (else the eager engine)
    device: torch.device  #: where it was rendered
    dtype: torch.dtype  #: the engine's precision
    chunk_pixels: int  #: pixels per engine chunk
    chunk_blocks: int  #: (layer, source) blocks per chunk: more than 1 when one pixel alone exceeds the budget
    one_by_one: bool = False  #: a batch with tricubic interpolation, rendered image by image
    #: the spots alone (photons per pixel); ``image`` is spots + background when ``background=`` was given
    spots: Optional[torch.Tensor] = None
    background: Optional[torch.Tensor] = None  #: (spixels, fpixels) amorphous background, photons per pixel
    #: noisify's noiseless detector image (int64 ADU; with noise, before the PSF, as noisify's -intfile)
    int_image: Optional[torch.Tensor] = None
    noise_image: Optional[torch.Tensor] = None  #: noisify's noisy detector image (int64 ADU, its -noisefile)
    #: ADU before clipping and truncation (``rng="torch"`` only): the differentiable detector image
    adu: Optional[torch.Tensor] = None

    @property
    def path(self) -> str:
        """The engine that rendered it: ``"compiled"`` (the AOTInductor kernel), ``"numba"`` (the numba
        loop) or ``"eager"`` (see nanobragg.engine.policy)."""
        if self.rendered is not None:
            return self.rendered.engine
        return "compiled" if self.compiled else "eager"

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.image.shape)
        return (f"Simulation({shape} image, {self.path}, {self.device}, {str(self.dtype).replace('torch.', '')}, "
                f"{self.chunk_pixels} pixels x {self.chunk_blocks} block(s) per chunk"
                f"{', one by one' if self.one_by_one else ''})")


def _resolve_checked(exp, dtype, device, seed, budget, compile) -> tuple[Resolved, int, torch.device]:
    """Check simulate()'s arguments and resolve; returns (resolved, budget in bytes, device).

    resolve() checks the experiment itself; then the image (all B orientations)
    and one pixel's sums over every orientation must fit the memory budget, since
    the API returns the whole image as one tensor. Nothing large is allocated before.
    """
    if not isinstance(exp, Experiment):
        raise TypeError(f"experiment: must be an Experiment (see nanobragg.api.experiment), got {type(exp).__name__}")
    checks.check_dtype(dtype)
    if compile not in (None, True, False, "numba"):
        raise TypeError(f"compile: must be None, True, False or \"numba\", got {compile!r}")
    try:
        device = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: {device!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for and no CUDA device is available")
    c_seed = None if seed is None else _field_value("output.seed", "seed", seed)
    if c_seed is not None:
        checks.check_value("output.seed", c_seed, {"output.seed": "seed"})
    budget = checks.check_budget(budget, "budget")
    res = resolve(exp, seed=c_seed, dtype=dtype, device=device)
    checks.check_memory(exp, torch.finfo(dtype).bits // 8, budget, exp.origins or None, "budget", res.inputs.batch)
    return res, budget, device


def simulate(experiment: Experiment, *, dtype=torch.float64, device=None, seed: Optional[int] = None,
             budget: Optional[int] = None, compile: Optional[bool] = None, background: Optional[Background] = None,
             detector_effects: Optional[DetectorEffects] = None) -> Simulation:
    """Render the experiment; returns a :class:`Simulation` (``.image``: photons per pixel).

    dtype: engine precision, float64 by default (float32: the command line's default, twice as fast;
    geometry is set up in float64 either way). device: torch device (default: CPU). seed: the noise
    seed as typed after ``-seed`` (for ``misset="random"``). budget: engine memory budget in bytes
    (default: an eighth of the machine's memory, at most 1 GiB). compile: None uses a cached compiled
    kernel, else the numba loop where it renders, else builds a compiled kernel (20-50 s, once, cached
    on disk) only where that pays back within this render and two more like it, as the command line
    does (:mod:`nanobragg.engine.policy`); True builds it on a cache miss; False stays eager;
    ``"numba"`` takes the numba loop (eager where it cannot render), whatever the cache holds. A build
    is announced in one line on stderr. Both run only on the CPU, without gradients
    (``torch.no_grad()``) and without tricubic interpolation; elsewhere the eager engine renders,
    whatever ``compile`` says, and ``Simulation.path`` tells.

    With ``misset`` a (B, 3) tensor the image is (B, spixels, fpixels), one image per orientation,
    rendered in one pass (or one by one when tricubic interpolation is on: C's fallback from it is
    decided per image).

    background: a :func:`background` (amorphous scattering, nonBragg's), rendered on the same resolved
    detector with the experiment's sources, fluence and polarization and added to the spots
    (``Simulation.spots``, ``.background``; ``.image`` is their sum). detector_effects: a
    :func:`detector_effects` (noisify's detector) applied to the image after that
    (``Simulation.int_image``, ``.noise_image``, ``.adu``). See docs/api.md for which is C-identical
    and which differentiable.
    """
    if background is not None and not isinstance(background, Background):
        raise TypeError(f"background: must be None or an api.background(...), got {type(background).__name__}")
    if detector_effects is not None and not isinstance(detector_effects, DetectorEffects):
        raise TypeError(f"detector_effects: must be None or an api.detector_effects(...), "
                        f"got {type(detector_effects).__name__}")
    res, budget, device = _resolve_checked(experiment, dtype, device, seed, budget, compile)
    if res.inputs.cells.dim() == 4 and res.interpolate:
        parts = [simulate(_one_orientation(experiment, row), dtype=dtype, device=device, seed=seed, budget=budget,
                          compile=compile) for row in experiment.crystal.misset]
        sim = Simulation(torch.stack([p.image for p in parts]), res, None, any(p.compiled for p in parts), device,
                         dtype, parts[0].chunk_pixels, parts[0].chunk_blocks, one_by_one=True)
    else:
        job = prepare_render(res.inputs, res.roi, res.mask, budget, compile)
        out = run_render(job)
        sim = Simulation(out.image, res, out, out.compiled, device, dtype, job.pixels, len(job.blocks))
    sim.spots = sim.image
    if background is not None:
        sim.background = _render_background(background, experiment, res, dtype, device)
        sim.image = sim.spots + sim.background
    if detector_effects is not None:
        _apply_detector_effects(detector_effects, sim, res)
    return sim


def _one_orientation(exp: Experiment, misset: torch.Tensor) -> Experiment:
    return replace(exp, crystal=replace(exp.crystal, misset=misset))


# ---------------------------------------------------------------------------------------------
# realistic images: amorphous background (nonBragg) and detector effects (noisify)


def _number(value, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """A finite real number (float); TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad:
        value = float(value)
    if not checks.is_number(value):
        raise TypeError(f"{name}: must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name}: must be positive, got {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"{name}: must not be negative, got {value!r}")
    return value


def _whole(value, name: str, low: Optional[int] = None) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name}: must be a whole number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name}: must be at least {low}, got {value!r}")
    return int(value)


#: ``stol_column`` -> C's multiplier of the table's first column (-stol, -4stol, -Q).
STOL_COLUMNS = {"stol": 1.0e10, "4stol": 1.0e10 / 4, "Q": 1.0e10 / np.pi / 4}


@dataclass(frozen=True)
class Background:
    """An amorphous sample, as nonBragg's flags give it (made by :func:`background`; SI inside)."""

    table: object  #: the padded :class:`nanobragg.physics.background.StolTable`
    stol: str  #: the table's name or path as given ("(given)" for columns)
    sample: tuple  #: (thickness along the beam, width, height) in m (nonBragg's sample_x, sample_y, sample_z)
    density: float  #: g/m^3
    molecular_weight: float  #: g/mol
    molecules: float  #: 0: from the density
    oversample: int  #: sub-pixels per pixel edge (nonBragg's -oversample; its default 1)


def background(stol="water", *, thickness=0.1, width=0.1, height=0.1, density=1.0, molecular_weight=18.0,
               molecules=0.0, oversample: int = 1, stol_column: str = "stol") -> Background:
    """Amorphous scattering (nonBragg) for :func:`simulate`'s ``background=``, in nonBragg's units.

    stol: a ``.stol`` file or a packaged table's name (``water``, ``air``, ``ice``, ``nanoice``,
    ``shortwater``, ``unity``), as ``-stol``; or a pair (stol, F) of 1-d sequences/tensors (stol in
    1/Angstrom, F electrons; a tensor F keeps its graph). stol_column: ``stol`` (-stol), ``4stol``
    (-4stol) or ``Q`` (-Q). thickness (along the beam), width, height: mm (-thickness, -width,
    -height; the beam's ``beamsize`` clips width and height, as in nonBragg); density: g/cm^3
    (-density); molecular_weight: g/mol (-MW); molecules: a count overriding the density (-molecules);
    oversample: sub-pixels per pixel edge (-oversample; nonBragg's default 1, independent of the spots').
    """
    from .cli.nonbragg import read_stol
    from .physics.background import stol_table
    if stol_column not in STOL_COLUMNS:
        raise ValueError(f"stol_column: must be one of {', '.join(STOL_COLUMNS)}, got {stol_column!r}")
    mult = STOL_COLUMNS[stol_column]
    if isinstance(stol, str):
        table, _, _ = read_stol(stol, mult)
        name = stol
    elif isinstance(stol, (tuple, list)) and len(stol) == 2:
        try:
            table = stol_table(stol[0], stol[1], mult)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"stol: (stol, F) columns: {exc}") from None
        name = "(given)"
    else:
        raise TypeError(f"stol: must be a .stol file or table name, or a pair (stol, F), got {type(stol).__name__}")
    sample = tuple(_number(v, n, positive=True) * MM for v, n in
                   ((thickness, "thickness"), (width, "width"), (height, "height")))
    return Background(table=table, stol=name, sample=sample, density=_number(density, "density") * 1e6,
                      molecular_weight=_number(molecular_weight, "molecular_weight", positive=True),
                      molecules=_number(molecules, "molecules", nonnegative=True),
                      oversample=_whole(oversample, "oversample", 1))


def _render_background(bg: Background, exp: Experiment, res: Resolved, dtype, device) -> torch.Tensor:
    """The background (S, F) on the resolved detector with the experiment's sources (nonBragg's pixel loop)."""
    from types import SimpleNamespace

    from .physics.background import render_background, sample_molecules
    d = res.detector

    def t(v):
        return torch.as_tensor(v, dtype=torch.float64).to(dtype=dtype, device=device)
    det = SimpleNamespace(fpixels=d.fpixels, spixels=d.spixels, pixel_size=t(d.pixel_size), fdet=t(d.fdet),
                          sdet=t(d.sdet), pix0=t(d.pix0), close_distance=t(d.close_distance), distance=t(d.distance),
                          beam=t(d.beam), curved=d.curved, point_pixel=d.point_pixel)
    beamsize = float(exp.beam.beamsize)
    molecules, _, _ = sample_molecules(*bg.sample, bg.density, bg.molecular_weight, bg.molecules, beamsize)
    inputs = res.inputs
    weights = None
    if exp.beam.sources is not None and len(exp.beam.sources):
        column = np.asarray(exp.beam.sources, dtype=np.float64)[:, 3]
        weights = torch.as_tensor(np.where(np.isnan(column), 1.0, column), dtype=dtype, device=device)
    flux = exp.beam.flux
    given = isinstance(exp.beam.fluence, torch.Tensor) and not (isinstance(flux, torch.Tensor) or float(flux) != 0.0)
    fluence = exp.beam.fluence if given else res.fluence  # a fluence tensor keeps its graph
    image = render_background(det, -inputs.source_dirs.to(dtype=dtype, device=device), inputs.source_lambdas,
                              bg.table, weights=weights, oversample=bg.oversample, kahn=inputs.kahn,
                              polar_vector=inputs.polar_vector.to(dtype=dtype, device=device),
                              nopolar=bool(inputs.nopolar), fluence=fluence, molecules=molecules)
    xmin, xmax, ymin, ymax = res.roi
    rows = torch.arange(d.spixels, device=device)[:, None]
    cols = torch.arange(d.fpixels, device=device)[None, :]
    inside = (cols >= xmin) & (cols <= xmax) & (rows >= ymin) & (rows <= ymax)
    return torch.where(inside, image, torch.zeros_like(image))


@dataclass(frozen=True)
class DetectorEffects:
    """noisify's detector, as its flags give it (made by :func:`detector_effects`)."""

    seed: int  #: as C holds it (``-seed N``: -N)
    calib_seed: int  #: as C holds it
    scale: float
    fluence: float
    gain: float
    adc: float
    readout_noise: float
    flicker: float
    calibration: float
    psf: Optional[str]
    psf_fwhm: float  #: m, rounded to float32 as noisify stores it
    psf_radius: int
    bits: int
    noise: bool
    rng: str


def detector_effects(seed: Optional[int] = None, *, calib_seed: Optional[int] = None, scale=1.0,
                     fluence=None, gain=1.0, adc=40.0, readout_noise=0.0, flicker=0.0, calibration=0.03,
                     psf: Optional[str] = None, psf_fwhm=46.0, psf_radius: int = 0, bits: int = 16,
                     noise: bool = True, rng: str = "c") -> DetectorEffects:
    """noisify's detector for :func:`simulate`'s ``detector_effects=``, in noisify's units.

    seed, calib_seed: as typed after ``-seed``/``-calib_seed`` (None: noisify's defaults, the clock
    and its fixed calibration seed); scale: factor to photons (-scale); fluence: photons/m^2 (-fluence;
    None: noisify's default, which makes the input photons per pixel); gain: ADU/photon; adc: offset
    (ADU); readout_noise: ADU (-readout_noise); flicker, calibration: fractions (-flicker,
    -calibration); psf: None, ``gauss`` or ``fiber``; psf_fwhm: um (-psf_fwhm); psf_radius: pixels
    (0: automatic); bits: 16 or 32; noise: False as -nonoise. rng: ``c`` runs noisify's pipeline
    bit for bit (:func:`nanobragg.physics.detector_effects.noisify_c`: C's random numbers, CPU, no
    gradient); ``torch`` the tensor functions (torch's generators seeded from the seeds, any device,
    differentiable where the steps are: ``Simulation.adu``).
    """
    import time

    from .physics.detector_effects import DEFAULT_FLUENCE as NOISIFY_FLUENCE
    if rng not in ("c", "torch"):
        raise ValueError(f"rng: must be 'c' or 'torch', got {rng!r}")
    if psf not in (None, "gauss", "fiber"):
        raise ValueError(f"psf: must be None, 'gauss' or 'fiber', got {psf!r}")
    if bits not in (16, 32) or isinstance(bits, bool):
        raise ValueError(f"bits: must be 16 or 32, got {bits!r}")
    if not isinstance(noise, bool):
        raise TypeError(f"noise: must be True or False, got {noise!r}")
    c_seed = -int(time.time()) if seed is None else -_whole(seed, "seed")
    c_calib = 123456789 if calib_seed is None else -_whole(calib_seed, "calib_seed")
    radius = _whole(psf_radius, "psf_radius", 0)
    if radius > 1 << 20:
        raise ValueError(f"psf_radius: at most 1048576 pixels, got {radius}")
    return DetectorEffects(
        seed=c_seed, calib_seed=c_calib, scale=_number(scale, "scale"),
        fluence=NOISIFY_FLUENCE if fluence is None else _number(fluence, "fluence", positive=True),
        gain=_number(gain, "gain"), adc=_number(adc, "adc"),
        readout_noise=_number(readout_noise, "readout_noise", nonnegative=True),
        flicker=_number(flicker, "flicker", nonnegative=True),
        calibration=_number(calibration, "calibration", nonnegative=True), psf=psf,
        psf_fwhm=float(np.float32(_number(psf_fwhm, "psf_fwhm", nonnegative=True) / 1e6)), psf_radius=radius,
        bits=int(bits), noise=noise, rng=rng)


def _float32_total(sim: Simulation) -> np.ndarray:
    """The float file noisify reads: spots and background each rounded to float32 (their files) and
    added in double, rounded to float32 (float_add); the spots alone without a background."""
    spots = sim.spots.detach().to("cpu", torch.float32).numpy()
    if sim.background is None:
        return spots
    water = sim.background.detach().to("cpu", torch.float32).numpy()
    return (spots.astype(np.float64) + water.astype(np.float64)).astype(np.float32)


def _apply_detector_effects(fx: DetectorEffects, sim: Simulation, res: Resolved) -> None:
    from .physics import detector_effects as de
    pixel = float(res.detector.pixel_size)
    fwhm_pixels = float(np.float64(np.float32(fx.psf_fwhm)) / pixel)
    psf = fx.psf if fx.psf_fwhm > 0 else None
    if fx.rng == "c":
        total = _float32_total(sim)
        batch = total.reshape(-1, *total.shape[-2:])
        ints, noisy = [], []
        for b, one in enumerate(batch):
            out = de.noisify_c(one, seed=fx.seed - b, calib_seed=fx.calib_seed, scale=fx.scale, fluence=fx.fluence,
                               gain=fx.gain, adc_offset=fx.adc, readout=fx.readout_noise,
                               flicker_fraction=fx.flicker, calibration=fx.calibration, psf=psf,
                               psf_fwhm_pixels=fwhm_pixels, psf_radius=fx.psf_radius, bits=fx.bits,
                               calculate_noise=fx.noise, log=lambda *a: None)
            ints.append(out.int16 if fx.bits == 16 else out.int32)
            if fx.noise:
                noisy.append(out.noise16 if fx.bits == 16 else out.noise32)
        shape = total.shape
        sim.int_image = torch.from_numpy(np.stack(ints).astype(np.int64).reshape(shape)).to(sim.device)
        if fx.noise:
            sim.noise_image = torch.from_numpy(np.stack(noisy).astype(np.int64).reshape(shape)).to(sim.device)
        return
    image = sim.image
    batch = image.reshape(-1, *image.shape[-2:])
    ints, noisy, adus = [], [], []
    for b, one in enumerate(batch):
        gen = torch.Generator(device=one.device).manual_seed(-fx.seed + b)
        calib = torch.Generator(device=one.device).manual_seed(abs(fx.calib_seed))
        photons = de.photon_scale(one, fx.scale, fx.fluence)
        if not fx.noise:
            if psf is not None:
                photons = de.apply_psf(photons, psf, fwhm_pixels, fx.psf_radius)
            values, _ = de.adc(photons, fx.gain, fx.adc, fx.bits)
            ints.append(values)
            adus.append(photons * fx.gain + fx.adc)
            continue
        values, _ = de.adc(photons, fx.gain, fx.adc, fx.bits)
        ints.append(values)
        if fx.flicker:
            photons = de.flicker(photons, fx.flicker, generator=gen)
        if fx.calibration:
            photons = de.calibration_error(photons, fx.calibration, generator=calib)
        counts = de.photon_noise(photons, generator=gen)  # Poisson counts: no gradient flows through them
        if psf is not None:
            counts = de.apply_psf(counts, psf, fwhm_pixels, fx.psf_radius)
        adu = counts * fx.gain + fx.adc
        if fx.readout_noise:
            adu = de.read_noise(adu, fx.readout_noise, generator=gen)
        adus.append(adu)
        noisy.append(de.adc(adu, 1.0, 0.0, fx.bits)[0])
    shape = image.shape
    sim.int_image = torch.stack(ints).reshape(shape)
    sim.adu = torch.stack(adus).reshape(shape)
    if fx.noise:
        sim.noise_image = torch.stack(noisy).reshape(shape)
