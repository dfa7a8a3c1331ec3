"""The report of ``nanobragg-bench``: machine facts, the Markdown table, ``performance.md``."""
from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from nanobragg.tools.bench_batch import batch_text

#: Markers of the robustness section of docs/performance.md (written by nanobragg-bench --robustness).
DOCS_BEGIN = "<!-- nanobragg-bench --robustness: begin -->"
DOCS_END = "<!-- nanobragg-bench --robustness: end -->"
#: Markers of the workloads' part of docs/performance.md (written by nanobragg-bench --docs).
BENCH_BEGIN = "<!-- nanobragg-bench: begin -->"
BENCH_END = "<!-- nanobragg-bench: end -->"
#: Headings of the workloads' part itself (a file written before the markers ends it at any other).
OWN_HEADINGS = ("# Performance", "## Method")


def _own_part(text: str) -> tuple[int, int]:
    """(start, end) of the workloads' part of docs/performance.md ``text``: between its markers, or,
    in a file written before them, from the start to the first marker or heading of another section."""
    start, end = text.find(BENCH_BEGIN), text.find(BENCH_END)
    if start >= 0 and end > start:
        return start, end + len(BENCH_END) + (text[end + len(BENCH_END):].startswith("\n"))
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("<!--") or (line.startswith("#") and line.rstrip() not in OWN_HEADINGS):
            break
        offset += len(line)
    return 0, offset


def docs_text(old: str | None, generated: str) -> str:
    """docs/performance.md with its workloads' part replaced by ``generated`` (wrapped in the markers),
    every other section as it was (the robustness section, hand-written ones such as Datasets)."""
    part = f"{BENCH_BEGIN}\n{generated.rstrip()}\n{BENCH_END}\n"
    if not old:
        return part
    start, end = _own_part(old)
    rest = old[end:].lstrip("\n")
    return old[:start] + part + ("\n" + rest if rest else "")



def log(message: str) -> None:
    """One progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def machine_info(device: str) -> dict:
    """CPU model, cores, memory, and the GPU in cuda mode."""
    info = {"cpu": _cpuinfo_model(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_gib": _memory_gib(), "platform": platform.platform()}
    if device == "cuda":
        import torch
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpuinfo_model() -> str:
    """The ``model name`` of /proc/cpuinfo, else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    """MemTotal of /proc/meminfo in GiB, or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(package: str) -> str | None:
    """Installed version of ``package``, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _fmt(value, spec: str = ".3g") -> str:
    """A table cell: the formatted number, or an en dash for None."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec)


TABLE_HEADER = ("| workload | pixels | runs | wall (s) | Mpx/s | engine (s) | engine Mpx/s | "
                "start-up (s) | peak RSS (MiB) | engine | dtype / device / "
                "threads | C wall (s) | C engine est. (s) | C/ours wall | C/ours engine |")
COLD_HEADER = ("| workload | cold: 3 runs (s) | engine (runs 1-3) | kernel built / announced | 3 C runs (s) | "
               "3 C / cold | bar (C >= 3 s) | no compiler: engine (s) | C/ours engine | said |")


def table_row(e: dict) -> str:
    """One Markdown table row."""
    o, c, r = e["ours"], e["c"] or {}, e["ratios"] or {}
    mpx = lambda v: None if v is None else v / 1e6  # noqa: E731
    setup = f"{o['dtype'] or '–'} / {o['device'] or '–'} / {o['threads'] or '–'}"
    cells = [e["name"], f"{e['pixels']:,}", str(e["repeats"]), _fmt(o["wall_s"]),
             _fmt(mpx(o["pixels_per_s"])), _fmt(o["engine_s"]), _fmt(mpx(o["engine_pixels_per_s"])),
             _fmt(o["startup_s"]), _fmt(o["peak_rss_mb"], ".0f"),
             o.get("kernel") or _fmt(o["compiled"]), setup, _fmt(c.get("wall_s")), _fmt(c.get("engine_s_est")),
             _fmt(r.get("wall")), _fmt(r.get("engine"))]
    return "| " + " | ".join(cells) + " |"


def _flags(values: list) -> str:
    """A list of booleans as ``yes no no``."""
    return " ".join(_fmt(bool(v)) for v in values)


def cold_row(e: dict) -> str:
    """One row of the cold / no-compiler table."""
    cold, nocc = e["ours"].get("cold"), e["ours"].get("no_compiler")
    cells = [e["name"]]
    if cold:
        bar = {True: "met", False: "**missed**", None: "–"}[cold["met"]]
        built = " ".join(f"{_fmt(b)}/{_fmt(a)}" for b, a in zip(cold["built"], cold["announced"]))
        engines = " ".join(k or "–" for k in cold["kernel"]) if "kernel" in cold else _flags(cold["compiled"])
        cells += [_fmt(cold["total_s"]), engines, built, _fmt(cold["c_total_s"]),
                  _fmt(cold["ratio"]), bar]
    else:
        cells += ["not run"] + [""] * 5
    if nocc:
        said = "; ".join(line.split(":", 2)[1].strip() for line in nocc["said"]) or "nothing"
        cells += [_fmt(nocc["engine_s"]), _fmt(nocc["engine_ratio"]), said]
    else:
        cells += ["not run", "", ""]
    return "| " + " | ".join(cells) + " |"


def markdown_table(report: dict) -> str:
    """The results table, one row per workload, and a line per skipped workload."""
    sep = "|" + "---|" * TABLE_HEADER.count(" | ") + "---|"
    skipped = [f"- {s['name']}: {s['note']}" for s in report.get("skipped", [])]
    return "\n".join([TABLE_HEADER, sep, *(table_row(e) for e in report["workloads"])]
                     + (["", *skipped] if skipped else [])) + "\n"


def cold_table(report: dict) -> str:
    """The cold and no-compiler columns, one row per workload."""
    sep = "|" + "---|" * COLD_HEADER.count(" | ") + "---|"
    return "\n" + "\n".join([COLD_HEADER, sep, *(cold_row(e) for e in report["workloads"])]) + "\n\n"


def growth_text(g: dict | None) -> str:
    """The cubic growth sentence."""
    if g is None:
        return "Cubic growth: not measured (needs cubic-2048 and cubic-4096).\n"
    c = f"C +{_fmt(g['c_s'])} s" if g["c_s"] is not None else "C not run"
    return (f"Cubic growth {g['from']} -> {g['to']} pixels: ours +{_fmt(g['ours_s'])} s, {c}; "
            f"C growth / our growth = {_fmt(g['ratio'])}.\n")


METHOD = """\
## Method

