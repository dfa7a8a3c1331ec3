"""``nanobragg-bench``: time the whole ``nanoBragg`` process on fixed workloads.

Usage::

    nanobragg-bench [--workloads NAME,...] [--repeats N] [--out DIR] [--quick]
                    [--docs] [--device cpu|cuda] [--threads N] [--budget S]
                    [--compiled] [--no-cold] [--c-bin PATH] [--py-bin PATH] [--cache-dir DIR]
                    [--real-inputs DIR]
    nanobragg-bench --robustness [--quick] [--docs] [--out DIR] [--threads N]
                    [--real-inputs DIR] [--c-bin PATH] [--py-bin PATH] [--cache-dir DIR]

(also ``python -m nanobragg.bench``).  Every workload of
:mod:`nanobragg.tools.bench_workloads` runs in a temporary folder, the
process timed from start to exit (start-up included): one warm-up run, then
the median of ``--repeats`` runs.  Peak resident memory comes from
``os.wait4`` on the child.  With ``NB_TIMING=1`` the command prints its
engine time, start-up time and engine (the compiled kernel, the numba loop
or the eager engine) on stderr; they are parsed from there.  Every run has
default flags, as a user's: the warm-up run fills the kernel cache
(``NB_CACHE_DIR``: the numba loop, compiled once), and the timed runs find
what the default policy uses there (:mod:`nanobragg.engine.policy`); with
``--compiled`` the warm-up run is given ``-compile``, which builds the
compiled kernel of that kind, so that the timed runs measure it.

Two more columns per workload, each with default flags (no ``-compile``):
*cold*, the first three runs from an empty kernel cache (a fresh
``NB_CACHE_DIR`` shared by the three), summed, against three C runs, with
whether each run built a kernel and said so; and *no compiler*, one run with
an empty cache and a ``PATH`` of links to every program but the C and C++
compilers (:func:`without_compilers`), its engine time against C's. The real
experiment's workloads (``pilatus-*``) read ``A.mat`` and ``scaled.hkl``
from ``--real-inputs`` (default ``$NB_REAL_INPUTS`` or
``../shared/golden/inputs-real`` beside the project); without them they are
skipped, and the report says so.

With a C nanoBragg (``--c-bin`` or ``$NB_C_BIN``) the same workloads run
through it too, alternating with this project run by run, and the report
gives the ratios C time / our time.  The C program has no timer, so its
engine time is estimated as its whole-process time minus its time on the
same workload at ``-detpixels 8`` (its fixed start-up).

Within ``--budget`` seconds (default 780) the number of timed runs is
planned after the warm-ups: each workload gets one, and further rounds up
to ``--repeats`` go to the cheapest workloads while the estimate fits.

Writes ``bench.json`` and ``performance.md`` to ``--out`` (default
``benchmarks/YYYYMMDD-HHMMSS``); ``--docs`` also writes the project's
``docs/performance.md``, replacing only the part this command writes (between
its markers) and keeping every other section.

``--robustness`` runs, instead of the workloads, the memory-bound run and
the three-runs-at-once figure of :mod:`nanobragg.tools.bench_robust`
(``bench_robust.json`` and ``robustness.md``; ``--docs`` replaces that
section of ``docs/performance.md`` only).

Exit codes: 0 success (also ``--device cuda`` without a GPU: nothing to
do), 1 usage error, 2 a program failed or is missing (or, with
``--robustness``, the real inputs are).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanobragg.tools.bench_batch import batch_timing
from nanobragg.tools.bench_report import (  # noqa: F401 (re-exported)
    METHOD,
    TABLE_HEADER,
    _version,
    cold_table,
    growth_text,
    machine_info,
    markdown_table,
    render_markdown,
    repo_root,
    table_row,
    write_report,
)
from nanobragg.tools.bench_robust import default_inputs_dir
from nanobragg.tools.bench_run import NO_COMPILER_PREFIX, BenchError, Run, log, run_once
from nanobragg.tools.bench_workloads import TINY_DETPIXELS, WORKLOADS, Workload, select

EXIT_OK, EXIT_USAGE, EXIT_RUNNER = 0, 1, 2
DEFAULT_REPEATS = 3
DEFAULT_BUDGET_S = 780.0
DEFAULT_THREADS = 2
TINY_RUNS = 3
#: Runs of the cold column: the first runs of a workload from an empty kernel cache.
COLD_RUNS = 3
#: C runs from this many seconds on are held to the cold bar (three runs ours no longer than three C runs).
COLD_BAR_C_S = 3.0
#: Programs a "no compiler" run must not find: gcc, g++, cc, c++, clang, clang++, with target prefixes
#: and version suffixes (x86_64-linux-gnu-g++-12).
COMPILERS = re.compile(r"(?:.+-)?(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+)(?:-[0-9.]+)?")


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors exit with status 1 instead of 2."""

    def error(self, message):
        """Print usage and ``message`` to stderr, then exit 1."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# ------------------------------------------------------------------ options


def build_parser() -> argparse.ArgumentParser:
    """The command's option parser."""
    p = _Parser(prog="nanobragg-bench", description="Time the nanoBragg command on fixed "
                "workloads; with a C nanoBragg, compare.")
    p.add_argument("--workloads", help="comma list of workloads or families (default all; "
                   "see --list)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument("--repeats", type=int, help=f"timed runs per workload (default "
                   f"{DEFAULT_REPEATS}, 1 with --quick; fewer when --budget is short)")
    p.add_argument("--out", type=Path, help="folder for bench.json and performance.md "
                   "(default benchmarks/YYYYMMDD-HHMMSS)")
    p.add_argument("--quick", action="store_true", help="detector sizes / 16, one timed run (for testing)")
    p.add_argument("--docs", action="store_true", help="also write docs/performance.md")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where nanoBragg renders (default cpu; cuda is skipped without a GPU)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help="OMP_NUM_THREADS of both programs (default %(default)s)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="S",
                   help="seconds the whole benchmark should take; 0 = no limit "
                   "(default %(default)s)")
    p.add_argument("--compiled", action="store_true", help="warm up with -compile, so that the timed runs "
                   "use the compiled kernel (AOTInductor, one build per kind of run) where it applies")
    p.add_argument("--no-cold", action="store_true", help="skip the cold column (three runs from an empty "
                   "kernel cache)")
    p.add_argument("--c-bin", help="C nanoBragg to compare with (default $NB_C_BIN; none: "
                   "no comparison)")
    p.add_argument("--py-bin", help="program under test (default $NB_PY_BIN or this "
                   "project's nanoBragg command)")
    p.add_argument("--cache-dir", type=Path, help="persistent NB_CACHE_DIR (kernel cache) of the "
                   "warm runs (default ~/.cache/nanobragg/bench-kernels)")
    p.add_argument("--robustness", action="store_true", help="instead of the workloads: peak RSS "
                   "of a 16384x16384 -max_memory 500 run, and three Pilatus runs at once against "
                   "three in turn (ours, and C when given)")
    p.add_argument("--real-inputs", type=Path, metavar="DIR", help="folder holding A.mat and "
                   "scaled.hkl, for the pilatus workloads and --robustness (default $NB_REAL_INPUTS or "
                   "../shared/golden/inputs-real beside the project)")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse and check the options; usage errors exit 1."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.repeats is None:
        opts.repeats = 1 if opts.quick else DEFAULT_REPEATS
    if opts.repeats < 1 or opts.threads < 1 or opts.budget < 0:
        parser.error("--repeats and --threads must be >= 1, --budget >= 0")
    try:
        opts.selected = select(opts.workloads)
    except KeyError as exc:
        parser.error(f"unknown workload {exc.args[0]!r} (see --list)")
    opts.cold = not opts.no_cold
    if opts.robustness and (opts.workloads or opts.device != "cpu"):
        parser.error("--robustness runs alone, on the CPU (no --workloads, no --device cuda)")
    return opts


