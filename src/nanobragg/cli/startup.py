"""The moment torch has loaded: where the start-up time that ``NB_TIMING=1`` reports begins.

Imported first by the command (:mod:`nanobragg.cli.main`), so that set-up
after ``import torch`` can be timed by the render (:mod:`nanobragg.cli.simulate`).
"""
import time

import torch  # noqa: F401  (loaded here, before the clock is read)

#: time.perf_counter() once torch is imported.
TORCH_READY = time.perf_counter()
