"""The numba loop's first compile, begun in a second process when the command starts (no torch here).

The first run on a machine compiles the numba pixel loop (:mod:`nanobragg.engine._jit_loops`), 6-9 s
of one core. A run of the command line that finds no compiled loop in numba's cache (:func:`start`,
called before torch is imported) starts ``python -m nanobragg.engine.jit_build``: that child compiles
the pixel loop (render_chunk) into the cache on the second core while the run imports torch (1-3 s),
reads its flags and inputs and sets up; the run then compiles the small loop of the int file itself
(0.5 s) and waits for the child (:func:`wait`), and loads the pixel loop from the cache,
instead of compiling everything after its set-up. (A second child for the small loop made the
first's compile, the one waited for, slower: three processes then share the two cores.)

Every compile of the pixel loop, the child's or a process's own (:mod:`nanobragg.engine.jit`), holds
an exclusive lock on ``compile.lock`` in numba's cache folder (:func:`compile_lock`), so concurrent
runs compile it once: the others wait for the lock and load what it left.

A run that renders without the loop (the policy picks another engine) or ends before rendering stops
its child (:func:`cancel`): the lock goes with the child, and a compile cut short leaves nothing that
:func:`cached` counts, so the next run that needs the loop compiles it again and says so.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from pathlib import Path

from .cache import numba_cache_dir

#: The lock of a compile, in numba's cache folder.
LOCK_NAME = "compile.lock"
#: Flags after which the run does not use the numba loop by default (or renders nothing).
_OTHER_PATHS = frozenset({"-nocompile", "-compile", "-prepare", "-h", "-help", "--help", "-version", "--version"})

#: Seconds a stopped child has to end on SIGTERM before it is killed.
STOP_S = 5.0

_child: subprocess.Popen | None = None


def cached(folder: Path | None = None) -> bool:
    """True when numba's cache ``folder`` (default :func:`numba_cache_dir`) holds the compiled pixel loop:
    an index with its data (numba writes the index first, each file whole: a compile stopped between the
    two leaves an index alone, which numba would not load)."""
    folder = folder or numba_cache_dir()
    return folder.is_dir() and any(any(index.parent.glob(f"{index.stem}.*.nbc"))
                                   for index in folder.rglob("_jit_loops.render_chunk-*.nbi"))


@contextlib.contextmanager
def compile_lock(blocking: bool = True):
    """Hold the compile lock of numba's cache folder; yields False (without waiting) when it is taken and
    not ``blocking``, and True without a lock when the folder cannot hold one (read-only)."""
    folder = numba_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_NAME, "a")
    except OSError:
        yield True
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start(argv: list[str]) -> bool:
    """Begin the compile in a child process when the loop is not cached, no compile is under way, and
    ``argv`` (the command's arguments) renders by the default policy; True when a child was started."""
    global _child
    words = set(argv)
    device = argv[argv.index("-device") + 1:][:1] if "-device" in words else ["cpu"]
    if _child is not None or not argv or words & _OTHER_PATHS or device != ["cpu"] or cached():
        return False
    with compile_lock(blocking=False) as free:
        if not free:  # another run compiles it: wait() waits for its lock
            return False
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache_dir()))
    try:
        _child = subprocess.Popen([sys.executable, "-m", __name__], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    return True


def running() -> bool:
    """True when this process started a child that has not been waited for."""
    return _child is not None


def cancel() -> None:
    """Stop this process's child, if it has one, and reap it (SIGTERM, then SIGKILL after STOP_S)."""
    global _child
    if _child is None:
        return
    child, _child = _child, None
    child.terminate()
    try:
        child.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def wait() -> None:
    """Wait for this process's child, else for any other process's compile (its lock)."""
    global _child
    if _child is not None:
        child, _child = _child, None
        child.wait()
        return
    with compile_lock():
        pass


def main() -> int:
    """The child: compile the pixel loop under the lock unless someone compiled it meanwhile."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))  # read when numba is imported, below
    with compile_lock():
        if not cached():
            from . import _jit_loops

            _jit_loops.compile_pixels()
    return 0


if __name__ == "__main__":
    sys.exit(main())
