"""Optional compilation of the per-chunk kernel with ``torch.compile``.

Compiled, the engine's element-wise arithmetic fuses into one vectorised
loop per chunk (float32 SIMD lanes instead of one double at a time). It
pays back only on large renders: compilation costs seconds even with a warm
on-disk cache, so :func:`worth_compiling` decides from the amount of work.
Compilation needs a C++ compiler at run time; without one the engine stays
in eager mode.
"""
from __future__ import annotations

import functools
import os
import shutil

import torch

from .render import render_pixels

#: Below this many (pixel x layer x sub-pixel x source x orientation) terms, eager mode is faster overall.
COMPILE_THRESHOLD = 3e7


def compiler_available(device: torch.device) -> bool:
    """True when torch.compile can build kernels here (a C++ compiler for CPU, Triton for CUDA)."""
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


def worth_compiling(terms: float, device: torch.device, requested: bool | None) -> bool:
    """Compile when asked (``requested`` True), never when refused (False), else when the work is large."""
    if requested is False or not compiler_available(device):
        return False
    return bool(requested) or terms >= COMPILE_THRESHOLD


@functools.lru_cache(maxsize=None)
def compiled_kernel():
    """``render_pixels`` compiled for fixed chunk shapes (the caller pads the last chunk)."""
    return torch.compile(render_pixels, dynamic=False)
