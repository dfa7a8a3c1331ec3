"""The numba backend: the engine's pixel loop compiled by numba's own LLVM, no C++ compiler needed.

:func:`jit_kernel` returns a callable with the compiled kernel's contract
(:func:`nanobragg.engine.compiled.compiled_kernel`): ``(first, offsets,
keep, out, inputs=None) -> chunk totals``, rendering pixels ``first +
offsets[:keep]`` into ``out`` in place. One machine-code loop serves every
kind of run (step counts, detector sizes, shapes, both dtypes), compiled
once by numba in seconds and cached on disk (numba's ``cache=True``; see
:func:`cache_folder`).

The loop (:mod:`nanobragg.engine._jit_loops`) computes in float64 as C does
and stores the run's dtype. It renders the flat detector without tricubic
interpolation and without the ``-oversample_*`` recurrences
(:func:`unsupported` says why not otherwise); the pixel of C's first spindle
pass (``RenderInputs.first_pass``) is rendered again by the torch engine when
a chunk holds it. A chunk is split between ``torch.get_num_threads()``
threads (the loop releases the GIL).
"""
from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import torch

from ..physics.polarization import polarization_axes
from ..physics.shapes import SHAPES
from . import jit_build
from .cache import numba_cache_dir
from .inputs import RenderInputs
from .render import render_pixels

# numba reads its folder when a function is decorated (below); its configuration read NUMBA_CACHE_DIR when
# numba was imported, which may have been before the variable was set
numba.config.CACHE_DIR = str(numba_cache_dir())
from . import _jit_loops as loops  # noqa: E402  (after the cache folder is set)

#: FLAG_SHAPE of each crystal shape.
SHAPE_IDS = {"square": loops.SQUARE, "round": loops.ROUND, "gauss": loops.GAUSS, "tophat": loops.TOPHAT}
assert set(SHAPE_IDS) == set(SHAPES), "every crystal shape needs its branch in _jit_loops"
#: The numba functions of a render, compiled on first use.
FUNCTIONS = (loops.render_chunk, loops.int_values)


def unsupported(inp: RenderInputs) -> str | None:
    """Why the numba loop cannot render ``inp`` (a few words), or None when it can."""
    if inp.pix0.device.type != "cpu":
        return f"device {inp.pix0.device.type}"
    if inp.interpolate:
        return "tricubic interpolation"
    if inp.curved:
        return "a curved detector"
    if inp.recurrent:
        return "the -oversample_* flags"
    return None


def cache_folder() -> Path:
    """Where numba keeps the compiled loop (:func:`nanobragg.engine.cache.numba_cache_dir` when this module
    was imported), set in numba's configuration before the loop is decorated (numba functions decorated
    later in the process, the package's own included, cache there too unless NUMBA_CACHE_DIR is set)."""
    return Path(numba.config.CACHE_DIR)


def is_compiled() -> bool:
    """True when this process has the loop in memory or numba's cache holds it (no compile to wait for)."""
    return is_loaded() or jit_build.cached(cache_folder())


def is_loaded() -> bool:
    """True when this process has loaded (or compiled) the loops already: using them costs nothing more."""
    return all(f.signatures for f in FUNCTIONS)


def _f64(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)


def pack(inp: RenderInputs) -> tuple:
    """The loop's arguments after (first, offsets, start, end, fpixels) and before (out, omega_out), float64
    from the inputs' exact copies where they have them: geo, flags, layers, incident, inv_lam, e_in, b_in,
    scaled, offset, recip, grid (see _jit_loops.render_chunk)."""
    pix0, fdet, sdet, odet = (_f64(inp.exact(k)).reshape(3) for k in ("pix0", "fdet", "sdet", "odet"))
    n_abc = _f64(inp.N).reshape(3)
    scalars = [inp.exact("pixel_size"), inp.close_distance, inp.thickstep, inp.mu, inp.kahn, inp.dmin, inp.I_bg,
               inp.scale, inp.fudge, inp.ftable.default_F]
    geo = np.concatenate([pix0, fdet, sdet, odet, [float(x) for x in scalars], n_abc,
                          np.where(np.asarray(inp.N_axes, dtype=bool), n_abc, 1.0)])
    ftable = inp.ftable
    flags = np.array([inp.oversample, len(inp.thick_offsets), len(inp.source_dirs), len(inp.orientations),
                      inp.batch, SHAPE_IDS[inp.shape], ftable.populated, inp.point_pixel, inp.absorb, inp.nopolar,
                      *ftable.lo, *(h - lo if ftable.populated else -1 for h, lo in zip(ftable.hi, ftable.lo)),
                      *ftable.grid.shape[1:]], dtype=np.int64)
    assert geo.shape == (loops.GEO_SIZE,) and flags.shape == (loops.FLAG_SIZE,)
    layers = pix0[None, :] + _f64(inp.exact("thick_offsets"))[:, None] * odet[None, :]
    incident = -inp.exact("source_dirs").to(torch.float64)
    e_in, b_in = polarization_axes(incident, inp.polar_vector.to(torch.float64))
    inv_lam = 1.0 / _f64(inp.exact("source_lambdas"))
    scaled = _f64(inp.exact_orientations)[None] * inv_lam[:, None, None, None]  # (S, B*C, 3, 3)
    offset = np.einsum("scij,sj->sci", scaled, _f64(incident))
    return (geo, flags, layers, _f64(incident), inv_lam, _f64(e_in), _f64(b_in), np.ascontiguousarray(scaled),
            np.ascontiguousarray(offset), _f64(inp.recip), _f64(ftable.grid).reshape(-1))


