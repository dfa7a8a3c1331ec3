"""Kernel builds that fail or are killed leave no debris in the kernel cache.

The builder (``compiled._compile_package``, export + AOTInductor: tens of
seconds) is replaced by fakes that write a partial package and then fail,
hang or succeed, so nothing is compiled here.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from nanobragg.engine import compiled


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(compiled.BUILD_PREFIX))


def _partial_then(exc):
    def fake(module, example, package_path):
        Path(package_path).write_bytes(b"half a package")
        raise exc
    return fake


@pytest.mark.parametrize("exc", [RuntimeError("compiler crashed"), KeyboardInterrupt()])
def test_failed_build_removes_its_folder(tmp_path, monkeypatch, exc):
    monkeypatch.setattr(compiled, "_compile_package", _partial_then(exc))
    target = tmp_path / "kernels" / "k.pt2"
    with pytest.raises(type(exc)):
        compiled._build(None, (), target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_successful_build_moves_the_package_into_place(tmp_path, monkeypatch):
    def fake(module, example, package_path):
        assert Path(package_path).parent.name.startswith(f"{compiled.BUILD_PREFIX}{compiled._host()}-{os.getpid()}-")
        Path(package_path).write_bytes(b"package")
        return package_path
    monkeypatch.setattr(compiled, "_compile_package", fake)
    target = tmp_path / "k.pt2"
    compiled._build(None, (), target)
    assert target.read_bytes() == b"package" and _debris(tmp_path) == []


def test_interrupted_build_through_the_int_kernel_path(tmp_path, monkeypatch):
    """compiled_int_kernel(build=True), interrupted mid-build: the cache holds nothing afterwards."""
    monkeypatch.setenv("NB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compiled, "compiler_available", lambda: True)
    monkeypatch.setattr(compiled, "_compile_package", _partial_then(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        compiled.compiled_int_kernel(build=True)
    assert list((tmp_path / "cache").iterdir()) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_build_folders_are_removed_by_the_next_build(tmp_path, monkeypatch):
    host, prefix = compiled._host(), compiled.BUILD_PREFIX
    dead = tmp_path / f"{prefix}{host}-{_dead_pid()}-abc"          # its process is gone
    old = tmp_path / f"{prefix}otherhost-{os.getpid()}-def"         # another machine's, two hours old
    live = tmp_path / f"{prefix}{host}-{os.getpid()}-ghi"           # a build in progress here
    remote = tmp_path / f"{prefix}otherhost-1-jkl"                  # another machine's, recent
    legacy = tmp_path / "tmpab_cd123"                                # an earlier version's, two hours old
    legacy_empty = tmp_path / "tmpzz9yx8w7"
    legacy_recent = tmp_path / "tmp12345678"                          # may be a build in progress
    not_ours = tmp_path / "tmpqwertyui"                               # holds something else
    for folder in (dead, old, live, remote, legacy, legacy_recent, not_ours):
        folder.mkdir()
        (folder / "kernel.pt2").write_bytes(b"partial")
    legacy_empty.mkdir()
    (not_ours / "notes.txt").write_text("someone else's")
    two_hours_ago = time.time() - 7200
    for folder in (old, legacy, legacy_empty, not_ours):
        os.utime(folder, (two_hours_ago, two_hours_ago))
    (tmp_path / "kept.pt2").write_bytes(b"a finished kernel")
    monkeypatch.setattr(compiled, "_compile_package", _partial_then(RuntimeError("no compiler")))
    with pytest.raises(RuntimeError):
        compiled._build(None, (), tmp_path / "new.pt2")
    assert _debris(tmp_path) == sorted([live.name, remote.name])
    assert sorted(p.name for p in tmp_path.glob("tmp*")) == sorted([legacy_recent.name, not_ours.name])
    assert (tmp_path / "kept.pt2").read_bytes() == b"a finished kernel"


CHILD = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from nanobragg.engine import compiled

    def hang(module, example, package_path):
        Path(package_path).write_bytes(b"half a package")
        print("building", flush=True)
        time.sleep(60)

    compiled._compile_package = hang
    compiled._build(None, (), Path(sys.argv[1]) / "k.pt2")
''')


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_build_leaves_nothing_that_accumulates(tmp_path, monkeypatch, sig):
    """SIGTERM/SIGINT: the folder is removed at once; SIGKILL: by the next build."""
    cache = tmp_path / "cache"
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(cache)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        assert len(_debris(cache)) == 1
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and len(_debris(cache)) == 1
        monkeypatch.setattr(compiled, "_compile_package", _partial_then(RuntimeError("again")))
        with pytest.raises(RuntimeError):
            compiled._build(None, (), cache / "k.pt2")
    elif sig == signal.SIGTERM:
        assert proc.returncode == 143, err
    else:  # the interpreter ends an uncaught KeyboardInterrupt by SIGINT (or exit 1)
        assert proc.returncode in (-signal.SIGINT, 1) and "KeyboardInterrupt" in err
    assert _debris(cache) == [] and not (cache / "k.pt2").exists()


def test_application_sigterm_handler_is_left_alone(monkeypatch, tmp_path):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append(a))
    try:
        def fake(module, example, package_path):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            Path(package_path).write_bytes(b"p")
            return package_path
        monkeypatch.setattr(compiled, "_compile_package", fake)
        handler = signal.getsignal(signal.SIGTERM)
        compiled._build(None, (), tmp_path / "k.pt2")
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_default_restored_after_build(tmp_path, monkeypatch):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(compiled, "_compile_package", _partial_then(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        compiled._build(None, (), tmp_path / "k.pt2")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert torch.is_tensor(torch.zeros(1))
