"""nb-compare end to end, with this project's own nanoBragg command on both sides."""
import json
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

from nanobragg.tools import compare as nbc

pytest.importorskip("PIL.Image")

ARGS = ("-default_F 100 -cell 100 100 100 90 90 90 -lambda 1 -N 5 -distance 100 -detpixels 48 "
        "-pixel 0.4 -misset 10 20 30 -oversample 1 -nonoise -nopgm").split()


def wrapper(path: Path, extra: str = "") -> Path:
    """An executable shell script running ``python -m nanobragg "$@"`` (plus ``extra`` flags after them)."""
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m nanobragg "$@" {extra}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def in_tmp(tmp_path):
    """Run in tmp_path, so the programs' default output files land there."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def test_same_program_correlates_perfectly(in_tmp, capsys):
    prog = wrapper(in_tmp / "nb.sh")
    code = nbc.main(["--outdir", "out", "--threshold", "0.9999", "--c-bin", str(prog), "--py-bin", str(prog),
                     "--", *ARGS])
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((in_tmp / "out" / "summary.json").read_text())
    assert summary["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert summary["max_abs_diff"] == 0.0 and summary["shape"] == [48, 48]
    assert summary["sum_c"] > 0 and summary["exit_code"] == 0
    assert printed.splitlines()[2].startswith("OK: corr=1.000000")
    assert (in_tmp / "out" / "c.png").exists() and (in_tmp / "out" / "py.png").exists()


def test_different_crystal_size_fails_threshold(in_tmp, capsys):
    ref = wrapper(in_tmp / "nb.sh")
    other = wrapper(in_tmp / "nb_n6.sh", "-N 6")
    code = nbc.main(["--outdir", "out", "--threshold", "0.9999", "--c-bin", str(ref), "--py-bin", str(other),
                     "--", *ARGS])
    printed = capsys.readouterr().out
    assert code == nbc.EXIT_THRESHOLD == 3, printed
    summary = json.loads((in_tmp / "out" / "summary.json").read_text())
    assert summary["status"] == "below_threshold" and summary["correlation"] < 0.9999
    assert summary["sum_py"] > summary["sum_c"]
    assert "BELOW_THRESHOLD" in printed


def test_relative_hkl_and_the_users_folder_untouched(in_tmp):
    """The real program on both sides, ``-hkl`` relative to the user's folder; the folder's own
    ``intimage.img`` and ``Fdump.bin`` are neither overwritten nor joined by new files."""
    data = Path(__file__).resolve().parent / "data" / "inputs" / "pattern.hkl"
    (in_tmp / "pattern.hkl").write_bytes(data.read_bytes())
    (in_tmp / "intimage.img").write_text("the user's image")
    (in_tmp / "Fdump.bin").write_text("the user's cache")
    prog = wrapper(in_tmp / "nb.sh")
    before = {p.name: p.read_bytes() for p in in_tmp.iterdir()}
    code = nbc.main(["--outdir", "out", "--threshold", "0.9999", "--c-bin", str(prog), "--py-bin", str(prog),
                     "--", *ARGS, "-hkl", "pattern.hkl"])
    assert code == 0
    after = {p.name: p.read_bytes() for p in in_tmp.iterdir() if p.name != "out"}
    assert after == before
    summary = json.loads((in_tmp / "out" / "summary.json").read_text())
    assert "intimage.img" in summary["run_files_py"] and "Fdump.bin" in summary["run_files_py"]
    assert summary["sum_c"] > 0
