"""api.simulate's background= and detector_effects= options, and the C chain they stand for.

tests/data/api_chain/ holds the outputs of one run of the C programs (nanoBragg, nonBragg, float_add,
noisify; the commands in its case.json). The same image through the API in float64 must give the
spots, water and summed float images at correlation >= 0.99999 and noisify's int and noise images
byte for byte.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nanobragg import api
from nanobragg.io import InputError

DATA = Path(__file__).parent / "data" / "api_chain"
SHAPE = (128, 128)


def _floats(name):
    return np.frombuffer(gzip.open(DATA / f"{name}.gz").read(), "<f4").reshape(SHAPE)


def _smv_pixels(name):
    raw = gzip.open(DATA / f"{name}.gz").read()
    return np.frombuffer(raw[512:], "<u2").reshape(SHAPE)


def _experiment(**detector):
    return api.experiment(api.detector(pixels=128, pixel_size=0.2, distance=30, **detector),
                          api.beam(wavelength=1, fluence=1e24),
                          api.crystal(api.unit_cell(50, 50, 50), N=30, default_F=1000), api.sampling(oversample=1))


def _water():
    return api.background("water", thickness=0.000001)


def _effects(**kw):
    options = dict(calib_seed=11, scale=0.01, readout_noise=3, flicker=0.02, calibration=0.03, psf="gauss",
                   psf_fwhm=300, psf_radius=3)
    options.update(kw)
    return api.detector_effects(7, **options)


@pytest.fixture(scope="module")
def chain():
    return api.simulate(_experiment(), background=_water(), detector_effects=_effects())


def test_case_records_the_commands():
    case = json.loads((DATA / "case.json").read_text())
    progs = [c[0] for c in case["commands"]]
    assert progs == ["nanoBragg", "nonBragg", "float_add", "noisify"]
    noisify = case["commands"][3]
    assert noisify[noisify.index("-seed") + 1] == "7" and noisify[noisify.index("-calib_seed") + 1] == "11"


def test_float_images_equal_the_c_chain(chain):
    c_total = _floats("total.bin")
    # float_add: each float file read as double, summed, rounded to float
    assert np.array_equal(c_total, (_floats("spots.bin").astype(np.float64) + _floats("water.bin")).astype(np.float32))
    for name, image in (("spots.bin", chain.spots), ("water.bin", chain.background), ("total.bin", chain.image)):
        c = _floats(name).astype(np.float64).ravel()
        mine = image.numpy().ravel()
        assert image.dtype == torch.float64
        assert np.corrcoef(c, mine)[0, 1] >= 0.99999, name
        assert abs(mine.sum() / c.sum() - 1) < 1e-4, name


def test_detector_images_equal_noisify_byte_for_byte(chain):
    assert chain.int_image.dtype == torch.int64 and chain.noise_image.shape == SHAPE
    assert np.array_equal(chain.int_image.numpy().astype("<u2"), _smv_pixels("int.img"))
    assert np.array_equal(chain.noise_image.numpy().astype("<u2"), _smv_pixels("noise.img"))
    assert chain.adu is None  # the C pipeline has no float ADU image


def test_background_alone_and_spots_unchanged(chain):
    plain = api.simulate(_experiment())
    assert torch.equal(plain.image, chain.spots)
    assert plain.background is None and plain.int_image is None and torch.equal(plain.spots, plain.image)
    water = api.simulate(_experiment(), background=_water())
    assert torch.equal(water.background, chain.background) and torch.equal(water.image, chain.image)


def test_background_zero_outside_the_roi():
    exp = _experiment(roi=(10, 40, 20, 60))
    sim = api.simulate(exp, background=_water())
    inside = sim.background[20:61, 10:41]
    assert bool((inside > 0).all())
    outside = sim.background.clone()
    outside[20:61, 10:41] = 0
    assert bool((outside == 0).all())


def test_background_from_columns_is_differentiable():
    stol = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    F = torch.full((41,), 3.0, dtype=torch.float64, requires_grad=True)
    exp = api.experiment(api.detector(pixels=16, pixel_size=0.2, distance=30), api.beam(wavelength=1, fluence=1e24),
                         api.crystal(api.unit_cell(50, 50, 50), N=2, default_F=10))
    sim = api.simulate(exp, background=api.background((stol, F), thickness=0.001))
    sim.image.sum().backward()
    assert F.grad is not None and float(F.grad.abs().sum()) > 0
    # flat F: the background scales as F^2 and as the number of molecules (thickness, density)
    twice = api.simulate(exp, background=api.background((stol, 2 * F.detach()), thickness=0.001, density=0.5))
    assert torch.allclose(twice.background, 2 * sim.background.detach(), rtol=1e-12)


def test_torch_detector_effects():
    exp = _experiment()
    fx = _effects(rng="torch")
    one = api.simulate(exp, background=_water(), detector_effects=fx)
    two = api.simulate(exp, background=_water(), detector_effects=fx)
    assert torch.equal(one.noise_image, two.noise_image)  # seeded: reproducible
    c = _smv_pixels("noise.img").astype(np.float64)
    mine = one.noise_image.numpy().astype(np.float64)
    assert abs(mine.mean() / c.mean() - 1) < 0.01  # the same statistics, not C's random stream
    assert abs(mine.std() / c.std() - 1) < 0.05
    assert np.array_equal(one.int_image.numpy().astype("<u2"), _smv_pixels("int.img"))  # noiseless: as noisify


def test_torch_detector_effects_without_noise_are_differentiable():
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    exp = api.experiment(api.detector(pixels=24, pixel_size=0.2, distance=30),
                         api.beam(wavelength=1, fluence=1e24 * scale),
                         api.crystal(api.unit_cell(50, 50, 50), N=5, default_F=1000))
    fx = api.detector_effects(1, scale=0.01, psf="fiber", psf_fwhm=200, psf_radius=2, noise=False, rng="torch")
    sim = api.simulate(exp, background=_water(), detector_effects=fx)
    sim.adu.sum().backward()
    assert scale.grad is not None and float(scale.grad) > 0
    c_path = api.simulate(exp, background=_water(), detector_effects=api.detector_effects(
        1, scale=0.01, psf="fiber", psf_fwhm=200, psf_radius=2, noise=False))
    assert c_path.noise_image is None
    assert int((c_path.int_image - sim.int_image).abs().max()) <= 1  # float32 (C) against float64 sums


def test_batch_gets_one_noise_seed_per_image():
    missets = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]], dtype=torch.float64)
    exp = api.experiment(api.detector(pixels=32, pixel_size=0.2, distance=30), api.beam(wavelength=1, fluence=1e24),
                         api.crystal(api.unit_cell(50, 50, 50), N=5, default_F=1000, misset=missets))
    fx = api.detector_effects(7, scale=0.01)
    sim = api.simulate(exp, background=_water(), detector_effects=fx)
    assert sim.image.shape == (2, 32, 32) and sim.noise_image.shape == (2, 32, 32)
    from nanobragg.physics.detector_effects import noisify_c
    for b in range(2):
        total = (sim.spots[b].numpy().astype(np.float32).astype(np.float64)
                 + sim.background.numpy().astype(np.float32)).astype(np.float32)
        ref = noisify_c(total, seed=-(7 + b), scale=0.01, log=lambda *a: None)
        assert np.array_equal(sim.noise_image[b].numpy(), ref.noise16.astype(np.int64))


@pytest.mark.parametrize("call, error", [
    (lambda: api.background("no-such-table-xyz"), InputError),
    (lambda: api.background("water", thickness=0), ValueError),
    (lambda: api.background("water", thickness="1"), TypeError),
    (lambda: api.background("water", molecular_weight=-1), ValueError),
    (lambda: api.background("water", oversample=0), ValueError),
    (lambda: api.background("water", oversample=1.5), TypeError),
    (lambda: api.background("water", stol_column="q"), ValueError),
    (lambda: api.background(3), TypeError),
    (lambda: api.background(([0.1, 0.2], [1.0])), ValueError),
    (lambda: api.detector_effects(1.5), TypeError),
    (lambda: api.detector_effects(1, psf="box"), ValueError),
    (lambda: api.detector_effects(1, bits=8), ValueError),
    (lambda: api.detector_effects(1, readout_noise=-1), ValueError),
    (lambda: api.detector_effects(1, rng="numpy"), ValueError),
    (lambda: api.detector_effects(1, noise="no"), TypeError),
    (lambda: api.detector_effects(1, psf_radius=-1), ValueError),
    (lambda: api.simulate(_experiment(), background="water"), TypeError),
    (lambda: api.simulate(_experiment(), detector_effects={"seed": 1}), TypeError),
])
def test_options_are_checked(call, error):
    with pytest.raises(error):
        call()


def test_seeds_as_typed():
    fx = api.detector_effects(7, calib_seed=11)
    assert (fx.seed, fx.calib_seed) == (-7, -11)
    assert api.detector_effects(7).calib_seed == 123456789  # noisify's default, as C holds it
    assert api.detector_effects(1, psf_fwhm=46).psf_fwhm == float(np.float32(46e-6))


def test_background_gradient_reaches_distance_and_wavelength():
    distance = torch.tensor(30.0, dtype=torch.float64, requires_grad=True)
    wavelength = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    exp = api.experiment(api.detector(pixels=16, pixel_size=0.2, distance=distance),
                         api.beam(wavelength=wavelength, fluence=1e24),
                         api.crystal(api.unit_cell(50, 50, 50), N=2, default_F=1))
    sim = api.simulate(exp, background=api.background("water", thickness=0.001))
    sim.background.sum().backward()
    assert float(distance.grad) < 0 and float(wavelength.grad) != 0  # farther: less water per pixel


def test_float32_background_and_torch_effects():
    sim = api.simulate(_experiment(), dtype=torch.float32, background=_water(),
                       detector_effects=_effects(rng="torch"))
    assert sim.background.dtype == torch.float32 and sim.adu.dtype == torch.float32
    c = _floats("water.bin").astype(np.float64).ravel()
    mine = sim.background.double().numpy().ravel()
    assert np.corrcoef(c, mine)[0, 1] >= 0.9999 and abs(mine.sum() / c.sum() - 1) < 1e-3
