"""Benchmark: a dataset in one process (and on ``--workers``) against a shell loop of single runs.

``python -m nanobragg.dataset.bench`` times, for each workload, from fresh
processes and as wall time (start-up and file writes included):

- ``nb-dataset`` with the kernel cache warm (a one-image dataset fills it
  first) and, with ``--cold``, with an empty cache (the kernel build included);
- ``nb-dataset --workers K`` (``--workers``, default 2; 0 skips it);
- a shell loop of ``nanoBragg`` over the same images (each manifest entry's
  arguments, one process per image), and of the C program when given
  (``--c-bin`` or ``$NB_C_BIN``; the flags C lacks, ``-dtype``, ``-device``,
  ``-compile``/``-nocompile``, are left out of its arguments);
- the start-up every fresh process pays before its first image, ``python -c
  "import torch"`` ending with ``os._exit`` as the commands do (no interpreter
  teardown): the dataset cannot be faster than the C loop by more than the
  loop's time over it.

Workloads: ``cubic`` (the benchmark's cubic case at 1024x1024, 50 images of
0.1 degree), ``real`` (the Pilatus 6M job with A.mat and scaled.hkl from
``--real-inputs`` or ``$NB_REAL_INPUTS``, 20 images; skipped when they are
missing). ``--quick`` shrinks detectors 16 times and image counts to 5.
Prints a table and, with ``--json FILE``, writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..tools.bench_workloads import QUICK_DIVISOR, TINY_DETPIXELS

CUBIC = ("-default_F 100 -cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -distance 100 -oversample 1 "
         "-osc 0.1 -phisteps 1 -nonoise -nopgm -floatfile f.bin").split()
#: Flags of this program that the C program does not have: (name, number of values).
OURS_ONLY = {"-dtype": 1, "-device": 1, "-compile": 0, "-nocompile": 0, "-numba": 0, "-max_memory": 1, "-noise_rng": 1,
             "-progress": 0, "-noprogress": 0}


def c_args(args: list) -> list:
    """An image's argument list without the flags C lacks."""
    out, i = [], 0
    while i < len(args):
        n = OURS_ONLY.get(args[i])
        if n is None:
            out.append(args[i])
            i += 1
        else:
            i += 1 + n
    return out


