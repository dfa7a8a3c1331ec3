"""Every number of a simulation checked once, where it enters: one table of rules.

The rules below check the configuration dataclasses of
:mod:`nanobragg.config.experiment` field by field, in SI units (metres,
radians, photons/m^2), and report in the units people type (mm, Angstrom,
degrees: the units of the command line and of :mod:`nanobragg.api`). Both the
command line and the Python API run them: :func:`nanobragg.resolve.resolve`
calls :func:`check_experiment` before anything is computed, the command line
also calls it as soon as the flags are read, and the file readers use the
same rules for the numbers they read.

An error names where the bad number came from. ``labels`` maps a dotted field
(``"detector.distance"``) to that name: the flag that set it (``-distance``),
the file and header key (``-img x.img, header DISTANCE``) or the API argument
(``distance``); :attr:`Experiment.origins` carries it with the configuration.
Unnamed fields are reported by their dotted path.

Ranges are physical and keep every product the engine forms finite in float32:
lengths of the set-up from 1 nm (pixels, sensors) or 1 um (distances) up to
1 km, cell edges from 0.1 A to 1 mm, wavelengths from 0.001 A to 10000 A,
angles within 100 turns, counts within C's ``int``, structure factors within
1e15, fluence up to 1e40 photons/m^2. Combinations are checked where they are
known: an image whose peak would overflow float32 (or whose sums would
overflow the engine's dtype), a run of more than a day's work, an image or an
F grid that does not fit the memory budget.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import CheckError, CheckTypeError, ConfigError  # noqa: F401 (ConfigError: re-exported)
from ..physics.shapes import SHAPES
from ..units import ANGSTROM, DEG, MM, MRAD, PERCENT, UM

TURNS = 100 * 2 * math.pi  #: largest angle accepted (rad): 100 turns
INT_MAX = 2 ** 31 - 1  #: C's int: the largest count or seed
MAX_F = 1e15  #: largest structure factor (electrons)
MAX_INDEX = 1 << 20  #: largest Miller index in a file
MAX_N = 1e9  #: most unit cells along one axis
MAX_PIXELS = 1e8  #: most pixels along one detector side
MAX_FLUENCE = 1e40  #: photons/m^2
FLOAT32_MAX = float(np.finfo(np.float32).max)
MIN_BUDGET_MB = 16  #: smallest memory budget (MB)
MAX_BUDGET_MB = 1e9  #: largest memory budget (MB, a petabyte)
#: Pixel-steps the engine does in a second, faster than it runs anywhere (CPU ~1e8, large GPU ~1e9).
WORK_RATE = 1e9
MAX_WORK = 86400 * WORK_RATE  #: a day's work in pixel-steps
MAX_STEPS = 10 ** 6  #: most sources, sensor layers, sub-pixels or crystal orientations (set-up loops and tensors)
MB = 1 << 20


# The error types (ConfigError, CheckError, CheckTypeError) live in nanobragg.errors; the rules raise them.


def _g(x: float) -> str:
    """C's %g of a number (inf when it overflowed on the way to the display unit)."""
    return "%g" % x


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Real:
    """A real number (float or 0-d tensor) within [low, high] in SI units.

    ``unset``: sentinel values that mean "not given" (C's -1), accepted as
    they are; ``above``: low itself is excluded; ``unit``/``factor``: how
    the message shows it (value / factor, in ``unit``).
    """

    noun: str
    low: float
    high: float
    unit: str = ""
    factor: float = 1.0
    unset: tuple = ()
    above: bool = False
    integral: bool = False  #: a whole number (cell counts)

    def _show(self, x: float) -> str:
        return f"{_g(float(x) / self.factor)}{' ' + self.unit if self.unit else ''}"

    def allowed(self) -> str:
        low = f"above {self._show(self.low)}" if self.above else f"at least {self._show(self.low)}"
        if 0.0 in self.unset and self.low > 0:
            low = f"0 or {low}"
        return f"{low} and at most {self._show(self.high)}"

    def problem(self, x: float) -> Optional[str]:
        """Why the plain number ``x`` is refused, or None."""
        if x in self.unset:
            return None
        if not math.isfinite(x):
            return f"{self.noun} is not a finite number ({x})"
        if x < self.low or x > self.high or (self.above and x == self.low):
            return f"{self.noun} {self._show(x)} is out of range: must be {self.allowed()}"
        if self.integral and x != math.floor(x):
            return f"{self.noun} {_g(x)} is not a whole number"
        return None

    def good(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise bool tensor: which values of the (detached) tensor ``t`` are accepted (no sync)."""
        t = t.to(torch.float64)
        good = torch.isfinite(t) & (t >= self.low) & (t <= self.high)
        if self.above:
            good = good & (t > self.low)
        if self.integral:
            good = good & (t == torch.floor(t))
        for u in self.unset:
            good = good | (t == u)
        return good


@dataclass(frozen=True)
class Count:
    """A whole number (int, not bool) within [low, high]; ``unset`` values are accepted as "not given"."""

    noun: str
    low: int
    high: int = INT_MAX
    unset: tuple = ()

    def problem(self, x) -> Optional[str]:
        if x in self.unset:
            return None
        if x < self.low or x > self.high:
            return f"{self.noun} {x} is out of range: must be at least {self.low} and at most {self.high}"
        return None


@dataclass(frozen=True)
class Vector:
    """Three finite numbers, each at most ``high`` in size; ``nonzero``: not all (nearly) zero;
    ``unit_length``: of length 1 within 1e-3 (a vector C uses without normalising it)."""

    noun: str
    high: float
    nonzero: bool = True
    unit: str = ""
    unit_length: bool = False

    def problem(self, values) -> Optional[str]:
        if not all(math.isfinite(v) for v in values):
            return f"{self.noun} has a component that is not a finite number"
        if max(abs(v) for v in values) > self.high:
            return f"{self.noun} has a component larger than {_g(self.high)}{' ' + self.unit if self.unit else ''}"
        if self.nonzero and max(abs(v) for v in values) < 1e-30:
            return f"{self.noun} is zero: it must give a direction"
        length = math.sqrt(sum(v * v for v in values))
        if self.unit_length and abs(length - 1.0) > 1e-3:
            return f"{self.noun} has length {_g(length)}: it must be a unit vector (it is used as given)"
        return None


@dataclass(frozen=True)
class Choice:
    noun: str
    options: tuple

    def problem(self, x) -> Optional[str]:
        if x not in self.options:
            return f"{self.noun} {x!r} is not one of {', '.join(self.options)}"
        return None


def _length(noun, low, high=1e3, unit="mm", factor=MM, **kw):
    return Real(noun, low, high, unit, factor, **kw)


def _angle(noun, **kw):
    return Real(noun, -TURNS, TURNS, "deg", DEG, **kw)


def _step(noun, high, unit, factor):
    """A range or step of C's auto-selection: -1 = not given, 0 = none, else at least 1e-12 (SI) so counts
    stay finite."""
    return Real(noun, 1e-12, high, unit, factor, unset=(-1.0, 0.0))


def _steps(noun):
    return Count(noun, 0, INT_MAX, unset=(-1,))


WAVELENGTH = Real("wavelength", 1e-13, 1e-6, "A", ANGSTROM)
CELL_LENGTH = Real("cell length", 1e-11, 1e-3, "A", ANGSTROM)
CELL_ANGLE = Real("cell angle", 0.0, math.pi, "deg", DEG, above=True)
STRUCTURE_FACTOR = Real("structure factor", -MAX_F, MAX_F)
MILLER_INDEX = Real("Miller index", -MAX_INDEX, MAX_INDEX)
SEED = Count("seed", -INT_MAX, INT_MAX)
ANGLE = _angle("angle")
SOURCE_POSITION = Real("source position", -1e30, 1e30, "m")

#: The table: dotted field -> rule. Fields holding None are not given and not checked.
RULES: dict[str, object] = {
    "detector.fpixels": Count("fast pixel count", 1, int(MAX_PIXELS)),
    "detector.spixels": Count("slow pixel count", 1, int(MAX_PIXELS)),
    "detector.pixel_size": _length("pixel size", 1e-9, 1.0),
    "detector.detsize_f": _length("detector size", 1e-9, 1e4),
    "detector.detsize_s": _length("detector size", 1e-9, 1e4),
    "detector.distance": _length("distance", 1e-6),
    "detector.close_distance": _length("close distance", 1e-6),
    "detector.beam_x": _length("beam centre", -1e3),
    "detector.beam_y": _length("beam centre", -1e3),
    "detector.close_x": _length("near point", -1e3),
    "detector.close_y": _length("near point", -1e3),
    "detector.orgx": Real("origin", -1e9, 1e9, "pixels"),
    "detector.orgy": Real("origin", -1e9, 1e9, "pixels"),
    "detector.convention": Choice("convention", ("mosflm", "xds", "adxv", "denzo", "dials", "custom")),
    "detector.pivot": Choice("pivot", ("beam", "sample")),
    "detector.rotx": _angle("detector rotation"),
    "detector.roty": _angle("detector rotation"),
    "detector.rotz": _angle("detector rotation"),
    "detector.twotheta": _angle("two-theta"),
    "detector.twotheta_axis": Vector("two-theta axis", 1e30, unit_length=True),
    "detector.fdet_vector": Vector("fast axis", 1e30),
    "detector.sdet_vector": Vector("slow axis", 1e30),
    "detector.odet_vector": Vector("detector normal", 1e30, nonzero=False),
    "detector.pix0_vector": Vector("pix0 vector", 1e3, nonzero=False, unit="m"),
    "detector.thickness": Real("sensor thickness", 1e-9, 1.0, "um", UM, unset=(0.0,)),
    "detector.attenuation_length": Real("attenuation length", 1e-9, 1e3, "um", UM, unset=(0.0, math.inf)),
    "detector.thicksteps": _steps("sensor layers"),
    "detector.thickstep": _step("sensor layer step", 1.0, "um", UM),
    "beam.wavelength": WAVELENGTH,
    "beam.dispersion": Real("dispersion", 0.0, 1.0, "%", PERCENT),
    "beam.dispsteps": _steps("wavelength steps"),
    "beam.dispstep": _step("dispersion step", 1.0, "%", PERCENT),
    "beam.hdivrange": _step("divergence", math.pi, "mrad", MRAD),
    "beam.vdivrange": _step("divergence", math.pi, "mrad", MRAD),
    "beam.hdivstep": _step("divergence step", math.pi, "mrad", MRAD),
    "beam.vdivstep": _step("divergence step", math.pi, "mrad", MRAD),
    "beam.hdivsteps": _steps("divergence steps"),
    "beam.vdivsteps": _steps("divergence steps"),
    "beam.fluence": Real("fluence", 0.0, MAX_FLUENCE, "photons/m^2", above=True),
    "beam.flux": Real("flux", 0.0, 1e30, "photons/s"),
    "beam.exposure": Real("exposure", 0.0, 1e10, "s"),
    "beam.beamsize": _length("beam size", 1e-9, 10.0),
    "beam.polarization": Real("Kahn polarization factor", -1.0, 1.0),
    "beam.beam_vector": Vector("beam vector", 1e30),
    "beam.polar_vector": Vector("polarization vector", 1e30),
    "crystal.misset_seed": SEED,
    "crystal.mosaic_seed": SEED,
    "crystal.mosaic_spread": Real("mosaic spread", 0.0, math.pi, "deg", DEG, unset=(-1.0,)),
    "crystal.mosaic_domains": _steps("mosaic domains"),
    "crystal.spindle_axis": Vector("spindle axis", 1e30),
    "crystal.Na": Real("unit cell count", 1.0, MAX_N),
    "crystal.Nb": Real("unit cell count", 1.0, MAX_N),
    "crystal.Nc": Real("unit cell count", 1.0, MAX_N),
    "crystal.sample_x": _length("crystal size", 1e-10, 1.0, unset=(0.0,)),
    "crystal.sample_y": _length("crystal size", 1e-10, 1.0, unset=(0.0,)),
    "crystal.sample_z": _length("crystal size", 1e-10, 1.0, unset=(0.0,)),
    "crystal.shape": Choice("crystal shape", tuple(SHAPES)),
    "crystal.fudge": Real("fudge factor", 1e-6, 1e6),
    "crystal.phi0": _angle("spindle angle"),
    "crystal.osc": Real("oscillation range", 0.0, TURNS, "deg", DEG, unset=(-1.0,)),
    "crystal.phistep": _step("spindle step", TURNS, "deg", DEG),
    "crystal.phisteps": _steps("spindle steps"),
    "crystal.default_F": STRUCTURE_FACTOR,
    "crystal.water_size": Real("water thickness", 0.0, 1.0, "um", UM),
    "sampling.oversample": Count("oversample", 1, 1000, unset=(-1,)),
    "sampling.dmin": Real("resolution limit", 0.0, 1e-3, "A", ANGSTROM),
    "output.intfile_scale": Real("int-file scale", 0.0, 1e30),
    "output.pgm_scale": Real("PGM scale", 0.0, 1e30),
    "output.adc": Real("ADC offset", -1e6, 1e6),
    "output.seed": SEED,
    "output.noise_rng": Choice("noise generator", ("c", "torch")),
    "run.max_memory_mb": Real("memory budget", MIN_BUDGET_MB, MAX_BUDGET_MB, "MB"),
}


# ---------------------------------------------------------------- applying a rule


Labels = Callable[[str], str]


def _labeller(labels) -> Labels:
    """A function naming a dotted field: from a dict (unlisted fields by their path), a function, or None."""
    if labels is None:
        return lambda path: path
    if callable(labels):
        return labels
    return lambda path: labels.get(path, path)


def _origin(labels, path: str) -> str:
    """Where a value came from for a sentence: its label, or "the default" when nothing set it."""
    if isinstance(labels, dict) and path not in labels:
        return "the default"
    return _labeller(labels)(path)


def is_number(x) -> bool:
    """A plain real number (Python or numpy; not bool)."""
    return isinstance(x, (numbers.Real, np.floating, np.integer)) and not isinstance(x, (bool, np.bool_))


class _Pending:
    """Tensor checks gathered so that their values are read in one transfer per device."""

    def __init__(self):
        self.items = []  #: (path, label, rule, tensor)

    def add(self, path, label, rule, t):
        self.items.append((path, label, rule, t))

    def run(self):
        by_device: dict = {}
        for item in self.items:
            by_device.setdefault(item[3].device, []).append(item)
        for items in by_device.values():
            if bool(torch.stack([rule.good(t).all() for _, _, rule, t in items]).all()):
                continue
            for path, label, rule, t in items:  # error path: find the culprit
                bad = ~rule.good(t).reshape(-1)
                if bool(bad.any()):
                    value = float(t.reshape(-1)[bad.nonzero()[0, 0]])
                    raise CheckError(f"{label}: {rule.problem(value) or rule.noun + ' is out of range'}", path)
        self.items = []


def _scalar(path, label, rule: Real, x, pending: _Pending):
    """A number checked now, or a 0-d tensor queued in ``pending`` (read later, with the others)."""
    if isinstance(x, torch.Tensor):
        if x.dim() != 0:
            raise CheckTypeError(f"{label}: {rule.noun} must be a number or a 0-d tensor, got shape {tuple(x.shape)}",
                                 path)
        if x.is_complex() or x.dtype == torch.bool:
            raise CheckTypeError(f"{label}: {rule.noun} must be a real number, got a {x.dtype} tensor", path)
        pending.add(path, label, rule, x.detach())
        return
    if not is_number(x):
        raise CheckTypeError(f"{label}: {rule.noun} must be a number, got {type(x).__name__} {x!r}", path)
    problem = rule.problem(float(x))
    if problem:
        raise CheckError(f"{label}: {problem}", path)


def _count(path, label, rule: Count, x):
    """A whole number (int, numpy int or integer 0-d tensor) within the rule's range."""
    if isinstance(x, torch.Tensor) and x.dim() == 0 and not x.is_floating_point():
        x = int(x)
    if not isinstance(x, (numbers.Integral, np.integer)) or isinstance(x, (bool, np.bool_)):
        raise CheckTypeError(f"{label}: {rule.noun} must be a whole number, got {type(x).__name__} {x!r}", path)
    problem = rule.problem(int(x))
    if problem:
        raise CheckError(f"{label}: {problem}", path)


def _numbers(path, label, noun, x, count) -> list:
    """``count`` plain numbers from a sequence, array or tensor (detached); CheckTypeError otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        values = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise CheckTypeError(f"{label}: {noun} must be {count} numbers, got {x!r}", path) from None
    if values.size != count or isinstance(x, str):
        raise CheckTypeError(f"{label}: {noun} must be {count} numbers, got {values.size}", path)
    return [float(v) for v in values]


def check_value(path: str, value, labels=None, pending: Optional[_Pending] = None) -> None:
    """Check one field (dotted ``path``) against its rule; None is "not given" and passes."""
    if value is None:
        return
    rule, label = RULES[path], _labeller(labels)(path)
    own = pending is None
    pending = pending or _Pending()
    if isinstance(rule, Real):
        _scalar(path, label, rule, value, pending)
    elif isinstance(rule, Count):
        _count(path, label, rule, value)
    elif isinstance(rule, Vector):
        problem = rule.problem(_numbers(path, label, rule.noun, value, 3))
        if problem:
            raise CheckError(f"{label}: {problem}", path)
    elif isinstance(rule, Choice):
        problem = rule.problem(value)
        if problem:
            raise CheckError(f"{label}: {problem}", path)
    if own:
        pending.run()


# ---------------------------------------------------------------- composite fields


def _check_cell(cell, label, pending):
    """Six numbers: edges in range, angles strictly between 0 and 180 degrees (values queued in ``pending``)."""
    path = "crystal.cell"
    if not isinstance(cell, (tuple, list)) or len(cell) != 6:
        raise CheckTypeError(f"{label}: the cell must be 6 numbers (a, b, c, alpha, beta, gamma)", path)
    for i, x in enumerate(cell):
        _scalar(path, label, CELL_LENGTH if i < 3 else CELL_ANGLE, x, pending)


def _check_cell_volume(cell, label):
    """The angles must give a cell of non-zero volume (checked once the angles are known to be numbers)."""
    al, be, ga = (_num(x) for x in cell[3:])
    s = (al + be + ga) / 2
    skew = abs(math.sin(s) * math.sin(s - al) * math.sin(s - be) * math.sin(s - ga))
    if skew < 1e-12:
        raise CheckError(f"{label}: the cell angles {_g(al / DEG)} {_g(be / DEG)} {_g(ga / DEG)} deg "
                         "give no volume", "crystal.cell")


def check_cell(cell, names) -> None:
    """A cell 6-tuple (m, rad) whose entries are named one by one (the API's a, b, c, alpha, beta, gamma)."""
    pending = _Pending()
    for i, (x, name) in enumerate(zip(cell, names)):
        _scalar("crystal.cell", name, CELL_LENGTH if i < 3 else CELL_ANGLE, x, pending)
    pending.run()
    _check_cell_volume(cell, ", ".join(names[3:]))


def _check_matrix(matrix, wavelength, label):
    """A MOSFLM A matrix: 9 finite numbers, not singular, its cell edges (at this wavelength) in range."""
    path = "crystal.matrix"
    m = np.asarray(_numbers(path, label, "the orientation matrix", matrix, 9)).reshape(3, 3)
    if not np.isfinite(m).all():
        raise CheckError(f"{label}: the orientation matrix has entries that are not finite numbers", path)
    if np.abs(m).max() > 1e6:
        raise CheckError(f"{label}: the orientation matrix has an entry larger than 1e6 "
                         f"({_g(np.abs(m).max())}; entries are wavelength / cell edge)", path)
    lam = float(wavelength.detach()) if isinstance(wavelength, torch.Tensor) else float(wavelength)
    recip = m / (lam / ANGSTROM)  # columns a*, b*, c* in 1/A
    scale = np.abs(recip).max()
    if scale == 0 or abs(np.linalg.det(recip / scale)) < 1e-9:
        raise CheckError(f"{label}: the orientation matrix is singular (its reciprocal vectors give no volume)", path)
    volume = 1.0 / abs(np.linalg.det(recip))
    a, b, c = recip[:, 0], recip[:, 1], recip[:, 2]
    for edge in (np.linalg.norm(np.cross(b, c)), np.linalg.norm(np.cross(c, a)), np.linalg.norm(np.cross(a, b))):
        problem = CELL_LENGTH.problem(edge * volume * ANGSTROM)
        if problem:
            raise CheckError(f"{label}: the orientation matrix gives a {problem}", path)


def _check_misset(misset, label, pending):
    path = "crystal.misset"
    if isinstance(misset, str):
        if misset != "random":
            raise CheckError(f"{label}: misset must be three angles or 'random', got {misset!r}", path)
        return
    if isinstance(misset, torch.Tensor):
        if misset.dim() not in (1, 2) or misset.shape[-1] != 3 or misset.numel() == 0:
            raise CheckTypeError(f"{label}: misset must have shape (3,) or (B, 3), got {tuple(misset.shape)}", path)
        pending.add(path, label, ANGLE, misset.detach())
        return
    if not isinstance(misset, (tuple, list)) or len(misset) != 3:
        raise CheckTypeError(f"{label}: misset must be three angles (x, y, z rotations)", path)
    for x in misset:
        _scalar(path, label, ANGLE, x, pending)


def _check_roi(roi, label):
    path = "detector.roi"
    if not isinstance(roi, (tuple, list)) or len(roi) != 4:
        raise CheckTypeError(f"{label}: the ROI must be 4 whole numbers (xmin xmax ymin ymax)", path)
    for x in roi:
        _count(path, label, Count("ROI bound", 0), x)
    xmin, xmax, ymin, ymax = roi
    if xmin > xmax or ymin > ymax:
        raise CheckError(f"{label}: minimum exceeds maximum", path)


def _check_sources(table, label):
    """Source table (n, 5) X Y Z I lambda; NaN = C's default, otherwise finite positions and wavelengths in range."""
    path = "beam.sources"
    t = np.asarray(table.detach().cpu() if isinstance(table, torch.Tensor) else table, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != 5:
        raise CheckTypeError(f"{label}: sources must be an (n, 5) table of X Y Z I lambda", path)
    pos, lam = t[:, :3], t[:, 4]
    with np.errstate(invalid="ignore"):
        bad_pos = ~np.isnan(pos) & ~(np.abs(pos) <= SOURCE_POSITION.high)
        bad_lam = ~np.isnan(lam) & ~((lam >= WAVELENGTH.low) & (lam <= WAVELENGTH.high))
        zero = ~np.isnan(pos).any(axis=1) & (np.abs(pos).max(axis=1) < 1e-30)
    for rows, what in ((bad_pos.any(axis=1), "position"), (bad_lam, "wavelength"), (zero, "zero")):
        if rows.any():
            row = int(np.nonzero(rows)[0][0])
            if what == "position":
                v = pos[row][bad_pos[row]][0]
                problem = SOURCE_POSITION.problem(v)
            elif what == "wavelength":
                problem = WAVELENGTH.problem(lam[row])
            else:
                problem = "position is zero: it must give a direction"
            raise CheckError(f"{label}: source {row + 1}: {problem}", path)


def _check_fgrid(fgrid, label, pending):
    path = "crystal.fgrid"
    grid = getattr(fgrid, "grid", None)
    if grid is None or not hasattr(fgrid, "bounds"):
        raise CheckTypeError(f"{label}: structure factors must be an FGrid (see nanobragg.api.structure_factors)",
                             path)
    if grid.ndim != 3:
        raise CheckTypeError(f"{label}: the structure-factor grid must be 3-d, got shape {tuple(grid.shape)}", path)
    expected = tuple(int(r) + 1 for r in fgrid.ranges)
    if tuple(grid.shape) != expected:
        raise CheckTypeError(f"{label}: the grid's shape {tuple(grid.shape)} does not match its index bounds "
                             f"{fgrid.bounds} (expected {expected}, C's padding plane included)", path)
    t = grid.detach() if isinstance(grid, torch.Tensor) else torch.from_numpy(np.asarray(grid))
    if t.is_complex() or t.dtype == torch.bool:
        raise CheckTypeError(f"{label}: structure factors must be real numbers, got {t.dtype}", path)
    pending.add(path, label, STRUCTURE_FACTOR, t)


def check_structure_factors(fgrid, label: str = "F") -> None:
    """An FGrid's values: finite, at most 1e15 in size (one transfer for a tensor grid)."""
    pending = _Pending()
    _check_fgrid(fgrid, label, pending)
    pending.run()


def _check_umats(umats, label):
    path = "crystal.mosaic_umats"
    u = np.asarray(umats.detach().cpu() if isinstance(umats, torch.Tensor) else umats, dtype=np.float64)
    if u.ndim != 3 or u.shape[1:] != (3, 3) or len(u) == 0:
        raise CheckTypeError(f"{label}: mosaic_umats must have shape (domains, 3, 3)", path)
    if not np.isfinite(u).all() or np.abs(u).max() > 1e3:
        raise CheckError(f"{label}: mosaic_umats must be finite rotation matrices", path)


# ---------------------------------------------------------------- whole configurations


SECTIONS = ("detector", "beam", "crystal", "sampling")


def _queue_section(name: str, config, label: Labels, pending: _Pending) -> None:
    """Check the fields of one record by :data:`RULES` and the composite ones; tensor values are queued."""
    prefix = name + "."
    optional = {f.name for f in dataclasses.fields(config) if f.default is None}
    for path in RULES:
        if path.startswith(prefix):
            field = path[len(prefix):]
            value = getattr(config, field)
            if value is None and field not in optional:
                raise CheckTypeError(f"{label(path)}: {RULES[path].noun} must be given (got None)", path)
            check_value(path, value, label, pending)
    if name == "detector" and config.roi is not None:
        _check_roi(config.roi, label("detector.roi"))
    if name == "beam" and config.sources is not None:
        _check_sources(config.sources, label("beam.sources"))
    if name == "crystal":
        if config.cell is not None:
            _check_cell(config.cell, label("crystal.cell"), pending)
        if config.misset is not None:
            _check_misset(config.misset, label("crystal.misset"), pending)
        if config.fgrid is not None:
            _check_fgrid(config.fgrid, label("crystal.fgrid"), pending)
        if config.mosaic_umats is not None:
            _check_umats(config.mosaic_umats, label("crystal.mosaic_umats"))


def _after_values(name: str, config, label: Labels, experiment=None) -> None:
    """Checks that combine values already known to be in range: cell volume, the matrix at its wavelength."""
    if name != "crystal":
        return
    if config.cell is not None:
        _check_cell_volume(config.cell, label("crystal.cell"))
    if config.matrix is not None and experiment is not None:
        _check_matrix(config.matrix, experiment.beam.wavelength, label("crystal.matrix"))


def check_section(name: str, config, labels=None, experiment=None) -> None:
    """Check every field of one configuration record (``detector``, ``beam``, ``crystal``, ``sampling``,
    ``output`` or ``run``) against :data:`RULES`; composite fields (cell, matrix, misset, ROI, sources,
    F grid) by their own functions. ``experiment`` gives the wavelength a matrix is checked with.
    Tensor values are read in one transfer."""
    label, pending = _labeller(labels), _Pending()
    _queue_section(name, config, label, pending)
    pending.run()
    _after_values(name, config, label, experiment)


def check_experiment(exp, labels=None) -> None:
    """Check every field of an :class:`~nanobragg.config.Experiment`; labels default to ``exp.origins``.

    All tensor values are read in one transfer per device (no sync per value).
    """
    label = _labeller(labels if labels is not None else getattr(exp, "origins", None))
    pending = _Pending()
    for name in SECTIONS:
        _queue_section(name, getattr(exp, name), label, pending)
    pending.run()
    for name in SECTIONS:
        _after_values(name, getattr(exp, name), label, exp)
    _check_inside_detector(exp, label)


def _check_inside_detector(exp, labels):
    """The ROI must hold a detector pixel (whole-detector ROIs may reach beyond it, as in C); a mask
    must have the detector's pixel counts."""
    from ..geometry.detector import pixel_counts

    det = exp.detector
    if det.roi is None and det.mask is None:
        return
    fpixels, spixels, _, _ = pixel_counts(det)
    if det.roi is not None and (det.roi[0] >= fpixels or det.roi[2] >= spixels):
        raise CheckError(f"{labels('detector.roi')}: the ROI starts outside the "
                         f"{fpixels}x{spixels} detector", "detector.roi")
    if det.mask is not None:
        shape = np.shape(det.mask)
        if len(shape) != 2 or shape != (spixels, fpixels):
            size = "x".join(str(n) for n in shape[::-1])
            raise CheckError(f"{labels('detector.mask')}: mask has {size} pixels, the detector "
                             f"{fpixels}x{spixels}", "detector.mask")


def check_pixel(path: str, value, fpixels: int, spixels: int, labels=None, slow_first=False) -> None:
    """A pixel (fast, slow), or (slow, fast) with ``slow_first``, must lie on the detector."""
    if value is None:
        return
    label = _labeller(labels)(path)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise CheckTypeError(f"{label}: a pixel is two whole numbers", path)
    for x in value:
        _count(path, label, Count("pixel index", -INT_MAX), x)
    s, f = value if slow_first else value[::-1]
    if not (0 <= f < fpixels and 0 <= s < spixels):
        raise CheckError(f"{label}: pixel ({value[0]}, {value[1]}) is outside the {fpixels}x{spixels} detector", path)


# ---------------------------------------------------------------- sizes of a run


def physical_memory() -> int:
    """Bytes of memory of this machine (8 GiB when it cannot be told)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_budget(budget_bytes, label: str = "budget") -> int:
    """A memory budget in bytes: None is the engine's default; otherwise at least 16 MB and at most
    this machine's memory."""
    from ..engine.chunks import default_budget_bytes

    if budget_bytes is None:
        return default_budget_bytes()
    if not isinstance(budget_bytes, (numbers.Integral, np.integer)) or isinstance(budget_bytes, bool):
        raise CheckTypeError(f"{label}: the memory budget must be a whole number of bytes, got {budget_bytes!r}")
    if budget_bytes < MIN_BUDGET_MB * MB:
        raise CheckError(f"{label}: a memory budget of {budget_bytes} bytes is below the minimum of "
                         f"{MIN_BUDGET_MB} MB")
    if budget_bytes > physical_memory():
        raise CheckError(f"{label}: a memory budget of {_mb(budget_bytes)} is more than this machine's "
                         f"{_mb(physical_memory())}")
    return int(budget_bytes)


def _mb(nbytes: float) -> str:
    return f"{nbytes / MB:.4g} MB"


def check_memory(exp, itemsize: int, budget: int, labels=None, budget_label="memory budget", batch: int = 1,
                 whole_image: bool = True) -> None:
    """One pixel's sums over every crystal orientation (phi steps x mosaic domains), and with
    ``whole_image`` the image itself (``batch`` x spixels x fpixels of ``itemsize`` bytes, as the API
    returns it; the command line writes it in bands), must fit ``budget`` bytes."""
    from ..engine.chunks import ELEMENT_FACTOR
    from ..geometry import steps as auto
    from ..geometry.detector import pixel_counts

    label = _labeller(labels if labels is not None else getattr(exp, "origins", None))
    fpixels, spixels, _, _ = pixel_counts(exp.detector)
    image = float(batch) * fpixels * spixels * itemsize
    if whole_image and image > budget:
        who = "detector.fpixels" if exp.detector.fpixels else "detector.detsize_f"
        raise CheckError(f"{label(who)}: a {fpixels}x{spixels} image ({_mb(image)}) does not fit the "
                         f"{budget_label} of {_mb(budget)}", who)
    xtal = exp.crystal
    phisteps = auto.phi_steps(xtal.phisteps, _num(xtal.osc), _num(xtal.phistep))[0]
    domains = auto.mosaic_steps(xtal.mosaic_domains, xtal.mosaic_spread)[0]
    if xtal.mosaic_umats is not None:
        domains = len(xtal.mosaic_umats)
    per_pixel = float(phisteps) * domains * itemsize * ELEMENT_FACTOR * batch
    if per_pixel > budget:
        who = "crystal.mosaic_domains" if domains > phisteps else "crystal.phisteps"
        raise CheckError(f"{label(who)}: {phisteps} spindle steps x {domains} mosaic domains need "
                         f"{_mb(per_pixel)} per pixel, more than the {budget_label} of {_mb(budget)}", who)


def _num(x) -> float:
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


@dataclass
class RunSize:
    """The counts and peak factors of a run, known before its big tensors are built."""

    pixels: int  #: pixels rendered (inside the ROI)
    oversample: int
    auto_oversample: bool  #: chosen by C's rule from the crystal size
    layers: int
    sources: int
    phisteps: int
    domains: int
    cells: float  #: Na * Nb * Nc
    size_from: str  #: the field the crystal size comes from (a sample size, else crystal.Na)
    F_max: float  #: largest |F| (grid and default)
    F_from: str  #: the field it comes from (crystal.fgrid or crystal.default_F)
    fluence: float
    fluence_from: str  #: beam.fluence, or beam.flux when the fluence is flux x exposure / beamsize^2
    photons_per_F2: float  #: r_e^2 fluence: photons per unit of F^2 F_latt^2 omega (m^2 x photons/m^2)
    I_bg: float  #: water background per step
    omega_max: float  #: largest solid angle of a pixel: pixel^2 / (nearest distance)^2, 1/distance^2 for point pixels
    omega_every_step: bool  #: -oversample_omega: C multiplies the running sum by omega at every step

    @property
    def work(self) -> float:
        return (float(self.pixels) * self.oversample ** 2 * self.layers * self.sources
                * self.phisteps * self.domains)


def check_dtype(dtype, label: str = "dtype") -> None:
    """The engine computes in float32 or float64."""
    if dtype not in (torch.float32, torch.float64):
        raise CheckTypeError(f"{label}: must be torch.float32 or torch.float64, got {dtype!r}")


def _check_steps(size: RunSize, label: Labels) -> None:
    """Each sampled axis is built in set-up loops and tensors: at most :data:`MAX_STEPS` entries."""
    axes = (("sources", size.sources, "beam.sources" if size.sources else "beam.hdivsteps"),
            ("sensor layers", size.layers, "detector.thicksteps"),
            ("sub-pixels", size.oversample ** 2, "sampling.oversample"),
            ("crystal orientations (spindle steps x mosaic domains)", size.phisteps * size.domains,
             "crystal.mosaic_domains" if size.domains > size.phisteps else "crystal.phisteps"))
    for what, count, path in axes:
        if count <= MAX_STEPS:
            continue
        if path == "sampling.oversample" and size.auto_oversample:
            raise CheckError(f"{label(size.size_from)}: the automatic oversample {size.oversample} (3 x crystal size "
                             f"/ reflection width) makes {count} sub-pixels per pixel, more than {MAX_STEPS}; "
                             "set the oversample", size.size_from)
        raise CheckError(f"{label(path)}: {count} {what}: more than {MAX_STEPS}", path)


def check_size(size: RunSize, dtype, labels=None) -> None:
    """Refuse a run of more than a day's work, or whose sums or peak pixel would overflow.

    A pixel sums, over its ``steps`` sub-steps, at most I_bg + steps |F|max^2 (Na Nb Nc)^2
    (every shape's lattice factor is at most Na Nb Nc; polarization and capture
    fraction at most 1), times omega_max^steps when -oversample_omega multiplies
    the running sum at every step; this must stay below the largest number of
    ``dtype``, and the pixel, r_e^2 fluence / steps times it (times omega_max),
    below float32's (the float file is float32).
    """
    label = _labeller(labels)
    _check_steps(size, label)
    if not size.fluence <= MAX_FLUENCE:
        raise CheckError(f"{label(size.fluence_from)}: the fluence (flux x exposure / beamsize^2) would be "
                         f"{_g(size.fluence)} photons/m^2, more than {_g(MAX_FLUENCE)}", size.fluence_from)
    if size.work > MAX_WORK:
        parts = (f"{size.pixels} pixels x {size.oversample}^2 sub-pixels x {size.layers} layers x "
                 f"{size.sources} sources x {size.phisteps} spindle steps x {size.domains} mosaic domains")
        auto = (f"{label(size.size_from)}: the automatic oversample {size.oversample} (from the crystal size) "
                "makes " if size.auto_oversample else "")
        raise CheckError(f"{auto}{_g(size.work)} pixel-steps ({parts}): more than a day's work "
                         f"at {_g(WORK_RATE)} per second")
    steps = float(size.oversample ** 2 * size.layers * size.sources * size.phisteps * size.domains)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        per_step = np.float64(size.F_max) ** 2 * np.float64(size.cells) ** 2
        # log10 of the bound on the running sum: C multiplies it by omega at every step under -oversample_omega
        log_sum = np.log10(np.float64(size.I_bg) + steps * per_step)
        if size.omega_every_step:
            log_sum += steps * max(0.0, np.log10(size.omega_max))
        final_omega = 0.0 if size.omega_every_step else np.log10(size.omega_max)
        log_peak = np.log10(size.photons_per_F2 / steps) + log_sum + final_omega
    limit = float(torch.finfo(dtype).max)
    if not np.isnan(log_sum) and log_sum < math.log10(limit) and log_peak < math.log10(FLOAT32_MAX):
        return
    if log_sum < math.log10(limit):
        what = f"the peak pixel could reach 1e{log_peak:.0f} photons, beyond float32's {_g(FLOAT32_MAX)}"
    else:
        what = f"the sums over {_g(steps)} steps would exceed {str(dtype)[6:]}'s largest number"
    if size.omega_every_step and size.omega_max > 1:
        what += f" (-oversample_omega multiplies them by omega up to {_g(size.omega_max)} at every step)"
    raise CheckError(f"intensities overflow: {what} (|F| up to {_g(size.F_max)} from "
                     f"{_origin(labels, size.F_from)}, {_g(size.cells)} unit cells from "
                     f"{_origin(labels, size.size_from)}, "
                     f"fluence {_g(size.fluence)} photons/m^2 from {_origin(labels, size.fluence_from)})")

