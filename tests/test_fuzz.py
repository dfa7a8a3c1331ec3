"""Fuzzing the command line: every flag with bad values, and corrupted input files.

Each run must end either with exit 0 and a finite float image, or with exit 2,
exactly one error line plus the usage hint on stderr, and no output file
created or changed; never a traceback. Runs are in-process through
``main(argv)``; a few go through a real ``python -m nanobragg`` process.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nanobragg.cli.flags import FLAGS
from nanobragg.cli.main import main
from util import in_folder

BASE = ("-default_F 100 -cell 50 50 50 90 90 90 -N 2 -detpixels 16 -nonoise -nopgm -nocompile "
        "-dtype float64 -noprogress").split()
SENTINEL = b"untouched output file\n"
#: values tried on every value of every flag
BAD_VALUES = ("abc", "nan", "inf", "-inf", "0", "-5", "1e300", "1e-300", "99999999999999999999", "-nonoise")
#: flags whose values are output paths or choices of where to write (checked by the output tests)
OUTPUT_FLAGS = {"-floatfile", "-intfile", "-noisefile", "-pgmfile", "-pngfile", "-dump", "-stolout"}


def _cases():
    """(flag name, values) pairs: no value, each bad value for every value, too few values."""
    cases = []
    for flag in FLAGS:
        name = flag.names[0]
        if name in OUTPUT_FLAGS or name in ("-h", "-compile"):  # -compile builds a kernel for a minute
            continue
        count = len(flag.values)
        if count == 0:
            cases.append((name, []))
            continue
        cases.append((name, []))
        if count > 1:
            cases.append((name, ["1"] * (count - 1)))
        for bad in BAD_VALUES:
            cases.append((name, [bad] * count))
    return cases


CASES = _cases()


def _outputs(tmp_path):
    return {"-floatfile": tmp_path / "float.bin", "-intfile": tmp_path / "int.img"}


def _check_run(argv, tmp_path, capsys):
    outs = _outputs(tmp_path)
    for path in outs.values():
        path.write_bytes(SENTINEL)
    full = BASE + [x for flag, path in outs.items() for x in (flag, str(path))] + argv
    before = set(tmp_path.iterdir())
    with in_folder(tmp_path):
        status = main(full)
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err, (argv, err)
    if status == 0:
        image = np.fromfile(outs["-floatfile"], dtype=np.float32)
        assert image.size > 0 and np.isfinite(image).all(), (argv, "non-finite image")
        return status, err
    assert status == 2, (argv, status, err)
    lines = [line for line in err.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("WARNING")]
    assert len(lines) == 2 and lines[0].startswith("nanoBragg: error: ") and "nanoBragg -h" in lines[1], (argv, err)
    for path in outs.values():
        assert path.read_bytes() == SENTINEL, (argv, f"{path.name} changed on an error")
    assert set(tmp_path.iterdir()) == before, (argv, "files created on an error")
    return status, err


@pytest.mark.parametrize("flag, values", CASES, ids=[f"{f}[{' '.join(v)}]" for f, v in CASES])
def test_flag_values(flag, values, tmp_path, capsys):
    _check_run([flag] + values, tmp_path, capsys)


# ---------------------------------------------------------------- corrupted input files

#: number-like contents placed where a file expects a number
BAD_NUMBERS = ("nan", "inf", "-inf", "1e300", "-1e300", "0", "1e-300", "99999999999999999999", "x")


def _variants(good: str):
    """Corruptions of a good text file: each number replaced by each bad value, truncated, garbage, empty."""
    tokens = good.split()
    out = {"empty": b"", "garbage": bytes(range(256)) * 4, "truncated": good[: len(good) // 2].encode()}
    for i in range(len(tokens)):
        for bad in BAD_NUMBERS:
            changed = tokens[:i] + [bad] + tokens[i + 1:]
            lines = [" ".join(changed[j:j + 5]) for j in range(0, len(changed), 5)]
            out[f"{i}={bad}"] = ("\n".join(lines) + "\n").encode()
    return out


GOOD_FILES = {
    "-hkl": "1 2 3 100\n-1 0 2 50\n",
    "-mat": "0.02 0 0\n0 0.02 0\n0 0 0.02\n",
    "-sourcefile": "-10 0 0 1 1e-10\n-10 0.01 0 1 1.1e-10\n",
}


def _file_cases():
    cases = []
    for flag, good in GOOD_FILES.items():
        variants = _variants(good)
        keys = list(variants)
        for key in keys[:3] + keys[3::2]:  # every corruption kind, half of the number positions
            cases.append((flag, key, variants[key]))
    return cases


FILE_CASES = _file_cases()


@pytest.mark.parametrize("flag, key, content", FILE_CASES, ids=[f"{f}[{k}]" for f, k, _ in FILE_CASES])
def test_corrupted_text_file(flag, key, content, tmp_path, capsys):
    (tmp_path / "input.txt").write_bytes(content)
    extra = ["-cell", "50", "50", "50", "90", "90", "90"] if flag == "-mat" else []
    _check_run([flag, str(tmp_path / "input.txt")] + extra, tmp_path, capsys)


def _fdump_variants():
    from nanobragg.io.fdump import fdump_bytes
    from nanobragg.io.hkl import empty_grid

    grid = empty_grid((-1, 1, -1, 1, -1, 1))
    grid.grid[:] = 100.0
    good = fdump_bytes(grid)
    out = {"empty": b"", "garbage": bytes(range(256)) * 4, "truncated": good[:-9], "header only": good[:20],
           "huge header": b"-99999 99999 -99999 99999 -99999 99999\n\f", "long": good + b"\0" * 8}
    for bad in (np.nan, np.inf, 1e300, -1e300):
        g = empty_grid((-1, 1, -1, 1, -1, 1))
        g.grid[:] = 100.0
        g.grid[1, 1, 1] = bad
        out[f"F={bad}"] = fdump_bytes(g)
    return out


FDUMP = _fdump_variants()


@pytest.mark.parametrize("key", list(FDUMP))
def test_corrupted_fdump(key, tmp_path, capsys):
    (tmp_path / "Fdump.bin").write_bytes(FDUMP[key])
    before = (tmp_path / "Fdump.bin").read_bytes()
    argv = ["-default_F", "0"] if key != "empty" else []
    status, _ = _check_run(argv, tmp_path, capsys)
    assert (tmp_path / "Fdump.bin").read_bytes() == before


SMV_VALUES = ("0", "nan", "inf", "-inf", "-100", "1e300", "1e-300", "x")
SMV_KEYS = ("DISTANCE", "CLOSE_DISTANCE", "WAVELENGTH", "PIXEL_SIZE", "BEAM_CENTER_X", "BEAM_CENTER_Y",
            "ORGX", "ORGY", "PHI", "OSC_RANGE")


def _smv_cases():
    cases = [(flag, key, value) for flag in ("-img", "-mask") for key in SMV_KEYS for value in SMV_VALUES
             if flag == "-img" or value in ("nan", "0", "1e300")]
    return cases + [("-img", "SIZE1", "0"), ("-img", "SIZE1", "99999999"), ("-img", "HEADER_BYTES", "x")]


SMV_CASES = _smv_cases()


@pytest.mark.parametrize("flag, key, value", SMV_CASES, ids=[f"{f}[{k}={v}]" for f, k, v in SMV_CASES])
def test_corrupted_smv_header(flag, key, value, tmp_path, capsys):
    from nanobragg.io.smv import format_smv_header

    header = {"DIM": 2, "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short", "SIZE1": 16, "SIZE2": 16,
              "PIXEL_SIZE": 0.1, "DISTANCE": 100, key: value}
    data = np.ones((16, 16), np.uint16).tobytes()
    raw = format_smv_header(header) + data
    if key == "HEADER_BYTES":
        raw = raw.replace(b"HEADER_BYTES=512", b"HEADER_BYTES=x  ")
    (tmp_path / "h.img").write_bytes(raw)
    _check_run([flag, str(tmp_path / "h.img")], tmp_path, capsys)


def test_smv_garbage_and_empty(tmp_path, capsys):
    for content in (b"", bytes(range(256)) * 8, b"{\nHEADER_BYTES=512;\nSIZE1=16;\n"):
        (tmp_path / "h.img").write_bytes(content)
        status, _ = _check_run(["-img", str(tmp_path / "h.img")], tmp_path, capsys)
        assert status == 2


# ---------------------------------------------------------------- real processes

PROCESS_CASES = [["-N", "0"], ["-distance", "1e-300"], ["-cell", "1e300"] * 1 + ["1"] * 5, ["-mosaic", "nan"],
                 ["-detpixels", "100000000"]]


@pytest.mark.parametrize("argv", PROCESS_CASES, ids=[" ".join(a) for a in PROCESS_CASES])
def test_process_exit_2_one_line(argv, tmp_path):
    out = tmp_path / "float.bin"
    out.write_bytes(SENTINEL)
    proc = subprocess.run([sys.executable, "-m", "nanobragg", *BASE, "-floatfile", str(out), *argv],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("nanoBragg: error: ") and "Traceback" not in proc.stderr
    assert out.read_bytes() == SENTINEL
