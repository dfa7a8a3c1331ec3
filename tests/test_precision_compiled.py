"""The compiled kernel keeps float32 as accurate as C's double, and renders C's first spindle pass.

The same engine code as the eager tests in test_golden.py, exported and built
by AOTInductor (one build per case, tens of seconds each): Miller indices
from the float64 geometry, the first pass at phi = 0 re-rendered in every
chunk's kernel call.
"""
import numpy as np
import pytest

from golden import c_image, compare, run_case
from nanobragg.engine.compiled import compiler_available

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no C++ compiler")


def _run_compiled(name, folder, dtype, monkeypatch, capfd):
    monkeypatch.setenv("NB_TIMING", "1")
    image, _ = run_case(name, folder, dtype, extra=("-compile",), engine="default")
    assert "(compiled: yes" in capfd.readouterr().err
    return image


@pytest.mark.parametrize("name", ["N100-l0.31", "N100-l0.3-roi"])
def test_compiled_float32_total_within_2e4(name, tmp_path, monkeypatch, capfd):
    image = _run_compiled(name, tmp_path, "float32", monkeypatch, capfd)
    result = compare(image, c_image(name))
    assert result["corr"] >= 0.99999 and result["rel_total"] <= 2e-4, result


def test_compiled_first_pass_equals_single_threaded_c(tmp_path, monkeypatch, capfd):
    image = _run_compiled("phi0-mosaic", tmp_path, "float64", monkeypatch, capfd)
    ref = c_image("phi0-mosaic").astype(np.float64)
    np.testing.assert_allclose(image.astype(np.float64), ref, rtol=1e-6, atol=1e-6 * ref.max())
