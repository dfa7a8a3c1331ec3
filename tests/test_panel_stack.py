"""A stack of panels in the engine (engine.inputs.stack_panels, prepare_render/run_render on it): every
panel is its single-detector render bit for bit, totals included, in both dtypes and in bands that span
panels; C's first spindle pass is at each panel's first pixel; panels whose inputs differ beyond their
geometry are refused as one stack and grouped apart; the compiled kernel renders a stack as eager code does."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from golden import c_image, load_case
from nanobragg.cli.main import build_settings, main
from nanobragg.cli.panels import panel_flags, panel_settings
from nanobragg.engine.compiled import compiler_available
from nanobragg.engine.image import prepare_render, render_image, run_render
from nanobragg.engine.inputs import group_panels, shared_difference, stack_panels
from nanobragg.io.crystfel_geom import read_geom
from nanobragg.resolve import resolve
from test_panels import CRYSTAL, FOUR, EngineCalls


@pytest.fixture(autouse=True)
def _in_tmp_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _panels(args, text, folder, dtype=torch.float64):
    """Each panel of geometry ``text`` resolved alone, as the -geom command resolves it."""
    path = folder / "panels.geom"
    path.write_text(text)
    settings = build_settings(list(args) + ["-geom", str(path)])
    geometry = read_geom(path)
    return geometry, [resolve(panel_settings(settings, panel, index).experiment, seed=-1, dtype=dtype)
                      for index, panel in enumerate(geometry.panels)]


def _render_stack(resolved, rows=None, compile=False, first_pass=True):
    inp = stack_panels([r.inputs for r in resolved])
    if not first_pass:
        inp = replace(inp, first_pass=None)
    with torch.no_grad():
        job = prepare_render(inp, [r.roi for r in resolved], [r.mask for r in resolved], compile=compile)
        return job, run_render(job, rows=rows)


def _single(res):
    with torch.no_grad():
        return render_image(res.inputs, res.roi, res.mask, compile=False)


def _same_totals(a, b):
    assert a.count == b.count
    for name in ("omega", "sum", "sum_sq", "max", "argmax"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_each_panel_of_a_stack_is_its_single_render_bit_for_bit(dtype, tmp_path):
    _, resolved = _panels(CRYSTAL, FOUR, tmp_path, dtype)
    job, images = _render_stack(resolved)
    assert [im.panel for im in images] == [0, 1, 2, 3] and job.kernel is None
    for res, image in zip(resolved, images):
        alone = _single(res)
        assert image.image.dtype == dtype and image.image.shape == alone.image.shape
        assert torch.equal(image.image, alone.image) and float(alone.image.max()) > 0
        _same_totals(image.totals, alone.totals)


def test_a_band_of_rows_spans_panels(tmp_path):
    """Rows 50-109 of the stack: panel 0's rows 50-95 and panel 1's rows 0-13, each as its own band."""
    _, resolved = _panels(CRYSTAL, FOUR, tmp_path)
    _, whole = _render_stack(resolved)
    _, band = _render_stack(resolved, rows=(50, 110))
    assert [(b.panel, b.first_row, tuple(b.image.shape)) for b in band] == [(0, 50, (46, 160)), (1, 0, (14, 40))]
    assert torch.equal(band[0].image, whole[0].image[50:]) and torch.equal(band[1].image, whole[1].image[:14])
    assert band[0].totals.count == 46 * 160 and band[1].totals.count == 14 * 40


#: Golden case phi0-osc (C's first spindle pass with the unrotated cell: 48x48 MOSFLM pixels of 0.4 mm at
#: 100 mm, phi 0 to 30 degrees in 4 steps) as panel q0, and a second panel turned by 90 degrees beside it.
PHI0 = """res = 2500
clen = 100 mm
q0/min_fs = 0
q0/max_fs = 47
q0/min_ss = 0
q0/max_ss = 47
q0/fs = -x
q0/ss = -y
q0/corner_x = 25
q0/corner_y = 25
q1/min_fs = 0
q1/max_fs = 23
q1/min_ss = 48
q1/max_ss = 63
q1/fs = +y
q1/ss = -x
q1/corner_x = -40
q1/corner_y = -10
"""


def test_each_panel_takes_cs_first_pass_at_its_own_first_pixel(tmp_path, capsys):
    """A multi-panel render is each panel's single run, so C's first spindle pass (unrotated cell at phi =
    0) is made at every panel's first pixel: without it only those pixels change. Panel q0 is C's image."""
    crystal = load_case("phi0-osc")["args"]
    crystal = crystal[:crystal.index("-distance")] + crystal[crystal.index("-phi"):]
    geometry, resolved = _panels(crystal, PHI0, tmp_path)
    assert [r.inputs.first_pass.tolist() for r in resolved] == [[0, 0, 0], [0, 0, 0]]
    _, images = _render_stack(resolved)
    _, without = _render_stack(resolved, first_pass=False)
    for res, image, plain in zip(resolved, images, without):
        assert torch.equal(image.image, _single(res).image)
        changed = (image.image != plain.image).nonzero().tolist()
        assert changed == [[0, 0]], changed
    ours = images[0].image.numpy().reshape(-1)
    c = c_image("phi0-osc").astype(np.float64)
    np.testing.assert_allclose(ours, c, rtol=1e-6, atol=1e-7 * c.max())
    flags = ["-dtype", "float64", "-nocompile", "-noprogress", "-nopgm", "-nonoise", "-intfile", "/dev/null"]
    assert main(crystal + flags + ["-geom", str(tmp_path / "panels.geom"), "-floatfile", str(tmp_path / "f.bin")]) == 0
    single = crystal + flags + panel_flags(geometry.panels[1]) + ["-floatfile", str(tmp_path / "one.bin")]
    assert main(single) == 0
    capsys.readouterr()
    assert np.array_equal(np.fromfile(tmp_path / "f_p01.bin", "<f4"), np.fromfile(tmp_path / "one.bin", "<f4"))


#: Two small panels, the second with pixels of 1 mm: C's automatic oversampling gives it 3, the first 1.
COARSE = """clen = 100 mm
a/res = 10000
a/min_fs = 0
a/max_fs = 7
a/min_ss = 0
a/max_ss = 7
a/fs = -x
a/ss = -y
a/corner_x = 4
a/corner_y = 4
b/res = 1000
b/min_fs = 0
b/max_fs = 7
b/min_ss = 8
b/max_ss = 15
b/fs = -x
b/ss = -y
b/corner_x = 20
b/corner_y = 4
"""


def test_panels_whose_inputs_differ_elsewhere_render_in_two_calls(tmp_path, capsys, monkeypatch):
    _, resolved = _panels(CRYSTAL, COARSE, tmp_path)
    assert [r.oversample for r in resolved] == [1, 3]
    assert shared_difference(resolved[0].inputs, resolved[1].inputs) == "oversample"
    assert group_panels([r.inputs for r in resolved + resolved]) == [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match="panels differ in oversample"):
        stack_panels([r.inputs for r in resolved])
    calls = EngineCalls(monkeypatch)
    flags = ["-nonoise", "-intfile", "/dev/null"]
    assert main(CRYSTAL + flags + ["-geom", str(tmp_path / "panels.geom"), "-floatfile", str(tmp_path / "f.bin")]) == 0
    assert len(calls.prepared) == 2 and calls.runs == 2
    geometry = read_geom(tmp_path / "panels.geom")
    for index, panel in enumerate(geometry.panels):
        assert main(CRYSTAL + flags + panel_flags(panel) + ["-floatfile", str(tmp_path / "one.bin")]) == 0
        ours = np.fromfile(tmp_path / f"f_p{index:02d}.bin", "<f4")
        assert ours.max() > 0 and np.array_equal(ours, np.fromfile(tmp_path / "one.bin", "<f4"))
    capsys.readouterr()


@pytest.mark.skipif(not compiler_available(), reason="no C++ compiler")
def test_the_numba_loop_renders_a_stack_as_eager_code_does(tmp_path):
    """The default engine (the numba loop) for the four panels (chunks of at most the largest panel, each
    panel's inputs packed once), float64: equal to the eager stack to 1e-9, C's first pass included (phi
    from 0). The compiled kernel takes each panel's inputs the same way (engine.compiled, ``inputs=``)."""
    crystal = CRYSTAL + ["-phi", "0", "-osc", "10", "-phisteps", "2"]
    _, resolved = _panels(crystal, FOUR, tmp_path)
    assert resolved[0].inputs.first_pass is not None
    job, compiled = _render_stack(resolved, compile=None)
    assert job.kernel is not None and all(im.engine == "numba" for im in compiled)
    _, eager = _render_stack(resolved, compile=False)
    for fast, slow in zip(compiled, eager):
        assert slow.engine == "eager"
        torch.testing.assert_close(fast.image, slow.image, rtol=1e-9, atol=1e-12 * float(slow.image.max()))
        assert fast.totals.count == slow.totals.count and torch.equal(fast.totals.argmax, slow.totals.argmax)
