"""The compiled-kernel cache key: a kernel is reused only for the same engine code and structure.

The key hashes the source of the import closure of the kernels' modules (engine.compiled for the
render kernel, engine.int_values for the int conversion), found by reading the files; these tests
check that closure against what Python itself loads, so a module the traced code reaches cannot be
left out of the key.
"""
import subprocess
import sys

import torch

from nanobragg.cli.main import build_settings
from nanobragg.engine import compiled
from nanobragg.engine.compiled import INT_ROOTS, RENDER_ROOTS, _source_hash, _static_key, traced_modules
from nanobragg.resolve import resolve


def _inputs():
    settings = build_settings("-default_F 10 -cell 50 50 50 90 90 90 -lambda 1 -N 3 -distance 50 -detpixels 8".split())
    return resolve(settings.experiment, seed=1, dtype=torch.float32).inputs


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


def test_key_follows_engine_source_and_structure(monkeypatch):
    inp = _inputs()
    blocks = [(slice(0, 1), slice(0, 1))]
    key = _static_key(inp, blocks, 1024)
    assert key == _static_key(inp, blocks, 1024)
    assert key != _static_key(inp, blocks, 2048)
    assert key != _static_key(inp.to(dtype=torch.float64), blocks, 1024)
    monkeypatch.setattr(compiled, "_source_hash", lambda *modules: "an edited engine")
    assert key != _static_key(inp, blocks, 1024)


def test_the_line_scanner_finds_what_a_parser_finds():
    """_imports reads import lines without parsing; on every module of the closure it agrees with ast."""
    import ast

    for name in traced_modules(RENDER_ROOTS):
        path = compiled._module_file(name)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = name.split(".")[:-1]
                head = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
                found |= {head} | {f"{head}.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        package = {m for m in found if m.startswith("nanobragg.") and compiled._module_file(m) is not None}
        assert compiled._imports(name, path) == package, name
