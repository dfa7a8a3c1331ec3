"""The Python API (nanobragg.api), the Simulator module and the geometry-refinement example."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from golden import INPUTS, c_image, compare, load_case
from nanobragg import api
from nanobragg.cli.main import build_settings
from nanobragg.io import hkl_grid, read_hkl
from nanobragg.simulator import PARAMETERS, Simulator, read_parameters, with_parameters

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64


def gauss_case_via_api() -> api.Experiment:
    """The golden case shape-gauss, written with the API instead of flags."""
    xtal = api.crystal(api.unit_cell(100, 100, 100, 90, 90, 90), N=5, shape="gauss", default_F=100)
    det = api.detector(pixels=128, pixel_size=0.1, distance=100)
    return api.experiment(det, api.beam(wavelength=6.2), xtal, api.sampling(oversample=1))


def small_experiment(misset=(10.0, 20.0, 30.0)) -> api.Experiment:
    xtal = api.crystal(api.unit_cell(200, 210, 190, 88, 91, 92), N=5, shape="gauss", misset=misset,
                       default_F=80.0)
    det = api.detector(pixels=(10, 12), pixel_size=0.5, distance=100.0, beam_center=(2.6, 2.9))
    return api.experiment(det, api.beam(wavelength=6.2, polarization=0.5), xtal)


# --- units and factories ----------------------------------------------------------------------

def test_unit_helpers_convert_and_keep_graphs():
    assert api.angstrom(2.0) == pytest.approx(2e-10)
    assert api.mm((1.0, 2.0)) == pytest.approx((1e-3, 2e-3))
    assert api.deg(180.0) == pytest.approx(math.pi)
    assert api.deg(None) is None
    t = torch.tensor(90.0, requires_grad=True)
    (g,) = torch.autograd.grad(api.deg(t), t)
    assert g.item() == pytest.approx(math.pi / 180)


def test_factories_fill_config_in_si_units():
    cell = api.unit_cell(70, 80, 90, 75, 85, 95)
    assert cell == pytest.approx((70e-10, 80e-10, 90e-10, *(math.radians(a) for a in (75, 85, 95))))
    det = api.detector(pixels=(96, 128), pixel_size=0.15, distance=80, beam_center=(5, 9),
                       detector_rotation=(3, 0, -2), twotheta=8, convention="dials")
    assert (det.spixels, det.fpixels) == (96, 128)
    assert (det.pixel_size, det.distance, det.beam_x, det.beam_y) == pytest.approx((1.5e-4, 0.08, 5e-3, 9e-3))
    assert (det.rotx, det.rotz, det.twotheta) == pytest.approx((math.radians(3), math.radians(-2), math.radians(8)))
    b = api.beam(wavelength=1.2, polarization=0.9)
    assert (b.wavelength, b.polarization, b.fluence) == pytest.approx((1.2e-10, 0.9, api.DEFAULT_FLUENCE))
    x = api.crystal(cell, N=(3, 6, 2), shape="round", misset=(10, 20, 30), phi0=5, osc=1, mosaic_spread=0.2)
    assert (x.Na, x.Nb, x.Nc, x.shape) == (3, 6, 2, "round")
    assert x.misset == pytest.approx(tuple(math.radians(a) for a in (10, 20, 30)))
    assert (x.phi0, x.osc, x.mosaic_spread) == pytest.approx(tuple(math.radians(a) for a in (5, 1, 0.2)))
    assert api.sampling(oversample=2, dmin=3).dmin == pytest.approx(3e-10)


def test_structure_factors_match_the_hkl_reader():
    fgrid = hkl_grid(read_hkl(INPUTS / "pattern.hkl"))
    ours = api.structure_factors(torch.from_numpy(fgrid.grid[:-1, :-1, :-1]), (fgrid.h_min, fgrid.k_min, fgrid.l_min))
    assert ours.bounds == fgrid.bounds
    assert np.array_equal(ours.grid.numpy(), fgrid.grid)


def test_api_matches_command_line_and_c():
    """The API's shape-gauss equals the flags' experiment exactly, and the C image within golden limits."""
    ours = api.simulate(gauss_case_via_api()).image
    flags = api.simulate(build_settings(list(load_case("shape-gauss")["args"])).experiment).image
    assert torch.equal(ours, flags)
    result = compare(ours.numpy().reshape(-1).astype(np.float32), c_image("shape-gauss"))
    assert result["corr"] >= 0.99999 and result["rel_total"] <= 1e-4, result


def test_simulate_returns_image_setup_and_the_path_that_ran():
    out = api.simulate(small_experiment(), dtype=torch.float32)
    assert out.image.shape == (10, 12) and out.image.dtype == torch.float32
    assert out.resolved.oversample == 1 and out.resolved.detector.fpixels == 12
    assert (out.path, out.compiled, out.device, out.dtype) == ("eager", False, torch.device("cpu"), torch.float32)
    assert out.chunk_pixels >= 120 and out.chunk_blocks == 1 and not out.one_by_one
    assert "eager" in repr(out) and "float32" in repr(out)
    tight = api.simulate(small_experiment(), budget=16 << 20, compile=False)
    assert tight.path == "eager" and torch.equal(tight.image, api.simulate(small_experiment()).image)
    with pytest.raises(TypeError, match="compile"):
        api.simulate(small_experiment(), compile="yes")


# --- batches of orientations ------------------------------------------------------------------

def test_batched_misset_is_one_image_per_orientation():
    missets = torch.tensor([[10.0, 20.0, 30.0], [11.0, 19.0, 31.0], [0.0, 0.0, 0.0]], dtype=F64)
    batch = api.simulate(small_experiment(misset=missets)).image
    assert batch.shape == (3, 10, 12)
    for i in range(3):
        one = api.simulate(small_experiment(misset=tuple(missets[i].tolist()))).image
        assert torch.allclose(batch[i], one, rtol=1e-12, atol=0)


def test_batched_misset_with_interpolation_renders_one_by_one():
    """C's interpolation fallback is decided per image, so such a batch is rendered image by image."""
    missets = torch.tensor([[10.0, 20.0, 30.0], [11.0, 19.0, 31.0]], dtype=F64)
    exp = small_experiment(misset=missets)
    exp.crystal.fgrid = api.structure_factors(torch.full((11, 11, 11), 70.0, dtype=F64), (-5, -5, -5))
    exp.crystal.interpolate = True
    out = api.simulate(exp)
    assert out.image.shape == (2, 10, 12) and out.one_by_one and out.rendered is None
    exp.crystal.misset = api.deg(missets[1])  # the config holds radians
    assert torch.equal(out.image[1], api.simulate(exp).image)