# ------------------------------------------------------------------ programs


def _executable(name: str) -> str | None:
    """Absolute path of ``name`` (a path, or a command on PATH), or None."""
    if os.sep in name:
        path = Path(name).expanduser().resolve()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name)


def own_command(py_bin: str | None) -> list[str]:
    """The program under test: ``py_bin``/``$NB_PY_BIN``, else the installed ``nanoBragg``."""
    chosen = py_bin or os.environ.get("NB_PY_BIN")
    if chosen:
        path = _executable(chosen)
        if path is None:
            raise BenchError(f"program not found: {chosen}")
        return [path]
    beside = Path(sys.executable).parent / "nanoBragg"  # skips shims that wrap the script
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("nanoBragg")
    return [found] if found else [sys.executable, "-m", "nanobragg"]


def c_command(c_bin: str | None) -> list[str] | None:
    """The C program named by ``c_bin`` or ``$NB_C_BIN``; None when neither is set."""
    chosen = c_bin or os.environ.get("NB_C_BIN")
    if not chosen:
        return None
    path = _executable(chosen)
    if path is None:
        raise BenchError(f"C program not found: {chosen}")
    return [path]


def default_cache_dir() -> Path:
    """The persistent kernel cache of the warm runs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nanobragg" / "bench-kernels"


def program_env(threads: int, cache_dir: Path) -> dict[str, str]:
    """Environment of every run: thread count, timing lines on, the given kernel cache."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), NB_TIMING="1",
               NB_CACHE_DIR=str(cache_dir))
    return env


