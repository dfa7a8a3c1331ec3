"""Hand-computed values for the geometry and physics pieces."""
import math

import pytest
import torch

from nanobragg.cli.parser import parse
from nanobragg.geometry.crystal import orient_cell
from nanobragg.geometry.detector import convention_vectors, resolve_detector
from nanobragg.geometry.vectors import rotate_axis, rotate_xyz
from nanobragg.physics.lattice import lattice_factor, sin_pi_half, sinc3, sincg, sincg_frac
from nanobragg.physics.polarization import polarization_factor
from nanobragg.resolve import resolve


def _detector(args):
    s = parse(args.split())
    det = s.experiment.detector
    vecs = convention_vectors(det, s.experiment.beam.beam_vector, s.experiment.beam.polar_vector, None)
    return resolve_detector(det, vecs)


def test_mosflm_pix0_for_centred_beam():
    g = _detector("-pixel 0.1 -distance 100 -Xbeam 51.2 -Ybeam 51.2 -detpixels 1024")
    assert g.pix0.tolist() == pytest.approx([0.1, 0.05125, -0.05125], abs=1e-15)


def test_mosflm_default_beam_center_has_half_pixel_shift():
    g = _detector("-pixel 0.1 -distance 100 -detpixels 128")
    # Xbeam = (detsize + pixel)/2 = 6.45 mm; Fbeam = Ybeam + pixel/2 = 6.5 mm
    assert float(g.beam_x) == pytest.approx(6.45e-3)
    assert float(g.Fbeam) == pytest.approx(6.5e-3)


@pytest.mark.parametrize("args, pivot", [
    ("-distance 100", "beam"),
    ("-close_distance 100 -pivot sample -fdet_vector 0 0 1", "sample"),
    ("-Xclose 5 -Yclose 5 -fdet_vector 0 0 1", "sample"),
    ("-ORGX 10 -ORGY 10 -fdet_vector 0 0 1", "sample"),
    ("-ORGX 10 -ORGY 10 -Xbeam 5 -fdet_vector 0 0 1", "beam"),
    ("-twotheta 5 -distance 100 -fdet_vector 0 0 1", "beam"),
    ("-distance 100 -twotheta 5 -fdet_vector 0 0 1", "sample"),
    ("-pivot sample -fdet_vector 0 0 1", "sample"),
    ("-pivot sample", "beam"),  # MOSFLM imposes the beam pivot, as in C
    ("-xds", "sample"),
    ("-dials", "sample"),
    ("-pivot beam -xds", "sample"),
])
def test_pivot_selection(args, pivot):
    assert _detector(args + " -detpixels 64").pivot == pivot


def test_xds_orgx_defines_near_point():
    g = _detector("-xds -ORGX 40 -ORGY 70 -pixel 0.1 -detpixels 128")
    assert float(g.orgx) == pytest.approx(40.0)
    assert float(g.orgy) == pytest.approx(70.0)


def test_sincg_and_sinc3_limits():
    assert float(sincg(torch.tensor(0.0, dtype=torch.float64), 7)) == 7
    assert float(sinc3(torch.tensor(0.0, dtype=torch.float64))) == 1
    assert float(sincg_frac(torch.tensor(0.0, dtype=torch.float64), 5.0)) == 5
    x = torch.tensor([0.3, 1.7, 2.2], dtype=torch.float64)
    assert sinc3(x).tolist() == pytest.approx((3 * (torch.sin(x) / x - torch.cos(x)) / x**2).tolist())


def test_sincg_from_fraction_equals_c_formula_up_to_sign():
    h = torch.tensor([3.12, -7.4, 12.49, 0.2], dtype=torch.float64)
    frac = h - torch.ceil(h - 0.5)
    ours = sincg_frac(frac, 5.0)
    c = sincg(math.pi * h, 5.0)
    assert ours.tolist() == pytest.approx(c.abs().tolist(), rel=1e-9)


def test_polynomial_sine_is_as_accurate_as_float32_sine():
    """sin_pi_half in float32 against sin(pi r) in float64, over |r| <= 1/2: within 2e-7 relative
    (a float32 torch.sin(pi * r) is within 1.5e-7), exact at 0 and odd."""
    r = torch.linspace(-0.5, 0.5, 100001, dtype=torch.float32)
    exact = torch.sin(math.pi * r.double())
    ours = sin_pi_half(r).double()
    nonzero = exact != 0
    assert float(((ours - exact).abs()[nonzero] / exact.abs()[nonzero]).max()) <= 2e-7
    assert float(sin_pi_half(torch.zeros(1))) == 0
    assert torch.equal(sin_pi_half(-r), -sin_pi_half(r))


