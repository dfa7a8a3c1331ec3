"""``nanobragg-bench --robustness``: the memory bound and three runs sharing the cores.

Two figures, each a whole ``nanoBragg`` process (start-up included) in a
temporary folder of its own:

1. **Memory**: ``nanoBragg -detpixels 16384 -max_memory 500`` on a cheap
   cubic crystal: peak resident memory (``ru_maxrss`` of the child, from
   ``os.wait4``) and wall time. One untimed first run (which builds the
   compiled kernel into the bench's kernel cache when the program decides
   to), then the measured run.
2. **Contention**: a real Pilatus 6M job (``A.mat`` and ``scaled.hkl`` from
   ``--real-inputs``, 2463 x 2527 pixels, 10 phi steps) run three times one
   after the other, then three times at once (the time until the last
   ends). The bar: at once takes no longer than one after the other. Ours
   and, with ``--c-bin``/``$NB_C_BIN``, C. Ours runs with a fresh, empty
   kernel cache and default flags, as for a user who never gave
   ``-compile`` (the default policy builds no kernel for this job: it would
   not pay back within three runs; see :mod:`nanobragg.engine.policy`).

The thread policy variables (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``,
``KMP_BLOCKTIME``) are removed from the programs' environment, so that
each program's own default is measured; ``OMP_NUM_THREADS`` is
``--threads`` as for the other workloads. ``--quick`` divides the detector
sizes by 16 (a smoke run).

``bench_robust.json`` and ``robustness.md`` go to ``--out``; ``--docs``
replaces (or adds) the robustness section of ``docs/performance.md``,
leaving the rest of that file as it is.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nanobragg.tools.bench_report import DOCS_BEGIN, DOCS_END, _fmt, _version, machine_info, repo_root
from nanobragg.tools.bench_run import BenchError, Run, log, run_once
from nanobragg.tools.bench_workloads import FLOATFILE, QUICK_DIVISOR, TINY_DETPIXELS, WORKLOADS

MEMORY_ARGS = tuple("-default_F 100 -cell 100 100 100 90 90 90 -lambda 1 -N 5 -distance 100 "
                    "-nonoise -nopgm".split())
MEMORY_DETPIXELS = 16384
MAX_MEMORY_MB = 500
#: The Pilatus job: the benchmark's real-experiment workload, float32.
PILATUS = next(w for w in WORKLOADS if w.family == "pilatus" and w.dtype == "float32")
PILATUS_PIXELS = PILATUS.shape  #: (fast x, slow y)
CONCURRENT_RUNS = 3
#: Removed from the programs' environment: each program's default thread policy is measured.
POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")



# ------------------------------------------------------------------ inputs and command lines


def default_inputs_dir() -> Path:
    """``$NB_REAL_INPUTS``, else ``../shared/golden/inputs-real`` beside the project folder."""
    env = os.environ.get("NB_REAL_INPUTS")
    return Path(env) if env else repo_root().parent / "shared" / "golden" / "inputs-real"


def check_inputs(folder: Path) -> Path:
    """``folder`` made absolute; raises BenchError when it lacks A.mat or scaled.hkl."""
    folder = folder.expanduser().resolve()
    missing = PILATUS.missing_inputs(folder)
    if missing:
        raise BenchError(f"--real-inputs {folder}: missing {', '.join(missing)} "
                         "(the Pilatus job's inputs; see --real-inputs or $NB_REAL_INPUTS)")
    return folder


def memory_size(quick: bool) -> int:
    """Detector side of the memory run."""
    return max(TINY_DETPIXELS, MEMORY_DETPIXELS // QUICK_DIVISOR) if quick else MEMORY_DETPIXELS


def memory_argv(detpixels: int) -> list[str]:
    """The memory run's arguments (outputs in the run's folder)."""
    return [*MEMORY_ARGS, "-detpixels", str(detpixels), "-max_memory", str(MAX_MEMORY_MB),
            "-floatfile", FLOATFILE]


def pilatus_size(quick: bool) -> tuple[int, int]:
    """(fast, slow) pixel counts of the contention job."""
    if not quick:
        return PILATUS_PIXELS
    return tuple(max(TINY_DETPIXELS, n // QUICK_DIVISOR) for n in PILATUS_PIXELS)


def pilatus_argv(inputs: Path, size: tuple[int, int]) -> list[str]:
    """The contention job's arguments (fast side ``size[0]``), its inputs as absolute paths."""
    return PILATUS.argv(size[0], inputs)


