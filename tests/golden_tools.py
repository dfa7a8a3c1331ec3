"""Helpers for the nonBragg / noisify golden cases (tests/data/golden_tools, C outputs of bl831/nanoBragg)."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np

from util import in_folder

DATA = Path(__file__).parent / "data" / "golden_tools"
CASES = DATA / "cases"
#: More C outputs made for this project (same C programs, gcc -O3), on flag combinations the golden set lacks.
EXTRA = Path(__file__).parent / "data" / "golden_tools_extra"
INPUTS = DATA / "inputs"
STOL = Path(__file__).resolve().parents[1] / "src" / "nanobragg" / "data" / "stol"


def case_names(prog: str, root: Path = CASES) -> list[str]:
    return sorted(p.name for p in root.iterdir()
                  if (p / "case.json").exists() and json.loads((p / "case.json").read_text())["prog"] == prog)


def _folder(name: str) -> Path:
    return CASES / name if (CASES / name).exists() else EXTRA / name


def load_case(name: str) -> dict:
    return json.loads((_folder(name) / "case.json").read_text())


def c_output(name: str, output: str) -> bytes:
    return gzip.decompress((_folder(name) / f"{output}.gz").read_bytes())


def prepare(name: str, folder: Path) -> dict:
    """Copy the case's inputs into ``folder`` (a fresh, empty folder, as C ran in)."""
    case = load_case(name)
    for inp in case["inputs"]:
        src = STOL / inp if (STOL / inp).exists() else INPUTS / inp
        shutil.copy(src, folder / inp)
    return case


def run_in(folder: Path, run, args: list[str]) -> tuple[int, list[str]]:
    lines: list[str] = []
    with in_folder(folder):
        status = run(list(args), log=lines.append)
    return status, lines


def float_compare(ours: bytes, ref: bytes) -> tuple[float, float]:
    """(correlation, relative total difference) of two float files; NaN pixels of C's image are left out."""
    a = np.frombuffer(ours, dtype="<f4").astype(np.float64)
    b = np.frombuffer(ref, dtype="<f4").astype(np.float64)
    assert a.shape == b.shape
    keep = np.isfinite(b)
    a, b = a[keep], b[keep]
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.allclose(a, b))
    rel = abs(a.sum() - b.sum()) / abs(b.sum()) if b.sum() != 0 else abs(a.sum())
    return corr, rel


def pgm_split(data: bytes) -> tuple[bytes, int, int]:
    """(header, width, height) of a P5 file (header: up to and including the '255\\n' line)."""
    end = data.index(b"255\n") + 4
    head = data[:end]
    width, height = map(int, head.split(b"\n")[1].split())
    return head, width, height
