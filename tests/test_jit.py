"""The numba loop (nanobragg.engine.jit) against the eager torch engine, beyond the golden cases
(tests/test_golden.py renders every case it can with it): batches of orientations, pixel lists (ROI and
mask), stacks of panels, C's first spindle pass, thread counts, the kernel contract and its cache folder."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nanobragg import api
from nanobragg.cli.main import build_settings
from nanobragg.engine.image import prepare_render, run_render
from nanobragg.resolve import resolve

BASE = ("-default_F 100 -cell 70 80 90 75 85 95 -lambda 1 -N 5 -distance 80 -detpixels 48 -pixel 0.3 "
        "-oversample 2 -mosaic 0.5 -mosaic_dom 3 -divergence 0.3 -divsteps 2 -dispersion 1 -dispsteps 2 "
        "-detector_thick 100 -thicksteps 2 -polar 0.9 -seed 3 -mosaic_seed 5").split()


def _inputs(args, dtype=torch.float64):
    res = resolve(build_settings(list(args)).experiment, seed=1, dtype=dtype)
    return res, res.inputs


def _both(inp, roi, mask=None):
    """(eager, numba) renders of the same job."""
    from nanobragg.engine import jit

    with torch.no_grad():
        job = prepare_render(inp, roi, mask, compile=False)
        eager = run_render(job)
        loop = jit.jit_kernel(inp)
        numba = run_render(dataclasses.replace(job, kernel=loop, pixels=1000))
    assert numba.engine == "numba" and eager.engine == "eager"
    return eager, numba


def _close(a, b, rtol):
    a, b = a.double(), b.double()
    assert torch.allclose(a, b, rtol=rtol, atol=rtol * float(a.abs().max())), float((a - b).abs().max())


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_every_factor_at_once_equals_the_eager_engine(dtype, rtol):
    """Mosaic domains, sources of two wavelengths, sub-pixels, sensor layers, polarization, a phi sweep
    from 0 (C's first pass), -dmin: image and totals."""
    res, inp = _inputs([*BASE, "-phi", "0", "-osc", "2", "-phisteps", "2", "-dmin", "3"], dtype)
    assert inp.first_pass_cells is not None and inp.dmin > 0
    eager, numba = _both(inp, res.roi)
    _close(eager.image, numba.image, rtol)
    t, u = eager.totals, numba.totals
    assert float(u.sum[0]) == pytest.approx(float(t.sum[0]), rel=rtol)
    assert float(u.omega) == pytest.approx(float(t.omega), rel=1e-6)
    assert float(u.max[0]) == pytest.approx(float(t.max[0]), rel=rtol) and int(u.argmax[0]) == int(t.argmax[0])


def test_first_pass_pixel_takes_the_unrotated_cell():
    """Without the torch engine's second look at C's first-pass pixel the loop would differ there only."""
    res, inp = _inputs([*BASE, "-phi", "0", "-osc", "2", "-phisteps", "2"])
    eager, numba = _both(inp, res.roi)
    _, plain = _both(dataclasses.replace(inp, phi0_cells=None, exact_phi0_cells=None), res.roi)
    s, f = (int(v) for v in inp.first_pass[:2])
    differs = (plain.image != numba.image).nonzero().tolist()
    assert differs == [[s, f]]
    _close(eager.image, numba.image, 1e-10)


def test_roi_and_mask_render_only_their_pixels():
    res, inp = _inputs([*BASE, "-roi", "5", "40", "3", "30"])
    mask = np.ones((48, 48), dtype=np.uint8)
    mask[10:20, 7:9] = 0
    eager, numba = _both(inp, res.roi, mask)
    _close(eager.image, numba.image, 1e-10)
    assert int(numba.totals.count) == int(eager.totals.count) and float(numba.image[15, 8]) == 0.0


def test_a_batch_of_orientations_in_one_call():
    """The API's batch axis (misset rows): each orientation's image equals its eager render."""
    exp = build_settings(BASE).experiment
    batch = dataclasses.replace(exp, crystal=dataclasses.replace(
        exp.crystal, misset=torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.2, 0.3], [0.3, -0.1, 0.05]])))
    with torch.no_grad():
        sims = [api.simulate(batch, compile=c) for c in (None, False)]
    assert [s.path for s in sims] == ["numba", "eager"] and sims[0].image.shape == (3, 48, 48)
    _close(sims[1].image, sims[0].image, 1e-10)


