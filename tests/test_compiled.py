"""The ahead-of-time compiled kernel against C on golden cases (one build per case: tens of seconds each).

Covers mosaic domains, spindle steps and sensor layers (comprehensive), several
sources (divergence, sourcefile), oversampling (oversample-2) and the
-oversample_* recurrence (oversample-4-flags).
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
def kernel_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kernels")
    old = os.environ.get("NB_CACHE_DIR")
    os.environ["NB_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        del os.environ["NB_CACHE_DIR"]
    else:
        os.environ["NB_CACHE_DIR"] = old


def _render(name, folder, compile_, extra=()):
    """The case's flags through the command line's table, rendered by api.simulate (float32, as the command)."""
    for f in INPUTS.iterdir():
        shutil.copy(f, folder / f.name)
    with in_folder(folder):
        settings = build_settings(list(load_case(name)["args"]) + list(extra))
        load_inputs(settings, lambda *_: None)
        with torch.no_grad():
            out = api.simulate(settings.experiment, dtype=torch.float32, seed=1, compile=compile_)
    assert out.path == ("compiled" if out.compiled else "eager") and out.rendered.compiled == out.compiled
    return out.rendered


@pytest.mark.parametrize("name", ["comprehensive", "divergence", "sourcefile", "oversample-2", "oversample-4-flags"])
def test_compiled_kernel_matches_c(name, tmp_path, kernel_cache):
    out = _render(name, tmp_path, True)
    assert out.compiled
    result = compare(out.image.numpy().reshape(-1), c_image(name))
    assert result["corr"] >= 0.9999, result
    assert result["rel_total"] <= 1e-3, result


def test_cached_kernel_is_reused_and_refused_when_asked(tmp_path, kernel_cache):
    """A second render with the same structure loads the package without building; compile=False stays eager."""
    before = set(kernel_cache.iterdir())
    assert _render("comprehensive", tmp_path, None).compiled
    assert set(kernel_cache.iterdir()) == before
    assert not _render("comprehensive", tmp_path, False).compiled


def _totals_from_image(image, active):
    v = image.double()[active]
    flat = torch.where(active.reshape(-1), image.reshape(-1), torch.tensor(-float("inf")))
    return len(v), float(v.sum()), float((v * v).sum()), float(flat.max()), int(torch.argmax(flat))


@pytest.mark.parametrize("roi", [None, ["-roi", "10", "300", "40", "400"]])
def test_compiled_writes_in_place_and_totals_match_the_image(roi, tmp_path, kernel_cache):
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


def test_compiled_int_conversion_equals_the_eager_one(kernel_cache):
    """The fused, packed int conversion gives C's values bit for bit, partial last block included."""
    kernel = compiled_int_kernel(build=True)
    assert kernel is not None and compiled_int_kernel(build=False) is not None
    rng = np.random.default_rng(3)
    img = (rng.standard_normal((700, 511)) * 3000).astype(np.float32)  # 1.4 blocks, odd width
    img[0, :5] = [np.nan, 1e9, -1e9, 0.0, 238.49998]
    for scale, adc in ((1.0, 40.0), (55000.0 / 1111.0, 0.0), (0.49999999, 1.0)):
        np.testing.assert_array_equal(int_image_from_float(img, scale, adc, (3, 400, 2, 600), kernel),
                                      int_image_from_float(img, scale, adc, (3, 400, 2, 600)))
