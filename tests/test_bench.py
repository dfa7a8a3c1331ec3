"""Tests of the nanobragg-bench tool, with a fake C nanoBragg.

The fake program is a stdlib-only Python script: it writes a float file of
``-detpixels`` squared zeros, sleeps 0.3 s more above 8 x 8 pixels (so
that the tiny-run estimate of its engine time is positive) and, with
``FAKE_TIMING=1``, prints the two timing lines this project's command
prints under ``NB_TIMING=1``.
"""

import json
import stat
import sys
from pathlib import Path

import pytest

from nanobragg.tools import bench as nbb

FAKE_PROGRAM = r'''#!{python}
"""Fake nanoBragg: a float file of zeros, a short sleep, optional timing lines."""
import os
import sys
import time

argv = sys.argv[1:]
size = int(argv[argv.index("-detpixels") + 1])
time.sleep((0.3 if size > 8 else 0.0) + size * size * 1e-6)
with open(argv[argv.index("-floatfile") + 1], "wb") as f:
    f.write(bytes(4 * size * size))
if os.environ.get("FAKE_TIMING") == "1":
    print("startup: first pixel at 0.125 s after import torch", file=sys.stderr)
    print(f"engine: rendered {{size * size}} pixels in 0.050 s (compiled: no, dtype float32, "
          "device cpu, threads 2)", file=sys.stderr)
'''

ENTRY_KEYS = {"name", "family", "detpixels", "pixels", "args", "repeats", "ours", "c", "ratios"}
OURS_KEYS = {"wall_s", "wall_runs", "pixels_per_s", "engine_s", "engine_pixels_per_s", "startup_s",
             "cold_cache_s", "peak_rss_mb", "compiled", "dtype", "device", "threads"}
C_KEYS = {"wall_s", "startup_s", "tiny_runs", "engine_s_est", "peak_rss_mb"}


