"""Tests of the nb-compare tool, using small fake nanoBragg programs.

The fake program is a stdlib-only Python script that reads ``-floatfile``,
``-detpixels``/``-detpixels_f``/``-detpixels_s`` from its arguments and writes
a float32 image holding one Gaussian spot (wider when ``-N 6`` is given).
Test-only flags change its behaviour: ``-fake_fail`` (exit 3),
``-fake_truncate`` (write a file of 1000 floats), ``-fake_square N`` (write an
N x N image whatever the other flags say), ``-fake_sleep S`` (sleep first,
writing its pid to ``$FAKE_PID_FILE`` when set), ``-fake_nan`` /
``-fake_inf`` (one bad pixel), ``-fake_litter`` (write ``intimage.img`` or
``-intfile``'s file, ``image.pgm``, ``noiseimage.img`` and ``Fdump.bin`` into
its current folder, as C does), ``-fake_need_dump`` (exit 4 unless
``Fdump.bin`` is in its current folder). ``-hkl FILE`` must be readable
(else exit 4).
"""

import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

try:
    import nanobragg.tools.compare  # noqa: F401
except ImportError:  # package not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nanobragg.tools import compare as nbc
from nanobragg.tools.metrics import compare_images, find_peaks, match_peaks

Image = pytest.importorskip("PIL.Image")

FAKE_PROGRAM = r'''#!/usr/bin/env python3
"""Fake nanoBragg: writes one Gaussian spot as raw float32."""
import math
import struct
import sys

argv = sys.argv[1:]


def value(flag, default=None):
    """Value after the last occurrence of flag."""
    found = default
    for i, arg in enumerate(argv[:-1]):
        if arg == flag:
            found = argv[i + 1]
    return found


if "-fake_fail" in argv:
    print("fake failure", file=sys.stderr)
    sys.exit(3)
if value("-fake_sleep"):
    import os
    import time
    if os.environ.get("FAKE_PID_FILE"):
        with open(os.environ["FAKE_PID_FILE"], "w") as f:
            f.write(str(os.getpid()))
    print("fake sleeping", flush=True)
    time.sleep(float(value("-fake_sleep")))
if value("-hkl"):
    try:
        open(value("-hkl")).close()
    except OSError as exc:
        print("cannot read -hkl:", exc, file=sys.stderr)
        sys.exit(4)
if "-fake_need_dump" in argv:
    try:
        open("Fdump.bin").close()
    except OSError:
        print("no Fdump.bin here", file=sys.stderr)
        sys.exit(4)
if "-fake_litter" in argv:
    for name in (value("-intfile", "intimage.img"), "image.pgm", "noiseimage.img", "Fdump.bin"):
        with open(name, "w") as f:
            f.write("written by the fake program")
fast = slow = int(value("-detpixels", "32"))
fast = int(value("-detpixels_f", fast))
slow = int(value("-detpixels_s", slow))
if value("-fake_square"):
    fast = slow = int(value("-fake_square"))
sigma = 3.0 if value("-N") == "6" else 2.0
cx, cy = 0.6 * fast, 0.4 * slow
pixels = [1000.0 * math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2)) + 1.0
          for y in range(slow) for x in range(fast)]
if "-fake_truncate" in argv:
    pixels = pixels[:1000]
if "-fake_nan" in argv:
    pixels[5] = float("nan")
if "-fake_inf" in argv:
    pixels[7] = float("inf")
print("fake nanoBragg wrote", fast, "x", slow)
with open(value("-floatfile", "floatimage.bin"), "wb") as out:
    out.write(struct.pack("<%df" % len(pixels), *pixels))
'''

SMALL = ["-detpixels", "32"]


