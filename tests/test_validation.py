"""Every number checked once, where it enters: the command line's refusals.

Each bad input ends with one error line naming the flag (or the file and
header key or line), exit status 2, and no output file written; the
checks are the shared rules of :mod:`nanobragg.config.checks`.
"""
from __future__ import annotations

import numpy as np
import pytest

from nanobragg.cli.main import run
from nanobragg.config import checks
from nanobragg.io.fdump import fdump_bytes
from nanobragg.io.hkl import empty_grid
from nanobragg.io.smv import smv_bytes
from util import in_folder

BASE = ("-default_F 100 -cell 50 50 50 90 90 90 -N 2 -detpixels 16 -nonoise -nopgm -nocompile "
        "-dtype float64").split()


def _run(args, tmp_path, capsys):
    """Run in tmp_path with a pre-existing float file; returns (status, first stderr line, float file unchanged)."""
    float_file = tmp_path / "floatimage.bin"
    float_file.write_bytes(b"old")
    with in_folder(tmp_path):
        status = run(BASE + args, log=lambda *_: None)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    return status, lines, float_file.read_bytes() == b"old"


def _refused(args, words, tmp_path, capsys):
    status, lines, unchanged = _run(args, tmp_path, capsys)
    assert status == 2, lines
    assert len(lines) == 2 and "Traceback" not in "\n".join(lines), lines
    for word in words:
        assert word in lines[0], lines[0]
    assert unchanged and not (tmp_path / "intimage.img").exists() and not (tmp_path / "Fdump.bin").exists()
    return lines[0]


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return name


# item 3: tracebacks before, one line now; item 4: NaN/inf images before; item 5: nonsense accepted before
@pytest.mark.parametrize("args, words", [
    ("-cell 1e300 1e300 1e300 1e300 1e300 1e300", ["-cell", "cell length"]),
    ("-cell 1e-300 1e-300 1e-300 1e-300 1e-300 1e-300", ["-cell", "cell length"]),
    ("-cell 50 50 50 90 90 180", ["-cell", "no volume"]),
    ("-beam_vector 0 0 0", ["-beam_vector", "zero"]),
    ("-N 99999999999999999999", ["-N", "out of range"]),
    ("-Na 99999999999999999999", ["-Na"]),
    ("-oversample 99999999999999999999", ["-oversample"]),
    ("-roi 0 99999999999999999999 0 5", ["-roi"]),
    ("-seed 99999999999999999999", ["-seed"]),
    ("-detpixels_s 99999999999999999999", ["-detpixels_s"]),
    ("-samplesize 1e300", ["-samplesize", "crystal size"]),
    ("-sample_thick 1e300", ["-sample_thick"]),
    ("-pixel 1e300", ["-pixel", "pixel size"]),
    ("-energy 1e300", ["-energy", "wavelength"]),
    ("-water 1e300", ["-water"]),
    ("-lambda 1e-300", ["-lambda", "wavelength"]),
    ("-distance 1e-300", ["-distance"]),
    ("-close_distance 1e-300", ["-close_distance"]),
    ("-mosaic 1e300", ["-mosaic"]),
    ("-default_F 1e300", ["-default_F", "structure factor"]),
    ("-fluence 1e300", ["-fluence"]),
    ("-flux 1e300", ["-flux"]),
    ("-flux 1e30 -exposure 1e10 -beamsize 1e-6", ["-flux", "fluence"]),
    ("-polar 1e300", ["-polar"]),
    ("-distance 1e300", ["-distance"]),
    ("-Xbeam 1e300", ["-Xbeam"]),
    ("-detector_thick 1e300", ["-detector_thick"]),
    ("-detector_thick 1e-300", ["-detector_thick"]),
    ("-N 0", ["-N", "unit cell count 0"]),
    ("-N -5", ["-N"]),
    ("-beamsize 0", ["-beamsize"]),
    ("-fudge 0", ["-fudge"]),
    ("-oversample -5", ["-oversample"]),
    ("-oversample 0", ["-oversample"]),
    ("-trace_pixel 100000 100000", ["-trace_pixel", "outside the 16x16 detector"]),
    ("-printout_pixel 16 0", ["-printout_pixel", "outside"]),
    ("-roi 100 200 0 5", ["-roi", "outside"]),
    ("-max_memory 1e-300", ["-max_memory", "16 MB"]),
    ("-max_memory 0.000001", ["-max_memory", "16 MB"]),
    ("-detpixels 100000000", ["more than a day", "10000000000000000 pixels"]),
    ("-mosaic 1 -mosaic_dom 1000000 -max_memory 16", ["-mosaic_dom", "per pixel", "memory budget (-max_memory)"]),
    ("-samplesize 1 -detpixels 1024", ["-samplesize", "automatic oversample"]),
    ("-osc 360 -phistep 1e-9", ["-osc" if False else "spindle", "more than"]),
    ("-oversample 1000 -detpixels 10000 -mosaic 1 -mosaic_dom 1000", ["more than a day"]),
    ("-N 20000 -oversample 1 -default_F 1e7 -dtype float32", ["overflow", "float32", "-default_F", "-N"]),
    ("-N 20000 -oversample 1 -default_F 1e12", ["overflow", "peak pixel", "-default_F"]),
])
def test_refused_with_one_line(args, words, tmp_path, capsys):
    _refused(args.split(), words, tmp_path, capsys)