@pytest.mark.parametrize("shape", ["-round_xtal", "-gauss_xtal", "-tophat_spots"])
def test_other_crystal_shapes(shape):
    res, inp = _inputs([*BASE, shape, "-fudge", "2"])
    eager, numba = _both(inp, res.roi)
    _close(eager.image, numba.image, 1e-9)


def test_threads_do_not_change_a_bit():
    from nanobragg.engine import jit

    _, inp = _inputs(BASE)
    outs = []
    with torch.no_grad():
        for threads in (1, 2, 3):
            out = torch.zeros(2304, 1, dtype=torch.float64)
            jit.jit_kernel(inp, threads=threads)(torch.tensor(0), torch.arange(2304), torch.tensor(2304), out)
            outs.append(out)
    assert all(torch.equal(outs[0], o) for o in outs[1:]) and float(outs[0].max()) > 0


def test_what_it_cannot_render():
    from nanobragg.engine import jit

    for flag, why in (("-curved_det", "a curved detector"), ("-oversample_omega", "the -oversample_* flags")):
        assert jit.unsupported(_inputs([*BASE, flag])[1]) == why
    inp = _inputs(BASE)[1]
    assert jit.unsupported(dataclasses.replace(inp, interpolate=True)) == "tricubic interpolation"
    assert jit.unsupported(inp) is None
    assert jit.jit_kernel(inp) is None  # gradients are recorded here: the eager engine's


def test_the_loop_caches_in_the_kernel_folder(tmp_path):
    """Without NUMBA_CACHE_DIR the loop is cached in numba/ of the kernel cache folder (NB_CACHE_DIR)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NB_CACHE_DIR"] = str(tmp_path / "kernels")
    code = "import nanobragg.engine.jit as j; print(j.cache_folder()); print(j.is_compiled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(tmp_path / "kernels" / "numba"), "False"]


def test_int_conversion_gives_the_eager_bits():
    """C's int-file values from the numba loop: clipping, ties at 1/2, NaN and infinities, 1 and 3 threads."""
    from nanobragg.engine import jit
    from nanobragg.engine.int_values import c_int_values

    _, inp = _inputs(BASE)
    with torch.no_grad():
        jit.jit_kernel(inp)  # compiled (or loaded) with the pixel loop
    values = torch.cat([torch.randn(5000) * 3e4, torch.tensor([0.25, 0.5, 1.5, 2.5, -1.0, 1e30, -1e30,
                                                               float("nan"), float("inf"), -float("inf")])])
    values = values.to(torch.float32)
    expected = c_int_values(values, 1.7, 40.0).to(torch.uint16)
    for threads in (1, 3):
        out = torch.empty(len(values), dtype=torch.uint16)
        jit.int_kernel(threads)(values, 1.7, 40.0, out)
        assert torch.equal(out, expected)


def test_five_kinds_of_run_add_no_kernel_after_the_first(tmp_path):
    """Issue 12's reuse bar with the default policy: runs with other -phisteps, -mosaic_dom, -oversample,
    source counts and detector sizes all render with the one numba loop, and leave the kernel cache as
    they found it (nothing built per kind of run). The cache starts with this session's compiled loop
    (a copy: compiling it again would only cost time)."""
    import shutil

    from nanobragg.engine import jit

    with torch.no_grad():
        jit.jit_kernel(_inputs(BASE)[1])
    cache = tmp_path / "kernels"
    shutil.copytree(jit.cache_folder(), cache / "numba")
    before = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(NB_CACHE_DIR=str(cache), NB_TIMING="1")
    common = ("-default_F 100 -cell 70 80 90 75 85 95 -lambda 1 -N 5 -distance 80 -pixel 0.3 -nonoise -nopgm "
              "-floatfile f.bin").split()
    kinds = ["-detpixels 32 -phisteps 2 -osc 1", "-detpixels 40 -phisteps 5 -osc 1 -mosaic 0.5 -mosaic_dom 3",
             "-detpixels 24 -oversample 3", "-detpixels 36 -divergence 0.3 -divsteps 3 -dispersion 1 -dispsteps 3",
             "-detpixels_f 50 -detpixels_s 20 -mosaic 1 -mosaic_dom 7 -oversample 2"]
    files = []
    for kind in kinds:
        proc = subprocess.run([sys.executable, "-m", "nanobragg", *common, *kind.split()], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "kernel numba)" in proc.stderr and "nanoBragg: compiling" not in proc.stderr
        files.append(sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()))
    assert before and all(f == before for f in files)