def make_script(path: Path, text: str) -> Path:
    """Write an executable script."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake(tmp_path):
    """Path of the fake nanoBragg program."""
    return make_script(tmp_path / "fake_nanobragg", FAKE_PROGRAM)


@pytest.fixture
def wrap(tmp_path, fake):
    """Factory of wrappers that run the fake program with extra arguments."""
    def make(name: str, *extra: str) -> Path:
        extras = " ".join(extra)
        return make_script(tmp_path / name,
                           f'#!/bin/sh\nexec "{fake}" "$@" {extras}\n')
    return make


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run every test in its own directory with no runner variables set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NB_C_BIN", raising=False)
    monkeypatch.delenv("NB_PY_BIN", raising=False)


def run(c_bin, py_bin, args, *options, outdir="out"):
    """Call nb-compare in-process; return (exit code, summary or None, outdir)."""
    argv = ["--outdir", str(outdir), "--c-bin", str(c_bin), "--py-bin", str(py_bin),
            *options, "--", *args]
    code = nbc.main(argv)
    path = Path(outdir) / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else None
    return code, summary, Path(outdir)


def read_floats(path: Path, shape) -> np.ndarray:
    """Read a raw float32 image."""
    return np.fromfile(path, dtype="<f4").reshape(shape)


# ------------------------------------------------------------------ end to end


def test_identical_programs_agree(fake, capsys):
    code, summary, outdir = run(fake, fake, SMALL, "--save-diff")
    assert code == 0
    for key in nbc.SUMMARY_KEYS:
        assert key in summary, key
    assert summary["correlation"] == 1.0
    assert summary["mse"] == 0.0 and summary["max_abs_diff"] == 0.0
    assert summary["sum_ratio"] == 1.0
    assert summary["max_c_at"] == summary["max_py_at"] == [19, 13]  # x=0.6*32, y=0.4*32
    assert summary["peaks_matched_fraction"] == 1.0
    assert summary["peaks_max_distance_px"] == 0.0
    assert summary["args"] == SMALL and summary["status"] == "ok"
    assert summary["runtime_c_ms"] > 0 and summary["runtime_py_ms"] > 0
    image = read_floats(outdir / "c_float.bin", (32, 32))
    assert summary["sum_c"] == pytest.approx(float(image.astype(np.float64).sum()))
    for name in ("c_stdout.txt", "c_stderr.txt", "py_stdout.txt", "py_stderr.txt"):
        assert (outdir / name).exists()
    assert "fake nanoBragg wrote" in (outdir / "py_stdout.txt").read_text()
    out = capsys.readouterr().out
    assert "runtime" in out and "correlation" in out and "OK:" in out


def test_previews_open_with_image_shape(fake):
    code, summary, outdir = run(fake, fake, ["-detpixels_f", "40", "-detpixels_s", "24"],
                                "--save-diff", "--png-scale", "100")
    assert code == 0 and summary["shape"] == [24, 40]
    for name in ("c_image.png", "py_image.png", "diff_image.png"):
        with Image.open(outdir / name) as png:
            assert png.size == (40, 24)  # (width = fast, height = slow)
    with Image.open(outdir / "c_image.png") as png:
        gray = np.asarray(png)
    assert np.unravel_index(np.argmax(gray), gray.shape) == (10, 24)  # (slow, fast)
    pytest.importorskip("matplotlib")
    for name in ("c.png", "py.png", "diff.png"):
        with Image.open(outdir / name) as png:
            png.verify()
        with Image.open(outdir / name) as png:
            assert png.width > 40 * 6 and png.height > 24 * 6  # zoomed, with colour bar


def test_png_scale_is_recorded(fake):
    code, summary, _ = run(fake, fake, SMALL, "--png-scale", "90")
    assert code == 0
    image = read_floats(Path("out/c_float.bin"), (32, 32)).astype(np.float64)
    assert summary["png_vmax"] == pytest.approx(np.percentile(image, 90))
    assert "90th percentile" in summary["png_scale_method"]


def test_default_outdir_and_env_runners(fake, monkeypatch):
    monkeypatch.setenv("NB_C_BIN", str(fake))
    monkeypatch.setenv("NB_PY_BIN", str(fake))
    assert nbc.main(["--", *SMALL]) == 0
    (folder,) = Path("comparisons").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", folder.name)
    assert folder.name.endswith(nbc.args_hash(SMALL))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["c_bin"] == summary["py_bin"] == str(fake.resolve())


def test_different_programs_below_threshold(fake, wrap):
    wider = wrap("wider", "-N", "6")
    code, summary, _ = run(fake, wider, SMALL, "--threshold", "0.9999")
    assert code == 3
    assert summary["status"] == "below_threshold"
    assert 0.5 < summary["correlation"] < 0.9999
    assert summary["sum_ratio"] > 1.0  # the wider spot holds more intensity
    assert summary["peaks_matched_fraction"] == 1.0  # same centre
    code, _, _ = run(fake, wider, SMALL, "--threshold", "0.5", outdir="out2")
    assert code == 0


def test_missing_binary(tmp_path, fake):
    code, summary, _ = run(tmp_path / "no_such_program", fake, SMALL)
    assert code == 2 and summary is None
    assert nbc.main(["--py-bin", "no-such-command-xyz", "--c-bin", str(fake),
                     "--", *SMALL]) == 2


def test_failing_program(fake, wrap):
    code, summary, outdir = run(fake, wrap("failing", "-fake_fail"), SMALL)
    assert code == 2
    assert summary["status"] == "runner_failed" and summary["returncode_py"] == 3
    assert "fake failure" in (outdir / "py_stderr.txt").read_text()


def test_shape_mismatch_and_resample(fake, wrap):
    bigger = wrap("bigger", "-detpixels", "40")
    code, summary, _ = run(fake, bigger, SMALL)
    assert code == nbc.EXIT_SHAPE == 6
    assert summary["status"] == "shape_mismatch"
    assert summary["shape_c"] == [32, 32] and summary["shape_py"] == [40, 40]
    code, summary, outdir = run(fake, bigger, SMALL, "--resample", outdir="out2")
    assert code == 0
    assert summary["shape"] == [32, 32] and summary["correlation"] > 0.9
    with Image.open(outdir / "py_image.png") as png:
        assert png.size == (32, 32)


def test_square_fallback(fake, wrap):
    square = wrap("square", "-fake_square", "20")
    code, summary, _ = run(square, square, SMALL)
    assert code == 0 and summary["shape"] == [20, 20]


def test_unreadable_output(fake, wrap):
    code, summary, _ = run(fake, wrap("truncating", "-fake_truncate"), SMALL)
    assert code == nbc.EXIT_UNREADABLE == 7
    assert summary["status"] == "unreadable_output"


def test_roi_restricts_metrics(fake, wrap):
    wider = wrap("wider", "-N", "6")
    roi = ["--roi", "0", "9", "20", "31"]  # far corner: x 0..9, y 20..31
    code, summary, outdir = run(fake, wider, SMALL, *roi, "--save-diff")
    assert code == 0 and summary["roi"] == [0, 9, 20, 31]
    ref = read_floats(outdir / "c_float.bin", (32, 32)).astype(np.float64)
    other = read_floats(outdir / "py_float.bin", (32, 32)).astype(np.float64)
    ref_roi, other_roi = ref[20:32, 0:10], other[20:32, 0:10]
    assert summary["sum_c"] == pytest.approx(ref_roi.sum())
    assert summary["sum_py"] == pytest.approx(other_roi.sum())
    assert summary["mse"] == pytest.approx(np.mean((other_roi - ref_roi) ** 2))
    assert summary["max_c_at"] == [9, 20]  # corner nearest the spot, full-image coords
    assert summary["max_c"] < ref.max() / 10
    with Image.open(outdir / "c_image.png") as png:
        assert png.size == (10, 12)


def test_roi_outside_image(fake):
    code, summary, _ = run(fake, fake, SMALL, "--roi", "0", "40", "0", "5")
    assert code == 1 and summary["status"] == "bad_roi"


# ------------------------------------------------------------------ faults


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once process ``pid`` no longer exists (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_hanging_program_is_killed_after_timeout(tmp_path, fake, monkeypatch, capsys):
    """A program that hangs is killed (with the children it started) and nb-compare exits 4."""
    pid_file = tmp_path / "fake.pid"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    # no exec: the fake runs as a child of the shell, so killing the shell alone would leave it
    hanging = make_script(tmp_path / "hanging", f'#!/bin/sh\n"{fake}" "$@" -fake_sleep 60\nexit 0\n')
    start = time.monotonic()
    code, summary, outdir = run(fake, hanging, SMALL, "--timeout", "1")
    assert code == nbc.EXIT_TIMEOUT == 4
    assert time.monotonic() - start < 30
    assert summary["status"] == "timeout" and summary["timeout_s"] == 1.0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "py: still running after 1 s, killed" in err[0]
    assert _gone(int(pid_file.read_text()))
    assert "fake sleeping" in (outdir / "py_stdout.txt").read_text()  # partial output kept


def test_timeout_zero_means_no_limit(fake):
    code, summary, _ = run(fake, fake, SMALL, "--timeout", "0")
    assert code == 0 and summary["timeout_s"] is None


@pytest.mark.parametrize("side, flag, what", [("py", "-fake_nan", "1 NaN"), ("c", "-fake_inf", "1 infinite")])
def test_non_finite_image_is_an_error(fake, wrap, capsys, side, flag, what):
    """NaN or infinity in either image exits 5, never OK."""
    bad = wrap("bad", flag)
    c_bin, py_bin = (bad, fake) if side == "c" else (fake, bad)
    code, summary, _ = run(c_bin, py_bin, SMALL)
    assert code == nbc.EXIT_NONFINITE == 5
    assert summary["status"] == "non_finite" and summary[f"nonfinite_{side}"] == 1
    assert summary["correlation"] is None
    err = capsys.readouterr()
    assert f"{side}: 1 of 1024 pixels are not finite" in err.err and what in err.err
    assert "OK" not in err.out


def test_all_nan_image_is_not_ok(fake, tmp_path):
    nan_prog = make_script(tmp_path / "all_nan", f"#!{sys.executable}\n" + r'''
import struct, sys
argv = sys.argv[1:]
with open(argv[argv.index("-floatfile") + 1], "wb") as out:
    out.write(struct.pack("<1024f", *([float("nan")] * 1024)))
''')
    code, summary, _ = run(nan_prog, nan_prog, SMALL)
    assert code == 5 and summary["nonfinite_c"] == 1024 and summary["status"] == "non_finite"


def test_programs_never_touch_the_current_folder(tmp_path, fake, wrap):
    """Files a program writes into its current folder land in its own temporary folder."""
    (tmp_path / "intimage.img").write_text("the user's image")
    (tmp_path / "Fdump.bin").write_text("the user's cache")
    littering = wrap("littering", "-fake_litter")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    args = [*SMALL, "-intfile", str(tmp_path / "mine.img"), "-noisefile", "noise.img"]
    code, summary, outdir = run(littering, littering, args, outdir=tmp_path / "out")
    assert code == 0, summary
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing new, nothing rewritten (also not -intfile's absolute path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["out"]
    assert set(summary["run_files_py"]) == {"mine.img", "image.pgm", "noiseimage.img", "Fdump.bin"}
    assert not (outdir / "c_files").exists()


def test_keep_files_moves_them_to_the_outdir(fake, wrap):
    littering = wrap("littering", "-fake_litter")
    code, summary, outdir = run(littering, littering, SMALL, "--keep-files")
    assert code == 0
    for side in ("c", "py"):
        assert (outdir / f"{side}_files" / "intimage.img").read_text() == "written by the fake program"
    assert not Path("intimage.img").exists()


def test_relative_input_paths_still_work(tmp_path, fake):
    """``-hkl P1.hkl`` relative to the user's folder is found from the program's own folder."""
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "P1.hkl").write_text("0 0 0 100\n")
    code, summary, _ = run(fake, fake, [*SMALL, "-hkl", "inputs/P1.hkl"])
    assert code == 0, summary
    code, summary, _ = run(fake, fake, [*SMALL, "-hkl", "missing.hkl"], outdir="out2")
    assert code == 2 and "cannot read -hkl" in Path("out2/c_stderr.txt").read_text()


def test_structure_factor_cache_is_copied_in(tmp_path, fake, wrap):
    """Without -hkl the program reads Fdump.bin from its folder: the user's is copied, not changed."""
    needs_dump = wrap("needs_dump", "-fake_need_dump", "-fake_litter")
    code, _, _ = run(needs_dump, needs_dump, SMALL)
    assert code == 2  # no Fdump.bin anywhere
    (tmp_path / "Fdump.bin").write_text("cache")
    code, _, _ = run(needs_dump, needs_dump, SMALL, outdir="out2")
    assert code == 0 and (tmp_path / "Fdump.bin").read_text() == "cache"