- Each figure is a whole `nanoBragg` process, start-up included, run with `-nonoise -nopgm
  -floatfile f.bin` in a temporary folder: one warm-up run, then the median of the timed runs
  (column *runs*). The C program and ours alternate run by run.
- *engine* is the rendering alone, from the first pixel to the last, from the line
  `engine: rendered N pixels in T s (...)` that `nanoBragg` prints on stderr under
  `NB_TIMING=1`; *start-up* is from `startup: first pixel at T s after import torch` (time from
  the end of `import torch` to the first pixel: set-up, reading inputs and loading the compiled
  kernel). Statistics, the int conversion and the file writes count in the wall time only.
- Both programs write their files in the same folder. The float file is removed before each run
  (outside the timing); the int file is left, so each run rewrites the same-size file of the
  previous one, as a user's repeated runs do.
- Every run has default flags, as a user's: the warm-up run of each workload fills the kernel
  cache (`NB_CACHE_DIR`; the numba loop is compiled once for every kind of run), and the timed runs
  use what the default policy picks (*engine*: `numba` for the numba loop, `compiled` for the
  AOTInductor kernel, `eager` for the torch engine). With `--compiled` the warm-up is given
  `-compile` instead, which builds the compiled kernel of that kind for the timed runs.
- *cold: 3 runs* is the first three runs of the workload from an empty `NB_CACHE_DIR` (one fresh
  cache for the three), default flags, their wall times summed; *engine* says what rendered each,
  *kernel built / announced* which added a kernel to the cache and which
  said so on stderr (a build must never be silent). *3 C runs* is three times C's median wall; the
  bar (the three runs ours no longer than three of C's) holds where C takes 3 s or more.
- *no compiler* is one run with default flags, an empty `NB_CACHE_DIR` and a `PATH` of links to
  every program but gcc, g++, cc, c++, clang (with their target prefixes and version suffixes);
  *said* is what the run printed about the compiled kernel (the policy's lines, `nanoBragg: ...`).
- float64 rows give this project `-dtype float64`; the C program computes in double either way.
- *peak RSS* is `ru_maxrss` of the process from `os.wait4`, the largest of the timed runs.
- The C program has no timer: its *engine est.* is its whole-process time minus its time on the
  same workload at `-detpixels 8` (its fixed start-up: reading flags, setting up, writing).
  Where that estimate is not positive (tiny cases) no engine ratio is given.
- Ratios are C time / our time: above 1 means this project is faster.
- Cubic growth compares the time added from 2048 to 4096 pixels square: C growth / our growth.
- Runs use `OMP_NUM_THREADS` (both programs) as shown. Within the time budget every workload gets
  one timed run after the warm-ups; further runs up to `--repeats` go to the cheapest workloads
  first, so the largest cases may have fewer runs than the others.
"""


def _budget_text(budget: float | None) -> str:
    """``budget N s`` or ``no time budget``."""
    return f"budget {budget:.0f} s" if budget else "no time budget"


def render_markdown(report: dict) -> str:
    """The whole performance report (``performance.md``)."""
    m = report["machine"]
    c_name = Path(report["c_bin"]).name if report["c_bin"] else None
    lines = [
        "# Performance", "",
        f"Generated by `nanobragg-bench{' --quick' if report['quick'] else ''}` on "
        f"{report['date']} in {report['elapsed_s']:.0f} s ({_budget_text(report['budget_s'])}).", "",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['memory_gib']} GiB memory{', GPU ' + m['gpu'] if m.get('gpu') else ''}",
        f"- nanobragg {report['nanobragg']}, torch {report['torch']}, Python {report['python']}",
        f"- device `{report['device']}`, {report['threads']} threads (`OMP_NUM_THREADS`)",
        f"- C reference: {('`' + c_name + '` (C nanoBragg, OpenMP)') if c_name else 'not run'}",
        "", markdown_table(report), cold_table(report), growth_text(report["growth"]), batch_text(report.get("batch")),
        METHOD,
    ]
    return "\n".join(lines)


def repo_root() -> Path:
    """The project folder holding pyproject.toml above this file, else the current folder."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "nanobragg").is_dir():
            return parent
    return Path.cwd()


def write_report(report: dict, out: Path, docs: bool) -> None:
    """bench.json and performance.md in ``out``; docs/performance.md with ``docs``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    text = render_markdown(report)
    (out / "performance.md").write_text(text)
    log(f"wrote {out / 'bench.json'} and {out / 'performance.md'}")
    if docs:
        target = repo_root() / "docs" / "performance.md"
        old = target.read_text() if target.is_file() else None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(docs_text(old, text))
        log(f"wrote the workloads' part of {target}")


