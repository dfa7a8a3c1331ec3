"""Test-session settings: the command's OpenMP thread policy, a private kernel cache, so compiled
kernels left by earlier runs on this machine never change which engine a test exercises, and a
private numba cache (compiled once per session) that tests changing NB_CACHE_DIR do not move, and a
folder where a test that built a kernel in a cache of its own leaves it for later tests of the same kind, and
the background builds of modules that ask for them, started with the session."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Before any test imports torch: the thread policy nanoBragg runs under (OMP_WAIT_POLICY=PASSIVE), for
# the tests' own renders and the child processes they start. Spinning OpenMP threads of the test
# process slowed a child's banded 4096x4096 run from 16 s to 159 s on two cores.
import nanobragg.cli.entry  # noqa: E402, F401

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def private_kernel_cache(tmp_path_factory):
    old = {k: os.environ.get(k) for k in ("NB_CACHE_DIR", "NUMBA_CACHE_DIR")}
    os.environ["NB_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernel-cache"))
    os.environ["NUMBA_CACHE_DIR"] = str(tmp_path_factory.mktemp("numba-cache"))
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def built_kernels(tmp_path_factory):
    """Compiled kernels a test built in a cache of its own (and checked that it built), for a later module
    that renders the same kind of run to load instead of building again (tests/test_precision_compiled.py:
    the kernel of tests/test_compile_policy.py's real build)."""
    return tmp_path_factory.mktemp("built-kernels")


@pytest.fixture(scope="session", autouse=True)
def background_builds(request, private_kernel_cache, tmp_path_factory):
    """For each module with a selected test asking for ``background_kernels``: its ``_BUILDER`` script,
    started before the session's first test in a process of its own, with a kernel cache of its own (a
    build is one thread's work: on two cores it overlaps the modules before it, which leave a core mostly
    idle). {module name: (process, its kernel cache, its log)}; the module's background_kernels waits."""
    here = Path(__file__).resolve().parent
    path = [str(here), str(here.parent / "src"), os.environ.get("PYTHONPATH", "")]
    modules = {item.module for item in request.session.items
               if getattr(item, "module", None) is not None and "background_kernels" in item.fixturenames}
    started = {}
    try:
        for module in sorted(modules, key=lambda m: m.__name__):
            folder = tmp_path_factory.mktemp("background-builds")
            env = {**os.environ, "NB_CACHE_DIR": str(folder / "kernels"),
                   "PYTHONPATH": os.pathsep.join(filter(None, path))}
            with open(folder / "log.txt", "wb") as log:
                proc = subprocess.Popen([sys.executable, "-c", module._BUILDER, str(folder)], cwd=folder, env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
            started[module.__name__] = (proc, folder / "kernels", folder / "log.txt")
        yield started
    finally:
        for proc, _, _ in started.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