def test_program_args_rewrites_paths(tmp_path):
    (tmp_path / "A.mat").write_text("matrix")
    (tmp_path / "Fdump.bin").write_text("cache")
    (tmp_path / "5").write_text("a file named like a number")
    args = ["-mat", "A.mat", "-intfile", "/elsewhere/x.img", "-floatfile", "sub/f.bin",
            "-pgmfile", "p.pgm", "-spindle_axis", "-1", "0", "0", "-dump", "my.dump", "-N", "5"]
    out, copies = nbc.program_args(args, tmp_path)
    assert out == ["-mat", str(tmp_path / "A.mat"), "-intfile", "x.img", "-floatfile", "f.bin",
                   "-pgmfile", "p.pgm", "-spindle_axis", "-1", "0", "0", "-dump", "my.dump", "-N", "5"]
    assert copies == []  # -dump names my.dump, which does not exist
    _, copies = nbc.program_args(["-N", "5"], tmp_path)
    assert copies == [tmp_path / "Fdump.bin"]
    _, copies = nbc.program_args(["-hkl", "P1.hkl"], tmp_path)
    assert copies == []  # with -hkl the cache is written, not read


@pytest.mark.parametrize("make", ["file", "below_file"])
def test_outdir_that_cannot_be_a_folder(tmp_path, fake, capsys, make):
    (tmp_path / "afile").write_text("keep me")
    outdir = tmp_path / "afile" if make == "file" else tmp_path / "afile" / "sub"
    code = nbc.main(["--outdir", str(outdir), "--c-bin", str(fake), "--py-bin", str(fake), "--", *SMALL])
    assert code == nbc.EXIT_USAGE == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nb-compare: --outdir {outdir}") and "Traceback" not in err[0]
    assert (tmp_path / "afile").read_text() == "keep me"


