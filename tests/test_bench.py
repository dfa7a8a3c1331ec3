"""Tests of the nanobragg-bench tool, with a fake C nanoBragg.

The fake program is a stdlib-only Python script: it writes a float file of
``-detpixels`` squared (or ``-detpixels_x`` x ``-detpixels_y``) zeros,
sleeps 0.3 s more above 8 x 8 pixels (so that the tiny-run estimate of its
engine time is positive) and, with ``FAKE_TIMING=1``, prints the two timing
lines this project's command prints under ``NB_TIMING=1``. It says what the
compile policy says: no compiler when none is on its PATH, else, with
``FAKE_BUILD=1`` and an empty ``NB_CACHE_DIR``, a build (writing a kernel
file there). Named ``fake_c`` it refuses ``-dtype``, as C would.
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
"""Fake nanoBragg: a float file of zeros, a short sleep, optional timing and policy lines."""
import os
import shutil
import sys
import time
from pathlib import Path

argv = sys.argv[1:]
if Path(sys.argv[0]).name == "fake_c" and "-dtype" in argv:
    sys.exit("fake_c: unknown flag -dtype")
if "-detpixels" in argv:
    x = y = int(argv[argv.index("-detpixels") + 1])
else:
    x, y = int(argv[argv.index("-detpixels_x") + 1]), int(argv[argv.index("-detpixels_y") + 1])
time.sleep((0.3 if x * y > 64 else 0.0) + x * y * 1e-6)
with open(argv[argv.index("-floatfile") + 1], "wb") as f:
    f.write(bytes(4 * x * y))
cache = Path(os.environ.get("NB_CACHE_DIR", "nowhere"))
if not any(shutil.which(c) for c in ("gcc", "g++", "cc", "c++", "clang")):
    print("nanoBragg: no C++ compiler (g++, c++, clang++) on PATH: eager", file=sys.stderr)
elif os.environ.get("FAKE_BUILD") == "1" and cache.is_dir() and not list(cache.glob("*.pt2")):
    print("nanoBragg: building the compiled float32 kernel (fake)", file=sys.stderr)
    (cache / "kernel.pt2").write_bytes(b"")
compiled = "yes" if list(cache.glob("*.pt2")) else "no"
if os.environ.get("FAKE_TIMING") == "1":
    print("startup: first pixel at 0.125 s after import torch", file=sys.stderr)
    print(f"engine: rendered {{x * y}} pixels in 0.050 s (compiled: {{compiled}}, dtype float32, "
          "device cpu, threads 2)", file=sys.stderr)
'''

ENTRY_KEYS = {"name", "family", "detpixels", "pixels", "args", "repeats", "ours", "c", "ratios"}
OURS_KEYS = {"wall_s", "wall_runs", "pixels_per_s", "engine_s", "engine_pixels_per_s", "startup_s",
             "cold", "no_compiler", "peak_rss_mb", "compiled", "dtype", "device", "threads"}
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
    assert ours["device"] == "cpu" and ours["threads"] == 2 and ours["compiled"] is False and ours["kernel"] == "numba"
    assert entry["ratios"]["wall"] == pytest.approx(entry["c"]["wall_s"] / ours["wall_s"])
    assert entry["c"]["engine_s_est"] > 0 and entry["ratios"]["engine"] > 0
    assert report["growth"] is None and report["machine"]["cores"] >= 1
    # cold column: three default runs of a 64 x 64 image from an empty cache
    cold = ours["cold"]
    assert len(cold["runs_s"]) == 3 and cold["total_s"] == pytest.approx(sum(cold["runs_s"]))
    # the numba loop, compiled into the empty cache by the first run (and said), then loaded
    assert cold["built"] == cold["announced"] == [True, False, False] and cold["kernel"] == ["numba"] * 3
    assert cold["compiled"] == [False] * 3
    assert cold["c_total_s"] == pytest.approx(3 * entry["c"]["wall_s"]) and cold["met"] is None  # C < 3 s
    nocc = ours["no_compiler"]
    assert nocc["compiled"] is False and nocc["engine_s"] > 0 and nocc["kernel"] == "numba"
    said = [line.split(":")[1].strip() for line in nocc["said"]]
    assert said == ["compiling the numba pixel loop (first use; one loop for every kind of run)",
                    "no C++ compiler (g++, c++, clang++) on PATH"]
    table = (tmp_path / "out" / "performance.md").read_text()
    assert "| workload |" in table and table.count("| cubic-1024 |") == 2  # both tables


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


def test_cold_and_no_compiler_columns_real_and_float64_workloads(tmp_path, fake_program, monkeypatch):
    """Fake programs: the cold runs' builds and announcements, the no-compiler PATH, the real
    experiment with its inputs (a shaped detector) and the float64 rows (-dtype for ours only)."""
    fake_c = tmp_path / "fake_c"
    fake_c.write_text(fake_program.read_text())
    fake_c.chmod(0o755)
    inputs = tmp_path / "inputs-real"
    inputs.mkdir()
    for name in ("A.mat", "scaled.hkl"):
        (inputs / name).write_text("dummy")
    monkeypatch.setenv("FAKE_TIMING", "1")
    monkeypatch.setenv("FAKE_BUILD", "1")
    report = run_bench(tmp_path, "--workloads", "cubic-4096-float64,pilatus", "--real-inputs", str(inputs),
                       "--c-bin", str(fake_c), "--py-bin", str(fake_program))
    by_name = {e["name"]: e for e in report["workloads"]}
    assert list(by_name) == ["pilatus-2463x2527", "cubic-4096-float64", "pilatus-2463x2527-float64"]
    assert report["skipped"] == []
    for entry in by_name.values():
        cold = entry["ours"]["cold"]
        assert cold["built"] == cold["announced"] == [True, False, False] and cold["silent_builds"] == 0
        assert cold["compiled"] == [True, True, True]
        assert cold["ratio"] == pytest.approx(cold["c_total_s"] / cold["total_s"])
        nocc = entry["ours"]["no_compiler"]
        assert nocc["said_no_compiler"] and nocc["compiled"] is False and nocc["engine_s"] == pytest.approx(0.05)
        assert nocc["engine_ratio"] == pytest.approx(entry["c"]["engine_s_est"] / 0.05)
    real = by_name["pilatus-2463x2527"]
    assert real["shape"] == [153, 157] and real["pixels"] == 153 * 157
    args = real["args"]
    assert args[args.index("-mat") + 1] == str(inputs / "A.mat") and args[args.index("-hkl") + 1] == str(
        inputs / "scaled.hkl")
    assert "-dtype" not in args and by_name["pilatus-2463x2527-float64"]["args"][-2:] == ["-dtype", "float64"]
    text = (tmp_path / "out" / "performance.md").read_text()
    assert nbr.COLD_HEADER in text and "| pilatus-2463x2527-float64 |" in text and "no C++ compiler" in text
    # without the inputs the real workloads are skipped, with a note
    report = run_bench(tmp_path, "--workloads", "pilatus", "--real-inputs", str(tmp_path / "nowhere"),
                       "--no-cold", "--py-bin", str(fake_program))
    assert report["workloads"] == [] and [s["name"] for s in report["skipped"]] == [
        "pilatus-2463x2527", "pilatus-2463x2527-float64"]
    assert "lacks A.mat, scaled.hkl" in (tmp_path / "out" / "performance.md").read_text()


def test_without_compilers_links_everything_else(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, names in ((first, ["gcc", "g++-12", "x86_64-linux-gnu-gcc", "cc", "python3", "c++filt"]),
                          (second, ["clang++", "clang", "c++", "python3", "nvcc", "ld"])):
        folder.mkdir()
        for name in names:
            (folder / name).write_text("#!/bin/sh\n")
            (folder / name).chmod(0o755)
    (first / "notes.txt").write_text("not a program")
    path = nbb.without_compilers(f"{first}:{tmp_path / 'missing'}:{second}", tmp_path / "bin")
    links = {p.name: p.resolve() for p in Path(path).iterdir()}
    assert sorted(links) == ["c++filt", "ld", "nvcc", "python3"]
    assert links["python3"] == first / "python3"  # the first on PATH


def test_policy_lines_are_the_ones_the_bench_reads():
    from nanobragg.engine import policy
    inp = nbb_inputs()
    assert policy.announcement(inp, None, 10.0, 1.0, 20.0).startswith(nbrun.BUILD_PREFIX)
    assert policy.NO_COMPILER.startswith(nbrun.NO_COMPILER_PREFIX)
    assert all(line.startswith(nbrun.SAID_PREFIX) for line, _ in policy.BLOCKED.values())


def nbb_inputs():
    """The RenderInputs of a tiny cubic run."""
    from nanobragg.cli.main import build_settings
    from nanobragg.resolve import resolve
    return resolve(build_settings(["-default_F", "1", "-cell", "10", "10", "10", "90", "90", "90",
                                   "-detpixels", "8"]).experiment).inputs


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
                                     "dtype": "float64", "device": "cuda", "threads": 2, "kernel": "compiled"}
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
    assert names == ["cubic-1024", "cubic-2048", "cubic-4096", "large-4096", "cubic-4096-float64"]
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
    """--robustness --docs replaces its own section only; the full report keeps it and every other
    section (a file written before the workloads' markers too), and replaces only its own part."""
    from nanobragg.tools import bench_robust as robust
    section = f"{nbr.DOCS_BEGIN}\n## Robustness\nold figures\n{nbr.DOCS_END}\n"
    text = "# Performance\n\ntable\n\n" + section + "\n## Method\n"
    new = f"{nbr.DOCS_BEGIN}\nnew figures\n{nbr.DOCS_END}\n"
    replaced = robust.replace_section(text, new)
    assert "new figures" in replaced and "old figures" not in replaced
    assert replaced.startswith("# Performance\n\ntable\n") and replaced.endswith("## Method\n")
    assert robust.replace_section("# P\n", new) == "# P\n\n" + new
    # the full benchmark's --docs: a file of before the markers, the robustness and a hand-written section
    monkeypatch.setattr(nbr, "repo_root", lambda: tmp_path)
    (tmp_path / "docs").mkdir()
    target = tmp_path / "docs" / "performance.md"
    datasets = "## Datasets\n\nhand-written figures\n"
    target.write_text("# Performance\n\nold table\n\n## Method\n\n- how\n\n" + section + "\n" + datasets)
    monkeypatch.setattr(nbr, "render_markdown", lambda report: "# Performance\n\nnew table\n")
    nbr.write_report({}, tmp_path / "out", docs=True)
    own = f"{nbr.BENCH_BEGIN}\n# Performance\n\nnew table\n{nbr.BENCH_END}\n"
    assert target.read_text() == own + "\n" + section + "\n" + datasets
    monkeypatch.setattr(nbr, "render_markdown", lambda report: "# Performance\n\nnewer table\n")
    nbr.write_report({}, tmp_path / "out", docs=True)
    assert target.read_text() == own.replace("new table", "newer table") + "\n" + section + "\n" + datasets
    assert nbr.docs_text(None, "# P\n") == f"{nbr.BENCH_BEGIN}\n# P\n{nbr.BENCH_END}\n"


def test_robustness_memory_run_of_the_real_program(tmp_path, monkeypatch):
    """The memory figure's plumbing with this project's command, at 32 x 32 pixels."""
    from nanobragg.tools import bench_robust as robust
    monkeypatch.delenv("NB_PY_BIN", raising=False)
    env = robust.robust_env(nbb.program_env(2, tmp_path / "cache"), tmp_path / "cache")
    result = robust.memory_check(nbb.own_command(None), env, tmp_path, 32)
    assert result["pixels"] == 1024 and result["peak_rss_mb"] > 10 and result["wall_s"] > 0
    assert result["engine_s"] is not None and result["compiled"] is False


def test_engine_line_names_its_kernel():
    err = ("engine: rendered 64 pixels in 0.010 s (compiled: no, dtype float32, device cpu, threads 2, "
           "bands 1, kernel numba)\n")
    assert nbrun.parse_engine(err)["kernel"] == "numba"