# --- the Simulator module ---------------------------------------------------------------------

def test_parameter_table_reads_what_it_writes():
    exp = small_experiment()
    exp.crystal.fgrid = api.structure_factors(torch.ones(3, 3, 3, dtype=F64), (-1, -1, -1))
    for name in PARAMETERS:
        value = read_parameters(exp, [name])[name]
        again = read_parameters(with_parameters(exp, **{name: value}), [name])[name]
        assert torch.allclose(value, again, rtol=1e-14), name


def test_simulator_holds_parameters_and_renders():
    exp = small_experiment()
    names = ("cell_lengths", "misset", "distance", "beam_center", "wavelength", "N")
    sim = Simulator(exp, names)
    shapes = {n: tuple(p.shape) for n, p in sim.named_parameters()}
    assert shapes == {"cell_lengths": (3,), "misset": (3,), "distance": (), "beam_center": (2,),
                      "wavelength": (), "N": (3,)}
    assert sim.distance.item() == pytest.approx(100.0) and sim.wavelength.item() == pytest.approx(6.2)
    assert sim.misset.tolist() == pytest.approx([10.0, 20.0, 30.0])
    image = sim()
    assert torch.equal(image, api.simulate(exp).image)
    image.sum().backward()
    for n, p in sim.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and (p.grad != 0).all(), n
    assert exp.detector.distance == pytest.approx(0.1)  # the template is untouched


def test_simulator_defaults_and_errors():
    exp = small_experiment(misset=None)
    exp.detector.beam_x = exp.detector.beam_y = None
    sim = Simulator(exp, ("misset", "beam_center"))
    assert sim.misset.tolist() == [0.0, 0.0, 0.0]
    assert sim.beam_center.tolist() == pytest.approx([2.75, 3.25])  # MOSFLM: (detsize + pixel) / 2
    assert sim().shape == (10, 12)
    with pytest.raises(KeyError):
        with_parameters(exp, focus=torch.tensor(1.0))
    with pytest.raises(ValueError):
        Simulator(exp, ("structure_factors",))


def test_simulator_batched_misset():
    sim = Simulator(small_experiment(), ("misset", "distance"))
    sim.misset = torch.nn.Parameter(torch.tensor([[10.0, 20.0, 30.0], [12.0, 18.0, 33.0]], dtype=F64))
    images = sim()
    assert images.shape == (2, 10, 12)
    (images[1] - images[0]).pow(2).sum().backward()
    assert torch.isfinite(sim.misset.grad).all() and (sim.misset.grad != 0).all()


