"""Test-session settings: the command's OpenMP thread policy, a private kernel cache, so compiled
kernels left by earlier runs on this machine never change which engine a test exercises, and a
private numba cache (compiled once per session) that tests changing NB_CACHE_DIR do not move, and a
folder where a test that built a kernel in a cache of its own leaves it for later tests of the same kind."""
import os
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