def test_sigterm_kills_the_running_program(tmp_path, fake):
    """nb-compare terminated mid-run kills the program it started and exits 143."""
    pid_file = tmp_path / "fake.pid"
    hanging = make_script(tmp_path / "hanging", f'#!/bin/sh\nexec "{fake}" "$@" -fake_sleep 60\n')
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, FAKE_PID_FILE=str(pid_file),
               PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "nanobragg.tools.compare", "--outdir", "out",
                             "--c-bin", str(hanging), "--py-bin", str(fake), "--", *SMALL],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert _gone(int(pid_file.read_text()))
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "terminated"


@pytest.mark.parametrize("argv", [
    ["--threshold", "abc", "--", "-detpixels", "32"],
    ["--bogus", "--", "-detpixels", "32"],
    ["--roi", "0", "1", "2", "--", "-detpixels", "32"],
    ["--roi", "5", "1", "0", "3", "--", "-detpixels", "32"],
    ["--png-scale", "0", "--", "-detpixels", "32"],
    ["-detpixels", "32"],
    ["--"],
])
def test_usage_errors_exit_1(argv):
    assert nbc.main(argv) == 1
    assert not Path("comparisons").exists()


# ------------------------------------------------------------------ units


@pytest.mark.parametrize("args, shape", [
    ([], (1024, 1024)),
    (["-detpixels", "64"], (64, 64)),
    (["-detpixels_x", "30", "-detpixels_y", "20"], (20, 30)),
    (["-detpixels", "8", "-detpixels_f", "12"], (8, 12)),
    (["-detsize", "10", "-pixel", "0.1"], (100, 100)),
    (["-detsize_f", "10.04", "-detsize_s", "10.06", "-pixel", "0.1"], (101, 100)),
    (["-pixel", "0.2"], (512, 512)),
    (["-detpixels", "50", "-detsize", "3"], (50, 50)),
])
def test_expected_shape(args, shape):
    assert nbc.expected_shape(args) == shape


