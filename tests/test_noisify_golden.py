"""noisify against the C program's outputs (tests/data/golden_tools, bl831/nanoBragg noisify.c):
every int, noise and PGM file byte for byte (all cases fix -seed)."""
from __future__ import annotations

import pytest

from golden_tools import EXTRA, c_output, case_names, prepare, run_in
from nanobragg.cli.noisify import run

CASES = case_names("noisify")
EXTRA_CASES = case_names("noisify", EXTRA)


def test_every_case_is_here():
    assert len(CASES) == 16 and len(EXTRA_CASES) == 14


@pytest.mark.parametrize("name", CASES + EXTRA_CASES)
def test_case(name, tmp_path):
    case = prepare(name, tmp_path)
    status, lines = run_in(tmp_path, run, case["args"])
    assert status == case["c_returncode"] == 0, lines
    written = sorted(p.name for p in tmp_path.iterdir() if p.name not in case["inputs"])
    assert written == sorted(case["outputs"])
    for out in case["outputs"]:
        assert (tmp_path / out).read_bytes() == c_output(name, out), out
    stats = case.get("c_stats", {})
    if "noise_photons" in stats:
        assert any(line.startswith(f"{stats['noise_photons']:.0f} photons on noise image ("
                                   f"{stats['noise_overloads']} overloads)") for line in lines), lines
