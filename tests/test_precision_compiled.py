"""The compiled kernel keeps float32 as accurate as C's double, and renders C's first spindle pass.

The same engine code as the eager tests in test_golden.py, exported and built
by AOTInductor (one build, tens of seconds, into the session's kernel cache):
Miller indices from the float64 geometry. The kind is that of the real build of
tests/test_compile_policy.py (one term per pixel, -default_F, a cubic cell):
in a session that ran that test its kernel is loaded instead (built_kernels).
C's first pass at phi = 0 through the compiled kernel is checked against C by
the comprehensive case of tests/test_compiled.py.
"""
import shutil

import pytest

from golden import c_image, compare, run_case
from nanobragg.engine.compiled import compiler_available

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no C++ compiler")


@pytest.fixture(scope="module", autouse=True)
def _kernels_built_earlier(built_kernels):
    """The kernels an earlier test of the session built and checked (built_kernels), in the session's cache."""
    from nanobragg.engine.compiled import cache_dir

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for package in built_kernels.glob("*.pt2"):
        if not (folder / package.name).exists():
            shutil.copy(package, folder / package.name)


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
