"""The compiled-kernel cache key: a kernel is reused only for the same engine code and structure."""
import torch

from nanobragg.engine import compiled
from nanobragg.engine.compiled import _TRACED, _TRACED_INT, _source_hash, _static_key


def _inputs():
    from nanobragg.cli.main import build_settings
    from nanobragg.resolve import resolve
    settings = build_settings("-default_F 10 -cell 50 50 50 90 90 90 -lambda 1 -N 3 -distance 50 -detpixels 8".split())
    return resolve(settings.experiment, seed=1, dtype=torch.float32).inputs


def test_key_follows_engine_source_and_structure(monkeypatch):
    inp = _inputs()
    blocks = [(slice(0, 1), slice(0, 1))]
    key = _static_key(inp, blocks, 1024)
    assert key == _static_key(inp, blocks, 1024)
    assert key != _static_key(inp, blocks, 2048)
    assert key != _static_key(inp.to(dtype=torch.float64), blocks, 1024)
    monkeypatch.setattr(compiled, "_source_hash", lambda *modules: "an edited engine")
    assert key != _static_key(inp, blocks, 1024)


def test_source_hash_covers_the_traced_modules():
    assert "engine/render.py" in _TRACED and "physics/lattice.py" in _TRACED
    assert "io/smv.py" in _TRACED_INT and "io/smv.py" not in _TRACED  # an edit of the SMV writer keeps the render kernel
    assert len(_source_hash()) == 64 and _source_hash() != _source_hash(_TRACED_INT)