def without_compilers(path: str, folder: Path) -> str:
    """A PATH of one folder, ``folder``, holding links to every program on ``path`` except the C and
    C++ compilers (:data:`COMPILERS`); the first of a name on ``path`` wins, as on ``path``."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in path.split(os.pathsep):
        try:
            entries = list(os.scandir(directory or "."))
        except OSError:
            continue
        for entry in entries:
            link = folder / entry.name
            if COMPILERS.fullmatch(entry.name) or os.path.lexists(link):
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                link.symlink_to(os.path.abspath(entry.path))
    return str(folder)


def _kernels(cache: Path) -> set[str]:
    """Names of the compiled kernels in a cache folder: the packages, and the numba loop's index files."""
    return {p.name for p in cache.glob("*.pt2")} | {str(p.relative_to(cache)) for p in cache.glob("numba/**/*.nbi")}


# ------------------------------------------------------------------ a workload's runs


@dataclass
class Trial:
    """Everything run for one workload."""

    workload: Workload
    detpixels: int
    warm: Run | None = None
    cold: list[Run] = field(default_factory=list)  #: the cold column's runs, in order
    cold_built: list[bool] = field(default_factory=list)  #: whether each cold run added a kernel to the cache
    no_compiler: Run | None = None
    runs: list[Run] = field(default_factory=list)
    c_warm: Run | None = None
    c_runs: list[Run] = field(default_factory=list)
    c_tiny: list[Run] = field(default_factory=list)

    def cost(self) -> float:
        """Estimated seconds of one more timed round (ours, C and C tiny)."""
        runs = [self.warm, self.c_warm] + self.c_tiny[:1]
        return sum(r.wall_s for r in runs if r is not None)


@dataclass
class Bench:
    """The programs, environments and folders shared by every run."""

    ours: list[str]
    c: list[str] | None
    device: str
    env: dict[str, str]
    workdir: Path
    warmup_flags: tuple = ()  #: flags of the warm-up run (default flags: what users run)
    inputs: Path | None = None  #: the real-inputs folder (A.mat, scaled.hkl)

    def ours_argv(self, trial: Trial) -> list[str]:
        """Our command line for a workload."""
        w = trial.workload
        return [*self.ours, "-device", self.device, *w.argv(trial.detpixels, self.inputs), *w.own_args()]

    def run_ours(self, trial: Trial, label: str, env: dict[str, str] | None = None, extra=()) -> Run:
        """One run of this project's program (``extra`` flags appended)."""
        run = run_once([*self.ours_argv(trial), *extra], env or self.env, self._folder(trial, "ours"))
        log(f"{trial.workload.name:18s} ours {label:8s} {run.wall_s:8.2f} s")
        return run

    def run_c(self, trial: Trial, label: str, detpixels: int | None = None) -> Run:
        """One run of the C program (at the workload size, or ``detpixels``)."""
        argv = [*self.c, *trial.workload.argv(detpixels or trial.detpixels, self.inputs)]
        run = run_once(argv, self.env, self._folder(trial, "c"))
        log(f"{trial.workload.name:18s} C    {label:8s} {run.wall_s:8.2f} s")
        return run

    def _folder(self, trial: Trial, side: str) -> Path:
        """The run folder of one program on one workload."""
        folder = self.workdir / trial.workload.name / side
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def warm_up(bench: Bench, trial: Trial) -> None:
    """One untimed run of each program (ours fills the kernel cache; gives cost estimates)."""
    trial.warm = bench.run_ours(trial, "warm-up", extra=bench.warmup_flags)
    if bench.c:
        trial.c_warm = bench.run_c(trial, "warm-up")
        trial.c_tiny.append(bench.run_c(trial, "tiny", TINY_DETPIXELS))


