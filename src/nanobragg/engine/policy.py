"""Which engine renders: the default policy of the command line and the API.

Three engines: the compiled kernel (AOTInductor C++, built per kind of run,
:mod:`nanobragg.engine.compiled`), the numba loop (one loop for every kind,
compiled once by numba's own LLVM, :mod:`nanobragg.engine.jit`) and the
eager torch engine (every feature, gradients, CUDA). One rule,
:func:`choose_kernel`, for ``compile`` = None (the default), True
(``-compile``, ``-prepare``, ``compile=True``) and False (``-nocompile``):

- False: the eager engine, nothing looked up or built.
- A compiled kernel of this kind already in the cache
  (:func:`nanobragg.engine.compiled.kernel_file`): always used (it loads in milliseconds).
- None and no cached kernel: the numba loop where it renders the run (a flat
  detector, no tricubic interpolation, no -oversample_* recurrence, CPU, no
  gradients); else a compiled kernel built in the foreground when it pays back
  within this run and its likely re-runs, ``(1 + RERUNS) * eager > build +
  (1 + RERUNS) * compiled`` (:func:`pays_back`), with the seconds estimated by
  :func:`estimate_seconds` and :func:`build_seconds`; else eager.
- True and no cached kernel: built (without a C++ compiler, the numba loop).
- "numba" (``-numba``): the numba loop where it renders the run, else the eager engine; no compiled
  kernel is looked up, so the engine, and with it every bit of the image, does not depend on the
  cache (a dataset's images, rerun from their recorded flags, are byte-identical).

A build is announced first, in one line on stderr: what (the kernel's dtype,
for this kind of run), why (asked for, or the estimate that makes it pay
back), roughly how long, that it happens once, and the cache folder. Where
the fast path cannot be used (no C++ compiler, tricubic interpolation,
CUDA, gradients) one line says so when it would have been used; each line
is said once per process, so a loop of API calls says it once. The int-file
conversion's kernel (built under ``-compile`` only, :func:`int_kernel`) and
the numba loop's first compile are announced alike; without a C++ compiler
the numba loop's runs say once that -compile's kernel is not available.

Builds run in the foreground. A background build was measured on the
2-core development machine (loaded by other work): started at nice 19
beside three eager Pilatus runs back to back, it had not finished when they
had, 43 s later (it took 361 s in all, against about 50 s in the foreground),
so it sped none of them up; at normal priority it would take their cores.
``nanoBragg -prepare`` builds a kind ahead of time instead.
"""
from __future__ import annotations

import os
import sys
import time

import torch

from . import compiled, jit_build
from .inputs import RenderInputs

#: Runs of the same kind expected after this one: a build pays back within 1 + RERUNS runs.
RERUNS = 2
#: Engine seconds per sub-pixel sample (pixel x layer x sub-pixel) and per term (x source x orientation),
#: float32, on MEASURED_THREADS threads: (eager, compiled). From the engine times of the 2-core machine
#: (idle: cubic 4096x4096, 1 term per sample, eager 1.24 s / compiled 0.10 s; Pilatus job, 10 terms per
#: sample, 1.91 s / 0.30 s), solved for the two costs of each engine.
SAMPLE_S = (48e-9, 1.3e-9)
TERM_S = (26e-9, 4.7e-9)
MEASURED_THREADS = 2
#: float64 against float32 (eager, compiled): the Pilatus job's engine times, eager 3.76 s / 1.91 s and
#: compiled 5.1 s / 1.05 s back to back on the loaded machine.
FLOAT64_FACTOR = (2.0, 4.0)
#: Seconds of a build before this cache has measured one (a build's export, code generation and C++
#: compile: 20 s for the cubic kernel, 40-50 s for the Pilatus job's under load).
BUILD_S = 30.0
#: File in the cache folder holding the seconds the last build took (the next announcement's estimate).
BUILD_TIME_FILE = "last-build-seconds"
#: Seconds of a build of the int-file conversion (28 s measured with the 2 cores loaded twice over).
INT_BUILD_S = 25.0