@pytest.mark.parametrize("n", [5.0, 37.5, 100.0])
def test_compiled_float32_square_factor_matches_float64_sincg(n):
    """The compiled float32 form (polynomial sines, the numerator's argument reduced by round(N f))
    gives |sincg| of float64 within 3e-7 of its peak N, as the float32 form with torch.sin does
    (1.8e-7), f = 0 and f = +-1/2 included."""
    rng = torch.Generator().manual_seed(3)
    f = (torch.rand(20000, generator=rng, dtype=torch.float64) - 0.5).float()
    f[:4] = torch.tensor([0.0, 0.5, -0.5, 1e-6])
    N = torch.tensor([n, n, n], dtype=torch.float32)
    frac = (f, torch.zeros_like(f), torch.zeros_like(f))
    ours = lattice_factor("square", frac, N, None, 1.0, axes=(True, False, False), compiled=True).double()
    exact = sincg_frac(f.double(), n).abs()
    assert float((ours.abs() - exact).abs().max()) <= 3e-7 * n
    assert float(ours[0]) == n


def test_square_lattice_factor_one_quotient_equals_product_of_quotients():
    """The compiled form (one division for the three axes) gives the product of the three sincg."""
    rng = torch.Generator().manual_seed(2)
    frac = tuple(torch.rand(1000, generator=rng, dtype=torch.float64) - 0.5 for _ in range(3))
    frac[0][:5] = torch.tensor([0.0, 1e-9, -0.003, 0.5, -0.4999])
    N = torch.tensor([5.0, 1.0, 12.0], dtype=torch.float64)
    product = lattice_factor("square", frac, N, None, 1.0)
    quotient = lattice_factor("square", frac, N, None, 1.0, compiled=True)
    assert torch.allclose(product, quotient, rtol=1e-13, atol=0)
    expected = sincg_frac(frac[0], 5.0) * sincg_frac(frac[2], 12.0)  # N = 1 on b: skipped, as in C
    assert torch.equal(product, expected)


def test_rotations_match_c_definitions():
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    # 90 degrees about z takes x to y
    r = rotate_xyz(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), 0.0, 0.0, math.pi / 2)
    assert r.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-15)
    axis = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    assert rotate_axis(v, axis, math.pi / 2).tolist() == pytest.approx([-2.0, 1.0, 3.0])


def test_cubic_cell_vectors():
    cell = orient_cell((100e-10, 100e-10, 100e-10, math.pi / 2, math.pi / 2, math.pi / 2))
    assert cell.a.tolist() == pytest.approx([100e-10, 0, 0], abs=1e-22)
    assert cell.c.tolist() == pytest.approx([0, 0, 100e-10], abs=1e-22)
    assert float(cell.volume) == pytest.approx(1e6)


def test_polarization_unpolarized_and_along_beam():
    inc = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    pol = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    d = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # 2theta = 90 deg
    assert float(polarization_factor(0.0, inc, d, pol)) == pytest.approx(0.5)
    assert float(polarization_factor(0.0, inc, inc, pol)) == pytest.approx(1.0)
    # fully polarized along z: scattering along y (perpendicular to E) keeps full intensity
    assert float(polarization_factor(1.0, inc, d, pol)) == pytest.approx(1.0)


def test_interpolation_is_chosen_before_xtalsize():
    """C decides on interpolation from -N (1 here) before -xtalsize makes the crystal 100 cells wide."""
    import numpy as np

    from nanobragg.io import HKLTable, hkl_grid

    s = parse("-cell 100 100 100 90 90 90 -N 1 -xtalsize 0.001 -detpixels 8".split())
    idx = np.array([(h, k, l) for h in range(-3, 4) for k in range(-3, 4) for l in range(-3, 4)])
    s.experiment.crystal.fgrid = hkl_grid(HKLTable(idx, np.ones(len(idx))))
    res = resolve(s.experiment, seed=-1)
    assert res.N == (100.0, 100.0, 100.0)
    assert res.interpolate