def _cold_env(cache):
    """The environment of a run whose kernel cache ``cache`` is empty, numba's cache within it."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(NB_CACHE_DIR=str(cache), NB_TIMING="1")
    return env


def test_first_compile_begins_in_a_second_process_and_serves_every_later_run(tmp_path):
    """From an empty cache the command starts the loop's compile in a child process before it imports
    torch, says so, waits for it and renders with the loop it left; the image is the one this session's
    loop renders. Then a fresh process given a real render's inputs loads every loop from that cache and
    compiles nothing (the child's argument types are the renders'), and a second run starts no child."""
    from nanobragg.engine import jit_build

    cache = tmp_path / "kernels"
    args = [*BASE, "-nonoise", "-nopgm", "-floatfile", "f.bin", "-intfile", "i.img"]
    proc = subprocess.run([sys.executable, "-m", "nanobragg", *args], cwd=tmp_path, env=_cold_env(cache),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("nanoBragg: compiling the numba")]
    assert len(said) == 1 and "(begun at start-up in a second process)" in said[0], proc.stderr
    assert "kernel numba)" in proc.stderr and jit_build.cached(cache / "numba")
    warm = subprocess.run([sys.executable, "-m", "nanobragg", *args, "-floatfile", "g.bin"], cwd=tmp_path,
                          capture_output=True, text=True)  # this session's cache
    assert warm.returncode == 0, warm.stderr
    assert (tmp_path / "f.bin").read_bytes() == (tmp_path / "g.bin").read_bytes()
    code = ("import torch; from nanobragg.engine import jit, _jit_loops as L\n"
            "from nanobragg.cli.main import build_settings; from nanobragg.resolve import resolve\n"
            f"inp = resolve(build_settings({list(BASE)!r}).experiment, seed=1, dtype=torch.float32).inputs\n"
            "out = torch.empty(64, 1)\n"
            "with torch.no_grad(): jit.jit_kernel(inp)(0, torch.arange(64), 64, out)\n"
            "fs = (L.render_chunk, L._terms, L.int_values)\n"
            "print(*(sum(sum(getattr(f.stats, k).values()) for f in fs) for k in ('cache_misses', 'cache_hits')))")
    env = _cold_env(cache)
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["0", "2"]  # render_chunk (with _terms in it), int_values
    again = subprocess.run([sys.executable, "-m", "nanobragg", *args], cwd=tmp_path, env=_cold_env(cache),
                           capture_output=True, text=True)
    assert again.returncode == 0 and "nanoBragg: compiling" not in again.stderr, again.stderr


class _Popen:
    """subprocess.Popen's stand-in: records the command, starts nothing."""
    started: list = []

    def __init__(self, command, **_):
        self.started.append(command)

    def wait(self):
        return 0


def _fake_subprocess(popen):
    """engine.jit_build's view of the subprocess module, with ``popen`` for Popen (the real module is
    left alone: others use it meanwhile)."""
    import types

    return types.SimpleNamespace(Popen=popen, DEVNULL=subprocess.DEVNULL, TimeoutExpired=subprocess.TimeoutExpired)


@pytest.mark.parametrize("argv, starts", [
    (["-cell", "100", "100", "100", "90", "90", "90"], True),
    (["-device", "cpu", "-N", "5"], True),
    ([], False), (["-nocompile"], False), (["-compile"], False), (["-prepare"], False), (["-h"], False),
    (["-device", "cuda"], False), (["-device", "auto"], False), (["-device"], False),
])
def test_the_background_compile_starts_only_where_the_loop_will_serve(tmp_path, monkeypatch, argv, starts):
    from nanobragg.engine import jit_build

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(jit_build, "subprocess", _fake_subprocess(_Popen))
    monkeypatch.setattr(jit_build, "_child", None)
    _Popen.started = []
    assert jit_build.start(argv) is starts and jit_build.running() is starts
    assert [c[1:] for c in _Popen.started] == ([["-m", "nanobragg.engine.jit_build"]] if starts else [])
    if starts:
        assert jit_build.start(argv) is False  # one child a process
        jit_build.wait()
        assert not jit_build.running()