def cold_runs(bench: Bench, trial: Trial) -> None:
    """The first COLD_RUNS runs from an empty kernel cache, default flags, noting which added a kernel."""
    with tempfile.TemporaryDirectory(prefix="kernels-cold-") as cache:
        env = _empty_cache_env(bench.env, cache)
        for i in range(COLD_RUNS):
            before = _kernels(Path(cache))
            trial.cold.append(bench.run_ours(trial, f"cold {i + 1}", env))
            trial.cold_built.append(bool(_kernels(Path(cache)) - before))


def _empty_cache_env(env: dict[str, str], cache: str) -> dict[str, str]:
    """``env`` with the empty kernel cache ``cache``: NB_CACHE_DIR, and no NUMBA_CACHE_DIR elsewhere (the
    numba loop is then compiled into ``cache`` too, as on a machine that never ran it)."""
    env = {k: v for k, v in env.items() if k != "NUMBA_CACHE_DIR"}
    env["NB_CACHE_DIR"] = cache
    return env


def no_compiler_run(bench: Bench, trial: Trial) -> None:
    """One run, default flags, with an empty kernel cache and no C or C++ compiler on PATH."""
    with tempfile.TemporaryDirectory(prefix="kernels-nocc-") as cache:
        env = {k: v for k, v in _empty_cache_env(bench.env, cache).items() if k not in ("CC", "CXX")}
        env.update(PATH=without_compilers(env.get("PATH", ""), bench.workdir / "no-compiler"))
        trial.no_compiler = bench.run_ours(trial, "nocc", env)


def timed_runs(bench: Bench, trial: Trial, repeats: int, tiny_runs: int) -> None:
    """``repeats`` timed runs, C and ours alternating; then the C tiny runs still missing."""
    trial.c_tiny.clear()  # the warm-up's tiny run was untimed
    for i in range(repeats):
        if bench.c:
            trial.c_runs.append(bench.run_c(trial, f"run {i + 1}"))
        trial.runs.append(bench.run_ours(trial, f"run {i + 1}"))
        if bench.c and len(trial.c_tiny) < tiny_runs:
            trial.c_tiny.append(bench.run_c(trial, "tiny", TINY_DETPIXELS))
    while bench.c and len(trial.c_tiny) < tiny_runs:
        trial.c_tiny.append(bench.run_c(trial, "tiny", TINY_DETPIXELS))


def plan_repeats(costs: dict[str, float], max_repeats: int, seconds: float | None) -> dict[str, int]:
    """Timed runs per workload: one each, then rounds up to ``max_repeats``, cheapest first,
    while the summed cost fits in ``seconds`` (None: no limit)."""
    if seconds is None:
        return {name: max_repeats for name in costs}
    repeats = {name: 1 for name in costs}
    spent = sum(costs.values())
    for _ in range(max_repeats - 1):
        for name in sorted(costs, key=costs.get):
            if spent + costs[name] <= seconds:
                repeats[name] += 1
                spent += costs[name]
    return repeats


# ------------------------------------------------------------------ summaries


def _median(values: list[float]) -> float | None:
    """Median, or None for an empty list."""
    return statistics.median(values) if values else None


def _ratio(num: float | None, den: float | None) -> float | None:
    """num / den when both are positive, else None."""
    return num / den if num and den and num > 0 and den > 0 else None


def _per_s(pixels: int, seconds: float | None) -> float | None:
    """Pixels per second, or None."""
    return pixels / seconds if seconds else None


def summarise_cold(trial: Trial, c: dict | None) -> dict | None:
    """The cold column: three runs from an empty cache against three C runs (C's median wall x 3)."""
    if not trial.cold:
        return None
    total = sum(r.wall_s for r in trial.cold)
    c_total = COLD_RUNS * c["wall_s"] if c else None
    held = c is not None and c["wall_s"] >= COLD_BAR_C_S
    return {"runs_s": [r.wall_s for r in trial.cold], "total_s": total,
            "compiled": [bool(r.engine and r.engine["compiled"]) for r in trial.cold],
            "kernel": [r.engine["kernel"] if r.engine else None for r in trial.cold],
            "built": trial.cold_built, "announced": [r.announced_build for r in trial.cold],
            "silent_builds": sum(b and not r.announced_build for b, r in zip(trial.cold_built, trial.cold)),
            "c_total_s": c_total, "ratio": _ratio(c_total, total),
            "met": (total <= c_total) if held else None}


