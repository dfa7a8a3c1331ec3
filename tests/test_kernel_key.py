"""The compiled-kernel cache key: a kernel is reused only for the same engine code and kind of run,
whatever its step counts, oversampling and detector size (runtime sizes of the kernel).

The key hashes the source of the import closure of the kernels' modules (engine.compiled for the
render kernel, engine.int_values for the int conversion), found by reading the files; these tests
check that closure against what Python itself loads, so a module the traced code reaches cannot be
left out of the key.
"""
import subprocess
import sys
from dataclasses import replace

import torch

from nanobragg.cli.main import build_settings
from nanobragg.engine import compiled
from nanobragg.engine.chunks import plan
from nanobragg.engine.compiled import INT_ROOTS, RENDER_ROOTS, _source_hash, kernel_key, traced_modules
from nanobragg.physics.structure_factors import FTable
from nanobragg.resolve import resolve

BASE = "-default_F 10 -cell 50 50 50 90 90 90 -lambda 1 -N 3 -distance 50 -detpixels 8"


def _inputs(extra: str = ""):
    settings = build_settings(f"{BASE} {extra}".split())
    return resolve(settings.experiment, seed=1, dtype=torch.float32).inputs


def _key(inp, pixels: int = 1024) -> str:
    """The key of ``inp`` with its own chunk plan's blocks."""
    K, S, C = len(inp.thick_offsets) * inp.oversample ** 2, len(inp.source_dirs), len(inp.orientations)
    return kernel_key(inp, plan(K, S, C, 4, False).blocks, pixels)


def _loaded_by_import(module: str) -> set:
    """The package's modules that importing ``module`` loads, in a fresh interpreter."""
    code = (f"import sys, {module}; "
            "print(' '.join(m for m in sys.modules if m.startswith('nanobragg.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _modules_only(names) -> set:
    """Drop packages (their __init__ is empty or only re-exports) to compare modules with files."""
    return {n for n in names if compiled._module_file(n) is not None and compiled._module_file(n).name != "__init__.py"}


def test_the_closure_holds_every_module_the_kernel_module_loads():
    """Every package module that importing the kernel's module loads is hashed into the key."""
    for roots in (RENDER_ROOTS, INT_ROOTS):
        loaded = _modules_only(set().union(*(_loaded_by_import(r) for r in roots)))
        assert loaded <= set(traced_modules(roots)), loaded - set(traced_modules(roots))


def test_the_closure_is_the_engine_not_the_edges():
    render = set(traced_modules(RENDER_ROOTS))
    for name in ("nanobragg.engine.render", "nanobragg.physics.lattice", "nanobragg.physics.structure_factors",
                 "nanobragg.engine.totals", "nanobragg.engine.inputs"):
        assert name in render
    assert not any(n.startswith(("nanobragg.cli", "nanobragg.io", "nanobragg.tools")) for n in render)
    assert set(traced_modules(INT_ROOTS)) == {"nanobragg.engine.int_values"}


def test_a_changed_module_changes_the_key(monkeypatch, tmp_path):
    """Editing any module of the closure (here: lattice.py, read through a patched file lookup) changes the hash."""
    before, int_before = _source_hash(), _source_hash(INT_ROOTS, ("nanobragg.engine.compiled",))
    original = compiled._module_file
    edited = tmp_path / "lattice.py"
    edited.write_text(original("nanobragg.physics.lattice").read_text() + "\n# edited\n")
    monkeypatch.setattr(compiled, "_module_file",
                        lambda name: edited if name == "nanobragg.physics.lattice" else original(name))
    _source_hash.cache_clear()
    try:
        assert _source_hash() != before
        # the int kernel does not depend on lattice.py
        assert _source_hash(INT_ROOTS, ("nanobragg.engine.compiled",)) == int_before
    finally:
        _source_hash.cache_clear()


def test_key_leaves_out_step_counts_and_sizes():
    """Spindle steps, mosaic domains, oversampling, detector size and chunk pixels: one kernel for one
    source; source counts (two or more) and the rest: one kernel for several sources."""
    key = _key(_inputs("-mosaic 1 -mosaic_dom 2"))
    assert _key(_inputs("-mosaic 1 -mosaic_dom 2"), 2048) == key
    for extra in ("-mosaic 1 -mosaic_dom 5", "-phi 10 -osc 30 -phisteps 3", "-oversample 3",
                  "-oversample 2 -detpixels 20"):
        assert _key(_inputs(extra)) == key, extra
    several = _key(_inputs("-hdivrange 0.1 -hdivsteps 3"))
    assert several != key
    for extra in ("-dispersion 5 -dispsteps 4 -distance 70 -lambda 1.5", "-hdivrange 0.1 -hdivsteps 3 -mosaic 1 "
                  "-mosaic_dom 5 -oversample 2", "-dispersion 1 -dispsteps 2"):
        assert _key(_inputs(extra)) == several, extra


def test_one_term_per_pixel_is_a_kind_of_its_own():
    """A run of one term per pixel (one layer, sub-pixel, source, orientation) bakes those counts in; its
    detector size, chunk pixels and parameter values stay runtime."""
    single = _key(_inputs())
    assert single != _key(_inputs("-mosaic 1 -mosaic_dom 2"))
    assert single == _key(_inputs("-detpixels 20 -distance 70 -lambda 1.5 -N 4"), 4096)


def test_key_follows_engine_source_and_switches(monkeypatch):
    inp = _inputs()
    key = _key(inp)
    assert key == _key(inp)
    assert key != _key(inp.to(dtype=torch.float64))
    for extra in ("-nopolar", "-detector_abs 500 -detector_thick 450 -thicksteps 3", "-round_xtal", "-Na 1",
                  "-oversample_omega", "-phi 0 -osc 30 -phisteps 3", "-dmin 2"):
        assert _key(_inputs(extra)) != key, extra
    monkeypatch.setattr(compiled, "_source_hash", lambda *modules: "an edited engine")
    assert key != _key(inp)


def test_a_split_plan_is_baked_in():
    """A plan that cuts one pixel's terms into blocks keys on the blocks and the sizes it was cut from."""
    inp = _inputs("-hdivrange 0.1 -hdivsteps 4")
    one, two = [(slice(0, 1), slice(0, 4))], [(slice(0, 1), slice(0, 2)), (slice(0, 1), slice(2, 4))]
    assert kernel_key(inp, one, 1) == _key(inp)
    assert kernel_key(inp, two, 1) != kernel_key(inp, one, 1)
    three = [two[0], (slice(0, 1), slice(2, 3)), (slice(0, 1), slice(3, 4))]
    assert kernel_key(inp, two, 1) != kernel_key(inp, three, 1)
    assert kernel_key(inp, two, 1) != kernel_key(_inputs("-hdivrange 0.1 -hdivsteps 5"), two, 1)


def test_key_follows_the_f_tables_extent():
    """An F table's index bounds and grid shape are constants of the kernel's lookup; its values are not."""
    inp = _inputs()

    def table(lo, shape, value=0.0):
        hi = tuple(a + n - 2 for a, n in zip(lo, shape))
        return FTable(torch.full(shape, value), lo, hi, inp.ftable.default_F, True)

    key = _key(replace(inp, ftable=table((-3, -3, -3), (8, 8, 8))))
    assert key == _key(replace(inp, ftable=table((-3, -3, -3), (8, 8, 8), 5.0)))
    assert key != _key(replace(inp, ftable=table((-4, -3, -3), (9, 8, 8))))
    assert key != _key(inp)