def workloads(quick: bool, real_inputs) -> list:
    """(name, flags, images) of every workload that can run here."""
    side = max(TINY_DETPIXELS, 1024 // QUICK_DIVISOR) if quick else 1024
    out = [("cubic-1024" if not quick else f"cubic-{side}", [*CUBIC, "-detpixels", str(side)], 5 if quick else 50)]
    from ..tools.bench_robust import PILATUS_PIXELS, check_inputs, default_inputs_dir, pilatus_argv
    folder = Path(real_inputs) if real_inputs else default_inputs_dir()
    try:
        inputs = check_inputs(folder)
    except Exception as exc:  # BenchError: the inputs are not on this machine
        print(f"skipping the real workload: {exc}", file=sys.stderr)
        return out
    size = tuple(max(TINY_DETPIXELS, n // QUICK_DIVISOR) for n in PILATUS_PIXELS) if quick else PILATUS_PIXELS
    out.append((f"pilatus-{size[0]}x{size[1]}", pilatus_argv(inputs, size), 5 if quick else 20))
    return out


def _env(threads: int, cache: Path) -> dict:
    """Every timed process's environment: ``threads`` threads, the kernel cache ``cache``, and Python's
    byte code cached as an installed program's is (PYTHONDONTWRITEBYTECODE dropped: without it each
    process compiles the package's source again, about 0.2 s of start-up; the warm-up run writes it)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), NB_CACHE_DIR=str(cache))
    return env


def _timed(cmd: list, env: dict, cwd=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def _script(name: str) -> list:
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    module = "nanobragg.cli.dataset" if name == "nb-dataset" else "nanobragg"
    return [sys.executable, "-m", module]


def bench_workload(name: str, flags: list, images: int, opts, scratch: Path) -> dict:
    warm_cache = Path(opts.cache_dir)
    env = _env(opts.threads, warm_cache)
    ds = _script("nb-dataset")
    run = {"workload": name, "images": images}

    def dataset(tag: str, extra=(), environment=env) -> float:
        out = scratch / f"{name}-{tag}"
        return _timed([*ds, str(out), "--images", str(images), "--no-progress", *extra, "--", *flags], environment)

    _timed([*ds, str(scratch / f"{name}-warmup"), "--images", "1", "--no-progress", "--", *flags], env)
    torch_only = [sys.executable, "-c", "import os, torch; os._exit(0)"]
    run["torch_startup_seconds"] = min(_timed(torch_only, env) for _ in range(3))
    run["dataset_s"] = dataset("warm")
    if opts.cold:
        cold = scratch / f"{name}-empty-cache"
        cold.mkdir()
        run["dataset_cold_s"] = dataset("cold", environment=_env(opts.threads, cold))
    if opts.workers:
        # each worker one thread: K workers share the same cores as one process of K threads
        run["dataset_workers"] = opts.workers
        run["dataset_workers_s"] = dataset("workers", ("--workers", str(opts.workers)), _env(1, warm_cache))
    manifest = [json.loads(line) for line in (scratch / f"{name}-warm" / "manifest.jsonl").read_text().splitlines()]
    loop_dir = scratch / f"{name}-loop"
    loop_dir.mkdir()
    ours = _script("nanoBragg")
    count = min(images, opts.loop_images or images)
    start = time.perf_counter()
    for rec in manifest[:count]:
        _timed([*ours, *rec["args"]], env, cwd=loop_dir)
    run["loop_ours_s"] = (time.perf_counter() - start) * images / count
    run["loop_ours_images"] = count
    c_bin = opts.c_bin or os.environ.get("NB_C_BIN")
    if c_bin:
        c_dir = scratch / f"{name}-c-loop"
        c_dir.mkdir()
        start = time.perf_counter()
        for rec in manifest[:count]:
            _timed([c_bin, *c_args(rec["args"])], env, cwd=c_dir)
        run["loop_c_s"] = (time.perf_counter() - start) * images / count
    for key in [k for k in run if k.endswith("_s")]:
        run[key.replace("_s", "_images_per_s")] = images / run[key] if run[key] > 0 else None
    run["speedup_vs_loop_ours"] = run["loop_ours_s"] / run["dataset_s"]
    if "loop_c_s" in run:
        run["speedup_vs_loop_c"] = run["loop_c_s"] / run["dataset_s"]
        run["speedup_vs_loop_c_bound"] = run["loop_c_s"] / run["torch_startup_seconds"]  # images costing nothing
    if "dataset_workers_s" in run:
        run["workers_vs_one_process"] = run["dataset_s"] / run["dataset_workers_s"]
    return run


def _table(runs: list) -> str:
    lines = ["| workload | images | nb-dataset (warm) | cold cache | --workers | nanoBragg loop | C loop | "
             "x loop (ours) | x loop (C) | import torch | x loop (C) bound |", "|---" * 11 + "|"]

    def s(run, key):
        v = run.get(key)
        if v is None:
            return "-"
        rate = run.get(key.replace("_s", "_images_per_s"))
        return f"{v:.1f} s ({rate:.2f}/s)"

    for r in runs:
        x_c = f"{r['speedup_vs_loop_c']:.1f}" if "speedup_vs_loop_c" in r else "-"
        bound = f"{r['speedup_vs_loop_c_bound']:.1f}" if "speedup_vs_loop_c_bound" in r else "-"
        lines.append(f"| {r['workload']} | {r['images']} | {s(r, 'dataset_s')} | {s(r, 'dataset_cold_s')} | "
                     f"{s(r, 'dataset_workers_s')} | {s(r, 'loop_ours_s')} | {s(r, 'loop_c_s')} | "
                     f"{r['speedup_vs_loop_ours']:.1f} | {x_c} | {r['torch_startup_seconds']:.2f} s | {bound} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nanobragg.dataset.bench", description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=("cubic", "real", "all"), default="all")
    p.add_argument("--quick", action="store_true", help="detectors / 16, 5 images (a check that it runs)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of every process")
    p.add_argument("--workers", type=int, default=2, help="also time --workers K (0: not)")
    p.add_argument("--cold", action="store_true", help="also time a dataset with an empty kernel cache")
    p.add_argument("--loop-images", type=int, help="run the shell loops over the first K images only, scaled")
    p.add_argument("--c-bin", help="the C nanoBragg (default $NB_C_BIN; none: no C loop)")
    p.add_argument("--real-inputs", help="folder with A.mat and scaled.hkl (default $NB_REAL_INPUTS)")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "nanobragg" / "bench-kernels"),
                   help="the warm kernel cache")
    p.add_argument("--json", help="write the numbers to this file")
    opts = p.parse_args(argv)
    chosen = [w for w in workloads(opts.quick, opts.real_inputs)
              if opts.workload == "all" or w[0].startswith("cubic" if opts.workload == "cubic" else "pilatus")]
    runs = []
    with tempfile.TemporaryDirectory(prefix="nb-dataset-bench-") as scratch:
        for name, flags, images in chosen:
            print(f"{name}: {images} images ...", file=sys.stderr)
            runs.append(bench_workload(name, flags, images, opts, Path(scratch)))
    print(_table(runs))
    if opts.json:
        Path(opts.json).write_text(json.dumps({"threads": opts.threads, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
