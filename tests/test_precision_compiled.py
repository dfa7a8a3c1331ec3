"""The compiled kernel keeps float32 as accurate as C's double, and renders C's first spindle pass.

The same engine code as the eager tests in test_golden.py, exported and built
by AOTInductor (one build, tens of seconds): Miller indices from the float64
geometry. C's first pass at phi = 0 through the compiled kernel is checked
against C by the comprehensive case of tests/test_compiled.py.
"""
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
