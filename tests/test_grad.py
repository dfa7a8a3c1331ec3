"""Analytic gradients agree with finite differences (float64 ``gradcheck``) for every parameter.

A 12x12 detector of 0.5 mm pixels at 100 mm, a ~200 Angstrom triclinic cell
and a 6.2 Angstrom beam put a few spots on it. The scalar checked is a fixed
random weighting of the image, normalised to about 1. Every parameter is
given in the user units of :data:`nanobragg.simulator.PARAMETERS`.
"""
from __future__ import annotations

import pytest
import torch

from nanobragg import api
from nanobragg.simulator import read_parameters, with_parameters

F64 = torch.float64


def _structure_factors(half: int = 3) -> api.FGrid:
    """Random F on h, k, l in -half..half."""
    n = 2 * half + 1
    gen = torch.Generator().manual_seed(1)
    return api.structure_factors(50.0 + 100.0 * torch.rand(n, n, n, generator=gen, dtype=F64), (-half,) * 3)


def small_experiment(shape="gauss", convention="mosflm", N=5.0, interpolate=None, pivot="beam") -> api.Experiment:
    """12x12 pixels, oversample 1, rotated detector, misset crystal, polarized beam."""
    xtal = api.crystal(api.unit_cell(200.0, 210.0, 190.0, 88.0, 91.0, 92.0), N=N, shape=shape,
                       misset=(10.0, 20.0, 30.0), structure_factors=_structure_factors(5 if interpolate else 3),
                       default_F=80.0, phi0=5.0, interpolate=interpolate)
    det = api.detector(pixels=12, pixel_size=0.5, distance=100.0, beam_center=(3.1, 2.9),
                       detector_rotation=(1.0, 2.0, 3.0), twotheta=2.0, convention=convention, pivot=pivot)
    return api.experiment(det, api.beam(wavelength=6.2, polarization=0.5), xtal)


def scalar_of(exp: api.Experiment, name: str, unit: float = 1.0):
    """x -> weighted image sum / its value at the start, with ``name`` = x * unit."""
    weights = torch.rand(12, 12, generator=torch.Generator().manual_seed(0), dtype=F64)
    norm = float((api.simulate(exp).image * weights).sum())

    def f(x):
        return (api.simulate(with_parameters(exp, **{name: x * unit})).image * weights).sum() / norm
    return f


def check(exp: api.Experiment, name: str, unit: float = 1.0, fast: bool = False) -> torch.Tensor:
    """gradcheck ``name`` around its value in ``exp``; returns the analytic gradient."""
    x0 = (read_parameters(exp, [name])[name] / unit).requires_grad_()
    f = scalar_of(exp, name, unit)
    assert torch.autograd.gradcheck(f, (x0,), eps=1e-6, atol=1e-7, rtol=1e-4, fast_mode=fast)
    (grad,) = torch.autograd.grad(f(x0), x0)
    assert torch.isfinite(grad).all() and (grad != 0).any()
    return grad


PARAMS = ["cell_lengths", "cell_angles", "misset", "phi0", "distance", "beam_center",
          "detector_rotation", "twotheta", "wavelength", "polarization", "N"]


@pytest.mark.parametrize("name", PARAMS)
def test_gradcheck_parameter(name):
    check(small_experiment(), name)


def test_gradcheck_fluence():
    """Fluence (~1e29 photons/m^2) checked in units of the default fluence, so eps is meaningful."""
    check(small_experiment(), "fluence", unit=api.DEFAULT_FLUENCE)


def test_gradcheck_default_F():
    """Without a grid every reflection takes default_F."""
    exp = small_experiment()
    exp.crystal.fgrid = None
    check(exp, "default_F")


def test_gradcheck_structure_factors():
    """343 grid values: gradcheck's fast mode (a random directional derivative) keeps it quick."""
    grad = check(small_experiment(), "structure_factors", fast=True)
    assert (grad != 0).sum() >= 3  # several reflections on the detector


@pytest.mark.parametrize("shape", ["gauss", "round"])
def test_gradcheck_crystal_size(shape):
    """Na, Nb, Nc as non-integer float tensors, in the two shapes where size is smooth."""
    exp = small_experiment(shape=shape, N=(4.7, 5.2, 6.1))
    grad = check(exp, "N")
    assert (grad != 0).all()


@pytest.mark.parametrize("name", ["distance", "origin", "detector_rotation", "twotheta"])
def test_gradcheck_xds_convention(name):
    """XDS pivots about the sample and places the detector from ORGX/ORGY (Xbeam is ignored, as in C)."""
    check(small_experiment(convention="xds"), name)


@pytest.mark.parametrize("name", ["distance", "beam_center", "detector_rotation", "twotheta"])
def test_gradcheck_custom_sample_pivot(name):
    """Custom convention, sample pivot: the beam centre sets the close point (C's Fclose = Xbeam)."""
    check(small_experiment(convention="custom", pivot="sample"), name)


@pytest.mark.parametrize("name", ["cell_lengths", "misset", "structure_factors"])
def test_gradcheck_tricubic_interpolation(name):
    """With interpolation on, F depends smoothly on fractional hkl and on the grid values."""
    exp = small_experiment(interpolate=True)
    assert api.simulate(exp).resolved.interpolate  # and the grid is wide enough that it stays on
    check(exp, name, fast=name == "structure_factors")


def test_gradcheck_square_shape():
    """The parallelepiped (sincg) shape: cell, orientation and detector together."""
    exp = small_experiment(shape="square")
    for name in ("cell_lengths", "misset", "beam_center", "distance"):
        check(exp, name)
