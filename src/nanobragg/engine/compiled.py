"""Ahead-of-time compiled chunk kernel, cached on disk across runs.

Compiled, the engine's element-wise arithmetic fuses into vectorised loops
(float32 SIMD lanes instead of one double at a time). ``torch.compile``
re-traces the Python code in every process (seconds), so instead the chunk
kernel is exported once (``torch.export``) and built with AOTInductor into
a package under the cache folder; later runs of the same kind load it in
milliseconds. A kind (:func:`kernel_key`) is what changes the generated
code: the switches (flags, crystal shape, a spindle from phi = 0 or not),
the F table's extent (an hkl file's index range), dtype and device. Step
counts (sources, spindle steps x mosaic domains, layers, oversampling) and
the detector and chunk size are runtime sizes of one kernel
(``torch.export.Dim``, see EXPORT_SIZES), so a user's cache holds a handful
of kernels; a run of one term per pixel bakes its step counts (all 1) in, for
speed, a run of one source its source count, and a chunk plan that splits one
pixel's terms into blocks (very large step counts, the memory bound) bakes its
plan in. The key also hashes the
source of every module the kernel is traced from: the import closure of this
module within the package (:func:`traced_modules`, read from the files), so
an edit anywhere in the engine's code makes a new kernel, and no module list
or format number is kept by hand.

Building costs tens of seconds; when a run loads or builds a package is
decided by :mod:`nanobragg.engine.policy`. Exported kernels need a C++
compiler at build time and a static control flow, so tricubic interpolation
(C's data-dependent fallback) and gradients stay in eager mode, as does CUDA
(whose eager kernels are already fast).

A build works in a temporary folder ``.build-<host>-<pid>-*`` of the cache
folder and moves the finished package into place atomically. The folder is
removed on any failure (an exception, Ctrl-C, or SIGTERM, which raises
``SystemExit(143)`` during a build where SIGTERM has its default action);
folders left by a process killed outright (SIGKILL, power loss) are removed
by the next build once their process is gone or they are an hour old (as
are earlier versions' ``tmpXXXXXXXX`` build folders over an hour old that
hold at most a partial ``kernel.pt2``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from ..physics.structure_factors import FTable
from .cache import cache_dir
from .inputs import RenderInputs
from .int_values import c_int_values
from .render import render_pixels
from .totals import chunk_totals

#: Name prefix of a build's temporary folder in the cache folder: ``.build-<host>-<pid>-<random>``.
BUILD_PREFIX = ".build-"
#: A build folder older than this (seconds) is stale even when its process id is in use.
STALE_BUILD_S = 3600.0
#: Build folders of earlier versions (tempfile.TemporaryDirectory in the cache folder).
_LEGACY_NAME = re.compile(r"tmp[a-z0-9_]{8}")


def _tensor_fields(inp: RenderInputs) -> list[str]:
    return [f.name for f in dataclasses.fields(inp) if isinstance(getattr(inp, f.name), torch.Tensor)]


#: The package folder (``.../nanobragg``): module ``nanobragg.a.b`` is ``a/b.py`` or ``a/b/__init__.py`` in it.
_PACKAGE = Path(__file__).resolve().parent.parent
#: The module of each kernel's torch.nn.Module (its forward is what is traced) and the modules
#: whose import closure within the package holds every function the trace can reach.
RENDER_ROOTS = ("nanobragg.engine.compiled",)
INT_ROOTS = ("nanobragg.engine.int_values",)


def _module_file(name: str):
    """The source file of package module ``name``, or None when it is not one of the package's."""
    rel = Path(*name.split(".")[1:])
    for path in (_PACKAGE / rel.with_suffix(".py"), _PACKAGE / rel / "__init__.py"):
        if path.is_file():
            return path
    return None


