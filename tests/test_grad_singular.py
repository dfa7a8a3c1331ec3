"""Gradients at the singular points of the physics: finite, and equal to the true derivative.

sincg(pi h, N) at integer h (0/0), sinc3 at 0 (0/0), zero-length vectors
(unitize), the polarization factor along the beam, and a full render whose
geometry is exactly symmetric (beam on a pixel centre, no misset, 90 degree
cell: Miller indices land exactly on, or within rounding of, integers).
"""
from __future__ import annotations

import math

import pytest
import torch

from nanobragg import api
from nanobragg.geometry import vectors
from nanobragg.physics import lattice
from nanobragg.physics.polarization import polarization_factor
from nanobragg.simulator import read_parameters, with_parameters

F64, F32 = torch.float64, torch.float32


def _grad(fn, x, *args):
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x, *args).sum(), x)
    return g


# --- sincg: the parallelepiped transform at integer h -------------------------------------------

@pytest.mark.parametrize("dtype", [F32, F64])
def test_sincg_at_integer_h(dtype):
    """At f = h - h0 = 0 exactly: value N, d/df = 0 (even function), d/dN = 1."""
    f = torch.zeros(3, dtype=dtype, requires_grad=True)
    n = torch.tensor(5.0, dtype=dtype, requires_grad=True)
    value = lattice.sincg_frac(f, n)
    gf, gn = torch.autograd.grad(value.sum(), (f, n))
    assert torch.equal(value.detach(), torch.full_like(value, 5.0))
    assert torch.equal(gf, torch.zeros_like(gf)) and gn.item() == pytest.approx(3.0)


def _sincg_derivative(f: torch.Tensor, n: float) -> torch.Tensor:
    """d/df sin(N pi f)/sin(pi f), evaluated in float64 by a long series (exact for |f| < 0.01)."""
    x = math.pi * f.double()
    c2, c4 = -(n * n - 1) / 6.0, (n * n - 1) * (3 * n * n - 7) / 360.0
    c6 = -(n * n - 1) * (3 * n ** 4 - 18 * n * n + 31) / 15120.0
    return math.pi * n * (2 * c2 * x + 4 * c4 * x ** 3 + 6 * c6 * x ** 5)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_sincg_near_integer_h(dtype):
    """Within rounding of an integer h (what symmetric geometries produce) the derivative stays right."""
    f = torch.tensor([1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 5e-3], dtype=dtype)
    got = _grad(lattice.sincg_frac, f, 5.0).double()
    want = _sincg_derivative(f, 5.0)
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-6 * 5 * 5 ** 2)


# --- sinc3: the sphere transform at 0 ------------------------------------------------------------

def _sinc3_sq_series(u: torch.Tensor, derivative: bool) -> torch.Tensor:
    """3 (sin x/x - cos x)/x^2 = sum_k>=1 (-1)^(k+1) 6k u^(k-1)/(2k+1)!, u = x^2 (or its d/du)."""
    u = u.double()
    out = torch.zeros_like(u)
    for k in range(1, 12):
        c = (-1) ** (k + 1) * 6 * k / math.factorial(2 * k + 1)
        out = out + (c * (k - 1) * u ** (k - 2) if k >= 2 else 0.0) if derivative else out + c * u ** (k - 1)
    return out


@pytest.mark.parametrize("dtype", [F32, F64])
def test_sinc3_at_zero(dtype):
    """Value 1, d/du = -1/10 at u = 0; sinc3(x) has d/dx = 0 at x = 0."""
    u = torch.zeros(1, dtype=dtype, requires_grad=True)
    value = lattice.sinc3_sq(u)
    (gu,) = torch.autograd.grad(value.sum(), u)
    assert value.item() == 1.0 and gu.item() == pytest.approx(-0.1)
    assert _grad(lattice.sinc3, torch.zeros(1, dtype=dtype)).item() == 0.0


