"""-trace_pixel: one pixel's intermediate values, ending with the value the image holds."""
import math
import shutil
from pathlib import Path

import pytest
import torch

from nanobragg.cli.loaders import load_inputs
from nanobragg.cli.main import build_settings, run
from nanobragg.cli.trace_output import print_trace, traced_lines
from nanobragg.engine.image import render_image
from nanobragg.engine.trace import NAMES, trace_pixel
from nanobragg.resolve import resolve
from util import in_folder

#: Mosaic domains, divergence and dispersion (several sources), spindle steps, sub-pixels, a thick sensor.
ARGS = ("-default_F 100 -cell 50 60 70 85 95 100 -lambda 1 -N 5 -distance 60 -detpixels 32 -pixel 0.4 "
        "-mosaic 0.5 -mosaic_dom 3 -divergence 0.4 -divsteps 2 -dispersion 1 -dispsteps 2 "
        "-phi 0 -osc 1 -phisteps 2 -misset 10 20 30 -oversample 2 -detector_thick 100 -thicksteps 2 "
        "-seed 3 -mosaic_seed 5 -nonoise -nopgm").split()
#: Every quantity the brief asks a trace to show.
REQUIRED = ("fdet", "sdet", "odet", "pix0", "pixel_pos", "diffracted", "incident", "q", "a", "b", "c",
            "a_star", "b_star", "c_star", "hkl_frac", "hkl_nearest", "F_latt_a", "F_latt_b", "F_latt_c",
            "F_latt", "F_cell", "polar", "omega", "capture_fraction", "I", "steps", "final_pixel_value")


def _render(args):
    """Resolved experiment, settings and float64 image for ``args`` (input files read from the current folder),
    rendered by the eager engine, whose arithmetic the trace follows (the compiled engines agree with it to
    rounding, not bit for bit)."""
    settings = build_settings(list(args))
    load_inputs(settings, lambda *_: None)
    res = resolve(settings.experiment, seed=1, dtype=torch.float64)
    with torch.no_grad():
        image = render_image(res.inputs, res.roi, res.mask, compile=False).image
    return res, settings, image


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """ARGS rendered in an empty folder (so no stray Fdump.bin is read)."""
    with in_folder(tmp_path_factory.mktemp("trace")):
        return _render(ARGS)


def _brightest(image):
    s, f = divmod(int(torch.argmax(image)), image.shape[1])
    return s, f


def _as_dict(lines):
    return {name: values for name, values in lines}


def test_final_value_is_the_image_pixel(rendered):
    res, _, image = rendered
    assert res.sources > 1 and res.domains == 3
    for s, f in [_brightest(image), (0, 0), (31, 5), (7, 30)]:
        trace = _as_dict(trace_pixel(res.inputs, s, f))
        # the summation order may differ per chunk
        assert trace["final_pixel_value"][0] == pytest.approx(float(image[s, f]), rel=1e-12)


def test_names_and_order(rendered):
    res, _, image = rendered
    lines = trace_pixel(res.inputs, *_brightest(image))
    names = [name for name, _ in lines]
    assert set(REQUIRED) <= set(names)
    assert tuple(names) == NAMES and names[-1] == "final_pixel_value"


def test_geometry_matches_detector(rendered):
    res, _, image = rendered
    s, f = _brightest(image)
    t = _as_dict(trace_pixel(res.inputs, s, f))
    g = res.detector
    for name in ("pix0", "fdet", "sdet", "odet"):
        assert t[name] == pytest.approx([float(v) for v in getattr(g, name)], abs=0, rel=1e-15)
    first = [(i + 0.5 / res.oversample) * float(g.pixel_size) for i in (f, s)]  # first sub-pixel centre
    pos = [p + first[0] * fd + first[1] * sd for p, fd, sd in zip(g.pix0.tolist(), g.fdet.tolist(), g.sdet.tolist())]
    assert t["pixel_pos"] == pytest.approx(pos, rel=1e-12)
    airpath = math.sqrt(sum(p * p for p in pos))
    assert t["diffracted"] == pytest.approx([p / airpath for p in pos], rel=1e-12)
    assert t["steps"] == (res.steps,)


def test_values_are_consistent(rendered):
    res, _, image = rendered
    t = _as_dict(trace_pixel(res.inputs, *_brightest(image)))
    h, n = t["hkl_frac"], t["hkl_nearest"]
    assert all(isinstance(v, int) for v in n) and all(abs(a - b) <= 0.5 for a, b in zip(h, n))
    assert t["F_latt"][0] == pytest.approx(t["F_latt_a"][0] * t["F_latt_b"][0] * t["F_latt_c"][0], rel=1e-12)
    assert t["F_cell"] == (100.0,)
    assert 0 < t["capture_fraction"][0] < 1 and 0 < t["polar"][0] <= 1
    first_term = (t["F_cell"][0] * t["F_latt"][0]) ** 2
    assert t["I"][0] >= first_term
    # a* . a = 1 (a in metres, a* in 1/Angstrom)
    assert sum(x * y for x, y in zip(t["a"], t["a_star"])) * 1e10 == pytest.approx(1.0, rel=1e-12)