def test_simulator_float32():
    sim = Simulator(small_experiment(), ("cell_lengths",), dtype=torch.float32)
    image = sim()
    assert image.dtype == torch.float32 and sim.cell_lengths.dtype == torch.float32
    image.sum().backward()
    assert torch.isfinite(sim.cell_lengths.grad).all()


# --- the refinement example -------------------------------------------------------------------

def test_refine_geometry_example_recovers_parameters():
    """examples/refine_geometry.py --quick: exit 0 and a RECOVERED line within its tolerances."""
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "refine_geometry.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    line = [s for s in run.stdout.splitlines() if s.startswith("RECOVERED ")][-1]
    got = {k: float(v) for k, v in re.findall(r"(\w+)=(\S+)", line)}
    limits = {"cell_rel": 1e-3, "distance_mm": 0.05, "beam_mm": 0.01, "misset_deg": 0.02}
    assert set(got) == set(limits)
    assert all(got[k] <= limits[k] for k in limits), line


# --- no hidden state, nothing loaded that a run does not need ----------------------------------

def test_resolve_leaves_the_experiment_as_it_was():
    """C clips the crystal to the beam in place; resolve clips its own copy."""
    from nanobragg.resolve import resolve

    xtal = api.crystal(api.unit_cell(100, 100, 100), N=3, default_F=10, sample_size=0.5)
    exp = api.experiment(api.detector(pixels=8), api.beam(beamsize=0.1), xtal)
    res = resolve(exp)
    assert any("clipping sample" in note for note in res.notes)
    assert (exp.crystal.sample_x, exp.crystal.sample_y, exp.crystal.sample_z) == pytest.approx((5e-4,) * 3)
    assert res.N[1] == pytest.approx(1e-4 / 100e-10)  # the clipped size made the cell count


def test_a_random_misset_and_mosaic_domains_do_not_load_numba():
    code = ("import sys; from nanobragg import api; "
            "x = api.crystal(api.unit_cell(100, 100, 100), N=3, default_F=10, misset='random', misset_seed=3, "
            "mosaic_spread=0.5, mosaic_domains=3); "
            "api.simulate(api.experiment(api.detector(pixels=4), api.beam(), x)); "
            "import nanobragg.rng; print('numba' in sys.modules, 'scipy' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_every_argument_is_in_the_command_lines_unit():
    """The API's options take the flags' units (not SI): the same experiment from both."""
    flags = build_settings("-default_F 10 -cell 100 100 100 90 90 90 -N 3 -detpixels 16 -pixel 0.1 -distance 90 "
                           "-close_distance 80 -dispersion 0.1 -dispsteps 3 -divergence 0.5 -divsteps 3 "
                           "-detector_thick 450 -detector_abs 300 -thicksteps 2 -xtal_size 0.0005 -beamsize 0.05 "
                           "-oversample 1 "
                           "-phistep 0.5 -phisteps 2 -water 20 -mosaic 0.2 -mosaic_dom 2 -mosaic_seed 7 "
                           "-ORGX 8 -ORGY 9 -dmin 3".split()).experiment
    xtal = api.crystal(api.unit_cell(100, 100, 100), N=3, default_F=10, sample_size=0.0005, phistep=0.5, phisteps=2,
                       water_size=20, mosaic_spread=0.2, mosaic_domains=2, mosaic_seed=7)
    det = api.detector(pixels=16, pixel_size=0.1, distance=90, close_distance=80, thickness=450,
                       attenuation_length=300, thicksteps=2, origin=(8, 9), pivot="sample")
    beam = api.beam(dispersion=0.1, dispsteps=3, hdivrange=0.5, vdivrange=0.5, hdivsteps=3, vdivsteps=3,
                    beamsize=0.05)
    ours = api.experiment(det, beam, xtal, api.sampling(oversample=1, dmin=3))
    for section in ("detector", "beam", "crystal", "sampling"):
        for name, fields in api.ARGUMENTS[section].items():
            for f in fields:
                a, b = getattr(getattr(ours, section), f), getattr(getattr(flags, section), f)
                if isinstance(a, float) and isinstance(b, float):
                    assert a == pytest.approx(b, rel=1e-12), (section, f)
    assert torch.equal(api.simulate(ours).image, api.simulate(flags).image)


def test_unknown_option_names_the_known_ones():
    with pytest.raises(TypeError, match="unknown argument 'orgx'.*origin"):
        api.detector(orgx=3)