def test_sinc3_float64_derivative():
    u = torch.tensor([1e-9, 5e-5, 9e-5, 1.1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5], dtype=F64)
    assert torch.allclose(_grad(lattice.sinc3_sq, u), _sinc3_sq_series(u, True), rtol=1e-6)


def test_sinc3_float32_derivative():
    u = torch.tensor([1e-9, 5e-5, 9e-5, 1.1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5], dtype=F64)
    got = _grad(lattice.sinc3_sq, u.float()).double()
    assert torch.allclose(got, _sinc3_sq_series(u, True), rtol=1e-3)


# --- zero-length vectors and the polarization factor along the beam -----------------------------

def test_unitize_zero_vector_gradient():
    """unitize(0) = (0, 0); its gradient must be finite (0), also through the polarization factor."""
    u = torch.zeros(3, dtype=F64, requires_grad=True)
    unit, length = vectors.unitize(u)
    (g,) = torch.autograd.grad(unit.sum() + length, u)
    assert torch.isfinite(g).all()
    incident = torch.tensor([0.0, 0.0, 1.0], dtype=F64, requires_grad=True)  # parallel to the E vector
    diffracted = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    p = polarization_factor(torch.tensor(0.5, dtype=F64), incident, diffracted, incident.detach())
    (g,) = torch.autograd.grad(p, incident)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_polarization_along_the_beam(dtype):
    """Diffracted ray along the beam (E = B = 0, C's psi undefined): factor 1, finite gradients."""
    incident = torch.tensor([1.0, 0.0, 0.0], dtype=dtype)
    diffracted = incident.clone().requires_grad_()
    kahn = torch.tensor(0.9, dtype=dtype, requires_grad=True)
    p = polarization_factor(kahn, incident, diffracted, torch.tensor([0.0, 0.0, 1.0], dtype=dtype))
    gd, gk = torch.autograd.grad(p, (diffracted, kahn))
    assert p.item() == pytest.approx(1.0)
    assert torch.isfinite(gd).all() and gk.item() == 0.0  # sin^2(2 theta) = 0 there


# --- a full render with exactly symmetric geometry ----------------------------------------------

def symmetric_experiment(shape: str, phi0: float = 0.0) -> api.Experiment:
    """Beam on the centre of pixel (6, 6), no misset, 90 degree cell: h, k, l hit integers."""
    xtal = api.crystal(api.unit_cell(200.0, 210.0, 190.0), N=5, shape=shape, misset=None,
                       default_F=80.0, phi0=phi0)
    det = api.detector(pixels=12, pixel_size=0.5, distance=100.0, beam_center=(3.0, 3.0))
    return api.experiment(det, api.beam(wavelength=6.2, polarization=0.5), xtal)


def _gradcheck(exp: api.Experiment, name: str) -> bool:
    weights = torch.rand(12, 12, generator=torch.Generator().manual_seed(0), dtype=F64)
    norm = float((api.simulate(exp).image * weights).sum())

    def f(x):
        return (api.simulate(with_parameters(exp, **{name: x})).image * weights).sum() / norm
    x0 = read_parameters(exp, [name])[name].requires_grad_()
    return torch.autograd.gradcheck(f, (x0,), eps=1e-6, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("shape", ["gauss", "round"])
@pytest.mark.parametrize("name", ["misset", "beam_center", "cell_lengths", "N"])
def test_symmetric_geometry(shape, name):
    assert _gradcheck(symmetric_experiment(shape), name)


def test_symmetric_geometry_square_shape():
    """The pixel row through the beam has k within rounding of 0: sincg's derivative there is 0."""
    exp = symmetric_experiment("square")
    assert _gradcheck(exp, "misset") and _gradcheck(exp, "beam_center")


def test_phi0_at_zero():
    """One spindle step at phi0 = 0: the image still depends on phi0 to first order."""
    assert _gradcheck(symmetric_experiment("gauss", phi0=0.0), "phi0")