def robust_env(env: dict[str, str], cache_dir: Path) -> dict[str, str]:
    """``env`` without the thread policy variables, with the given kernel cache."""
    out = {k: v for k, v in env.items() if k not in POLICY_VARS}
    out["NB_CACHE_DIR"] = str(cache_dir)
    return out


# ------------------------------------------------------------------ runs


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_summary(run: Run) -> dict:
    """Wall, peak RSS and what the engine line said, of one run."""
    engine = run.engine or {}
    return {"wall_s": run.wall_s, "peak_rss_mb": run.maxrss_kb / 1024.0,
            "engine_s": engine.get("seconds"), "compiled": engine.get("compiled")}


def memory_check(cmd: list[str], env: dict[str, str], workdir: Path, detpixels: int) -> dict:
    """A first run (may build the kernel: untimed), then the measured run of the memory job."""
    argv = [*cmd, *memory_argv(detpixels)]
    first = run_once(argv, env, _folder(workdir / "memory" / "first"))
    log(f"robustness memory   ours first    {first.wall_s:8.2f} s  {first.maxrss_kb / 1024:8.0f} MiB")
    shutil.rmtree(workdir / "memory" / "first", ignore_errors=True)  # 1.5 GiB of images at full size
    run = run_once(argv, env, _folder(workdir / "memory" / "run"))
    log(f"robustness memory   ours run      {run.wall_s:8.2f} s  {run.maxrss_kb / 1024:8.0f} MiB")
    return {"detpixels": detpixels, "pixels": detpixels ** 2, "max_memory_mb": MAX_MEMORY_MB,
            "args": memory_argv(detpixels), **_run_summary(run), "first_run": _run_summary(first)}


def in_turn(cmd: list[str], env: dict[str, str], folders: list[Path]) -> tuple[float, list[Run]]:
    """One run per folder, one after the other; total wall seconds and the runs."""
    start = time.perf_counter()
    runs = [run_once(cmd, env, folder) for folder in folders]
    return time.perf_counter() - start, runs


def at_once(cmd: list[str], env: dict[str, str], folders: list[Path]) -> tuple[float, list[Run]]:
    """One run per folder, all started at once; wall seconds until the last ends, and the runs."""
    start = time.perf_counter()
    with ThreadPoolExecutor(len(folders)) as pool:
        futures = [pool.submit(run_once, cmd, env, folder) for folder in folders]
        runs = [f.result() for f in futures]  # re-raises a failed run's BenchError
    return time.perf_counter() - start, runs


def contention_check(cmd: list[str], env: dict[str, str], workdir: Path, side: str, argv: list[str],
                     runs: int = CONCURRENT_RUNS) -> dict:
    """A warm-up, ``runs`` runs one after the other, then ``runs`` at once."""
    full = [*cmd, *argv]
    base = workdir / "contention" / side
    warm = run_once(full, env, _folder(base / "warm-up"))
    log(f"robustness contention {side:4s} warm-up   {warm.wall_s:8.2f} s")
    seq_s, seq = in_turn(full, env, [_folder(base / f"seq-{i + 1}") for i in range(runs)])
    log(f"robustness contention {side:4s} {runs} in turn {seq_s:8.2f} s")
    conc_s, conc = at_once(full, env, [_folder(base / f"conc-{i + 1}") for i in range(runs)])
    log(f"robustness contention {side:4s} {runs} at once {conc_s:8.2f} s")
    engines = [r.engine for r in seq + conc if r.engine]
    return {"runs": runs, "sequential_s": seq_s, "sequential_runs": [r.wall_s for r in seq],
            "concurrent_s": conc_s, "concurrent_runs": [r.wall_s for r in conc],
            "ratio": conc_s / seq_s if seq_s > 0 else None, "met": conc_s <= seq_s,
            "warm_up_s": warm.wall_s,
            "peak_rss_mb": max(r.maxrss_kb for r in seq + conc) / 1024.0,
            "compiled": engines[-1]["compiled"] if engines else None}