def _first_pass_flat(inp: RenderInputs):
    """Flat index of the pixel of C's first spindle pass, or None without one."""
    if inp.first_pass_cells is None:
        return None
    slow, fast, _ = (int(v) for v in inp.first_pass)
    return slow * inp.fpixels + fast


def jit_kernel(inp: RenderInputs, threads: int | None = None):
    """A callable ``(first, offsets, keep, out, inputs=None) -> chunk totals`` rendering ``inp`` (or the
    panel ``inputs`` of a stack) with the numba loop on ``threads`` threads (default torch's count), or
    None where the loop cannot (see :func:`unsupported`) or gradients are recorded."""
    if unsupported(inp) is not None or torch.is_grad_enabled():
        return None
    threads = max(1, threads or torch.get_num_threads())
    pool = _pool(threads, os.getpid()) if threads > 1 else None
    packed = {id(inp): (inp, pack(inp), _first_pass_flat(inp))}  # a stack's other panels added on first use
    _load()

    def run(first, offsets, keep, out, inputs: RenderInputs | None = None):
        one = inp if inputs is None else inputs
        if id(one) not in packed:
            packed[id(one)] = (one, pack(one), _first_pass_flat(one))
        _, args, special = packed[id(one)]
        first_i, keep_i, offs, store = int(first), int(keep), offsets.numpy(), out.numpy()
        assert store.flags.c_contiguous  # the loop's compiled signature
        hit = [] if special is None else np.nonzero(offs[:keep_i] == special - first_i)[0]
        at = int(hit[0]) if len(hit) else None  # the chunk holds C's first-pass pixel: rendered apart
        chunk = (first_i, offs, one.fpixels, args, store)
        jobs = [(a, b) for a, b in _runs(keep_i, threads if pool is not None else 1) for a, b in _around(a, b, at)]
        if pool is None or len(jobs) == 1:
            parts = [_part(chunk, a, b) for a, b in jobs]
        else:
            futures = [pool.submit(_part, chunk, a, b) for a, b in jobs]
            parts = [f.result() for f in futures]
        if at is not None:
            parts.insert(sum(a < at for a, _ in jobs), _first_pass(one, chunk, at))
        return _merge(parts)
    run.engine = "numba"  # engine.image.engine_name
    return run