def test_no_background_compile_when_cached_or_under_way(tmp_path, monkeypatch):
    """A cached loop starts nothing; nor does a compile under way in another process (its lock held),
    which wait() waits for."""
    import fcntl
    import threading

    from nanobragg.engine import jit_build

    folder = tmp_path / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(folder))
    monkeypatch.setattr(jit_build, "subprocess", _fake_subprocess(_Popen))
    monkeypatch.setattr(jit_build, "_child", None)
    _Popen.started = []
    folder.mkdir()
    with open(folder / jit_build.LOCK_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert jit_build.start(["-N", "5"]) is False
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (jit_build.wait(), done.set()))
        waiter.start()
        assert not done.wait(0.3)  # waits while the other compile holds the lock
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(5)
    assert done.is_set()
    (folder / "engine_x").mkdir()
    (folder / "engine_x" / "_jit_loops.render_chunk-1.py311.nbi").write_bytes(b"")
    assert not jit_build.cached()  # an index alone: a compile stopped before numba wrote the loop's data
    (folder / "engine_x" / "_jit_loops.render_chunk-1.py311.1.nbc").write_bytes(b"")
    assert jit_build.cached() and jit_build.start(["-N", "5"]) is False and _Popen.started == []


class _Child:
    """A started child (subprocess.Popen's stand-in) that records what is done to it; a ``stubborn`` one
    outlives SIGTERM."""

    def __init__(self, stubborn=False):
        self.calls, self.stubborn = [], stubborn

    def terminate(self):
        self.calls.append("terminate")

    def kill(self):
        self.calls.append("kill")

    def wait(self, timeout=None):
        self.calls.append("wait")
        if self.stubborn and "kill" not in self.calls:
            raise subprocess.TimeoutExpired("child", timeout)
        return 0


def test_cancel_stops_and_reaps_the_child(monkeypatch):
    """A real child is ended by SIGTERM and reaped; one that outlives it is killed; without one, nothing."""
    import signal

    from nanobragg.engine import jit_build

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(jit_build, "_child", child)
    jit_build.cancel()
    assert child.returncode == -signal.SIGTERM and not jit_build.running()
    stubborn = _Child(stubborn=True)
    monkeypatch.setattr(jit_build, "_child", stubborn)
    monkeypatch.setattr(jit_build, "STOP_S", 0.01)
    jit_build.cancel()
    assert stubborn.calls == ["terminate", "wait", "kill", "wait"] and not jit_build.running()
    jit_build.cancel()  # no child: nothing to do
    assert stubborn.calls == ["terminate", "wait", "kill", "wait"]


def test_the_policy_stops_the_background_compile_where_the_loop_does_not_render(tmp_path, monkeypatch, capsys):
    """A curved detector, -nocompile, a cached compiled kernel and a compiled kernel built by the policy
    (stopped before the build) each stop the child; the numba loop's choice waits for it instead, saying
    it was begun at start-up. The child is this test's stand-in: jit.is_compiled is made False, as on a
    first run, so that the loop's choice does wait (this session's loop is compiled)."""
    from nanobragg.engine import compiled, jit, jit_build, policy

    monkeypatch.setenv("NB_CACHE_DIR", str(tmp_path / "kernels"))  # no compiled kernel of an earlier test
    monkeypatch.setattr(policy, "_said", set())
    cpu, base, curved = torch.device("cpu"), _inputs(BASE)[1], _inputs([*BASE, "-curved_det"])[1]

    def choose(inp, requested):
        child = _Child()
        monkeypatch.setattr(jit_build, "_child", child)
        with torch.no_grad():
            kernel = policy.choose_kernel(inp, [], 4096, 1.0, requested, cpu)
        assert not jit_build.running()
        return kernel, child.calls

    assert choose(curved, None) == (None, ["terminate", "wait"])
    assert choose(base, False) == (None, ["terminate", "wait"])
    kernel, built = object(), []  # compiled.compiled_kernel's stand-in: notes whether a build began beside the child

    def compiled_kernel(*args, build):
        built.extend([jit_build.running()] if build else [])
        return kernel

    monkeypatch.setattr(compiled, "compiled_kernel", compiled_kernel)
    monkeypatch.setattr(compiled, "kernel_file", lambda *a: tmp_path)  # exists: a kernel of this kind is cached
    assert choose(base, None) == (kernel, ["terminate", "wait"]) and built == []
    monkeypatch.setattr(compiled, "kernel_file", lambda *a: tmp_path / "none")
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    assert choose(curved, True) == (kernel, ["terminate", "wait"])
    assert built == [False]  # the child was stopped before the build began
    monkeypatch.setattr(jit, "is_compiled", lambda: False)
    loop, calls = choose(base, None)
    assert loop.engine == "numba" and calls == ["wait"]  # waited for, never stopped
    assert "(begun at start-up in a second process)" in capsys.readouterr().err