def robustness(ours: list[str], c: list[str] | None, base_env: dict[str, str], cache_dir: Path,
               inputs: Path, quick: bool, threads: int) -> dict:
    """Both figures as a JSON-ready dict."""
    started = time.perf_counter()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    inputs = check_inputs(inputs)
    size = pilatus_size(quick)
    with tempfile.TemporaryDirectory(prefix="nanobragg-robust-") as work:
        work = Path(work)
        memory = memory_check(ours, robust_env(base_env, cache_dir), work, memory_size(quick))
        eager_env = robust_env(base_env, _folder(work / "empty-kernel-cache"))
        argv = pilatus_argv(inputs, size)
        contention = {"pixels": size[0] * size[1], "detpixels": list(size),
                      "args": argv, "ours": contention_check(ours, eager_env, work, "ours", argv),
                      "c": contention_check(c, eager_env, work, "c", argv) if c else None}
    return {"tool": "nanobragg-bench --robustness", "format": 1, "date": date, "quick": quick,
            "threads": threads, "elapsed_s": time.perf_counter() - started,
            "machine": machine_info("cpu"), "python": platform.python_version(),
            "torch": _version("torch"), "nanobragg": _version("nanobragg"),
            "ours_cmd": ours, "c_bin": c[0] if c else None, "real_inputs": str(inputs),
            "policy_env_removed": list(POLICY_VARS), "memory": memory, "contention": contention}


# ------------------------------------------------------------------ report


def _contention_row(name: str, r: dict | None) -> str:
    if r is None:
        return f"| {name} | not run | | | | |"
    bar = "met" if r["met"] else "**missed**"
    return (f"| {name} | {_fmt(r['sequential_s'])} | {_fmt(r['concurrent_s'])} | {_fmt(r['ratio'])} | "
            f"{bar} | {_fmt(r['peak_rss_mb'], '.0f')} |")


def robustness_markdown(report: dict) -> str:
    """The robustness section of performance.md, between its markers."""
    m, mem, con = report["machine"], report["memory"], report["contention"]
    quick = " --quick" if report["quick"] else ""
    first = mem["first_run"]
    x, y = con["detpixels"]
    c_line = "" if con["c"] else " (C not run: give `--c-bin` or `NB_C_BIN`)"
    lines = [
        DOCS_BEGIN,
        "## Robustness: memory bound, runs sharing the cores", "",
        f"Generated by `nanobragg-bench --robustness{quick}` on {report['date']} in "
        f"{report['elapsed_s']:.0f} s; {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['memory_gib']} GiB memory; {report['threads']} threads (`OMP_NUM_THREADS`), "
        f"`OMP_WAIT_POLICY` unset (each program's default).", "",
        f"**Memory.** `nanoBragg {' '.join(mem['args'][:-2])}` ({mem['pixels']:,} pixels, outputs in a "
        f"temporary folder): peak RSS **{_fmt(mem['peak_rss_mb'], '.0f')} MiB** with `-max_memory "
        f"{mem['max_memory_mb']}`, wall {_fmt(mem['wall_s'])} s (engine {_fmt(mem['engine_s'])} s, "
        f"compiled: {_fmt(mem['compiled'])}). The first run with this kernel cache took "
        f"{_fmt(first['wall_s'])} s, peak RSS {_fmt(first['peak_rss_mb'], '.0f')} MiB.", "",
        f"**Three runs at once.** The Pilatus 6M job ({x} x {y} pixels, 10 phi steps, `A.mat` and "
        f"`scaled.hkl` of `inputs-real`), run {con['ours']['runs']} times one after the other, then "
        f"{con['ours']['runs']} times at once (until the last ends); ours eager "
        f"(compiled: {_fmt(con['ours']['compiled'])}){c_line}. Bar: at once takes no longer.", "",
        "| program | one after the other (s) | at once (s) | at once / in turn | bar | peak RSS per run (MiB) |",
        "|---|---|---|---|---|---|",
        _contention_row("ours", con["ours"]),
        _contention_row("C", con["c"]), "",
        "Each run is a whole process in its own temporary folder; one untimed warm-up run per program "
        "comes first. Peak RSS is `ru_maxrss` of the child from `os.wait4`.",
        DOCS_END, "",
    ]
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """``text`` with its robustness section (between the markers) replaced by ``section``, or
    ``section`` appended when it has none."""
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start >= 0 and end > start:
        tail = text[end + len(DOCS_END):].lstrip("\n")
        return text[:start] + section + ("\n" + tail if tail else "")
    return text.rstrip("\n") + "\n\n" + section


def write_robust_report(report: dict, out: Path, docs: bool) -> None:
    """bench_robust.json and robustness.md in ``out``; the section of docs/performance.md with ``docs``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_robust.json").write_text(json.dumps(report, indent=2) + "\n")
    section = robustness_markdown(report)
    (out / "robustness.md").write_text(section)
    log(f"wrote {out / 'bench_robust.json'} and {out / 'robustness.md'}")
    if docs:
        target = repo_root() / "docs" / "performance.md"
        old = target.read_text() if target.is_file() else "# Performance\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(replace_section(old, section))
        log(f"wrote the robustness section of {target}")
