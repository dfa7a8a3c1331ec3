"""One timed run of a program, as the benchmark commands measure it: wall time, peak RSS and the
engine and start-up lines that ``NB_TIMING=1`` makes the program print."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanobragg.tools.bench_workloads import FLOATFILE

ENGINE_RE = re.compile(r"^engine: rendered (\d+) pixels in ([0-9.eE+-]+) s \(compiled: (yes|no), "
                       r"dtype (\w+), device (\w+), threads (\d+)(?:, [^)\n]*)?\)", re.MULTILINE)
#: The engine line's last field: the engine that rendered (compiled, numba or eager).
KERNEL_RE = re.compile(r"^engine: rendered .*, kernel (\w+)\)", re.MULTILINE)
STARTUP_RE = re.compile(r"^startup: first pixel at ([0-9.eE+-]+) s after import torch", re.MULTILINE)
#: The lines of nanobragg.engine.policy (a build announced, the compiled kernel unavailable) start so.
SAID_PREFIX = "nanoBragg: "
#: How policy.announcement's line starts, and policy.NO_COMPILER's (tests/test_bench.py checks both);
#: the numba loop's first compile is announced with NUMBA_PREFIX.
BUILD_PREFIX = "nanoBragg: building the compiled"
NUMBA_PREFIX = "nanoBragg: compiling the numba"
NO_COMPILER_PREFIX = "nanoBragg: no C++ compiler"


class BenchError(Exception):
    """A program failed, or could not be found or started."""


def log(message: str) -> None:
    """One progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Run:
    """One timed process: wall seconds, peak RSS and what its stderr said."""

    wall_s: float
    maxrss_kb: int
    engine: dict | None = None
    startup_s: float | None = None
    said: list[str] = field(default_factory=list)  #: the program's policy lines (SAID_PREFIX)

    @property
    def announced_build(self) -> bool:
        """True when the run said it builds a compiled kernel."""
        return any(line.startswith((BUILD_PREFIX, NUMBA_PREFIX)) for line in self.said)


def parse_engine(stderr: str) -> dict | None:
    """The ``engine: rendered N pixels in T s (...)`` line as a dict, or None."""
    m = ENGINE_RE.search(stderr)
    if not m:
        return None
    kernel = KERNEL_RE.search(stderr)
    return {"pixels": int(m[1]), "seconds": float(m[2]), "compiled": m[3] == "yes",
            "dtype": m[4], "device": m[5], "threads": int(m[6]),
            "kernel": kernel[1] if kernel else ("compiled" if m[3] == "yes" else "eager")}


def parse_startup(stderr: str) -> float | None:
    """Seconds of the ``startup: first pixel at T s after import torch`` line, or None."""
    m = STARTUP_RE.search(stderr)
    return float(m[1]) if m else None


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run ``cmd`` in ``cwd`` to its exit; time it and read its peak RSS with ``os.wait4``."""
    (cwd / FLOATFILE).unlink(missing_ok=True)
    with open(cwd / "stdout.txt", "wb") as out, open(cwd / "stderr.txt", "wb") as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err)
        except OSError as exc:
            raise BenchError(f"could not start {cmd[0]}: {exc}") from exc
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    stderr = (cwd / "stderr.txt").read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise BenchError(f"{Path(cmd[0]).name} exited {proc.returncode}: {' '.join(cmd)}\n{tail}")
    said = [line for line in stderr.splitlines() if line.startswith(SAID_PREFIX)]
    return Run(wall, usage.ru_maxrss, parse_engine(stderr), parse_startup(stderr), said)