@pytest.fixture
def fake_program(tmp_path: Path) -> Path:
    """An executable fake nanoBragg."""
    path = tmp_path / "fake_nanoBragg"
    path.write_text(FAKE_PROGRAM.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_bench(tmp_path: Path, *args: str) -> dict:
    """Run the tool in --quick mode into tmp_path/out; return its JSON report."""
    out = tmp_path / "out"
    status = nbb.main(["--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *args])
    assert status == 0
    assert (out / "performance.md").is_file()
    return json.loads((out / "bench.json").read_text())


def test_real_program_against_fake_c(tmp_path, fake_program, monkeypatch):
    """Our real command on one shrunk workload, the fake C alongside: every figure is there."""
    monkeypatch.setenv("NB_C_BIN", str(fake_program))
    monkeypatch.delenv("NB_PY_BIN", raising=False)
    report = run_bench(tmp_path, "--workloads", "cubic-1024")
    (entry,) = report["workloads"]
    assert ENTRY_KEYS <= entry.keys() and OURS_KEYS <= entry["ours"].keys()
    assert C_KEYS <= entry["c"].keys()
    assert entry["detpixels"] == 64 and entry["repeats"] == 1
    ours = entry["ours"]
    assert ours["wall_s"] > 0 and ours["peak_rss_mb"] > 10
    assert ours["engine_s"] is not None and ours["startup_s"] is not None
    assert ours["device"] == "cpu" and ours["threads"] == 2 and ours["compiled"] is False
    assert entry["ratios"]["wall"] == pytest.approx(entry["c"]["wall_s"] / ours["wall_s"])
    assert entry["c"]["engine_s_est"] > 0 and entry["ratios"]["engine"] > 0
    assert report["growth"] is None and report["machine"]["cores"] >= 1
    table = (tmp_path / "out" / "performance.md").read_text()
    assert "| workload |" in table and "| cubic-1024 |" in table


def test_fake_programs_growth_and_markdown(tmp_path, fake_program, monkeypatch):
    """Both programs faked: timing lines parsed, cubic growth computed, table written."""
    monkeypatch.setenv("FAKE_TIMING", "1")
    report = run_bench(tmp_path, "--workloads", "cubic-2048,cubic-4096", "--repeats", "2",
                       "--c-bin", str(fake_program), "--py-bin", str(fake_program))
    assert [e["name"] for e in report["workloads"]] == ["cubic-2048", "cubic-4096"]
    for entry in report["workloads"]:
        assert entry["repeats"] == 2 and len(entry["c"]["tiny_runs"]) == 2
        assert entry["ours"]["engine_s"] == pytest.approx(0.05)
        assert entry["ours"]["startup_s"] == pytest.approx(0.125)
        assert entry["ratios"]["wall"] is not None
    growth = report["growth"]
    assert growth["from"] == 128 and growth["to"] == 256 and growth["ours_s"] is not None
    text = (tmp_path / "out" / "performance.md").read_text()
    assert "| cubic-4096 |" in text and "C growth / our growth" in text


def test_no_c_program(tmp_path, fake_program, monkeypatch):
    """Without a C program the C columns are empty and nothing fails."""
    monkeypatch.delenv("NB_C_BIN", raising=False)
    report = run_bench(tmp_path, "--workloads", "cubic-1024", "--py-bin", str(fake_program))
    entry = report["workloads"][0]
    assert entry["c"] is None and entry["ratios"] is None
    assert entry["ours"]["engine_s"] is None  # no timing line printed


def test_failing_program_exits_2(tmp_path, capsys):
    """A program that fails ends the benchmark with status 2 and its name."""
    failing = tmp_path / "fail"
    failing.write_text(f"#!{sys.executable}\nimport sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    failing.chmod(0o755)
    status = nbb.main(["--quick", "--workloads", "cubic-1024", "--py-bin", str(failing),
                       "--out", str(tmp_path / "out")])
    assert status == 2 and "boom" in capsys.readouterr().err


def test_parse_timing_lines():
    """The two NB_TIMING lines are read; their absence gives None."""
    err = ("noise\nstartup: first pixel at 1.500 s after import torch\n"
           "engine: rendered 1048576 pixels in 2.250 s (compiled: yes, dtype float64, "
           "device cuda, threads 2)\n")
    assert nbb.parse_startup(err) == 1.5
    assert nbb.parse_engine(err) == {"pixels": 1048576, "seconds": 2.25, "compiled": True,
                                     "dtype": "float64", "device": "cuda", "threads": 2}
    assert nbb.parse_engine("nothing") is None and nbb.parse_startup("") is None


def test_plan_repeats_fits_budget():
    """One run each, then extra rounds to the cheapest while they fit."""
    costs = {"small": 1.0, "mid": 5.0, "big": 50.0}
    assert nbb.plan_repeats(costs, 3, None) == {"small": 3, "mid": 3, "big": 3}
    assert nbb.plan_repeats(costs, 3, 70.0) == {"small": 3, "mid": 3, "big": 1}
    assert nbb.plan_repeats(costs, 3, 10.0) == {"small": 1, "mid": 1, "big": 1}


def test_workload_selection_and_usage_errors():
    """Names and families select workloads; unknown names are usage errors (exit 1)."""
    names = [w.name for w in nbb.select("cubic,large-4096")]
    assert names == ["cubic-1024", "cubic-2048", "cubic-4096", "large-4096"]
    with pytest.raises(SystemExit) as exc:
        nbb.parse_args(["--workloads", "nope"])
    assert exc.value.code == 1


def test_cuda_mode_without_gpu_is_skipped(monkeypatch, capsys):
    """--device cuda on a machine without a GPU says so and exits 0."""
    monkeypatch.setattr(nbb, "_cuda_available", lambda: False)
    assert nbb.main(["--device", "cuda"]) == 0
    assert "no CUDA device" in capsys.readouterr().err
