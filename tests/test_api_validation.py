"""The Python API refuses misuse with ValueError/TypeError naming the argument (shared rules)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nanobragg import api
from nanobragg.config import checks
from nanobragg.simulator import Simulator, with_parameters


def _exp(**kw):
    cell = kw.pop("cell", None) or api.unit_cell(100, 100, 100)
    xtal = api.crystal(cell, N=kw.pop("N", 3), default_F=kw.pop("default_F", 100.0), shape=kw.pop("shape", "gauss"),
                       misset=kw.pop("misset", None))
    det = api.detector(pixels=kw.pop("pixels", 12), pixel_size=0.5, distance=kw.pop("distance", 100.0),
                       convention=kw.pop("convention", "mosflm"))
    beam = api.beam(wavelength=kw.pop("wavelength", 1.0), fluence=kw.pop("fluence", api.DEFAULT_FLUENCE))
    assert not kw
    return api.experiment(det, beam, xtal)


@pytest.mark.parametrize("kw, error, words", [
    (dict(pixels=0), ValueError, "pixels"),
    (dict(pixels="16"), TypeError, "pixels"),
    (dict(pixels=(3,)), TypeError, "pixels"),
    (dict(pixels=(4, -2)), ValueError, "pixels"),
    (dict(N=0), ValueError, "N"),
    (dict(N=-3), ValueError, "N"),
    (dict(N=float("nan")), ValueError, "N"),
    (dict(N=(1, 2)), TypeError, "N"),
    (dict(N=torch.tensor([2.0, 0.0, 2.0])), ValueError, "N"),
    (dict(distance=-100), ValueError, "distance"),
    (dict(distance="100"), TypeError, "distance"),
    (dict(distance=torch.tensor([1.0, 2.0])), TypeError, "distance"),
    (dict(distance=torch.tensor(float("inf"))), ValueError, "distance"),
    (dict(wavelength=-1), ValueError, "wavelength"),
    (dict(wavelength=0), ValueError, "wavelength"),
    (dict(fluence=-1), ValueError, "fluence"),
    (dict(fluence=1e300), ValueError, "fluence"),
    (dict(default_F=float("nan")), ValueError, "default_F"),
    (dict(default_F=1e300), ValueError, "default_F"),
    (dict(convention="bogus"), ValueError, "convention"),
    (dict(shape="bogus"), ValueError, "shape"),
    (dict(misset=(1, 2)), TypeError, "misset"),
    (dict(misset="sideways"), ValueError, "misset"),
    (dict(misset=torch.zeros(2, 2)), TypeError, "misset"),
    (dict(misset=(1e300, 0, 0)), ValueError, "misset"),
])
def test_factory_misuse_names_the_argument(kw, error, words):
    with pytest.raises(error, match=words):
        _exp(**kw)


@pytest.mark.parametrize("args, error, words", [
    ((-100, 100, 100), ValueError, "a: cell length"),
    ((100, 0, 100), ValueError, "b: cell length"),
    ((100, 100, float("nan")), ValueError, "c: "),
    ((100, 100, 100, 0, 90, 90), ValueError, "alpha"),
    ((100, 100, 100, 90, 90, 180), ValueError, "no volume"),
    (("100", 100, 100), TypeError, "a: must be a number"),
])
def test_unit_cell_misuse(args, error, words):
    with pytest.raises(error, match=words):
        api.unit_cell(*args)


def test_structure_factor_misuse():
    with pytest.raises(ValueError, match="F: structure factor is not a finite number"):
        api.structure_factors(torch.full((2, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="F: must have shape"):
        api.structure_factors(torch.ones(2, 2))
    with pytest.raises(TypeError, match="lo"):
        api.structure_factors(torch.ones(2, 2, 2), lo=(0, 0))
    with pytest.raises(TypeError, match="structure_factors: must be a grid"):
        api.crystal(api.unit_cell(100, 100, 100), structure_factors=torch.ones(2, 2, 2))


def test_grid_that_does_not_match_its_bounds():
    grid = api.FGrid(0, 5, 0, 1, 0, 1, torch.ones(3, 3, 3))
    with pytest.raises(TypeError, match="does not match its index bounds"):
        api.crystal(api.unit_cell(100, 100, 100), structure_factors=grid)


def test_nan_in_a_grid_changed_after_building_is_caught_at_render():
    xtal = api.crystal(api.unit_cell(100, 100, 100), N=3, structure_factors=api.structure_factors(torch.ones(3, 3, 3)))
    exp = api.experiment(api.detector(pixels=8), api.beam(), xtal)
    exp.crystal.fgrid.grid[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="structure factor is not a finite number"):
        api.simulate(exp)


@pytest.mark.parametrize("kw, error, words", [
    (dict(dtype=torch.float16), TypeError, "dtype"),
    (dict(dtype=torch.int32), TypeError, "dtype"),
    (dict(device="bogus"), ValueError, "device"),
    (dict(seed=1e30), TypeError, "seed"),
    (dict(seed=2 ** 40), ValueError, "seed"),
    (dict(budget=10), ValueError, "budget"),
    (dict(budget=1.5e9), TypeError, "budget"),
])
def test_simulate_argument_misuse(kw, error, words):
    with pytest.raises(error, match=words):
        api.simulate(_exp(), **kw)


def test_image_beyond_budget_refused_naming_pixels_and_budget():
    exp = _exp(pixels=10 ** 6)
    with pytest.raises(ValueError, match=r"pixels: a 1000000x1000000 image .* does not fit the budget of 100 MB"):
        api.simulate(exp, budget=100 * 2 ** 20)


def test_directly_built_experiment_is_checked_by_path():
    exp = _exp()
    exp.detector.distance = -0.1
    with pytest.raises(ValueError, match="distance"):
        api.simulate(exp)
    bare = api.Experiment(detector=api.DetectorConfig(distance=float("nan")),
                          crystal=api.CrystalConfig(cell=api.unit_cell(100, 100, 100), default_F=1.0))
    with pytest.raises(ValueError, match="detector.distance: distance is not a finite number"):
        api.simulate(bare)


def test_extra_fields_are_checked_by_their_name():
    with pytest.raises(ValueError, match="roi: minimum exceeds maximum"):
        api.detector(pixels=8, roi=(5, 1, 0, 3))
    with pytest.raises(ValueError, match="thickness"):
        api.detector(pixels=8, thickness=-1)
    with pytest.raises(TypeError, match="phisteps"):
        api.crystal(api.unit_cell(100, 100, 100), phisteps=2.5)
    with pytest.raises(ValueError, match="dispersion"):
        api.beam(dispersion=float("nan"))
    with pytest.raises(ValueError, match="oversample"):
        api.sampling(oversample=0)
    with pytest.raises(ValueError, match="mask: mask has 4x4 pixels, the detector 8x8"):
        api.experiment(api.detector(pixels=8, mask=np.ones((4, 4))), api.beam(),
                       api.crystal(api.unit_cell(100, 100, 100), default_F=1))


def test_source_with_wavelength_zero_refused():
    with pytest.raises(ValueError, match="sources: source 1: wavelength 0"):
        api.beam(sources=np.array([[-10.0, 0.0, 0.0, 1.0, 0.0]]))


def test_gradients_survive_the_checks():
    misset = torch.tensor([10.0, 20.0, 30.0], requires_grad=True)
    distance = torch.tensor(100.0, requires_grad=True)
    xtal = api.crystal(api.unit_cell(100, 100, 100), N=3, shape="gauss", misset=misset, default_F=100)
    exp = api.experiment(api.detector(pixels=8, pixel_size=0.5, distance=distance), api.beam(), xtal)
    api.simulate(exp).image.sum().backward()
    assert misset.grad is not None and torch.isfinite(misset.grad).all() and misset.grad.abs().sum() > 0
    assert distance.grad is not None and math.isfinite(float(distance.grad))


def test_tensor_values_are_read_in_one_transfer(monkeypatch):
    """Many tensor fields, one combined check: the values are read once, not once per value."""
    reads = []
    original = checks._Pending.run

    def counting(self):
        reads.append(len(self.items))
        return original(self)
    monkeypatch.setattr(checks._Pending, "run", counting)
    t = torch.tensor
    xtal = api.crystal(api.unit_cell(t(100.0), t(100.0), t(100.0), t(90.0), t(90.0), t(90.0)), N=t([3.0, 3.0, 3.0]),
                       shape="gauss", misset=t([1.0, 2.0, 3.0]), default_F=t(100.0), phi0=t(1.0))
    exp = api.experiment(api.detector(pixels=8, distance=t(100.0)), api.beam(wavelength=t(1.0)), xtal)
    reads.clear()
    checks.check_experiment(exp)
    assert max(reads) >= 10 and len([r for r in reads if r]) == 1


def test_simulator_unknown_parameter_is_a_value_error():
    with pytest.raises(ValueError, match="bogus"):
        with_parameters(_exp(), bogus=torch.tensor(1.0))
    sim = Simulator(_exp(), ["distance"])
    with torch.no_grad():
        sim.distance.fill_(-5.0)
    with pytest.raises(ValueError, match="distance"):
        sim()


@pytest.mark.parametrize("make, error, words", [
    (lambda: api.detector(pixels=8, convention=None), TypeError, "convention"),
    (lambda: api.detector(pixels=8, pixel_size=0), ValueError, "pixel_size"),
    (lambda: api.detector(pixels=8, beam_center=(1,)), TypeError, "beam_center"),
    (lambda: api.detector(pixels=8, detector_rotation="abc"), TypeError, "detector_rotation"),
    (lambda: api.beam(polarization=2), ValueError, "polarization"),
    (lambda: api.crystal((1e-8, 1e-8, 1e-8)), TypeError, "cell"),
    (lambda: api.crystal(api.unit_cell(100, 100, 100), osc=-5), ValueError, "osc"),
    (lambda: api.crystal(api.unit_cell(100, 100, 100), mosaic_domains=1.5), TypeError, "mosaic_domains"),
    (lambda: api.sampling(oversample="2"), TypeError, "oversample"),
    (lambda: api.sampling(dmin=-1), ValueError, "dmin"),
    (lambda: api.simulate("exp"), TypeError, "experiment"),
    (lambda: api.experiment("det", api.beam(), api.crystal(api.unit_cell(100, 100, 100))), TypeError, "detector"),
    (lambda: api.structure_factors("abc"), TypeError, "F"),
    (lambda: Simulator(_exp(), ["bogus"]), ValueError, "bogus"),
    (lambda: Simulator(_exp(), ["distance"], dtype=torch.float16), TypeError, "dtype"),
])
def test_more_misuse(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_random_misset_without_a_seed():
    xtal = api.crystal(api.unit_cell(100, 100, 100), N=3, default_F=10, misset="random")
    exp = api.experiment(api.detector(pixels=8), api.beam(), xtal)
    with pytest.raises(ValueError, match="misset: a random misset needs a seed"):
        api.simulate(exp)
    assert torch.isfinite(api.simulate(exp, seed=5).image).all()