@pytest.mark.parametrize("rows, words", [
    ([[0] * 3] * 3, ["singular"]),
    ([[0.01, 0, 0], [0.02, 0, 0], [0, 0, 0.01]], ["singular"]),
    ([[0.01, 0, 0], [0, "nan", 0], [0, 0, 0.01]], ["not finite"]),
    ([[0.01, 0, 0], [0, "inf", 0], [0, 0, 0.01]], ["not finite"]),
    ([[1e300, 0, 0], [0, 0.01, 0], [0, 0, 0.01]], ["larger than"]),
    ([[1e-300, 0, 0], [0, 0.01, 0], [0, 0, 0.01]], ["singular"]),
])
def test_bad_matrix(rows, words, tmp_path, capsys):
    name = _write(tmp_path, "bad.mat", "\n".join(" ".join(str(v) for v in r) for r in rows) + "\n")
    _refused(["-mat", name], ["-mat bad.mat"] + words, tmp_path, capsys)


@pytest.mark.parametrize("text, words", [
    ("1e300 0 0 100\n", ["line 1", "index h"]),
    ("0 1e19 0 100\n", ["line 1", "index k"]),
    ("0 0 nan 100\n", ["line 1", "index l"]),
    ("1 2 3 4\n1 0 0 nan\n", ["line 2", "structure factor"]),
    ("1 0 0 1e300\n", ["line 1", "structure factor"]),
    ("nan nan nan nan\n", ["line 1"]),
])
def test_bad_hkl(text, words, tmp_path, capsys):
    name = _write(tmp_path, "bad.hkl", text)
    _refused(["-hkl", name], ["bad.hkl"] + words, tmp_path, capsys)


def test_hkl_grid_beyond_budget_refused_before_reading_it(tmp_path, capsys):
    name = _write(tmp_path, "big.hkl", "-250 -250 -250 10\n250 250 250 10\n")
    line = _refused(["-hkl", name, "-max_memory", "100"], ["big.hkl", "502x502x502", "100 MB"], tmp_path, capsys)
    assert "memory budget" in line


def test_fdump_of_nan_refused(tmp_path, capsys):
    grid = empty_grid((0, 2, 0, 2, 0, 2))
    grid.grid[:] = np.nan
    (tmp_path / "Fdump.bin").write_bytes(fdump_bytes(grid))
    status, lines, unchanged = _run([], tmp_path, capsys)
    assert status == 2 and "Fdump.bin" in lines[0] and "not a finite number" in lines[0] and unchanged


def test_fdump_beyond_budget_refused_from_its_header(tmp_path, capsys):
    (tmp_path / "Fdump.bin").write_bytes(b"-250 250 -250 250 -250 250\n\f")
    status, lines, _ = _run(["-max_memory", "100"], tmp_path, capsys)
    assert status == 2 and "does not fit the memory budget of 100 MB" in lines[0]


@pytest.mark.parametrize("row, words", [
    ("-10 0 0 1 0", ["source 1", "wavelength 0"]),
    ("inf 0 0 1 1e-10", ["source 1", "not a finite number"]),
    ("0 0 0 1 1e-10", ["source 1", "zero"]),
    ("-10 0 0 1 1e-10\n0 nan nan 1 1e-10", ["source 2", "zero"]),
    ("-10 0 0 1 1e-10\n-10 1e300 0 1 1e-10", ["source 2", "source position"]),
])
def test_bad_source_file(row, words, tmp_path, capsys):
    name = _write(tmp_path, "src.txt", row + "\n")
    _refused(["-sourcefile", name], ["-sourcefile src.txt"] + words, tmp_path, capsys)


def _smv(tmp_path, key, value):
    header = {"HEADER_BYTES": 512, "DIM": 2, "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short", key: value}
    (tmp_path / "h.img").write_bytes(smv_bytes(header, np.zeros((16, 16), np.uint16)))
    return "h.img"


@pytest.mark.parametrize("flag", ["-img", "-mask"])
@pytest.mark.parametrize("key, value", [
    ("DISTANCE", "0"), ("DISTANCE", "nan"), ("DISTANCE", "inf"), ("DISTANCE", "-100"),
    ("WAVELENGTH", "0"), ("WAVELENGTH", "nan"), ("BEAM_CENTER_X", "nan"), ("PIXEL_SIZE", "0"),
    ("ORGX", "1e300"), ("PHI", "inf"), ("CLOSE_DISTANCE", "-5"),
])
def test_bad_smv_header_names_file_and_key(flag, key, value, tmp_path, capsys):
    name = _smv(tmp_path, key, value)
    _refused([flag, name], [f"{flag} h.img, header {key}"], tmp_path, capsys)


def test_flag_after_header_takes_the_blame_and_the_value(tmp_path, capsys):
    name = _smv(tmp_path, "DISTANCE", "-100")
    status, lines, _ = _run(["-img", name, "-distance", "100"], tmp_path, capsys)
    assert status == 0, lines


@pytest.mark.parametrize("args", [
    "-N 5", "-oversample 2 -mosaic 0.5 -mosaic_dom 3", "-detector_abs 500 -detector_thick 100",
    "-misset random -misset_seed 5", "-roi 0 100 0 100", "-odet_vector 0 0 0",
])
def test_good_runs_still_render(args, tmp_path, capsys):
    status, lines, _ = _run(args.split(), tmp_path, capsys)
    assert status == 0, lines
    image = np.fromfile(tmp_path / "floatimage.bin", dtype=np.float32)
    assert image.size == 256 and np.isfinite(image).all() and image.max() > 0


def test_rules_cover_only_real_fields():
    """Every rule names a field of the configuration records."""
    from nanobragg.cli.settings import Settings

    s = Settings()
    for path in checks.RULES:
        head, _, name = path.partition(".")
        record = getattr(s, head) if head in ("output", "run") else getattr(s.experiment, head)
        assert hasattr(record, name), path
