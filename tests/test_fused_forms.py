"""The compiled kernel's forms of the engine (render_pixels with fused=True), run eagerly: no build.

Compiled code renders a flat detector through pixels.plane_factors (positions kept implicit, R^2 and
h, k, l from sub-pixel coordinates), rounds h with _nearest_fused and, in float32, takes its sines
from polynomials (physics.lattice.sin_pi_half). Each must give the eager form's image: in float64
to rounding, in float32 as close to it as the eager float32 image is.
"""
import pytest
import torch

from nanobragg.cli.main import build_settings
from nanobragg.engine.render import render_pixels
from nanobragg.resolve import resolve

BASE = ("-default_F 100 -cell 70 80 90 85 95 100 -lambda 1.2 -N 7 -distance 80 -detpixels 40 -pixel 0.4 "
        "-misset 10 20 30 -nonoise -nopgm").split()
#: Geometry and step counts the plane form handles: a rotated detector, layers with absorption and
#: sub-pixels, point pixels, several sources, C's first pass (phi = 0, mosaic domains), an offset beam.
CASES = {
    "rotated": "-twotheta 20 -detector_rotx 3 -detector_roty 5 -detector_rotz 7",
    "thick-oversample": "-detector_thick 0.3 -detector_thicksteps 3 -detector_abs 200 -oversample 2",
    "point-nopolar": "-point_pixel -nopolar",
    "sources": "-divergence 0.2 -divsteps 3 -dispersion 2 -dispsteps 3",
    "first-pass-mosaic": "-phi 0 -osc 0.5 -phisteps 2 -mosaic 0.5 -mosaic_dom 3",
    "beam-polar": "-Xbeam 3 -Ybeam 15 -polar 0.9",
    "hkl-table": "-cell 30 30 30 90 90 90 -N 3 -lambda 0.5",
}


def _image(args, dtype, fused):
    res = resolve(build_settings(list(args)).experiment, seed=1, dtype=dtype)
    inp = res.inputs
    rows, cols = torch.meshgrid(torch.arange(inp.spixels), torch.arange(inp.fpixels), indexing="ij")
    blocks = [(slice(0, inp.thick_offsets.shape[0] * inp.oversample ** 2), slice(0, inp.source_dirs.shape[0]))]
    with torch.no_grad():
        value, omega, _ = render_pixels(inp, cols.reshape(-1).to(torch.float64), rows.reshape(-1).to(torch.float64),
                                        blocks, fused=fused)
    return value[:, 0].double(), omega.double()


@pytest.fixture
def hkl_file(tmp_path, monkeypatch):
    """A small F table (every h, k, l in -6..6, F = 50 + h + 2k + 3l) for the hkl-table case."""
    lines = [f"{h} {k} {l} {10 + h + 2 * k + 3 * l + 40}" for h in range(-6, 7) for k in range(-6, 7)
             for l in range(-6, 7)]
    (tmp_path / "small.hkl").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    return ["-hkl", "small.hkl"]


@pytest.mark.parametrize("name", list(CASES))
def test_fused_forms_equal_the_eager_ones(name, hkl_file):
    args = BASE + CASES[name].split() + (hkl_file if name == "hkl-table" else [])
    exact, omega = _image(args, torch.float64, fused=False)
    assert float(exact.max()) > 0
    fused, fused_omega = _image(args, torch.float64, fused=True)
    assert float((fused - exact).abs().max()) <= 1e-10 * float(exact.max()), name
    assert torch.allclose(fused_omega, omega, rtol=1e-12, atol=0)
    single, single_omega = _image(args, torch.float32, fused=True)
    eager_single, _ = _image(args, torch.float32, fused=False)
    error, eager_error = (float((x - exact).abs().max()) for x in (single, eager_single))
    assert error <= 3 * eager_error + 1e-6 * float(exact.max()), (name, error, eager_error)
    assert abs(float(single.sum() / exact.sum()) - 1) <= 2e-5, name
    assert torch.allclose(single_omega, omega, rtol=1e-6, atol=0)
