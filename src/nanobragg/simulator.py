"""A ``torch.nn.Module`` around :func:`nanobragg.api.simulate`, for fitting.

Functional core: :func:`with_parameters` returns a copy of an
:class:`~nanobragg.config.Experiment` with named quantities replaced by
tensors, and :func:`nanobragg.api.simulate` renders it. :class:`Simulator`
only holds those quantities as ``nn.Parameter`` objects, in the units
listed in :data:`PARAMETERS` (Angstrom, mm, degrees: numbers of order one
to a hundred, which suits optimizers better than metres and radians), and
its ``forward()`` renders.

Parameters (name: shape, unit, configuration field):

=====================  ==============  ===========  =========================================
name                   shape           unit         field
=====================  ==============  ===========  =========================================
cell_lengths           (3,)            Angstrom     crystal.cell[0:3]  (a, b, c)
cell_angles            (3,)            degrees      crystal.cell[3:6]  (alpha, beta, gamma)
misset                 (3,) or (B, 3)  degrees      crystal.misset (x, y, z rotations)
phi0                   ()              degrees      crystal.phi0 (spindle start angle)
N                      (3,)            unit cells   crystal.Na, Nb, Nc (gauss/round shapes)
structure_factors      (nh, nk, nl)    electrons    crystal.fgrid.grid without C's padding
default_F              ()              electrons    crystal.default_F
distance               ()              mm           detector.distance
beam_center            (2,)            mm           detector.beam_x, beam_y (Xbeam, Ybeam)
origin                 (2,)            pixels       detector.orgx, orgy (XDS ORGX, ORGY)
detector_rotation      (3,)            degrees      detector.rotx, roty, rotz
twotheta               ()              degrees      detector.twotheta
wavelength             ()              Angstrom     beam.wavelength
fluence                ()              photons/m^2  beam.fluence
polarization           ()              1            beam.polarization (Kahn factor)
=====================  ==============  ===========  =========================================

With ``misset`` of shape (B, 3) the image is (B, spixels, fpixels).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from .api import ANGSTROM, DEG, MM, simulate, structure_factors
from .config import checks
from .config.experiment import Experiment
from .geometry.detector import beam_centre, pixel_counts


@dataclass(frozen=True)
class Parameter:
    """How one named quantity is read from and written into an Experiment (user units)."""

    unit: str
    read: Callable[[Experiment], torch.Tensor]  #: current value, float64 tensor, user units
    write: Callable[[Experiment, torch.Tensor], None]  #: set it on a (copied) experiment


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def _stack(values, factor) -> torch.Tensor:
    return torch.stack([_f64(v) for v in values]) / factor


def _cell(exp: Experiment):
    if exp.crystal.cell is None:
        raise ValueError("cell parameters need crystal.cell (a cell given as a matrix is not supported)")
    return tuple(exp.crystal.cell)


def _set_cell(exp: Experiment, part: slice, values: tuple):
    cell = list(_cell(exp))
    cell[part] = values
    exp.crystal.cell = tuple(cell)


def _read_misset(exp: Experiment) -> torch.Tensor:
    m = exp.crystal.misset
    if isinstance(m, str):
        raise ValueError("misset 'random' cannot be a parameter: give the angles")
    return torch.zeros(3, dtype=torch.float64) if m is None else _f64(m) / DEG


def _centre(exp: Experiment) -> dict:
    """C's beam centre and close point (metres) for the detector as configured."""
    det = exp.detector
    _, _, size_f, size_s = pixel_counts(det)
    return beam_centre(det, size_f, size_s, torch.float64, None)


def _read_beam_center(exp: Experiment) -> torch.Tensor:
    centre = _centre(exp)
    return _stack((centre["beam_x"], centre["beam_y"]), MM)


def _read_origin(exp: Experiment) -> torch.Tensor:
    """ORGX, ORGY (pixels): Fclose/pixel + 1/2 as C derives it before placing the detector."""
    centre = _centre(exp)
    return _stack((centre["Fclose"], centre["Sclose"]), _f64(exp.detector.pixel_size)) + 0.5


def _read_F(exp: Experiment) -> torch.Tensor:
    g = exp.crystal.fgrid
    if g is None:
        raise ValueError("structure_factors needs crystal.fgrid (see nanobragg.api.structure_factors)")
    return _f64(g.grid)[:-1, :-1, :-1]


def _write_F(exp: Experiment, v: torch.Tensor):
    g = exp.crystal.fgrid
    exp.crystal.fgrid = structure_factors(v, (g.h_min, g.k_min, g.l_min))


def _scalar(section: str, name: str, factor: float, unit: str) -> Parameter:
    def read(exp):
        return _f64(getattr(getattr(exp, section), name)) / factor

    def write(exp, v):
        setattr(getattr(exp, section), name, v * factor)
    return Parameter(unit, read, write)


