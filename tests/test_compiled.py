"""The ahead-of-time compiled kernel against C on golden cases, in float32 and float64.

A kernel serves every run of its kind (step counts, oversampling and detector
size are runtime sizes), so the module's cache builds one per kind (tens of
seconds to minutes each on two cores): runs without sensor thickness or a
spindle from phi = 0 (five of them first, from an empty cache, which add one
kernel for several sources and one for one source), comprehensive (mosaic
domains, spindle steps, sensor layers), and in float64 those two kinds and a
thick sensor (absorption): the subset of issue
12 (mosaic domains, several sources, sensor layers, oversampling, both
dtypes). Every other kind is rendered, by default, by the numba loop, which
tests/test_golden.py checks on every case.

A build is one thread's work (Inductor's Python, then g++ on one file at a
time), so the comprehensive kernel, the float64 kernels and the int conversion
are built in a second process (_BUILDER), started with the session by
tests/conftest.py's background_builds (in the suite its builds overlap the
modules before this one, which leave a core mostly idle) while the first test
builds its kernel, and moved into the cache before the tests that render with
them (background_kernels).
"""
import os
import shutil

import numpy as np
import pytest
import torch

from golden import INPUTS, c_image, compare, load_case
from nanobragg import api
from nanobragg.cli.loaders import load_inputs
from nanobragg.cli.main import build_settings
from nanobragg.engine.compiled import compiled_int_kernel, compiler_available
from nanobragg.io import int_image_from_float
from util import in_folder

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no C++ compiler")