NO_COMPILER = ("nanoBragg: no C++ compiler (g++, c++, clang++) on PATH: rendering with the eager engine "
               "(slower); install one for the compiled kernel")
NO_COMPILER_NUMBA = ("nanoBragg: no C++ compiler (g++, c++, clang++) on PATH: rendering with the numba loop; "
                     "-compile's kernel needs one")
#: Seconds of the numba loop's first compile (said before it; once per machine and version).
NUMBA_BUILD_S = 8.0
#: Why the compiled kernel cannot render: (message, said also under the default policy).
BLOCKED = {
    "interpolate": ("nanoBragg: tricubic interpolation has no compiled kernel: rendering with the eager engine "
                    "(slower); -nointerpolate allows the compiled kernel", True),
    "cuda": ("nanoBragg: the compiled kernel is CPU-only: rendering with the eager engine on CUDA", False),
    "grad": ("nanoBragg: gradients flow through the eager engine only: rendering eagerly "
             "(under torch.no_grad() the compiled kernel can render)", False),
}

_said: set = set()


def say(line: str) -> None:
    """Print ``line`` on stderr, once per process."""
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr, flush=True)


def _blocked(inp: RenderInputs, device) -> str | None:
    """The key of BLOCKED that keeps this render eager, or None."""
    if inp.interpolate:
        return "interpolate"
    if torch.device(device).type != "cpu":
        return "cuda"
    if torch.is_grad_enabled():
        return "grad"
    return None


def estimate_seconds(inp: RenderInputs, terms: float, path: str) -> float:
    """Engine seconds of a render of ``terms`` terms with the ``path`` engine ("eager" or "compiled").

    seconds = (samples * SAMPLE_S + terms * TERM_S) * B * dtype factor * MEASURED_THREADS / threads,
    with samples = terms / (sources * orientations): the per-pixel geometry is paid per sample, the
    lattice and structure factor per term, for each of a batch's B crystal orientations.
    """
    i = 0 if path == "eager" else 1
    per_sample = len(inp.source_dirs) * len(inp.orientations)
    seconds = (terms / per_sample * SAMPLE_S[i] + terms * TERM_S[i]) * inp.batch
    if inp.pix0.dtype == torch.float64:
        seconds *= FLOAT64_FACTOR[i]
    return seconds * MEASURED_THREADS / max(1, torch.get_num_threads())


def build_seconds() -> float:
    """The expected seconds of a build: the last one this cache measured, else BUILD_S."""
    try:
        return float((compiled.cache_dir() / BUILD_TIME_FILE).read_text())
    except (OSError, ValueError):
        return BUILD_S


def _record_build(seconds: float) -> None:
    """Keep ``seconds`` as the next estimate (written whole, then renamed: readers never see half)."""
    target = compiled.cache_dir() / BUILD_TIME_FILE
    tmp = target.with_name(f".{BUILD_TIME_FILE}-{os.getpid()}")
    try:
        tmp.write_text(f"{seconds:.1f}\n")
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)


def pays_back(eager_s: float, compiled_s: float, build_s: float, reruns: int = RERUNS) -> bool:
    """True when building now and rendering compiled beats the eager engine over 1 + ``reruns`` runs."""
    runs = 1 + reruns
    return runs * eager_s > build_s + runs * compiled_s


def announcement(inp: RenderInputs, requested: bool | None, eager_s: float, compiled_s: float,
                 build_s: float) -> str:
    """The line said before a build: what, why, how long, once, where."""
    dtype = str(inp.pix0.dtype).replace("torch.", "")
    why = ("asked for: -compile, -prepare or compile=True" if requested else
           f"default policy: this run takes about {eager_s:.0f} s eager, {compiled_s:.1f} s compiled")
    return (f"nanoBragg: building the compiled {dtype} kernel for this kind of run ({why}): about "
            f"{build_s:.0f} s, once; cached in {compiled.cache_dir()}")


