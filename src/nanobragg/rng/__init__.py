"""Random numbers: bit-exact ports of nanoBragg's C generators, and noise images.

Importing the package loads nothing: each name is imported from its module
on first use (PEP 562), so a run that draws a random misset or mosaic
domains (``rng.ran1``, ``rng.orientation``: numpy only) never loads numba,
which only the generators of :mod:`rng.cran` and the noise images of
:mod:`rng.noise` need.
"""
from __future__ import annotations

import importlib

#: Exported name -> the submodule defining it.
_WHERE = {
    "CRandom": "cran", "mosaic_rotation_umat": "cran", "mosaic_umats": "cran", "random_misset": "cran",
    "uniform3d_dev": "cran", "umat2misset": "cran",
    "poisson_noise_c": "noise", "poisson_noise_torch": "noise",
    "CStatics": "ran1",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