@pytest.mark.parametrize("outcome", ["exit 2", "raises"])
def test_a_program_that_ends_stops_the_background_compile(monkeypatch, outcome):
    """run_program stops the child however main ends: a status (a refused input's 2) or an exception.
    os._exit is entry's view of it (the os module everyone shares is left alone)."""
    import types

    from nanobragg.cli import entry
    from nanobragg.engine import jit_build

    child, exits = _Child(), []
    monkeypatch.setattr(jit_build, "_child", child)
    monkeypatch.setattr(entry, "os", types.SimpleNamespace(_exit=exits.append))
    monkeypatch.setattr(entry, "_keep_freed_memory", lambda: None)  # the test process's malloc left as it is

    def main():
        if outcome == "raises":
            raise RuntimeError("a bug")
        return 2

    if outcome == "raises":
        with pytest.raises(RuntimeError):
            entry.run_program(main)
    else:
        entry.run_program(main)
    assert exits == ([] if outcome == "raises" else [2])
    assert child.calls == ["terminate", "wait"] and not jit_build.running()


def _compiles_of(folder):
    """Process ids of background compiles (python -m nanobragg.engine.jit_build) into numba folder ``folder``."""
    mark = f"NUMBA_CACHE_DIR={folder}".encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command, env = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"nanobragg.engine.jit_build" in command and mark in env.split(b"\0"):
            pids.append(int(proc.name))
    return pids


def _lock_free(folder) -> bool:
    """True when nobody holds the compile lock of numba folder ``folder``."""
    import fcntl

    from nanobragg.engine import jit_build

    with open(folder / jit_build.LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds processes through /proc")
def test_runs_without_the_loop_leave_no_compile_behind(tmp_path):
    """From an empty cache, a refused flag (exit 2) and an eager render (a curved detector) each start
    the loop's compile at start-up and stop it: when the run has returned no compile of that cache runs
    and its lock is free (the run reaps its child before it exits: nothing to wait for). The next run
    that uses the loop finds the loop compiled whole or not at all: it renders with it, and says it
    compiles it exactly when it was not cached."""
    from nanobragg.engine import jit_build

    cache = tmp_path / "kernels"
    folder = cache / "numba"
    runs = [(["-N", "5", "-no_such_flag"], 2), ([*BASE, "-curved_det", "-detpixels", "16", "-nonoise", "-nopgm",
                                                 "-floatfile", "c.bin"], 0)]
    try:
        for args, status in runs:
            proc = subprocess.run([sys.executable, "-m", "nanobragg", *args], cwd=tmp_path, env=_cold_env(cache),
                                  capture_output=True, text=True)
            assert proc.returncode == status, proc.stderr
            assert "compiling the numba" not in proc.stderr
            assert folder.is_dir() and _compiles_of(folder) == [] and _lock_free(folder)
    finally:
        for pid in _compiles_of(folder):  # left by a failure: ended here
            os.kill(pid, 9)
    assert "kernel eager)" in proc.stderr
    was_cached = jit_build.cached(folder)
    proc = subprocess.run([sys.executable, "-m", "nanobragg", *BASE, "-nonoise", "-nopgm", "-floatfile", "f.bin"],
                          cwd=tmp_path, env=_cold_env(cache), capture_output=True, text=True)
    assert proc.returncode == 0 and "kernel numba)" in proc.stderr, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("nanoBragg: compiling the numba")]
    assert len(said) == (0 if was_cached else 1) and jit_build.cached(folder), proc.stderr
