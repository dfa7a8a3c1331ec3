"""``nanoBragg -prepare``: build the compiled kernel of a kind of run ahead of time, render nothing.

The run is set up as it would render (the same flags, inputs and chunk plan),
then :func:`nanobragg.engine.image.prepare_render` is asked for the kernel with
``compile=True``: found in the cache, or built (announced on stderr by
:mod:`nanobragg.engine.policy`). Later runs of this kind, with other parameter
values, load it. No output file is opened or written.
"""
from __future__ import annotations

import torch

from ..engine.compiled import cache_dir
from ..engine.image import prepare_render
from ..errors import UsageError
from ..resolve import resolve
from .settings import Settings
from .simulate import pick_device


def prepare_kernel(settings: Settings, seed: int, log) -> int:
    """Find or build the compiled kernel of this run's kind; one line says which. Exit status 0."""
    if settings.files.geom is not None:
        raise UsageError("-prepare: not with -geom (build a panel's kind with its single-detector flags)")
    if settings.run.compile in (False, "numba"):
        other = "-nocompile" if settings.run.compile is False else "-numba"
        raise UsageError(f"-prepare builds the compiled kernel, {other} forbids it: give one of them")
    dtype = torch.float64 if settings.run.dtype == "float64" else torch.float32
    device = pick_device(settings.run.device)
    res = resolve(settings.experiment, seed=seed, dtype=dtype)
    with torch.no_grad():
        job = prepare_render(res.inputs.to(device=device), res.roi, res.mask, budget=settings.budget_bytes() // 2,
                             compile=True)
    if job.kernel is not None:
        log(f"compiled kernel for this kind of run: ready in {cache_dir()}")
    else:
        log("compiled kernel for this kind of run: not available (the eager engine renders it)")
    return 0