@pytest.fixture(scope="module")
def kernel_cache():
    """The session's kernel cache (tests/conftest.py), so that later modules reuse these kernels (the int
    conversion's, for one: tests/test_dataset.py)."""
    from nanobragg.engine.compiled import cache_dir

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: What the second process builds (see tests/conftest.py's background_builds, which starts it): the
#: comprehensive kind in float32, a float64 case of each float64 kind, then the int conversion. It runs this
#: module's own _render, so that its kernels are the ones the tests ask for.
_BUILDER = """
import sys
from pathlib import Path

import torch

import test_compiled as t

folder = Path(sys.argv[1])
for name, dtype in t.BACKGROUND_KINDS:
    (folder / f"{name}-{dtype}").mkdir()
    assert t._render(name, folder / f"{name}-{dtype}", True, dtype=dtype).compiled, (name, dtype)
assert t.compiled_int_kernel(build=True) is not None
"""
#: One case per kind built in the second process: comprehensive (mosaic domains, spindle steps, sensor
#: layers) in float32; in float64 divergence (several sources), mosaic and oversample-2 (one source: a
#: kind of their own), and absorption.
BACKGROUND_KINDS = (("comprehensive", torch.float32), ("divergence", torch.float64), ("mosaic", torch.float64),
                    ("absorption", torch.float64))


@pytest.fixture
def background_kernels(background_builds, kernel_cache, request):
    """The second process's kernels (started with the session: tests/conftest.py's background_builds), moved
    into the session's cache once it has built them all."""
    proc, cache, log = background_builds[request.module.__name__]
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    for package in cache.glob("*.pt2"):
        os.replace(package, kernel_cache / package.name)
    return kernel_cache


def _render(name, folder, compile_, extra=(), dtype=torch.float32):
    """The case's flags through the command line's table, rendered by api.simulate (in float32, as the
    command, unless ``dtype``)."""
    for f in INPUTS.iterdir():
        shutil.copy(f, folder / f.name)
    with in_folder(folder):
        settings = build_settings(list(load_case(name)["args"]) + list(extra))
        load_inputs(settings, lambda *_: None)
        with torch.no_grad():
            out = api.simulate(settings.experiment, dtype=dtype, seed=1, compile=compile_)
    assert out.path == ("compiled" if out.compiled else "eager") and out.rendered.compiled == out.compiled
    return out.rendered


def _kernels(folder) -> set:
    return {p.name for p in folder.glob("*.pt2")}


#: Runs of two kinds, each sharing one kernel: several sources (49 sources; 5 wavelengths) and one source
#: (12 mosaic domains; 2 x 2 sub-pixels; a 64-pixel detector with 3 spindle steps (from phi = 10) x 2
#: domains and 3 x 3 sub-pixels, no C image).
REUSE = {"several sources": [("divergence", ()), ("dispersion", ())],
         "one source": [("mosaic", ()), ("oversample-2", ()),
                        ("detsize-64", ("-phi", "10", "-osc", "30", "-phisteps", "3", "-mosaic", "1",
                                        "-mosaic_dom", "2", "-oversample", "3"))]}


def test_runs_of_one_kind_share_one_kernel(tmp_path, kernel_cache):
    """Other step counts, oversampling and detector sizes: one kernel per kind built into the empty cache,
    each image the eager one to float rounding and C's where there is one. First in the module (the other
    tests reuse these kernels)."""
    before = _kernels(kernel_cache)
    for kinds, (kind, runs) in enumerate(REUSE.items(), 1):
        for name, extra in runs:
            folder = tmp_path / name
            folder.mkdir()
            fast, slow = _render(name, folder, True, extra), _render(name, folder, False, extra)
            assert fast.compiled and not slow.compiled
            assert float((fast.image - slow.image).abs().max()) <= 1e-5 * float(slow.image.abs().max()), name
            if not extra:
                result = compare(fast.image.numpy().reshape(-1), c_image(name))
                assert result["corr"] >= 0.9999 and result["rel_total"] <= 1e-3, (name, result)
            assert len(_kernels(kernel_cache) - before) == kinds, (kind, name, _kernels(kernel_cache))


@pytest.mark.parametrize("name", ["comprehensive", "divergence", "sourcefile", "oversample-2"])
def test_compiled_kernel_matches_c(name, tmp_path, background_kernels):
    out = _render(name, tmp_path, True)
    assert out.compiled
    result = compare(out.image.numpy().reshape(-1), c_image(name))
    assert result["corr"] >= 0.9999, result
    assert result["rel_total"] <= 1e-3, result


@pytest.mark.parametrize("name", ["divergence", "mosaic", "oversample-2", "absorption"])
def test_float64_compiled_kernel_matches_c(name, tmp_path, background_kernels):
    """float64 through the compiled kernel (three builds, BACKGROUND_KINDS: mosaic and oversample-2 are one kind),
    at the eager float64 limits of tests/test_golden.py: several sources, mosaic domains, sub-pixels, layers."""
    out = _render(name, tmp_path, True, dtype=torch.float64)
    assert out.compiled and out.image.dtype == torch.float64
    result = compare(out.image.numpy().reshape(-1), c_image(name))
    assert result["corr"] >= 0.99999 and result["rel_total"] <= 1e-4 and result["peak_ok"], result


def test_cached_kernel_is_reused_and_refused_when_asked(tmp_path, background_kernels):
    """A second render with the same structure loads the package without building; compile=False stays eager."""
    before = set(background_kernels.iterdir())
    assert _render("comprehensive", tmp_path, None).compiled
    assert set(background_kernels.iterdir()) == before
    assert not _render("comprehensive", tmp_path, False).compiled


def _totals_from_image(image, active):
    v = image.double()[active]
    flat = torch.where(active.reshape(-1), image.reshape(-1), torch.tensor(-float("inf")))
    return len(v), float(v.sum()), float((v * v).sum()), float(flat.max()), int(torch.argmax(flat))


@pytest.mark.parametrize("roi", [None, ["-roi", "10", "300", "40", "400"]])
def test_compiled_writes_in_place_and_totals_match_the_image(roi, tmp_path, background_kernels):
    """Whole rows (in place) and a column-limited ROI (scattered): same image and totals as eager mode."""
    extra = roi or []
    fast, slow = _render("comprehensive", tmp_path, True, extra), _render("comprehensive", tmp_path, False, extra)
    assert fast.compiled and not slow.compiled
    assert torch.equal(fast.active, slow.active)
    assert float((fast.image - slow.image).abs().max()) <= 1e-4 * float(slow.image.abs().max())
    assert not bool(fast.image[~fast.active].any())
    assert bool(fast.active.all()) == (roi is None)
    for out in (fast, slow):
        count, total, squares, top, where = _totals_from_image(out.image, out.active)
        t = out.totals
        assert t.count == count
        assert float(t.sum[0]) == pytest.approx(total, rel=1e-12)
        assert float(t.sum_sq[0]) == pytest.approx(squares, rel=1e-12)
        assert (float(t.max[0]), int(t.argmax[0])) == (top, where)


def test_compiled_int_conversion_equals_the_eager_one(background_kernels):
    """The fused, packed int conversion gives C's values bit for bit, partial last block included."""
    kernel = compiled_int_kernel(build=True)
    assert kernel is not None and compiled_int_kernel(build=False) is not None
    rng = np.random.default_rng(3)
    img = (rng.standard_normal((700, 511)) * 3000).astype(np.float32)  # 1.4 blocks, odd width
    img[0, :5] = [np.nan, 1e9, -1e9, 0.0, 238.49998]
    for scale, adc in ((1.0, 40.0), (55000.0 / 1111.0, 0.0), (0.49999999, 1.0)):
        np.testing.assert_array_equal(int_image_from_float(img, scale, adc, (3, 400, 2, 600), kernel),
                                      int_image_from_float(img, scale, adc, (3, 400, 2, 600)))
