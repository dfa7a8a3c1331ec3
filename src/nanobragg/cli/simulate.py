"""Render and write: the part of the command that runs after the inputs are read."""
from __future__ import annotations

import math
import os
import sys
import time

import torch

from ..engine.image import prepare_render, run_render
from ..io import BackgroundWrites
from ..resolve import Resolved, resolve
from ..stats import image_stats
from .loaders import write_dump
from .outputs import int_image, write_float, write_outputs, write_png
from .report import report_setup
from .settings import Settings
from .trace_output import print_printout, print_trace


def pick_device(name: str) -> torch.device:
    """cpu, cuda, or auto (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from .parser import UsageError
        raise UsageError("-device cuda: no CUDA device is available")
    return torch.device(name)


def _progress(settings: Settings, total: int):
    """A tqdm bar on stderr: on a terminal by default, always with -progress, never with -noprogress."""
    want = settings.output.progress
    if want is False or (want is None and not sys.stderr.isatty()):
        return None, None
    from tqdm import tqdm
    bar = tqdm(total=total, unit="px", file=sys.stderr, delay=2.0 if want is None else 0.0, leave=False)
    return bar, bar.update


def render(settings: Settings, res: Resolved, device: torch.device):
    """Render the image with the engine, honouring the memory budget and progress settings.

    With the environment variable NB_TIMING=1, two lines go to stderr: the
    start-up time from the end of ``import torch`` to the first pixel (set-up
    and loading the compiled kernel included), and the engine's own time
    from the first pixel to the last (read by the benchmark command).
    """
    from .main import TORCH_READY

    timing = os.environ.get("NB_TIMING") == "1"
    inp = res.inputs.to(device=device)
    budget = int(settings.run.max_memory_mb * 2 ** 20) if settings.run.max_memory_mb else None
    with torch.no_grad():
        job = prepare_render(inp, res.roi, res.mask, budget=budget, compile=settings.run.compile)
    bar, update = _progress(settings, job.count)
    start = time.perf_counter()
    if timing:
        print(f"startup: first pixel at {start - TORCH_READY:.3f} s after import torch", file=sys.stderr)
    try:
        with torch.no_grad():
            out = run_render(job, progress=update)
            if device.type == "cuda":
                torch.cuda.synchronize()
    finally:
        if bar is not None:
            bar.close()
    if timing:
        elapsed = time.perf_counter() - start
        print(f"engine: rendered {out.totals.count} pixels in {elapsed:.3f} s "
              f"(compiled: {'yes' if out.compiled else 'no'}, dtype {str(inp.pix0.dtype).replace('torch.', '')}, "
              f"device {device.type}, threads {torch.get_num_threads()})", file=sys.stderr)
    return out


#: Pixels from which the compiled int conversion (loaded in ~2 ms) beats the eager one.
INT_KERNEL_MIN_PIXELS = 1 << 21


def _int_kernel(settings: Settings, pixels: int):
    """The cached compiled int conversion for a large image, built only under -compile; else None."""
    if settings.run.compile is False or not settings.output.intfile or pixels < INT_KERNEL_MIN_PIXELS:
        return None
    from ..engine.compiled import compiled_int_kernel
    return compiled_int_kernel(build=settings.run.compile is True)


def simulate_and_write(settings: Settings, seed: int, log, dump: bool = False) -> int:
    """Resolve, render, print C's statistics and write the output files (and the Fdump cache when ``dump``)."""
    dtype = torch.float64 if settings.run.dtype == "float64" else torch.float32
    device = pick_device(settings.run.device)
    res = resolve(settings.experiment, seed=seed, dtype=dtype)
    if dump:
        write_dump(settings, log)
    report_setup(res, settings, log)
    out = render(settings, res, device)
    print_trace(res, settings, out.image, log)
    print_printout(res, settings, out.image, log)
    image32 = out.image.to(torch.float32).cpu().numpy()
    omega = float(out.omega_sum) / res.steps
    log(f"solid angle subtended by detector = {omega:g} steradian ( {100 * omega / 4 / math.pi:g}% sphere)")
    stats = image_stats(image32, out.totals, res.roi, float(res.detector.pixel_size), res.oversample)
    # the int image first, on every core; then each file is written while the next one is computed
    ints = int_image(settings.output, res, image32, stats, _int_kernel(settings, image32.size))
    with BackgroundWrites() as writes:
        write_float(settings.output, image32, log, writes.submit)
        log(f"max_I = {stats.max_I:g}  at {stats.max_x:g} {stats.max_y:g}")
        log(f"mean= {stats.mean:g} rms= {stats.rms:g} rmsd= {stats.rmsd:g}")
        write_outputs(settings.output, res, image32, stats, log, ints, writes.submit)
        if settings.output.pngfile:
            write_png(settings.output.pngfile, image32, settings.output.png_linear)
    return 0