def choose_kernel(inp: RenderInputs, blocks, pixels: int, terms: float, requested: bool | None, device):
    """The compiled kernel for a render of ``terms`` terms (``inp`` in chunks of ``pixels``, ``blocks``),
    loaded or built, or None for the eager engine; the rule is the module's.

    ``requested``: the run's ``compile`` (None: the default policy; True: build on a cache miss;
    False: eager; "numba": the numba loop, else eager). Where the numba loop does not render, its
    compile begun at start-up (:func:`nanobragg.engine.jit_build.cancel`) is stopped, before a build:
    it would serve nothing now and take a core unannounced.
    """
    kernel = _choose_kernel(inp, blocks, pixels, terms, requested, device)
    if getattr(kernel, "engine", None) != "numba":
        jit_build.cancel()
    return kernel


def _choose_kernel(inp: RenderInputs, blocks, pixels: int, terms: float, requested: bool | None, device):
    """:func:`choose_kernel`'s rule."""
    if requested is False:
        return None
    blocked = _blocked(inp, device)
    if requested == "numba":
        return numba_loop(inp) if blocked is None else None
    if blocked is None and compiled.kernel_file(inp, blocks, pixels).exists():
        return compiled.compiled_kernel(inp, blocks, pixels, build=False)
    if requested is None and blocked is None:
        loop = numba_loop(inp)
        if loop is not None:
            return loop
    eager_s, compiled_s = estimate_seconds(inp, terms, "eager"), estimate_seconds(inp, terms, "compiled")
    build_s = build_seconds()
    if not (requested or pays_back(eager_s, compiled_s, build_s)):
        return None
    if blocked is not None:
        line, by_default = BLOCKED[blocked]
        if requested or by_default:
            say(line)
        return None
    if not compiled.compiler_available():
        loop = numba_loop(inp)
        say(NO_COMPILER_NUMBA if loop is not None else NO_COMPILER)
        return loop
    jit_build.cancel()  # the build needs both cores
    say(announcement(inp, requested, eager_s, compiled_s, build_s))
    start = time.perf_counter()
    kernel = compiled.compiled_kernel(inp, blocks, pixels, build=True)
    _record_build(time.perf_counter() - start)
    return kernel


def numba_loop(inp: RenderInputs):
    """The numba loop (:func:`nanobragg.engine.jit.jit_kernel`) for ``inp``, or None where it cannot render
    it; its first compile on this machine is announced in one line (:data:`NUMBA_BUILD_S`), and without
    a C++ compiler one line says that -compile's kernel is not available."""
    from . import jit  # imports numba (0.3 s): only for a run that may use it

    if jit.unsupported(inp) is not None:
        return None
    if not jit.is_compiled():
        begun = " (begun at start-up in a second process)" if jit_build.running() else ""
        say(f"nanoBragg: compiling the numba pixel loop (first use; one loop for every kind of run): about "
            f"{NUMBA_BUILD_S:.0f} s{begun}, once; cached in {jit.cache_folder()}")
        jit.before_waiting()
        jit_build.wait()
    if not compiled.compiler_available():
        say(NO_COMPILER_NUMBA)
    return jit.jit_kernel(inp)


def int_kernel(build: bool, large: bool = True):
    """The int-file conversion of a ``large`` image (or any of a series): the compiled one
    (:func:`nanobragg.engine.compiled.compiled_int_kernel`) when cached, or with ``build`` (-compile)
    and a C++ compiler built after a line saying so; else, and for a small image when this process has
    the numba loop loaded already, the numba loop's (:func:`nanobragg.engine.jit.int_kernel`, compiled
    with the pixel loop); else None (the eager conversion). All give the same bits."""
    if large:
        if build and compiled.compiler_available() and not compiled.int_kernel_file().exists():
            say(f"nanoBragg: building the compiled int-file conversion (asked for: -compile): about "
                f"{INT_BUILD_S:.0f} s, once; cached in {compiled.cache_dir()}")
        kernel = compiled.compiled_int_kernel(build=build)
        if kernel is not None:
            return kernel
    jit = sys.modules.get(f"{__package__}.jit")
    if jit is None and large:
        from . import jit
    return None if jit is None or not (large or jit.is_loaded()) else jit.int_kernel()
