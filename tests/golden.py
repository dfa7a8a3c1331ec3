"""Helpers for the golden-case tests: run a case in a fresh folder and compare with C."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np

from nanobragg.cli.main import run

DATA = Path(__file__).parent / "data"
CASES = DATA / "golden_cases"
#: More C outputs made for this project (one OpenMP thread), on flag combinations the golden set lacks.
EXTRA = DATA / "extra_cases"
#: C outputs (one thread) of crystals of 50-100 cells per axis at 0.3-0.5 A: float32 accuracy.
PRECISION = DATA / "precision_cases"
#: C outputs (one thread) of spindle sweeps from phi = 0: C's first pass with the unrotated cell.
PHI0 = DATA / "phi0_cases"
INPUTS = DATA / "inputs"
#: Case folders, searched in this order by name.
ROOTS = (CASES, EXTRA, PRECISION, PHI0)


def case_names(root: Path = CASES) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / "case.json").exists())


def _folder(name: str) -> Path:
    return next((root / name for root in ROOTS if (root / name).exists()), CASES / name)


def load_case(name: str) -> dict:
    return json.loads((_folder(name) / "case.json").read_text())


def c_image(name: str) -> np.ndarray:
    return np.frombuffer(gzip.decompress((_folder(name) / "float.bin.gz").read_bytes()), dtype="<f4")


#: The engines a case can be rendered with: the flags that choose it (see nanobragg.engine.policy).
ENGINE_FLAGS = {"eager": ("-nocompile",), "default": ()}


def run_case(name: str, folder: Path, dtype: str, extra=(), engine: str = "eager") -> tuple[np.ndarray, list[str]]:
    """Run a golden case's arguments in ``folder`` (holding copies of the inputs) with ``engine``'s flags
    (ENGINE_FLAGS: the eager engine, or the default policy's choice); return image and log."""
    for f in INPUTS.iterdir():
        shutil.copy(f, folder / f.name)
    case = load_case(name)
    args = list(case["args"]) + ["-floatfile", str(folder / "float.bin"), "-nonoise", "-nopgm",
                                 "-intfile", str(folder / "int.img"), "-dtype", dtype, *ENGINE_FLAGS[engine], *extra]
    lines: list[str] = []
    import os
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        status = run(args, log=lines.append)
    finally:
        os.chdir(cwd)
    assert status == 0, lines
    return np.fromfile(folder / "float.bin", dtype="<f4"), lines


def compare(ours: np.ndarray, ref: np.ndarray) -> dict:
    """Correlation, relative total difference, and whether our brightest pixel is a C brightest pixel."""
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.allclose(a, b))
    rel = abs(a.sum() - b.sum()) / abs(b.sum()) if b.sum() != 0 else abs(a.sum())
    top = int(np.argmax(a))
    peak_ok = abs(b[top] - b.max()) <= 1e-6 * abs(b.max())
    return {"corr": corr, "rel_total": rel, "peak_ok": bool(peak_ok)}
