"""The default compile policy (nanobragg.engine.policy): when a render loads, builds or skips the
compiled kernel, and the lines it says. Only the last test builds a kernel (tens of seconds); the
others replace the builder or the estimates."""
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nanobragg import api
from nanobragg.cli.main import build_settings, run
from nanobragg.engine import compiled, policy
from nanobragg.resolve import resolve
from util import in_folder

CUBIC = ["-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90", "-lambda", "6.2", "-N", "5",
         "-distance", "100", "-oversample", "1", "-nonoise", "-nopgm"]
BUILD_LINE = "nanoBragg: building the compiled"


@pytest.fixture(scope="module", autouse=True)
def numba_ready():
    """The numba loop compiled (once per session), so that its first-compile line is said before these tests."""
    from nanobragg.engine import jit

    with torch.no_grad():
        jit.jit_kernel(_inputs())
    assert jit.is_compiled()


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """An empty kernel cache and a process that has said nothing yet."""
    monkeypatch.setenv("NB_CACHE_DIR", str(tmp_path / "kernels"))
    monkeypatch.setattr(policy, "_said", set())


def _experiment(detpixels=64, extra=()):
    return build_settings([*CUBIC, "-detpixels", str(detpixels), *extra]).experiment


def _inputs(detpixels=64, dtype=torch.float32, extra=()):
    return resolve(_experiment(detpixels, extra), dtype=dtype).inputs


class Builds:
    """Stands in for compiled.compiled_kernel: records each call's ``build`` and renders nothing."""

    def __init__(self):
        self.calls = []

    def __call__(self, inp, blocks, pixels, build):
        self.calls.append(build)
        return None


def _no_real_build(monkeypatch):
    def refuse(*args):
        raise AssertionError("a kernel was built")
    monkeypatch.setattr(compiled, "_build", refuse)


def test_pays_back_over_three_runs():
    # 3 x 10 s eager against 20 s + 3 x 1 s: build; 3 x 5 s against 23 s: do not
    assert policy.pays_back(10.0, 1.0, 20.0) and not policy.pays_back(5.0, 1.0, 20.0)
    assert policy.pays_back(5.0, 1.0, 20.0, reruns=5)  # 30 s against 26 s


def test_estimates_follow_terms_dtype_and_threads(monkeypatch):
    single, double = _inputs(), _inputs(dtype=torch.float64)
    eager, fast = policy.estimate_seconds(single, 1e8, "eager"), policy.estimate_seconds(single, 1e8, "compiled")
    assert eager == pytest.approx(1e8 * (policy.SAMPLE_S[0] + policy.TERM_S[0]))  # 1 source, 1 orientation
    assert fast < eager / 5
    assert policy.estimate_seconds(double, 1e8, "eager") == pytest.approx(policy.FLOAT64_FACTOR[0] * eager)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert policy.estimate_seconds(single, 1e8, "eager") == pytest.approx(eager / 2)


def test_build_estimate_is_the_last_measured_build(tmp_path):
    assert policy.build_seconds() == policy.BUILD_S
    (tmp_path / "kernels").mkdir()
    policy._record_build(12.34)
    assert policy.build_seconds() == pytest.approx(12.3)
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [policy.BUILD_TIME_FILE]


def test_default_is_the_numba_loop_where_it_renders(monkeypatch, capsys):
    """No compiled kernel cached: the numba loop, whatever the size, nothing built and nothing said; the
    eager engine under -nocompile."""
    builds = Builds()
    monkeypatch.setattr(compiled, "compiled_kernel", builds)
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    inp, cpu = _inputs(), torch.device("cpu")
    with torch.no_grad():
        for terms in (64 * 64.0, 1e12):
            assert policy.choose_kernel(inp, [], 4096, terms, None, cpu).engine == "numba"
        assert policy.choose_kernel(inp, [], 4096, 1e12, False, cpu) is None
    assert builds.calls == [] and capsys.readouterr().err == ""


def test_the_numba_loop_says_its_first_compile(monkeypatch, capsys):
    from nanobragg.engine import jit

    monkeypatch.setattr(jit, "is_compiled", lambda: False)
    with torch.no_grad():
        policy.choose_kernel(_inputs(), [], 4096, 1.0, None, torch.device("cpu"))
        policy.choose_kernel(_inputs(), [], 4096, 1.0, None, torch.device("cpu"))
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("nanoBragg: compiling the numba pixel loop (first use; one loop for every kind of run)")
    assert line.endswith(f"once; cached in {jit.cache_folder()}")


