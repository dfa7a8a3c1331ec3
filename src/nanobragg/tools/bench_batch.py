"""In-process timing of a batch of crystal orientations against one render per orientation.

Part of ``nanobragg-bench``: the Python API renders a (B, 3) misset tensor
as B images in one engine call; this measures that call against B separate
calls with the same configuration (eager engine, float32, no gradients).
"""
from __future__ import annotations

import time

import torch

ARGS = ("-default_F 100 -cell 70 80 90 75 85 95 -lambda 1.0 -N 5 -distance 100 -detpixels 256 "
        "-oversample 1 -mosaic 0.3 -mosaic_dom 3").split()


def _render(misset, device) -> torch.Tensor:
    from .. import api
    from ..cli.main import build_settings

    settings = build_settings(ARGS)
    settings.experiment.crystal.misset = misset  # radians: the configuration's unit
    with torch.no_grad():
        return api.simulate(settings.experiment, dtype=torch.float32, device=device, seed=1, compile=False).image


def batch_timing(batch: int = 8, repeats: int = 3, device: str = "cpu") -> dict:
    """Median seconds of one batched render of ``batch`` orientations and of ``batch`` single renders."""
    dev = torch.device(device)
    angles = torch.rand(batch, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5
    _render(angles, dev)  # warm-up

    def median(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    batched = median(lambda: _render(angles, dev))
    single = median(lambda: [_render(tuple(a.tolist()), dev) for a in angles])
    return {"orientations": batch, "pixels": 256 * 256, "batched_s": batched, "separate_s": single,
            "speedup": single / batched if batched > 0 else None}


def batch_text(result: dict | None) -> str:
    """One Markdown paragraph for performance.md."""
    if not result:
        return ""
    return (f"\nBatch rendering (Python API, eager, float32): {result['orientations']} crystal orientations of a "
            f"{result['pixels']:,}-pixel image with 3 mosaic domains in one call took {result['batched_s']:.3f} s, "
            f"against {result['separate_s']:.3f} s for {result['orientations']} separate calls "
            f"({result['speedup']:.2f}x).\n")
