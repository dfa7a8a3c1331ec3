"""nonBragg against the C program's outputs (tests/data/golden_tools, bl831/nanoBragg nonBragg.c).

float64: float image correlation >= 0.99999 and total within 1e-4, and every int, noise and PGM
file byte for byte (the PGM's first W*H bytes: C writes W*H more from past its buffer, and writes the
PGM even with -nopgm, which this command honours). float32: correlation >= 0.9999, total within 1e-3.
"""
from __future__ import annotations

import numpy as np
import pytest

from golden_tools import EXTRA, c_output, case_names, float_compare, pgm_split, prepare, run_in
from nanobragg.cli.nonbragg import run

CASES = case_names("nonBragg")
EXTRA_CASES = case_names("nonBragg", EXTRA)
#: C reads nanoice.stol's two '#' lines as rows (stol 0, F 0): 5 NaN pixels at the direct beam, and a
#: smaller brightest pixel, hence another int scale. Here the comment lines are skipped.
NAN_TABLE = {"nb-nanoice-samplesize"}


def test_every_case_is_here():
    assert len(CASES) == 23 and len(EXTRA_CASES) == 19


def _check(name, folder, dtype):
    case = prepare(name, folder)
    status, lines = run_in(folder, run, case["args"] + ["-dtype", dtype])
    assert status == case["c_returncode"] == 0, lines
    results = {}
    for out in case["outputs"]:
        ref = c_output(name, out)
        path = folder / out
        if out.endswith(".pgm") and "-nopgm" in case["args"]:
            assert not path.exists(), "-nopgm is honoured"
            continue
        ours = path.read_bytes()
        if out.endswith(".bin"):
            corr, rel = float_compare(ours, ref)
            results[out] = (corr, rel)
            if dtype == "float64":
                assert corr >= 0.99999 and rel <= 1e-4, (out, corr, rel)
            else:
                assert corr >= 0.9999 and rel <= 1e-3, (out, corr, rel)
            assert np.isfinite(np.frombuffer(ours, "<f4")).all()
        elif dtype != "float64":
            continue
        elif name in NAN_TABLE and out.endswith((".img", ".pgm")):
            continue
        elif out.endswith(".pgm"):
            head, width, height = pgm_split(ref)
            assert len(ours) == len(head) + width * height
            assert ours == ref[:len(ours)], out
        else:
            assert ours == ref, out
    return results


@pytest.mark.parametrize("name", CASES + EXTRA_CASES)
def test_case_float64(name, tmp_path):
    _check(name, tmp_path, "float64")


@pytest.mark.parametrize("name", CASES + EXTRA_CASES)
def test_case_float32(name, tmp_path):
    _check(name, tmp_path, "float32")


def test_nanoice_comment_lines_are_skipped(tmp_path):
    """C's NaN pixels become finite; elsewhere the image is C's, and the int image follows its own maximum."""
    name = "nb-nanoice-samplesize"
    case = prepare(name, tmp_path)
    assert run_in(tmp_path, run, case["args"])[0] == 0
    ours = np.frombuffer((tmp_path / "float.bin").read_bytes(), "<f4")
    ref = np.frombuffer(c_output(name, "float.bin"), "<f4")
    bad = ~np.isfinite(ref)
    assert bad.sum() == 5 and np.isfinite(ours).all()
    assert np.array_equal(ours[~bad], ref[~bad])
    ints = np.frombuffer((tmp_path / "int.img").read_bytes()[512:], "<u2")
    top = ours.astype(np.float64).max()
    expected = np.floor(np.float32(ours.astype(np.float64) * (55000.0 / top) + 40.0 + 0.5))
    assert np.array_equal(ints, expected.astype(np.uint16))


@pytest.mark.parametrize("name", ["nb-shortwater-molecules", "nb-divergence", "nb-curved-det", "nb-polar",
                                  "nb-img-header", "nb-roi"])
def test_tensor_engine_equals_the_loop(name, tmp_path):
    """The tensor functions (physics.background, used for float32, CUDA and the API) give the compiled
    loop's float64 image to rounding, on every branch (non-increasing table, sources, curved, Kahn, -img, ROI)."""
    from nanobragg.cli import nonbragg
    case = prepare(name, tmp_path)
    cwd = __import__("os").getcwd()
    __import__("os").chdir(tmp_path)
    try:
        s, img = nonbragg.build_settings(case["args"])
        r = nonbragg.resolve(s, log=lambda *a: None)
        table, _, _ = nonbragg.read_stol(s.stol, s.stol_mult)
        a, ea = nonbragg.render(s, r, table, img is not None, engine="loop")
        b, eb = nonbragg.render(s, r, table, img is not None, engine="torch")
    finally:
        __import__("os").chdir(cwd)
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=0)
    assert (a == b).mean() > 0.99
    if img is not None:
        assert np.array_equal(ea["nearest"], eb["nearest"])
        np.testing.assert_allclose(eb["omega"], ea["omega"], rtol=1e-12)