def test_default_builds_only_where_it_pays_back(monkeypatch, capsys, tmp_path):
    """Beyond the numba loop (here a curved detector), the default builds a compiled kernel when it pays back."""
    builds = Builds()
    monkeypatch.setattr(compiled, "compiled_kernel", builds)
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    inp, cpu = _inputs(extra=("-curved_det",)), torch.device("cpu")
    small = 64 * 64.0
    with torch.no_grad():
        assert policy.choose_kernel(inp, [], 4096, small, None, cpu) is None
        assert builds.calls == [] and capsys.readouterr().err == ""
        policy.choose_kernel(inp, [], 4096, 1e12, None, cpu)  # hours eager: builds
        policy.choose_kernel(inp, [], 4096, small, True, cpu)  # asked for: builds
        policy.choose_kernel(inp, [], 4096, 1e12, False, cpu)  # -nocompile: never
    assert builds.calls == [True, True]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith(BUILD_LINE + " float32 kernel") for line in lines)
    assert "(default policy: this run takes about" in lines[0] and "(asked for: -compile" in lines[1]
    assert all(f"once; cached in {tmp_path / 'kernels'}" in line and " s, once" in line for line in lines)


def test_a_cached_kernel_is_always_loaded_never_under_nocompile(monkeypatch, tmp_path):
    builds = Builds()
    monkeypatch.setattr(compiled, "compiled_kernel", builds)
    cached = tmp_path / "cached.pt2"
    cached.write_bytes(b"")
    monkeypatch.setattr(compiled, "kernel_file", lambda *args: cached)
    with torch.no_grad():
        for requested in (None, True, False):
            policy.choose_kernel(_inputs(), [], 4096, 1.0, requested, torch.device("cpu"))
    assert builds.calls == [False, False]  # loaded for None and True, not looked up for False


def test_numba_flag_takes_the_loop_even_where_a_kernel_is_cached(monkeypatch, tmp_path, capsys):
    """-numba (compile="numba"): the numba loop, a cached compiled kernel neither looked up nor loaded,
    nothing built even where it would pay back; the eager engine where the loop cannot render."""
    builds = Builds()
    monkeypatch.setattr(compiled, "compiled_kernel", builds)
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    cached = tmp_path / "cached.pt2"
    cached.write_bytes(b"")
    monkeypatch.setattr(compiled, "kernel_file", lambda *args: cached)
    monkeypatch.setattr(policy, "estimate_seconds", lambda inp, terms, path: 1e4 if path == "eager" else 1.0)
    cpu = torch.device("cpu")
    with torch.no_grad():
        assert policy.choose_kernel(_inputs(), [], 4096, 1e12, "numba", cpu).engine == "numba"
        curved = _inputs(extra=("-curved_det",))
        assert policy.choose_kernel(curved, [], 4096, 1e12, "numba", cpu) is None
        assert policy.choose_kernel(_inputs(), [], 4096, 1e12, None, cpu) is None  # the cached one: loaded
    assert builds.calls == [False] and capsys.readouterr().err == ""
    assert build_settings([*CUBIC, "-numba"]).run.compile == "numba"
    with torch.no_grad():
        assert api.simulate(_experiment(32), dtype=torch.float32, compile="numba").path == "numba"
    with pytest.raises(TypeError, match="numba"):
        api.simulate(_experiment(32), compile="fast")


def test_nocompile_never_builds_even_where_it_pays_back(monkeypatch, tmp_path, capsys):
    _no_real_build(monkeypatch)
    monkeypatch.setattr(policy, "estimate_seconds", lambda inp, terms, path: 1e4 if path == "eager" else 1.0)
    with in_folder(tmp_path):
        assert run([*CUBIC, "-detpixels", "32", "-nocompile", "-floatfile", "f.bin"], lambda *a: None) == 0
    assert BUILD_LINE not in capsys.readouterr().err
    assert not (tmp_path / "kernels").exists()


def _path_with_python_only(tmp_path: Path) -> str:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python").symlink_to(sys.executable)
    return str(folder)


@pytest.mark.parametrize("flags, engine, line", [
    ((), "numba", policy.NO_COMPILER_NUMBA), (("-compile",), "numba", policy.NO_COMPILER_NUMBA),
    (("-curved_det", "-compile"), "eager", policy.NO_COMPILER)])