def summarise_no_compiler(trial: Trial, c: dict | None) -> dict | None:
    """The no-compiler column: engine time and what the run said."""
    run = trial.no_compiler
    if run is None:
        return None
    engine = run.engine or {}
    return {"wall_s": run.wall_s, "engine_s": engine.get("seconds"), "compiled": engine.get("compiled"),
            "kernel": engine.get("kernel"),
            "said_no_compiler": any(line.startswith(NO_COMPILER_PREFIX) for line in run.said),
            "said": run.said, "engine_ratio": _ratio(c["engine_s_est"] if c else None, engine.get("seconds"))}


def summarise_ours(trial: Trial, pixels: int) -> dict:
    """Our figures: medians of the timed runs, peak RSS, what the engine line said."""
    runs = trial.runs
    engines = [r.engine for r in runs if r.engine]
    engine_s = _median([e["seconds"] for e in engines]) if len(engines) == len(runs) else None
    startups = [r.startup_s for r in runs if r.startup_s is not None]
    wall = _median([r.wall_s for r in runs])
    last = engines[-1] if engines else {}
    return {
        "wall_s": wall, "wall_runs": [r.wall_s for r in runs],
        "pixels_per_s": _per_s(pixels, wall),
        "engine_s": engine_s, "engine_runs": [e["seconds"] for e in engines],
        "engine_pixels_per_s": _per_s(pixels, engine_s),
        "startup_s": _median(startups) if len(startups) == len(runs) else None,
        "peak_rss_mb": max(r.maxrss_kb for r in runs) / 1024.0,
        "compiled": last.get("compiled"), "kernel": last.get("kernel"), "dtype": last.get("dtype"),
        "device": last.get("device"), "threads": last.get("threads"),
    }


def summarise_c(trial: Trial, pixels: int) -> dict | None:
    """The C program's figures, its engine time estimated as wall - tiny-run wall."""
    if not trial.c_runs:
        return None
    wall = _median([r.wall_s for r in trial.c_runs])
    tiny = _median([r.wall_s for r in trial.c_tiny])
    return {
        "wall_s": wall, "wall_runs": [r.wall_s for r in trial.c_runs],
        "pixels_per_s": _per_s(pixels, wall),
        "startup_s": tiny, "tiny_runs": [r.wall_s for r in trial.c_tiny],
        "engine_s_est": wall - tiny, "peak_rss_mb": max(r.maxrss_kb for r in trial.c_runs) / 1024.0,
    }


def summarise(bench: Bench, trial: Trial) -> dict:
    """The JSON entry of one workload."""
    w = trial.workload
    shape = w.pixels_at(trial.detpixels)
    pixels = shape[0] * shape[1]
    ours = summarise_ours(trial, pixels)
    c = summarise_c(trial, pixels)
    ours["cold"], ours["no_compiler"] = summarise_cold(trial, c), summarise_no_compiler(trial, c)
    ratios = None if c is None else {
        "wall": _ratio(c["wall_s"], ours["wall_s"]),
        "engine": _ratio(c["engine_s_est"], ours["engine_s"]),
    }
    return {"name": w.name, "family": w.family, "note": w.note, "detpixels": trial.detpixels,
            "shape": list(shape), "dtype": w.dtype, "pixels": pixels, "args": bench.ours_argv(trial)[len(bench.ours):],
            "repeats": len(trial.runs), "ours": ours, "c": c, "ratios": ratios}


def cubic_growth(entries: list[dict]) -> dict | None:
    """Cubic 2048 -> 4096 added seconds of each program and C growth / our growth."""
    by_name = {e["name"]: e for e in entries}
    small, large = by_name.get("cubic-2048"), by_name.get("cubic-4096")
    if not small or not large:
        return None
    ours = large["ours"]["wall_s"] - small["ours"]["wall_s"]
    c = large["c"]["wall_s"] - small["c"]["wall_s"] if small["c"] and large["c"] else None
    return {"from": small["detpixels"], "to": large["detpixels"], "ours_s": ours, "c_s": c,
            "ratio": _ratio(c, ours)}


# ------------------------------------------------------------------ the benchmark


def run_all(bench: Bench, trials: list[Trial], opts: argparse.Namespace, deadline: float | None) -> None:
    """Warm-ups, the cold and no-compiler runs, the repeat plan, then the timed runs."""
    for trial in trials:
        warm_up(bench, trial)
    for trial in trials:
        if opts.cold:
            cold_runs(bench, trial)
        no_compiler_run(bench, trial)
    left = None if deadline is None else max(0.0, 0.95 * (deadline - time.perf_counter()))
    costs = {t.workload.name: t.cost() for t in trials}
    plan = plan_repeats(costs, opts.repeats, left)
    log("timed runs per workload: " + ", ".join(f"{k} {v}" for k, v in plan.items()))
    tiny_runs = opts.repeats if opts.quick else max(TINY_RUNS, opts.repeats)
    for trial in trials:
        timed_runs(bench, trial, plan[trial.workload.name], tiny_runs)


