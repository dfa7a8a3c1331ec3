"""Noise images byte-identical to C's for every seed, negative ones included (tests/data/noise_cases).

C's ``ran1`` keeps its shuffle table in statics that every seed variable
shares: ``-misset random`` draws from ``misset_seed``, the mosaic domains
(always at least one) from ``mosaic_seed``, then the noise from ``seed``. A
negative flag value (``-seed -7``) makes C's seed positive, and a positive
seed keeps drawing from the table the earlier draws left; ``-seed 0``
rebuilds it from 1. Each case was made by the C program with one OpenMP
thread (its case.json records the command).
"""
import gzip
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from golden import DATA, INPUTS
from nanobragg.cli.main import run

NOISE = DATA / "noise_cases"
NAMES = sorted(p.name for p in NOISE.iterdir() if (p / "case.json").exists())
PHOTONS = re.compile(r"(\d+) photons on noise image \((\d+) overloads\)")


def _run(name, folder: Path, dtype="float64"):
    for f in INPUTS.iterdir():
        shutil.copy(f, folder / f.name)
    case = json.loads((NOISE / name / "case.json").read_text())
    args = case["args"] + ["-floatfile", "float.bin", "-noisefile", "noise.img", "-intfile", "int.img", "-nopgm",
                           "-dtype", dtype]
    lines = []
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert run(args, log=lines.append) == 0, lines
    finally:
        os.chdir(cwd)
    return lines


def test_cases_cover_negative_and_zero_seeds():
    assert NAMES == ["seed-neg", "seed-neg-misset", "seed-neg-mosaic", "seed-neg-mosaic-seed-neg",
                     "seed-pos-misset-mosaic", "seed-zero"]


@pytest.mark.parametrize("name", NAMES)
def test_noise_image_byte_identical_to_c(name, tmp_path):
    lines = _run(name, tmp_path)
    want = gzip.decompress((NOISE / name / "noise.img.gz").read_bytes())
    got = (tmp_path / "noise.img").read_bytes()
    assert len(got) == len(want)
    ours, theirs = np.frombuffer(got[512:], "<u2"), np.frombuffer(want[512:], "<u2")
    assert np.count_nonzero(ours != theirs) == 0
    assert got == want
    c_line = PHOTONS.search((NOISE / name / "stdout.txt").read_text()).group(0)
    assert c_line in lines