def _runs(keep: int, threads: int) -> list:
    """[0, keep) in ``threads`` runs of whole blocks (fewer for a small chunk), in order."""
    step = max(-(-keep // (threads * loops.BLOCK)) * loops.BLOCK, 1)
    return [(a, min(keep, a + step)) for a in range(0, keep, step)]


def _around(a: int, b: int, at) -> list:
    """The run [a, b) without row ``at`` (None: none to leave out): one or two runs, none empty."""
    if at is None or not a <= at < b:
        return [(a, b)]
    return [(x, y) for x, y in ((a, at), (at + 1, b)) if x < y]


@functools.lru_cache(maxsize=None)
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads for the loop (one per thread count: a series of renders
    starts no threads of its own); keyed by process id too, as a forked child has none of its parent's
    threads. Its threads are started now, while the run is set up: the executor would start them one
    submission at a time, and a render's first chunk then ran on one thread (measured: 8.9 ms against
    3.4 ms for the chunks after it, 1024x1024 pixels)."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="nanobragg-numba")
    meet = threading.Barrier(threads)
    for started in [pool.submit(meet.wait, 10.0) for _ in range(threads)]:
        started.result()
    return pool


def int_kernel(threads: int | None = None):
    """The int-file conversion by the numba loop: a callable ``(values (N,) float32, scale, adc, out (N,)
    uint16)`` (torch tensors, out filled in place) giving engine.int_values.c_int_values' bits, split
    between ``threads`` threads; None where the loop is not compiled yet (it is with the pixel loop)."""
    if not is_compiled():
        return None
    threads = max(1, threads or torch.get_num_threads())
    pool = _pool(threads, os.getpid()) if threads > 1 else None

    def run(values, scale, adc, out):
        src, dst, n = values.numpy(), out.numpy(), values.numel()
        step = -(-n // threads)
        if pool is None or n < loops.BLOCK * threads:
            loops.int_values(src, float(scale), float(adc), dst, 0, n)
            return
        for job in [pool.submit(loops.int_values, src, float(scale), float(adc), dst, a, min(n, a + step))
                    for a in range(0, n, step)]:
            job.result()
    run.engine = "numba"
    return run


def before_waiting() -> None:
    """What a process can do while the pixel loop compiles elsewhere (engine.jit_build): build numba's
    typing and target contexts (0.4-0.6 s, done on a process's first compile or load of any function)
    and compile (or load) the small loop of the int file."""
    from numba.core.registry import cpu_target

    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()
    loops.compile_int()


def _load() -> None:
    """Load (or compile) the loops now, outside the engine's timing: numba loads a cached loop on its
    first call (about half a second, most of it numba importing its own modules). A compile holds the
    compile lock (engine.jit_build.compile_lock), so that it waits for one under way elsewhere and then
    loads its result."""
    if is_loaded():
        return
    if jit_build.cached(cache_folder()):
        loops.compile_all()
        return
    with jit_build.compile_lock():
        loops.compile_all()


def _part(chunk: tuple, start: int, end: int) -> tuple:
    """Rows start:end of ``chunk`` = (first, offsets, fpixels, args, store) rendered into ``store`` (the run's
    dtype); their totals (omega sum, sums, sums of squares, max, argmax) as numpy arrays."""
    first, offsets, fpixels, args, store = chunk
    B = store.shape[1]
    wide = store if store.dtype == np.float64 else np.empty((0, B))
    narrow = store if store.dtype == np.float32 else np.empty((0, B), dtype=np.float32)
    sums, rows = np.empty((B, 3)), np.empty(B, dtype=np.int64)
    omega = loops.render_chunk(first, offsets, start, end, fpixels, *args, wide, narrow, sums, rows)
    return omega, sums[:, 0].copy(), sums[:, 1].copy(), sums[:, 2].astype(np.float32), first + offsets[rows]


def _merge(parts: list) -> tuple:
    """engine.totals.chunk_totals of a chunk from its runs' totals, in pixel order (the first largest wins)."""
    omega = sum(p[0] for p in parts)
    sums, sum_sq = sum(p[1] for p in parts), sum(p[2] for p in parts)
    vmax, argmax = parts[0][3].copy(), parts[0][4].copy()
    for p in parts[1:]:
        better = p[3] > vmax
        vmax[better], argmax[better] = p[3][better], p[4][better]
    return (torch.tensor(omega, dtype=torch.float64), torch.from_numpy(sums), torch.from_numpy(sum_sq),
            torch.from_numpy(vmax), torch.from_numpy(argmax))


def _first_pass(inp: RenderInputs, chunk: tuple, at: int) -> tuple:
    """Row ``at`` of ``chunk`` (see _part), the pixel of C's first spindle pass, rendered by the torch engine
    into the chunk's store; its totals as _part gives them."""
    first, offsets, fpixels, _, store = chunk
    flat = first + int(offsets[at])
    K = len(inp.thick_offsets) * inp.oversample ** 2
    blocks = [(slice(0, K), slice(0, len(inp.source_dirs)))]
    value, solid, _ = render_pixels(inp, torch.tensor([flat % fpixels]), torch.tensor([flat // fpixels]), blocks,
                                    False)
    store[at] = value[0].to(torch.float64).numpy()
    v32 = store[at].astype(np.float32)
    v = v32.astype(np.float64)
    return float(solid[0]), v, v * v, v32, np.full(len(v), flat, dtype=np.int64)