def make_report(bench: Bench, trials: list[Trial], opts, started: float, date: str, skipped=()) -> dict:
    """The JSON report."""
    entries = [summarise(bench, t) for t in trials]
    return {
        "tool": "nanobragg-bench", "format": 1, "date": date, "quick": opts.quick,
        "device": opts.device, "threads": opts.threads, "budget_s": opts.budget or None,
        "elapsed_s": time.perf_counter() - started, "max_repeats": opts.repeats,
        "machine": machine_info(opts.device), "python": platform.python_version(),
        "torch": _version("torch"), "nanobragg": _version("nanobragg"),
        "ours_cmd": bench.ours, "c_bin": bench.c[0] if bench.c else None,
        "real_inputs": str(bench.inputs) if bench.inputs else None, "skipped": list(skipped),
        "workloads": entries, "growth": cubic_growth(entries),
        "batch": None if opts.quick else batch_timing(device=opts.device),
    }


def _cuda_available() -> bool:
    """True when torch sees a CUDA device."""
    import torch
    return torch.cuda.is_available()


def benchmark(opts: argparse.Namespace) -> int:
    """Run the selected workloads and write the reports."""
    started = time.perf_counter()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    cache = opts.cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    deadline = started + opts.budget if opts.budget else None
    inputs = (opts.real_inputs or default_inputs_dir()).expanduser().resolve()
    chosen, skipped = [], []
    for w in opts.selected:
        missing = w.missing_inputs(inputs)
        if missing:
            skipped.append({"name": w.name, "note": f"skipped: {inputs} lacks {', '.join(missing)} "
                            "(give --real-inputs DIR or $NB_REAL_INPUTS)"})
            log(f"{w.name:18s} {skipped[-1]['note']}")
        else:
            chosen.append(w)
    with tempfile.TemporaryDirectory(prefix="nanobragg-bench-") as work:
        bench = Bench(own_command(opts.py_bin), c_command(opts.c_bin), opts.device,
                      program_env(opts.threads, cache), Path(work), ("-compile",) if opts.compiled else (), inputs)
        trials = [Trial(w, w.size(opts.quick)) for w in chosen]
        run_all(bench, trials, opts, deadline)
        report = make_report(bench, trials, opts, started, date, skipped)
    out = opts.out or Path("benchmarks") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    write_report(report, out, opts.docs)
    print(markdown_table(report) + cold_table(report) + growth_text(report["growth"]), end="")
    if opts.budget and report["elapsed_s"] > opts.budget:
        log(f"note: took {report['elapsed_s']:.0f} s, over the {opts.budget:.0f} s budget")
    return EXIT_OK


def robustness_benchmark(opts: argparse.Namespace) -> int:
    """The --robustness figures and their reports."""
    from nanobragg.tools import bench_robust as robust

    cache = opts.cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    report = robust.robustness(own_command(opts.py_bin), c_command(opts.c_bin),
                               program_env(opts.threads, cache), cache,
                               opts.real_inputs or robust.default_inputs_dir(), opts.quick, opts.threads)
    out = opts.out or Path("benchmarks") / datetime.datetime.now().strftime("robust-%Y%m%d-%H%M%S")
    robust.write_robust_report(report, out, opts.docs)
    print(robust.robustness_markdown(report), end="")
    return EXIT_OK


def list_workloads() -> None:
    """Print every workload's name and flags."""
    for w in WORKLOADS:
        print(f"{w.name:26s} {' '.join(w.argv(w.detpixels) + w.own_args())}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.list:
        list_workloads()
        return EXIT_OK
    if opts.device == "cuda" and not _cuda_available():
        log("nanobragg-bench: --device cuda: no CUDA device here; nothing to benchmark")
        return EXIT_OK
    try:
        return robustness_benchmark(opts) if opts.robustness else benchmark(opts)
    except BenchError as exc:
        log(f"nanobragg-bench: error: {exc}")
        return EXIT_RUNNER
    except KeyboardInterrupt:
        log("nanobragg-bench: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
