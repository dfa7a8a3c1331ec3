"""The nonBragg command's behaviour beyond the golden cases: packaged tables, bad input, outputs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from golden_tools import STOL, c_output, run_in
from nanobragg.cli.nonbragg import run
from nanobragg.data import packaged_stol, packaged_stol_names

SMALL = ["-distance", "100", "-detpixels", "16", "-pixel", "3.2", "-noprogress", "-seed", "5"]


def test_the_upstream_tables_are_packaged():
    assert packaged_stol_names() == ["air", "ice", "nanoice", "shortwater", "unity", "water"]
    for name in packaged_stol_names():
        assert packaged_stol(name).read_bytes() == (STOL / f"{name}.stol").read_bytes()
    assert packaged_stol("water.stol") == packaged_stol("water")
    assert packaged_stol("../water") is None and packaged_stol("nothing") is None


def test_stol_water_finds_the_packaged_table(tmp_path):
    """-stol water (no such file here) uses the packaged table: the image equals nb-water's."""
    args = ["-stol", "water", "-distance", "100", "-detpixels", "128", "-pixel", "0.4", "-noprogress",
            "-floatfile", "float.bin", "-intfile", "int.img", "-nonoise", "-nopgm"]
    status, lines = run_in(tmp_path, run, args)
    assert status == 0, lines
    assert (tmp_path / "int.img").read_bytes() == c_output("nb-water", "int.img")
    assert not (tmp_path / "image.pgm").exists()


def test_default_outputs(tmp_path):
    status, _ = run_in(tmp_path, run, ["-stol", "unity"] + SMALL)
    assert status == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floatimage.bin", "image.pgm", "intimage.img",
                                                          "noiseimage.img"]
    pgm = (tmp_path / "image.pgm").read_bytes()
    assert len(pgm) == pgm.index(b"255\n") + 4 + 16 * 16, "no bytes from past the image"


@pytest.mark.parametrize("args, words", [
    ([] + SMALL, "-stol"),
    (["-stol", "missing.stol"] + SMALL, "missing.stol"),
    (["-stol", "unity", "-pixel"], "-pixel"),
    (["-stol", "unity", "-pixel", "abc"], "-pixel"),
    (["-stol", "unity", "-pixel", "0"] + SMALL[:4], "-pixel"),
    (["-stol", "unity", "-bogus"], "-bogus"),
    (["-stol", "unity", "-roi", "10", "5", "0", "3"] + SMALL, "-roi"),
    (["-stol", "unity", "-MW", "0"] + SMALL, "-MW"),
    (["-stol", "unity", "-sourcefile", "nofile.txt"] + SMALL, "nofile.txt"),
    (["-stol", "unity", "-img", "nofile.img"] + SMALL, "nofile.img"),
    (["-stol", "unity", "-floatfile", "nodir/f.bin"] + SMALL, "nodir"),
])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(args, words, tmp_path, capsys):
    (tmp_path / "intimage.img").write_bytes(b"old")
    status, _ = run_in(tmp_path, run, args)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[0].startswith("nonBragg: error:") and words in err[0] and "Traceback" not in "\n".join(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intimage.img"]
    assert (tmp_path / "intimage.img").read_bytes() == b"old"


def test_bad_table_line_is_named(tmp_path, capsys):
    (tmp_path / "bad.stol").write_text("0 1\n0.1 x\n")
    status, _ = run_in(tmp_path, run, ["-stol", "bad.stol"] + SMALL)
    assert status == 2 and "bad.stol, line 2" in capsys.readouterr().err


def test_comment_lines_are_skipped(tmp_path):
    """'#' lines are comments (C reads them as rows of zeros, hence NaN pixels next to stol 0)."""
    shutil.copy(STOL / "nanoice.stol", tmp_path / "nanoice.stol")
    status, _ = run_in(tmp_path, run, ["-stol", "nanoice.stol", "-samplesize", "0.05", "-nonoise", "-nopgm"] + SMALL)
    assert status == 0
    assert np.isfinite(np.fromfile(tmp_path / "floatimage.bin", dtype="<f4")).all()


def test_float32_and_cuda_device_flags(tmp_path):
    status, _ = run_in(tmp_path, run, ["-stol", "water", "-dtype", "float32", "-device", "cpu"] + SMALL)
    assert status == 0


def test_console_script(tmp_path):
    exe = shutil.which("nonBragg", path=os.path.dirname(sys.executable))
    assert exe is not None
    done = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "-stol" in done.stdout
    done = subprocess.run([exe, "-stol"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("nonBragg: error:") and not list(tmp_path.iterdir())


def test_background_function_equals_the_command(tmp_path):
    from nanobragg.cli.nonbragg import background
    args = ["-stol", "water", "-distance", "100", "-detpixels", "128", "-pixel", "0.4", "-noprogress"]
    image = background(args)
    assert image.shape == (128, 128) and image.dtype == np.float32
    assert image.tobytes() == c_output("nb-water", "float.bin")


def test_render_background_on_a_resolved_detector_is_differentiable(tmp_path):
    """physics.background.render_background (what the API wires as background=) gives the command's
    image on the same detector, and gradients with respect to the fluence and the table's F."""
    from types import SimpleNamespace

    import torch

    from nanobragg.cli import nonbragg
    from nanobragg.physics.background import render_background, stol_table
    s, _ = nonbragg.build_settings(["-stol", "water", "-distance", "100", "-detpixels", "128", "-pixel", "0.4"])
    r = nonbragg.resolve(s, log=lambda *a: None)
    table, _, path = nonbragg.read_stol(s.stol, s.stol_mult)
    rows = np.loadtxt(path)
    F = torch.tensor(rows[:, 1], requires_grad=True)
    table = stol_table(rows[:, 0], F)
    det = SimpleNamespace(fpixels=r.fpixels, spixels=r.spixels, pixel_size=r.pixel_size, fdet=r.fdet, sdet=r.sdet,
                          pix0=r.pix0, close_distance=r.close_distance, distance=r.distance, beam=r.beam,
                          curved=False, point_pixel=False)
    fluence = torch.tensor(r.fluence, dtype=torch.float64, requires_grad=True)
    image = render_background(det, r.incident, r.lambdas, table, polar_vector=r.polar_vector,
                              fluence=fluence, molecules=r.molecules)
    ref = np.frombuffer(c_output("nb-water", "float.bin"), "<f4").reshape(128, 128)
    np.testing.assert_allclose(image.detach().numpy(), ref, rtol=1e-6)
    image.sum().backward()
    assert float(fluence.grad) > 0 and float(F.grad.abs().sum()) > 0
