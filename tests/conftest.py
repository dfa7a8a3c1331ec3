"""Test-session settings: a private kernel cache, so compiled kernels left by earlier runs on this
machine never change which engine a test exercises."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def private_kernel_cache(tmp_path_factory):
    old = os.environ.get("NB_CACHE_DIR")
    os.environ["NB_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernel-cache"))
    yield
    if old is None:
        os.environ.pop("NB_CACHE_DIR", None)
    else:
        os.environ["NB_CACHE_DIR"] = old