def test_single_term_equals_first_iteration(tmp_path, monkeypatch):
    """One source, orientation and sub-pixel: I is exactly the traced F_cell^2 F_latt^2."""
    monkeypatch.chdir(tmp_path)
    res, _, image = _render("-default_F 30 -cell 40 50 60 90 90 90 -lambda 1.2 -N 4 -distance 50 "
                            "-detpixels 24 -pixel 0.5 -misset 5 6 7 -oversample 1".split())
    t = _as_dict(trace_pixel(res.inputs, *_brightest(image)))
    assert t["steps"] == (1,)
    assert t["I"][0] == pytest.approx((t["F_cell"][0] * t["F_latt"][0]) ** 2, rel=1e-12)
    # the engine's value from the trace's independently derived factors (C: I * r_e^2 * fluence / steps * ...)
    factors = t["capture_fraction"][0] * t["polar"][0] * t["omega"][0]
    value = t["scale"][0] * (t["F_cell"][0] * t["F_latt"][0]) ** 2 * factors
    assert t["final_pixel_value"][0] == pytest.approx(value, rel=1e-12)
    assert t["final_pixel_value"][0] == pytest.approx(float(image[_brightest(image)]), rel=1e-12)


def test_interpolation_state_follows_the_image(tmp_path, monkeypatch):
    """Once C switches interpolation off, later pixels are traced with it off."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(__file__).parent / "data" / "inputs" / "small.hkl", tmp_path)
    res, _, image = _render("-hkl small.hkl -cell 60 60 60 90 90 90 -lambda 1 -N 2 -distance 30 -detpixels 16 "
                            "-pixel 0.8 -oversample 1 -interpolate".split())
    assert res.inputs.interpolate
    pixels = [(0, 0), (6, 6), (9, 3), (15, 15)]
    naive = [trace_pixel(res.inputs, s, f)[-1][1][0] for s, f in pixels]
    assert any(v != float(image[s, f]) for v, (s, f) in zip(naive, pixels))
    for s, f in pixels:
        assert traced_lines(res, s, f, image)[-1][1] == (float(image[s, f]),)


def test_print_trace_lines(rendered):
    res, _, image = rendered
    s, f = _brightest(image)
    settings = build_settings(ARGS + ["-trace_pixel", str(s), str(f)])
    lines = []
    print_trace(res, settings, image, lines.append)
    assert all(line.startswith("TRACE ") for line in lines)
    assert [line.split()[1] for line in lines] == list(NAMES)
    assert lines[-1] == f"TRACE final_pixel_value {float(image[s, f])!r}"
    pix0 = lines[[line.split()[1] for line in lines].index("pix0")].split()[2:]
    assert [float(v) for v in pix0] == [float(v) for v in res.detector.pix0]


def test_print_trace_nothing_unless_asked_and_off_detector(rendered):
    res, settings, image = rendered
    lines = []
    print_trace(res, settings, image, lines.append)
    assert lines == []
    settings = build_settings(ARGS + ["-trace_pixel", "32", "0"])
    print_trace(res, settings, image, lines.append)
    assert len(lines) == 1 and "off the 32x32 detector" in lines[0]


def test_command_prints_trace(tmp_path):
    lines = []
    with in_folder(tmp_path):
        assert run(ARGS + ["-trace_pixel", "3", "4", "-dtype", "float64"], log=lines.append) == 0
    traced = [line for line in lines if line.startswith("TRACE ")]
    assert [line.split()[1] for line in traced] == list(NAMES)


def test_batch_of_orientations(rendered):
    """With a batch of crystals, each is traced to its own image."""
    from dataclasses import replace
    res, _, image = rendered
    cells = res.inputs.cells
    turned = torch.stack([cells, cells.flip(0)])  # the same orientations, in reverse order
    inp = replace(res.inputs, cells=turned)
    with torch.no_grad():
        images = render_image(inp, res.roi, res.mask, compile=False).image
    s, f = _brightest(image)
    for b in range(2):
        t = _as_dict(trace_pixel(inp, s, f, batch=b))
        assert t["final_pixel_value"] == (float(images[b, s, f]),)
        assert t["steps"] == (res.steps,)
    assert _as_dict(trace_pixel(inp, s, f, batch=1))["a"] == tuple(float(v) for v in cells[-1, 0])


def test_printout_pixel_prints_c_block(tmp_path):
    """-printout_pixel F S (fast first) prints C's block for that pixel, its last line the image value."""

    import numpy as np

    from nanobragg.cli.main import run

    lines = []
    with in_folder(tmp_path):
        args = ("-default_F 100 -cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -distance 100 -detpixels 32 "
                "-nonoise -nopgm -floatfile f.bin -dtype float64 -printout_pixel 10 20").split()
        assert run(args, log=lines.append) == 0
    head = next(i for i, line in enumerate(lines) if line.startswith("  10   20 : stol = "))
    assert lines[head + 2].startswith("hkl= ") and lines[head + 9] == "real-space cell vectors (Angstrom):"
    pixel = float(lines[head + 8].split()[1])
    image = np.fromfile(tmp_path / "f.bin", dtype="<f4").reshape(32, 32)
    assert pixel == pytest.approx(float(image[20, 10]), rel=1e-6)


def test_float32_trace_keeps_the_float64_indices(rendered):
    """In float32 the position, q and h, k, l are the float64 trace's (the engine computes them from the
    inputs' float64 copies), not float32 roundings: a float32 h of a few hundred is off by 1e-5."""
    res = rendered[0]
    s, f = _brightest(rendered[2])
    exact = _as_dict(trace_pixel(res.inputs, s, f))
    single = _as_dict(trace_pixel(res.inputs.to(torch.float32), s, f))
    for name in ("pixel_pos", "diffracted", "q"):
        assert single[name] == exact[name]
    assert single["hkl_nearest"] == exact["hkl_nearest"]
    assert single["hkl_frac"] == pytest.approx(exact["hkl_frac"], abs=1e-7)
    assert single["final_pixel_value"][0] == pytest.approx(exact["final_pixel_value"][0], rel=1e-4)
