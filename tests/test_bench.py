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
from nanobragg.tools import bench_report as nbr
from nanobragg.tools import bench_run as nbrun

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
    assert nbrun.parse_startup(err) == 1.5
    assert nbrun.parse_engine(err) == {"pixels": 1048576, "seconds": 2.25, "compiled": True,
                                     "dtype": "float64", "device": "cuda", "threads": 2}
    assert nbrun.parse_engine("nothing") is None and nbrun.parse_startup("") is None


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


# ------------------------------------------------------------------ --robustness

ROBUST_FAKE = r'''#!{python}
"""Fake nanoBragg for --robustness: notes its start, end, arguments and thread policy."""
import json
import os
import sys
import time

argv = sys.argv[1:]
start = time.time()
time.sleep(0.4)
with open(argv[argv.index("-floatfile") + 1], "wb") as f:
    f.write(bytes(16))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": argv, "start": start, "end": time.time(), "cwd": os.getcwd(),
                          "policy": os.environ.get("OMP_WAIT_POLICY"),
                          "cache": os.environ.get("NB_CACHE_DIR")}}) + "\n")
'''


@pytest.fixture
def robust_setup(tmp_path, monkeypatch):
    """A fake program, a folder of (dummy) real inputs, a log of the fake's runs."""
    fake = tmp_path / "fake_robust"
    fake.write_text(ROBUST_FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    inputs = tmp_path / "inputs-real"
    inputs.mkdir()
    for name in ("A.mat", "scaled.hkl"):
        (inputs / name).write_text("dummy")
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # must not reach the programs
    return fake, inputs, log


def _runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_robustness_with_fake_programs(tmp_path, robust_setup, monkeypatch):
    from nanobragg.tools import bench_robust as robust
    fake, inputs, log = robust_setup
    monkeypatch.setattr(robust, "repo_root", lambda: tmp_path)  # in case --docs slipped in
    out = tmp_path / "out"
    status = nbb.main(["--robustness", "--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                       "--real-inputs", str(inputs), "--py-bin", str(fake), "--c-bin", str(fake)])
    assert status == 0
    report = json.loads((out / "bench_robust.json").read_text())
    mem = report["memory"]
    assert mem["detpixels"] == 1024 and mem["max_memory_mb"] == 500
    assert mem["args"][mem["args"].index("-max_memory") + 1] == "500" and mem["peak_rss_mb"] > 0
    assert mem["first_run"]["wall_s"] > 0.3
    con = report["contention"]
    assert con["detpixels"] == [153, 157]
    for side in ("ours", "c"):
        r = con[side]
        assert len(r["sequential_runs"]) == len(r["concurrent_runs"]) == 3
        assert r["ratio"] == pytest.approx(r["concurrent_s"] / r["sequential_s"])
        assert r["concurrent_s"] < r["sequential_s"] and r["met"] is True  # the fake sleeps: no contention
    runs = _runs(log)
    assert len(runs) == 2 + 2 * (1 + 3 + 3)  # memory first + run; per program warm-up, 3 in turn, 3 at once
    assert all(r["policy"] is None for r in runs)  # each program's own default is measured
    assert len({r["cwd"] for r in runs}) == len(runs)  # every run in a folder of its own
    pilatus = [r for r in runs if "-mat" in r["argv"]]
    assert all(r["argv"][r["argv"].index("-mat") + 1] == str(inputs / "A.mat") for r in pilatus)
    at_once = [r for r in pilatus if "conc-" in r["cwd"] and "/ours/" in r["cwd"]]
    assert max(r["start"] for r in at_once) < min(r["end"] for r in at_once)  # they overlapped
    in_turn = sorted((r for r in pilatus if "seq-" in r["cwd"] and "/ours/" in r["cwd"]), key=lambda r: r["start"])
    assert all(a["end"] <= b["start"] for a, b in zip(in_turn, in_turn[1:]))
    assert len({r["cache"] for r in pilatus}) == 1 and pilatus[0]["cache"] != str(tmp_path / "cache")  # empty cache
    text = (out / "robustness.md").read_text()
    assert text.startswith(nbr.DOCS_BEGIN) and "| ours |" in text and "| C |" in text
    assert not (tmp_path / "docs").exists()


def test_robustness_without_c_and_missing_inputs(tmp_path, robust_setup, capsys):
    fake, inputs, _ = robust_setup
    out = tmp_path / "out"
    common = ["--robustness", "--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
              "--py-bin", str(fake)]
    assert nbb.main([*common, "--real-inputs", str(tmp_path / "nowhere")]) == 2
    assert "missing A.mat, scaled.hkl" in capsys.readouterr().err
    assert nbb.main([*common, "--real-inputs", str(inputs)]) == 0
    report = json.loads((out / "bench_robust.json").read_text())
    assert report["contention"]["c"] is None and "C not run" in (out / "robustness.md").read_text()


def test_robustness_usage_errors():
    for argv in (["--robustness", "--workloads", "cubic"], ["--robustness", "--device", "cuda"]):
        with pytest.raises(SystemExit) as exc:
            nbb.parse_args(argv)
        assert exc.value.code == 1


def test_robustness_docs_section_kept_and_replaced(tmp_path, monkeypatch):
    """--robustness --docs replaces its own section only; the full report keeps it."""
    from nanobragg.tools import bench_robust as robust
    section = f"{nbr.DOCS_BEGIN}\n## Robustness\nold figures\n{nbr.DOCS_END}\n"
    text = "# Performance\n\ntable\n\n" + section + "\n## Method\n"
    new = f"{nbr.DOCS_BEGIN}\nnew figures\n{nbr.DOCS_END}\n"
    replaced = robust.replace_section(text, new)
    assert "new figures" in replaced and "old figures" not in replaced
    assert replaced.startswith("# Performance\n\ntable\n") and replaced.endswith("## Method\n")
    assert robust.replace_section("# P\n", new) == "# P\n\n" + new
    assert nbr.existing_section(text) == section and nbr.existing_section("# P") is None
    # the full benchmark's --docs keeps the section
    monkeypatch.setattr(nbr, "repo_root", lambda: tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "performance.md").write_text(text)
    monkeypatch.setattr(nbr, "render_markdown", lambda report: "# Performance\n\nnew table\n")
    nbr.write_report({}, tmp_path / "out", docs=True)
    assert (tmp_path / "docs" / "performance.md").read_text() == "# Performance\n\nnew table\n\n" + section


def test_robustness_memory_run_of_the_real_program(tmp_path, monkeypatch):
    """The memory figure's plumbing with this project's command, at 32 x 32 pixels."""
    from nanobragg.tools import bench_robust as robust
    monkeypatch.delenv("NB_PY_BIN", raising=False)
    env = robust.robust_env(nbb.program_env(2, tmp_path / "cache"), tmp_path / "cache")
    result = robust.memory_check(nbb.own_command(None), env, tmp_path, 32)
    assert result["pixels"] == 1024 and result["peak_rss_mb"] > 10 and result["wall_s"] > 0
    assert result["engine_s"] is not None and result["compiled"] is False
