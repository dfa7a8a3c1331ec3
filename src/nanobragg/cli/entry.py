"""The ``nanoBragg`` console entry point: a prompt start and a prompt exit.

Importing this module sets the thread policy (see
:data:`THREAD_POLICY`) before anything imports torch or numpy: both the installed
``nanoBragg`` script and ``python -m nanobragg`` import it first.
"""
import os

#: Environment defaults applied before torch (and its OpenMP runtime) loads; a value the user set wins.
#: PASSIVE: OpenMP threads that run out of work sleep instead of spinning for their next task. With
#: the default (spinning), a few runs sharing the cores each burn them while waiting: three eager
#: 2463x2527 runs at once on two cores took 32.6 s against 12.6 s one after the other, 8.9 s with
#: PASSIVE (C nanoBragg: 14.9 s). OPENBLAS_NUM_THREADS=1: numpy's OpenBLAS (3x3 matrices, dot products of
#: an image here) without its thread pool, whose threads spin after each call: a 1024x1024 run took
#: 0.95 s of user CPU against 1.13 s (five runs each, idle 2-core machine), wall 1.07 s against 1.08 s.
THREAD_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}
for _name, _value in THREAD_POLICY.items():
    os.environ.setdefault(_name, _value)

import ctypes  # noqa: E402
import gc  # noqa: E402
import sys  # noqa: E402

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> None:
    """Have glibc keep freed blocks for reuse instead of returning each large one to the system.

    By default a block of 128 kB or more is mapped fresh and unmapped on
    free, so every temporary of the eager engine's chunks costs page faults
    (hundreds of thousands for a 4096x4096 image: a third of its time).
    Blocks up to 32 MB now come from the heap, which keeps up to 64 MB of
    freed memory. Other C libraries are left as they are.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        pass


def run_program(main) -> None:
    """Run ``main()`` as the program: freed memory kept for reuse, outputs flushed, then ``os._exit``
    with its status (every output file is complete and closed when main returns; tearing the
    interpreter down, torch's modules and caches, would add about 0.3 s). However it ends, a compile
    of the numba loop still under way in a child (console's) is stopped: the run has no use for it."""
    from ..engine import jit_build

    _keep_freed_memory()
    try:
        status = main()
    finally:
        jit_build.cancel()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def console() -> None:
    """Run the command as a program.

    Where numba's cache lacks the pixel loop, its compile begins in a
    second process first (:func:`nanobragg.engine.jit_build.start`). The
    garbage collector stays off while torch's modules load (its passes over
    their many new objects cost about 0.07 s) and the objects loaded are
    then frozen out of later passes; then see run_program.
    """
    from ..engine import jit_build

    jit_build.start(sys.argv[1:])  # the numba loop's first compile, on the other core while torch loads
    gc.disable()
    from .main import main
    gc.freeze()
    gc.enable()
    run_program(main)