def test_resample_nearest():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.array_equal(nbc.resample_nearest(img, (2, 2)), img[1::2, 1::2])
    up = nbc.resample_nearest(img, (8, 8))
    assert np.array_equal(up[::2, ::2], img) and np.array_equal(up[1::2, 1::2], img)


def test_peak_matching_is_one_to_one():
    ref = np.array([[10.0, 10.0], [12.0, 10.0], [30.0, 30.0]])
    other = np.array([[11.0, 10.0], [30.5, 30.0]])
    result = match_peaks(ref, other)
    assert result["peaks_matched"] == 2
    assert result["peaks_matched_fraction"] == pytest.approx(2 / 3)
    assert result["peaks_mean_distance_px"] == pytest.approx(0.75)
    assert result["peaks_max_distance_px"] == pytest.approx(1.0)
    assert match_peaks(ref, np.zeros((0, 2)))["peaks_matched_fraction"] == 0.0
    assert match_peaks(np.zeros((0, 2)), np.zeros((0, 2)))["peaks_matched_fraction"] is None


def test_peaks_plateau_counts_once():
    img = np.zeros((20, 20))
    img[5:7, 8:10] = 5.0  # a 2x2 plateau
    img[15, 3] = 2.0
    peaks = find_peaks(img, percentile=95.0)
    assert peaks.tolist() == [[8.5, 5.5], [3.0, 15.0]]


def test_compare_images_flat_and_identical():
    flat = np.zeros((8, 8), dtype=np.float32)
    result = compare_images(flat, flat)
    assert result["correlation"] == 1.0 and result["sum_ratio"] == 1.0
    other = flat.copy()
    other[2, 3] = 1.0
    result = compare_images(flat, other, origin=(10, 20))
    assert result["correlation"] is None
    assert result["max_py_at"] == [13, 22]
    assert math.isclose(result["mse"], 1 / 64)
