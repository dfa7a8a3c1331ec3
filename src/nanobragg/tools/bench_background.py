"""Benchmark of the ``nonBragg`` background against the C program (issue 16's speed point).

    python -m nanobragg.tools.bench_background --c-bin /path/to/nonBragg [--pixels 2048] [--repeats 3]

Renders water on a PIXELSxPIXELS detector (0.1 mm pixels, 100 mm) with both programs. The C
engine time is C's wall time on that detector less its wall time on a 16x16 one (start-up,
reading the table, writing files); ours is the render step in a warm process (the compiled
loop loaded by a first, small render), and the whole process (start-up included) is timed too.
Best of ``--repeats``. Checks that both int files are byte-identical.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def _args(pixels: int, folder: str) -> list[str]:
    return ["-stol", "water.stol", "-distance", "100", "-detpixels", str(pixels), "-pixel", "0.1", "-noprogress",
            "-nonoise", "-floatfile", os.path.join(folder, "float.bin"), "-intfile", os.path.join(folder, "int.img"),
            "-pgmfile", os.path.join(folder, "image.pgm")]


def _wall(cmd, cwd, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--c-bin", default=os.environ.get("NB_NONBRAGG_C_BIN"), help="the C nonBragg binary")
    parser.add_argument("--pixels", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args(argv)

    from ..cli import nonbragg
    from ..data import packaged_stol

    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, c_dir = os.path.join(tmp, "py"), os.path.join(tmp, "c")
        for d in (ours_dir, c_dir):
            os.makedirs(d)
            shutil.copy(packaged_stol("water"), os.path.join(d, "water.stol"))
        cwd = os.getcwd()
        os.chdir(ours_dir)
        try:
            quiet = lambda *a: None  # noqa: E731
            s, _ = nonbragg.build_settings(_args(16, ours_dir))
            r = nonbragg.resolve(s, quiet)
            table, _, _ = nonbragg.read_stol(s.stol, s.stol_mult)
            nonbragg.render(s, r, table, False)  # loads the compiled loop
            s, _ = nonbragg.build_settings(_args(opts.pixels, ours_dir))
            r = nonbragg.resolve(s, quiet)
            engine = float("inf")
            for _ in range(opts.repeats):
                start = time.perf_counter()
                nonbragg.render(s, r, table, False)
                engine = min(engine, time.perf_counter() - start)
        finally:
            os.chdir(cwd)
        exe = shutil.which("nonBragg", path=os.path.dirname(sys.executable)) or "nonBragg"
        ours_wall = _wall([exe, *_args(opts.pixels, ours_dir)], ours_dir, opts.repeats)
        print(f"detector {opts.pixels}x{opts.pixels}, water.stol, best of {opts.repeats}")
        print(f"ours: engine {engine:.3f} s, whole process {ours_wall:.3f} s")
        if not opts.c_bin:
            print("no --c-bin given: C not measured")
            return 0
        c_full = _wall([opts.c_bin, *_args(opts.pixels, c_dir)], c_dir, opts.repeats)
        with open(os.path.join(c_dir, "int.img"), "rb") as a, open(os.path.join(ours_dir, "int.img"), "rb") as b:
            same = a.read() == b.read()
        c_small = _wall([opts.c_bin, *_args(16, c_dir)], c_dir, opts.repeats)
        c_engine = max(c_full - c_small, 1e-9)
        print(f"C:    engine {c_engine:.3f} s (wall {c_full:.3f} s less {c_small:.3f} s at 16x16), "
              f"whole process {c_full:.3f} s")
        print(f"engine ratio C/ours {c_engine / engine:.2f}x, whole-process ratio {c_full / ours_wall:.2f}x, "
              f"int files {'identical' if same else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
