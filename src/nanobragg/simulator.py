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

from .api import ARGUMENTS, simulate, structure_factors, unit
from .config import checks
from .config.experiment import Experiment
from .geometry.detector import beam_center, pixel_counts
from .physics.shapes import SHAPES
from .units import ANGSTROM, DEG, MM


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
    return beam_center(det, size_f, size_s, torch.float64, None)


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


#: The unit names of nanobragg.units / checks.RULES, spelled out for people.
_SPELLED = {"A": "Angstrom", "deg": "degrees", "": "1", "cells": "unit cells"}


def _from_table(name: str, read=None) -> Parameter:
    """The parameter that is the API argument ``name``: its fields and unit from :data:`api.ARGUMENTS`
    and the fields' rules (a scalar for one field, a (n,) vector for n); ``read`` overrides the reader."""
    section = next(s for s, table in ARGUMENTS.items() if name in table)
    fields = ARGUMENTS[section][name]
    unit_name, factor = unit(f"{section}.{fields[0]}")

    def read_fields(exp):
        values = [getattr(getattr(exp, section), f) for f in fields]
        return _stack(values, factor) if len(fields) > 1 else _f64(values[0]) / factor

    def write(exp, v):
        record = getattr(exp, section)
        for i, f in enumerate(fields):
            setattr(record, f, (v[i] if len(fields) > 1 else v) * factor)
    return Parameter(_SPELLED.get(unit_name, unit_name), read or read_fields, write)


#: Every quantity that may be a parameter, with its unit and accessors. Names and units are the
#: API's (nanobragg.api.ARGUMENTS); the cell is split into lengths and angles.
PARAMETERS: dict[str, Parameter] = {
    "cell_lengths": Parameter("Angstrom", lambda e: _stack(_cell(e)[:3], ANGSTROM),
                              lambda e, v: _set_cell(e, slice(0, 3), tuple(v * ANGSTROM))),
    "cell_angles": Parameter("degrees", lambda e: _stack(_cell(e)[3:], DEG),
                             lambda e, v: _set_cell(e, slice(3, 6), tuple(v * DEG))),
    "misset": Parameter("degrees", _read_misset, lambda e, v: setattr(e.crystal, "misset", v * DEG)),
    "phi0": _from_table("phi0"),
    "N": _from_table("N"),
    "structure_factors": Parameter("electrons", _read_F, _write_F),
    "default_F": _from_table("default_F"),
    "distance": _from_table("distance"),
    "beam_center": _from_table("beam_center", _read_beam_center),
    "origin": _from_table("origin", _read_origin),
    "detector_rotation": _from_table("detector_rotation"),
    "twotheta": _from_table("twotheta"),
    "wavelength": _from_table("wavelength"),
    "fluence": _from_table("fluence"),
    "polarization": _from_table("polarization"),
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
        shape = SHAPES.get(experiment.crystal.shape)
        if "N" in self.names and shape is not None and not shape.n_differentiable:
            smooth = ", ".join(s.name for s in SHAPES.values() if s.n_differentiable)
            raise ValueError(f"N: the {shape.name} shape has no gradient with respect to N; shapes that do: {smooth}")
        for name, value in read_parameters(experiment, self.names).items():
            self.register_parameter(name, nn.Parameter(value.to(dtype=dtype, device=device)))

    def configure(self) -> Experiment:
        """The template with the current parameter values substituted (graph kept)."""
        return with_parameters(self.experiment, **self.current())

    def current(self) -> dict[str, torch.Tensor]:
        """Name -> current value (user units, graph kept); honours torch parametrizations."""
        return {n: getattr(self, n) for n in self.names}

    def forward(self) -> torch.Tensor:
        return simulate(self.configure(), dtype=self.dtype, device=self.device).image

    def values(self) -> dict[str, list]:
        """Current parameter values as plain numbers (user units), for printing."""
        return {n: v.detach().cpu().reshape(-1).tolist() for n, v in self.current().items()}