def _vector(section: str, names: tuple, factor: float, unit: str, read=None) -> Parameter:
    """A (len(names),) parameter spread over several fields; ``read`` overrides the default reader."""
    def read_fields(exp):
        return _stack([getattr(getattr(exp, section), n) for n in names], factor)

    def write(exp, v):
        for i, n in enumerate(names):
            setattr(getattr(exp, section), n, v[i] * factor)
    return Parameter(unit, read or read_fields, write)


#: Every quantity that may be a parameter, with its unit and accessors.
PARAMETERS: dict[str, Parameter] = {
    "cell_lengths": Parameter("Angstrom", lambda e: _stack(_cell(e)[:3], ANGSTROM),
                              lambda e, v: _set_cell(e, slice(0, 3), tuple(v * ANGSTROM))),
    "cell_angles": Parameter("degrees", lambda e: _stack(_cell(e)[3:], DEG),
                             lambda e, v: _set_cell(e, slice(3, 6), tuple(v * DEG))),
    "misset": Parameter("degrees", _read_misset, lambda e, v: setattr(e.crystal, "misset", v * DEG)),
    "phi0": _scalar("crystal", "phi0", DEG, "degrees"),
    "N": _vector("crystal", ("Na", "Nb", "Nc"), 1.0, "unit cells"),
    "structure_factors": Parameter("electrons", _read_F, _write_F),
    "default_F": _scalar("crystal", "default_F", 1.0, "electrons"),
    "distance": _scalar("detector", "distance", MM, "mm"),
    "beam_center": _vector("detector", ("beam_x", "beam_y"), MM, "mm", _read_beam_center),
    "origin": _vector("detector", ("orgx", "orgy"), 1.0, "pixels", _read_origin),
    "detector_rotation": _vector("detector", ("rotx", "roty", "rotz"), DEG, "degrees"),
    "twotheta": _scalar("detector", "twotheta", DEG, "degrees"),
    "wavelength": _scalar("beam", "wavelength", ANGSTROM, "Angstrom"),
    "fluence": _scalar("beam", "fluence", 1.0, "photons/m^2"),
    "polarization": _scalar("beam", "polarization", 1.0, "1"),
}


class UnknownParameter(KeyError, ValueError):
    """A parameter name not in :data:`PARAMETERS` (a ValueError, and a KeyError as a lookup)."""


def copy_experiment(exp: Experiment) -> Experiment:
    """Shallow copy with its own detector, beam, crystal and sampling records."""
    return replace(exp, detector=replace(exp.detector), beam=replace(exp.beam),
                   crystal=replace(exp.crystal), sampling=replace(exp.sampling))


def _parameter(name: str) -> Parameter:
    """The entry of :data:`PARAMETERS`; UnknownParameter (a ValueError) naming the known ones otherwise."""
    if name not in PARAMETERS:
        raise UnknownParameter(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
    return PARAMETERS[name]


def read_parameters(exp: Experiment, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """Current values (float64 tensors, user units of :data:`PARAMETERS`) of the named quantities."""
    return {n: _parameter(n).read(exp).detach().clone() for n in names}


def with_parameters(exp: Experiment, **values: torch.Tensor) -> Experiment:
    """Copy of ``exp`` with the named quantities (user units) replaced; tensors keep their graph."""
    out = copy_experiment(exp)
    for name, value in values.items():
        _parameter(name).write(out, value)
    return out


class Simulator(nn.Module):
    """Holds chosen quantities of an experiment as parameters; ``forward()`` renders.

    experiment: the template (not modified). parameters: names from
    :data:`PARAMETERS`, initialised from the template. dtype/device: engine
    precision and device (parameters are created with the same dtype).
    ``forward()`` returns (spixels, fpixels) photons per pixel, or
    (B, spixels, fpixels) with a (B, 3) misset parameter.
    """

    def __init__(self, experiment: Experiment, parameters: Iterable[str] = (), dtype=torch.float64,
                 device: Optional[torch.device] = None):
        super().__init__()
        if not isinstance(experiment, Experiment):
            raise TypeError(f"experiment: must be an Experiment, got {type(experiment).__name__}")
        checks.check_dtype(dtype)
        self.experiment, self.dtype, self.device = experiment, dtype, device
        self.names = tuple(parameters)
        for name, value in read_parameters(experiment, self.names).items():
            self.register_parameter(name, nn.Parameter(value.to(dtype=dtype, device=device)))

    def configure(self) -> Experiment:
        """The template with the current parameter values substituted (graph kept)."""
        return with_parameters(self.experiment, **self.current())

    def current(self) -> dict[str, torch.Tensor]:
        """Name -> current value (user units, graph kept); honours torch parametrizations."""
        return {n: getattr(self, n) for n in self.names}

    def forward(self) -> torch.Tensor:
        return simulate(self.configure(), dtype=self.dtype, device=self.device)

    def values(self) -> dict[str, list]:
        """Current parameter values as plain numbers (user units), for printing."""
        return {n: v.detach().cpu().reshape(-1).tolist() for n, v in self.current().items()}

