"""Where compiled code is kept: the kernel cache folder and numba's folder in it (no torch, no numba).

The command line reads these before it imports torch (see
:mod:`nanobragg.engine.jit_build`), so this module imports neither.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Folder of compiled kernels: $NB_CACHE_DIR, else ~/.cache/nanobragg/kernels."""
    base = os.environ.get("NB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nanobragg", "kernels")
    return Path(base)


def numba_cache_dir() -> Path:
    """numba's cache folder for the pixel loop: $NUMBA_CACHE_DIR, else ``numba`` in :func:`cache_dir`."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir() / "numba")