def test_no_compiler_is_one_line(tmp_path, flags, engine, line):
    """The command with a PATH holding only python says there is no compiler, once, and renders with the
    numba loop (the default, and -compile), or eagerly where the loop cannot render the run."""
    from nanobragg.engine import jit

    env = dict(os.environ, PATH=_path_with_python_only(tmp_path), NB_TIMING="1",
               NUMBA_CACHE_DIR=str(jit.cache_folder()))
    env.pop("CXX", None)
    proc = subprocess.run([sys.executable, "-m", "nanobragg", *CUBIC, "-detpixels", "32", *flags,
                           "-floatfile", "f.bin"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    said = [text for text in proc.stderr.splitlines() if text.startswith("nanoBragg:")]
    assert said == [line]
    assert "compiled: no" in proc.stderr and f"kernel {engine})" in proc.stderr
    assert (tmp_path / "f.bin").stat().st_size == 32 * 32 * 4
    assert not (tmp_path / "kernels").exists()


def test_api_follows_the_rule(monkeypatch, capsys):
    """compile=None renders with the numba loop, silently; compile=True without a compiler says so once
    for many calls (and the numba loop renders); gradients and tricubic interpolation (where the kernel
    would pay back) say why they render eagerly."""
    _no_real_build(monkeypatch)
    exp = _experiment(32)
    with torch.no_grad():
        sim = api.simulate(exp, dtype=torch.float32, compile=None)
        assert not sim.compiled and sim.path == "numba"
        assert capsys.readouterr().err == ""
        monkeypatch.setattr(compiled, "compiler_available", lambda: False)
        for _ in range(2):
            assert api.simulate(exp, dtype=torch.float32, compile=True).path == "numba"
        assert capsys.readouterr().err.splitlines() == [policy.NO_COMPILER_NUMBA]
        tricubic = dataclasses.replace(_inputs(), interpolate=True)
        assert policy.choose_kernel(tricubic, [], 4096, 1e12, None, torch.device("cpu")) is None
        assert capsys.readouterr().err.splitlines() == [policy.BLOCKED["interpolate"][0]]
    sim = api.simulate(exp, dtype=torch.float32, compile=True)  # gradients on
    assert sim.path == "eager" and capsys.readouterr().err.splitlines() == [policy.BLOCKED["grad"][0]]


def test_int_conversion_build_is_announced(monkeypatch, capsys, tmp_path):
    calls = []
    monkeypatch.setattr(compiled, "compiled_int_kernel", lambda build: calls.append(build))
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    monkeypatch.setattr(compiled, "int_kernel_file", lambda: tmp_path / "int.pt2")
    policy.int_kernel(False)
    assert capsys.readouterr().err == ""
    policy.int_kernel(True)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("nanoBragg: building the compiled int-file conversion (asked for: -compile)")
    (tmp_path / "int.pt2").write_bytes(b"")
    monkeypatch.setattr(policy, "_said", set())
    policy.int_kernel(True)  # cached: loaded, nothing said
    assert capsys.readouterr().err == "" and calls == [False, True, True]


def test_prepare_builds_and_writes_nothing(monkeypatch, tmp_path):
    builds = Builds()
    monkeypatch.setattr(compiled, "compiled_kernel", builds)
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    lines = []
    with in_folder(tmp_path):
        assert run([*CUBIC, "-detpixels", "32", "-floatfile", "f.bin", "-prepare"], lines.append) == 0
        assert run([*CUBIC, "-detpixels", "32", "-prepare", "-nocompile"], lines.append) == 2
        assert run([*CUBIC, "-detpixels", "32", "-prepare", "-numba"], lines.append) == 2
    assert builds.calls == [True]
    assert lines[-1] == "compiled kernel for this kind of run: not available (the eager engine renders it)"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(not compiled.compiler_available(), reason="no C++ compiler")
def test_a_build_is_announced_once_then_loaded_silently(tmp_path, capsys, monkeypatch, built_kernels):
    """A real build (tens of seconds): -compile with an empty cache says one line before building;
    the next run of the kind, default flags, loads the kernel and says nothing. The kernel (one term per
    pixel, -default_F, a cubic cell) is left in built_kernels for tests/test_precision_compiled.py."""
    monkeypatch.setenv("NB_TIMING", "1")
    argv = [*CUBIC, "-detpixels", "32", "-floatfile", "f.bin"]
    with in_folder(tmp_path):
        assert run([*argv, "-compile"], lambda *a: None) == 0
        first = capsys.readouterr().err.splitlines()
        assert run(argv, lambda *a: None) == 0
        second = capsys.readouterr().err.splitlines()
    said = [line for line in first if line.startswith("nanoBragg:")]
    assert len(said) == 1 and said[0].startswith(BUILD_LINE + " float32 kernel for this kind of run (asked for")
    assert f"cached in {tmp_path / 'kernels'}" in said[0]
    assert first.index(said[0]) < next(i for i, line in enumerate(first) if line.startswith("engine:"))
    assert not any(line.startswith("nanoBragg:") for line in second)
    assert any(line.startswith("engine:") and "compiled: yes" in line for line in second)
    assert [p.suffix for p in (tmp_path / "kernels").iterdir() if p.name != policy.BUILD_TIME_FILE] == [".pt2"]
    for package in (tmp_path / "kernels").glob("*.pt2"):
        shutil.copy(package, built_kernels / package.name)
