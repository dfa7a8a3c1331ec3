"""Render and write: the part of the command that runs after the inputs are read."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time

import torch

from ..engine.image import engine_name, prepare_render, run_render
from ..engine.totals import combine_totals
from ..io import OutputSet, QueuedWrites
from ..resolve import Resolved, resolve
from ..stats import image_stats
from .bands import FloatStore, band_rows
from .loaders import write_dump
from .outputs import open_outputs, write_png, write_second_pass
from .report import report_setup
from .settings import Settings
from .startup import TORCH_READY
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


def render(settings: Settings, res: Resolved, device: torch.device, store: FloatStore):
    """Render the image band by band into ``store``, honouring the memory budget and progress settings.

    Half the budget goes to the engine's chunks, half to the bands (see
    :mod:`nanobragg.cli.bands`). Returns (totals over the image, whether
    the compiled kernel rendered it).

    With the environment variable NB_TIMING=1, two lines go to stderr: the
    start-up time from the end of ``import torch`` to the first pixel (set-up
    and loading the compiled kernel included), and the engine's own time
    from the first pixel to the last (read by the benchmark command).
    """
    timing = os.environ.get("NB_TIMING") == "1"
    inp = res.inputs.to(device=device)
    with torch.no_grad():
        job = prepare_render(inp, res.roi, res.mask, budget=settings.budget_bytes() // 2, compile=settings.run.compile)
    bar, update = _progress(settings, job.count)
    start = time.perf_counter()
    if timing:
        print(f"startup: first pixel at {start - TORCH_READY:.3f} s after import torch", file=sys.stderr)
    parts = []
    try:
        with torch.no_grad():
            for first in store.band_starts():
                out = run_render(job, progress=update, rows=(first, min(first + store.rows, inp.spixels)))
                store.put(first, out.image.to(torch.float32).cpu().numpy())
                parts.append(out.totals)
    finally:
        if bar is not None:
            bar.close()
    totals = combine_totals(parts)
    if timing:
        elapsed = time.perf_counter() - start
        print(f"engine: rendered {totals.count} pixels in {elapsed:.3f} s "
              f"(compiled: {'yes' if engine_name(job.kernel) == 'compiled' else 'no'}, "
              f"dtype {str(inp.pix0.dtype).replace('torch.', '')}, "
              f"device {device.type}, threads {torch.get_num_threads()}, bands {len(parts)}, "
              f"kernel {engine_name(job.kernel)})", file=sys.stderr)
    return totals


#: Pixels from which the compiled int conversion (loaded in ~2 ms) beats the eager one in a single run.
INT_KERNEL_MIN_PIXELS = 1 << 21


def _int_kernel(settings: Settings, pixels: int, series: bool = False):
    """The int conversion's kernel (see engine.policy.int_kernel): the compiled one for a large image (any
    image of a ``series``, whose process loads it once), built only under -compile, else the numba
    loop's; None (the eager conversion) under -nocompile. All give the same bits."""
    if settings.run.compile is False or not settings.output.intfile:
        return None
    from ..engine.policy import int_kernel
    return int_kernel(build=settings.run.compile is True, large=pixels >= INT_KERNEL_MIN_PIXELS or series)


def simulate_and_write(settings: Settings, seed: int, log, dump: bool = False, *, series: bool = False,
                       publish=None) -> int:
    """Resolve, render, print C's statistics and write the output files (and the Fdump cache when ``dump``).

    ``series``: one image of many rendered by this process (nb-dataset), so kernels it loads once pay back
    at any image size.

    Every output is checked and opened before anything is written; the
    files are published together at the end, or none of them on any error
    or interruption (see :class:`nanobragg.io.OutputSet`). ``publish``:
    instead of waiting for the background writes and publishing before
    returning, hand that last step to ``publish(finish)``; ``finish()``
    waits, then publishes the files (or, on a write error, discards them
    and raises it). nb-dataset runs it on another thread while the next
    image renders.
    """
    dtype = torch.float64 if settings.run.dtype == "float64" else torch.float32
    device = pick_device(settings.run.device)
    res = resolve(settings.experiment, seed=seed, dtype=dtype)
    g = res.detector
    with contextlib.ExitStack() as stack:
        outputs, writes = stack.enter_context(OutputSet()), stack.enter_context(QueuedWrites())
        files = open_outputs(settings.output, res, outputs, settings.experiment)
        if dump:
            write_dump(settings, log)
        report_setup(res, settings, log)
        rows = band_rows(g.fpixels, settings.budget_bytes() // 2)
        store = FloatStore((g.spixels, g.fpixels), rows, files.float, writes)
        try:
            _render_and_write(settings, res, device, store, files, writes, log, series)
        finally:
            store.close()
        if publish is not None:
            finish = stack.pop_all()  # its exit (wait, then publish) is now publish's to run
            try:
                publish(finish.close)
            except BaseException:
                finish.__exit__(*sys.exc_info())  # never handed over: discard the files
                raise
    return 0


def _render_and_write(settings, res, device, store, files, writes, log, series) -> None:
    write_results(settings, res, store, files, writes, log, render(settings, res, device, store), series)


def write_results(settings, res, store, files, writes, log, totals, series: bool = False) -> None:
    """After the render into ``store`` (its ``totals``): C's trace and printout, statistics and the
    second-pass files (int, noise, PGM, CBF, NXmx, PNG)."""
    print_trace(res, settings, store, log)
    print_printout(res, settings, store, log)
    omega = float(totals.omega) / res.steps
    log(f"solid angle subtended by detector = {omega:g} steradian ( {100 * omega / 4 / math.pi:g}% sphere)")
    out = settings.output
    if out.floatfile:
        log(f"writing {out.floatfile} as {store.shape[0] * store.shape[1]} 4-byte floats")
    stats = image_stats(totals, store.shape, res.roi, float(res.detector.pixel_size), res.oversample, store.bands)
    log(f"max_I = {stats.max_I:g}  at {stats.max_x:g} {stats.max_y:g}")
    log(f"mean= {stats.mean:g} rms= {stats.rms:g} rmsd= {stats.rmsd:g}")
    int_kernel = _int_kernel(settings, store.shape[0] * store.shape[1], series)
    write_second_pass(out, res, store, stats, files, writes, log, int_kernel)
    if files.png is not None:
        write_png(files.png, store, out.png_linear)