#: An import statement at the start of a line (indented ones in function bodies too): ``from X import
#: names`` (names up to the closing parenthesis when there is one) or ``import X``.
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)|import[ \t]+([^\n#]+))",
                     re.MULTILINE)


def _imports(name: str, path: Path) -> set:
    """Package modules named by the import statements of module ``name`` (source ``path``).

    A scan of the lines, not a parse (which costs tens of milliseconds on every run that looks for
    a kernel); tests/test_kernel_key.py checks it against the modules that importing loads.
    """
    found = set()
    package = path.name == "__init__.py"
    for dots, module, names, plain in _IMPORT.findall(path.read_text()):
        if plain:
            found.update(part.split(" as ")[0].strip() for part in plain.split(","))
            continue
        if dots:
            base = name.split(".") if package else name.split(".")[:-1]
            head = ".".join(base[:len(base) - len(dots) + 1] + ([module] if module else []))
        else:
            head = module
        found.add(head)
        for part in names.strip("()").replace("\n", " ").split(","):
            alias = part.split("#")[0].split(" as ")[0].strip()
            if alias:
                found.add(f"{head}.{alias}")
    return {m for m in found if m.startswith("nanobragg.") and _module_file(m) is not None}


def traced_modules(roots: tuple = RENDER_ROOTS) -> list:
    """The import closure of ``roots`` within the package, sorted: the modules whose source a
    kernel is built from (read from the files, so no module can be left out of the key by hand)."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(name, _module_file(name)) - seen)
    return sorted(seen)


@functools.lru_cache(maxsize=4)
def _source_hash(roots: tuple = RENDER_ROOTS, files: tuple = ()) -> str:
    """Hash of the source of the closure of ``roots`` (and of the modules ``files``), so that an
    edited engine never loads a stale kernel. A kernel's arguments and outputs are written in
    this module, which is in both closures: changing them changes the key too."""
    digest = hashlib.sha256()
    for name in sorted(set(traced_modules(roots)) | set(files)):
        digest.update(name.encode() + b"\0" + _module_file(name).read_bytes())
    return digest.hexdigest()


#: Sizes of the render kernel's tensors that are runtime sizes rather than baked in: P pixels of a
#: chunk, T sensor layers, n sub-pixels per side (oversample), S sources, C orientations (phi steps
#: x mosaic domains), B cells of a batch. Each is given to
#: the exporter at this size (export specialises sizes 0 and 1; distinct sizes so that none is
#: taken for another), so that the generated code depends on the key alone, not on the first
#: run that built it. They also decide how many of a loop nest's outer loops are parallel (see
#: MANY_TERMS_OPTIONS): C = 13 makes the layer-subpixel and cell loops of a one-source kernel enough
#: (18 x 13 iterations), where with 7 the pixel loop was collapsed with them and every 16 pixels
#: reloaded the cell's constants (comprehensive-512: engine 0.20 s against 0.18 s before).
EXPORT_SIZES = {"P": 1 << 16, "T": 2, "n": 3, "S": 5, "C": 13, "B": 11}
#: The sizes that fix a chunk's plan: baked in, with the plan, when it splits one pixel's terms into
#: several (layer, source) blocks (a memory bound only very large step counts reach).
PLAN_SIZES = ("P", "T", "n", "S", "C")
#: The step counts, baked in (all 1) for a run of one term per pixel: its code then fuses each pixel's
#: whole computation into one loop, where runtime sizes keep (K, S, C, P) buffers between loops
#: (cubic 4096 x 4096: engine 0.26 s against 0.14 s baked in, on a loaded 2-core machine).
STEP_SIZES = ("T", "n", "S", "C")
#: Tensor fields with runtime sizes: field -> {axis: size name}.
_FIELD_AXES = {
    **dict.fromkeys(("thick_offsets", "exact_thick_offsets"), {0: "T"}),
    **dict.fromkeys(("source_dirs", "source_lambdas", "exact_source_dirs", "exact_source_lambdas"), {0: "S"}),
}
#: Orientation fields: (C, 3, 3), or (B, C, 3, 3) for a batch.
_CELL_FIELDS = ("cells", "phi0_cells", "exact_cells", "exact_phi0_cells")


def _split(blocks) -> bool:
    """True when the chunk plan cuts one pixel's terms into several (layer, source) blocks."""
    return len(blocks) > 1


def _field_axes(inp: RenderInputs, name: str) -> dict:
    """{axis: size name} of tensor field ``name``: its axes that are runtime sizes."""
    if name in _CELL_FIELDS:
        return {0: "B", 1: "C"} if getattr(inp, name).dim() == 4 else {0: "C"}
    return _FIELD_AXES.get(name, {})


def _argument_axes(inp: RenderInputs) -> list:
    """{axis: size name} of each kernel argument, in _ChunkKernel.forward's order."""
    out = {0: "P", 1: "B"} if inp.cells.dim() == 4 else {0: "P"}
    return [{}, {0: "P"}, {}, out, {}, {0: "n"}, {}, {}, *(_field_axes(inp, n) for n in _tensor_fields(inp))]


def _single_term(inp: RenderInputs) -> bool:
    """True for one term per pixel: one layer, sub-pixel, source and orientation (per cell of a batch)."""
    return (inp.thick_offsets.shape[0] == 1 and inp.oversample == 1 and inp.source_dirs.shape[0] == 1
            and inp.cells.shape[-3] == 1)


def _runtime_sizes(inp: RenderInputs, blocks) -> set:
    """The size names that are runtime sizes of the kernel rendering ``inp`` with chunk plan ``blocks``.

    One source is baked in: a kernel for several sources splits each pixel's Miller indices once
    for all of them (render.split_indices), one for a single source keeps its float64 indices fused."""
    if _split(blocks):
        return set(EXPORT_SIZES) - set(PLAN_SIZES)
    if _single_term(inp):
        return set(EXPORT_SIZES) - set(STEP_SIZES)
    return set(EXPORT_SIZES) - ({"S"} if inp.source_dirs.shape[0] == 1 else set())


def kernel_key(inp: RenderInputs, blocks, pixels: int) -> str:
    """Hash of everything the kernel's generated code depends on: engine source, torch version, dtype,
    device, the switches (non-tensor fields: flags, crystal shape, -dmin), the F table's extent (its
    index bounds and grid shape, constants of the lookup: as runtime values, the Pilatus job's engine
    took 2-3x as long, loaded machine), which tensors there are and their fixed sizes. Step counts, the oversample,
    the detector size and the chunk's pixels are runtime sizes (EXPORT_SIZES), not in the key,
    except the step counts of a run of one term per pixel (STEP_SIZES, all 1: one more kind), the source
    count of a run of one source, and the plan and its sizes where it splits a pixel's terms."""
    dynamic = _runtime_sizes(inp, blocks)
    parts = [_source_hash(), torch.__version__, str(inp.pix0.dtype), inp.pix0.device.type]
    parts += [f"pixels:{pixels}"] * ("P" not in dynamic) + [f"oversample:{inp.oversample}"] * ("n" not in dynamic)
    if _split(blocks):
        parts.append(repr(blocks))
    for f in dataclasses.fields(inp):
        value = getattr(inp, f.name)
        if isinstance(value, torch.Tensor):
            axes = {a: s for a, s in _field_axes(inp, f.name).items() if s in dynamic}
            parts.append(f"{f.name}:{tuple('*' if a in axes else n for a, n in enumerate(value.shape))}")
        elif isinstance(value, FTable):
            parts.append(f"ftable:{value.populated}:{value.lo}:{value.hi}:{tuple(value.grid.shape)}")
        elif f.name not in ("fpixels", "spixels", "oversample"):
            parts.append(f"{f.name}:{value!r}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class _ChunkKernel(torch.nn.Module):
    """render_pixels with the switches baked in and every tensor an argument.

    Arguments: first (0-d int64), offsets (P,) int64, keep (0-d int64), out
    (P, B), fpixels (0-d float64), steps (n,) (its length is the
    oversample), the F grid and default F, then RenderInputs' tensors. Pixel first +
    offsets[i] is rendered into out[i] in place (no copy afterwards); the
    result is chunk_totals over the first ``keep`` pixels. Without a split
    plan the chunk is one block of all T n^2 layer-subpixels and all S
    sources, whatever their number.
    """

    def __init__(self, template: RenderInputs, blocks):
        super().__init__()
        self.template, self.names = template, _tensor_fields(template)
        self.blocks = blocks if _split(blocks) else None

    def forward(self, first, offsets, keep, out, fpixels, steps, grid, default_F, *tensors):
        t = self.template
        table = FTable(grid, t.ftable.lo, t.ftable.hi, default_F, t.ftable.populated)
        inp = dataclasses.replace(t, ftable=table, oversample=steps.shape[0], **dict(zip(self.names, tensors)))
        # sizes from .shape, not len() (which makes the exporter specialise them)
        blocks = self.blocks or [(slice(0, inp.thick_offsets.shape[0] * inp.oversample ** 2),
                                  slice(0, inp.source_dirs.shape[0]))]
        pixels = first + offsets
        # slow/fast indices in float64: exact, and vectorised (integer division is not); half a pixel
        # on, a product by 1/fpixels (a division per pixel costs more) cannot round below a whole row
        flat = pixels.to(torch.float64)
        spix = torch.floor((flat + 0.5) * (1.0 / fpixels))
        value, omega, _ = render_pixels(inp, flat - spix * fpixels, spix, blocks, False, fused=True)
        out.copy_(value)
        return chunk_totals(value, omega, pixels, keep)


def _fixed_arguments(inp: RenderInputs, fpixels: int) -> list:
    """The kernel's arguments after (first, offsets, keep, out): the same for every chunk of a render.

    Contiguous, as the kernel was exported on: its code indexes every argument with the strides of
    the export and does not check them (a mosaic's cells, (C, 3, 3) transposed in memory, would be
    read as other cells)."""
    table = inp.ftable
    return [torch.tensor(float(fpixels), dtype=torch.float64), torch.zeros(inp.oversample),
            *(t.contiguous() for t in (table.grid, table.default_F, *(getattr(inp, n) for n in _tensor_fields(inp))))]


def _export_example(inp: RenderInputs, blocks, pixels: int):
    """Arguments to export the kernel on, and their dynamic shapes (torch.export.Dim per runtime axis).

    Every runtime size takes its EXPORT_SIZES value (each tensor repeats its first entry along
    that axis); the others, and every value, are the run's own (nothing the trace reads depends
    on a value: there is no data-dependent control flow in compiled code)."""
    dynamic = _runtime_sizes(inp, blocks)
    dims = {name: torch.export.Dim(name, min=1) for name in dynamic}
    scalar = torch.tensor(0, dtype=torch.long)
    out = torch.zeros(pixels, inp.batch, dtype=inp.pix0.dtype)
    args = [scalar, torch.arange(pixels), scalar, out, *_fixed_arguments(inp, max(inp.fpixels, 2))]
    example, shapes = [], []
    for arg, axes in zip(args, _argument_axes(inp)):
        axes = {a: s for a, s in axes.items() if s in dynamic}
        for axis, size in axes.items():
            arg = arg.narrow(axis, 0, 1).expand(*arg.shape[:axis], EXPORT_SIZES[size], *arg.shape[axis + 1:])
        example.append(arg.contiguous() if axes else arg)  # distinct copies are made by _compile_package
        shapes.append({a: dims[s] for a, s in axes.items()} or None)
    fixed = len(_argument_axes(inp)) - len(_tensor_fields(inp))
    return tuple(example), (*shapes[:fixed], tuple(shapes[fixed:]))  # forward's *tensors: one entry


def compiler_available() -> bool:
    """True when a C++ compiler is on the PATH (AOTInductor builds C++)."""
    return any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


def _host() -> str:
    """This machine's name as used in build folder names (no dashes, so that the pid parses)."""
    return socket.gethostname().replace("-", "_") or "host"


def _pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (or cannot be told apart from one)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _stale(entry: Path, now: float) -> bool:
    """True for a build folder whose process is gone (same host) or which is over an hour old."""
    try:
        if now - entry.stat().st_mtime > STALE_BUILD_S:
            return True
    except OSError:
        return False
    parts = entry.name[len(BUILD_PREFIX):].split("-")
    if len(parts) < 3 or parts[0] != _host() or not parts[1].isdigit():
        return False  # another machine's build (a shared cache): only its age tells
    return not _pid_alive(int(parts[1]))


def clean_stale_builds(folder: Path) -> list[Path]:
    """Remove the build folders in ``folder`` left by killed builds; returns those removed."""
    removed = []
    now = time.time()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.is_dir():
            continue
        if (entry.name.startswith(BUILD_PREFIX) and _stale(entry, now)) or _legacy_debris(entry, now):
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
    return removed


def _legacy_debris(entry: Path, now: float) -> bool:
    """A build folder of earlier versions (``tmpXXXXXXXX``, holding at most a partial kernel.pt2)
    over an hour old: nothing else with that look is touched, should the cache folder be shared."""
    if not _LEGACY_NAME.fullmatch(entry.name):
        return False
    try:
        return now - entry.stat().st_mtime > STALE_BUILD_S and {p.name for p in entry.iterdir()} <= {"kernel.pt2"}
    except OSError:
        return False


@contextlib.contextmanager
def _sigterm_raises():
    """While building, SIGTERM raises SystemExit(143) so that the build folder is removed.

    Only in the main thread and where SIGTERM has its default action (a
    handler the application installed is left alone).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: Inductor options of a build. The C++ wrapper (buffer set-up and kernel calls, once per chunk of
#: pixels) at -O0 rather than -O1, and no line tables (-g1) in either file: the wrapper's compile
#: took 7.4 s against 15.5 s in one pair of builds, 19.2 s against 20.4 s in another (a loaded
#: 2-core machine, where most of a build is Inductor's own Python: tracing, lowering, codegen), the render
#: no slower. Multiply-adds contracted into fused ones (-ffp-contract=fast; Inductor's default is off):
#: one rounding fewer each; the cubic 4096x4096 float32 kernel took 0.124 s against 0.132 s of engine
#: time (four rounds of 9 in one process, idle 2-core machine), and float64 kernels stayed within
#: 3e-12 of the eager image (of its brightest pixel) on six geometries.
BUILD_OPTIONS = {"aot_inductor.compile_wrapper_opt_level": "O0", "aot_inductor.enable_line_tables": False,
                 "cpp.enable_floating_point_contract_flag": "fast"}
#: Added for a kernel with runtime step counts. Inductor parallelises a loop nest over its outer loops
#: until their sizes at export (EXPORT_SIZES) give two iterations per thread: with the build's own
#: thread count (2) that is the layer-subpixel loop alone (18 at export), which a run of one layer
#: and one sub-pixel leaves to a single thread (sources-1024: engine 1.4 s against 0.75 s, loaded
#: machine). Deciding as for 64 threads takes the source and cell loops in too (OpenMP collapse); the
#: code still runs on the process's thread count (dynamic threads). A run of one term per pixel loops
#: over pixels only; a split plan's step counts are baked in, so its loops are decided on their own sizes.
#: The realize thresholds: Inductor stores a value in memory when it is read by several others and its
#: expression is long (30 operations) or reads many buffers (4; 8 for a sum's input), which cut each
#: term's work into two or three loops with (K, S, C, P) buffers between them, the last one reading them
#: 16 pixels at a time from every term's row; raised, each term stays in one loop (sources-1024: engine
#: 0.19 s against 0.52 s, comprehensive-512: 0.15 s against 0.20 s, idle 2-core machine). A run of one
#: term per pixel keeps the defaults: its single loop was slower with them raised (cubic-4096 0.136 s
#: against 0.122 s).
MANY_TERMS_OPTIONS = {"cpp.threads": 64, "cpp.dynamic_threads": True, "realize_opcount_threshold": 1000,
                      "realize_reads_threshold": 64, "realize_acc_reads_threshold": 1000}


def _compile_package(module: torch.nn.Module, example: tuple, package_path: str) -> str:
    """Export ``module`` on ``example`` arguments (with the runtime sizes of ``module.dynamic_shapes``,
    if it has them) and build its AOTInductor package (with the Inductor options of
    ``module.build_options``, else BUILD_OPTIONS); returns its path."""
    # distinct copies: export would merge arguments that are the same tensor object
    program = torch.export.export(module, tuple(t.clone() for t in example),
                                  dynamic_shapes=getattr(module, "dynamic_shapes", None))
    # AOTInductor's documented entry point (torch >= 2.6) lives under torch._inductor; there is no
    # public alias. Imported here, on a build only: torch._inductor takes seconds to import.
    from torch import _inductor

    options = getattr(module, "build_options", BUILD_OPTIONS)
    return _inductor.aoti_compile_and_package(program, package_path=package_path, inductor_configs=options)


def _build(module: torch.nn.Module, example: tuple, path: Path) -> None:
    """Build the package of ``module`` at ``path``: in a temporary folder, moved into place atomically.

    The folder is removed whatever happens; stale ones of killed builds are removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(path.parent)
    with _sigterm_raises():
        tmp = tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{_host()}-{os.getpid()}-", dir=path.parent)
        try:
            built = _compile_package(module, example, os.path.join(tmp, "kernel.pt2"))
            os.replace(built, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _package(path: Path, build: bool, module_and_example):
    """The loaded package at ``path``; built first if missing and ``build``; None if missing otherwise.

    A thread loads each file once (see _load): a dataset renders image after image with the same kernels.
    """
    if not path.exists():
        if not build or not compiler_available():
            return None
        _build(*module_and_example(), path)
    info = path.stat()
    return _load(str(path), info.st_ino, info.st_mtime_ns, threading.get_ident())


@functools.lru_cache(maxsize=8)
def _load(path: str, inode: int, mtime_ns: int, thread: int):
    """The loader of the package file ``path`` (``inode``, ``mtime_ns``: a file replaced is loaded again)
    for thread ``thread``.

    Loading costs milliseconds, as much as rendering a 1024x1024 image, so the last few are kept. One
    per thread: two threads running one loader at once deadlock (its single runner, measured with two
    threads converting int images), as several renders of a Dask worker with --nthreads would.
    """
    # Private API, on purpose: torch._C._aoti.AOTIModelPackageLoader is the C++ loader behind the public
    # torch._inductor.aoti_load_package (torch >= 2.6), called directly because importing
    # torch._inductor costs seconds on every run, against milliseconds for this call. Arguments:
    # the package, its model name, no run-time constant folding, one runner, the CPU (-1: no device index).
    return torch._C._aoti.AOTIModelPackageLoader(path, "model", False, 1, -1)


def kernel_file(inp: RenderInputs, blocks, pixels: int) -> Path:
    """The cache file of the kernel rendering ``inp``'s kind of run in chunks of ``pixels`` (``blocks``)."""
    return cache_dir() / f"{kernel_key(inp, blocks, pixels)}.pt2"


def compiled_kernel(inp: RenderInputs, blocks, pixels: int, build: bool):
    """A callable ``(first, offsets, keep, out, inputs=None) -> chunk totals`` rendering ``inp`` (or
    ``inputs`` of the same structure: a panel of a stack) with the cached compiled kernel (see
    _ChunkKernel), built first on a cache miss when ``build``; None when it is not cached and not
    built (or cannot be: no C++ compiler). Whether to call it, and with ``build``, is
    :func:`nanobragg.engine.policy.choose_kernel`'s decision (CPU, no gradients, no tricubic).
    """

    def module_and_example():
        module = _ChunkKernel(inp, blocks)
        example, module.dynamic_shapes = _export_example(inp, blocks, pixels)
        steps_at_run_time = bool(_runtime_sizes(inp, blocks) & set(STEP_SIZES))
        module.build_options = BUILD_OPTIONS | (MANY_TERMS_OPTIONS if steps_at_run_time else {})
        return module, example

    loader = _package(kernel_file(inp, blocks, pixels), build, module_and_example)
    if loader is None:
        return None

    fixed = _fixed_arguments(inp, inp.fpixels)

    def run(first, offsets, keep, out, inputs=None):
        """``inputs``: render those in place of ``inp``, same structure (another panel of a stack)."""
        args = fixed if inputs is None else _fixed_arguments(inputs, inputs.fpixels)
        return tuple(loader.boxed_run([first, offsets, keep, out, *args]))
    return run


#: Pixels per call of the compiled int conversion.
INT_KERNEL_BLOCK = 1 << 18


class _IntKernel(torch.nn.Module):
    """C's int-file conversion (nanobragg.engine.int_values.c_int_values) of a block, packed two pixels to an int32.

    ``out[i] = r[2i] | r[2i+1] << 16`` holds the little-endian uint16 pair:
    written into an int32 view of the uint16 image, the stores stay
    vectorised (2-byte stores would not be).
    """

    def forward(self, values, scale, adc, out):
        r = c_int_values(values, scale, adc).to(torch.int32).reshape(-1, 2)
        out.copy_(r[:, 0] | (r[:, 1] << 16))


def int_kernel_file() -> Path:
    """The cache file of the compiled int conversion (keyed by its modules' source and torch's version)."""
    source = _source_hash(INT_ROOTS, ("nanobragg.engine.compiled",))  # _IntKernel is defined here
    key = hashlib.sha256(f"{source}|{torch.__version__}|{INT_KERNEL_BLOCK}".encode())
    return cache_dir() / f"int-{key.hexdigest()[:24]}.pt2"


def compiled_int_kernel(build: bool):
    """A callable ``(values (N,) float32, scale, adc, out (N,) uint16)`` running the cached compiled
    int conversion over any N, or None where there is no package (built first when ``build``) or the
    machine is big-endian.
    """
    if sys.byteorder != "little":
        return None

    def module_and_example():
        block = INT_KERNEL_BLOCK
        return _IntKernel(), (torch.zeros(block), torch.tensor(1.0, dtype=torch.float64),
                              torch.tensor(0.0, dtype=torch.float64), torch.zeros(block // 2, dtype=torch.int32))

    loader = _package(int_kernel_file(), build, module_and_example)
    if loader is None:
        return None

    def run(values, scale, adc, out):
        n, block = values.numel(), INT_KERNEL_BLOCK
        scale_t, adc_t = torch.tensor(scale, dtype=torch.float64), torch.tensor(adc, dtype=torch.float64)
        full = n - n % block
        pairs = out[:full].view(torch.int32)
        for start in range(0, full, block):
            loader.boxed_run([values[start:start + block], scale_t, adc_t, pairs[start // 2:(start + block) // 2]])
        if full < n:  # the last, partial block through padded copies
            pad_in, pad_out = values.new_zeros(block), torch.zeros(block // 2, dtype=torch.int32)
            pad_in[:n - full] = values[full:]
            loader.boxed_run([pad_in, scale_t, adc_t, pad_out])
            out[full:] = pad_out.view(torch.uint16)[:n - full]
    return run
