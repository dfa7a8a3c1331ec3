"""Domain checks the C program does not make (it renders garbage instead).

The values themselves are checked by the shared rules of
:mod:`nanobragg.config.checks`; an error names the flag, or the file and
header key, that set the value (``settings.origins``).
"""
from __future__ import annotations

import os

from ..config import checks
from ..errors import UsageError
from ..geometry.detector import pixel_counts
from .settings import Settings


def _check_settings(settings: Settings) -> None:
    """Every value of the command line and the -img/-mask headers, by the shared rules, named by origin."""
    exp, labels = settings.experiment, settings.origins
    checks.check_experiment(exp, labels)
    checks.check_section("output", settings.output, labels)
    checks.check_section("run", settings.run, labels)
    fpixels, spixels, _, _ = pixel_counts(exp.detector)
    checks.check_pixel("output.trace_pixel", settings.output.trace_pixel, fpixels, spixels, labels, slow_first=True)
    checks.check_pixel("output.printout_pixel", settings.output.printout_pixel, fpixels, spixels, labels)
    itemsize = 8 if settings.run.dtype == "float64" else 4
    budget = settings.budget_bytes()
    if settings.run.max_memory_mb:
        checks.check_budget(budget, labels.get("run.max_memory_mb", "-max_memory"))
    which = "memory budget (-max_memory)" if settings.run.max_memory_mb else "default memory budget"
    # the image is written in bands; the engine's chunks get half the budget (cli/simulate.render)
    checks.check_memory(exp, itemsize, budget // 2, labels, f"engine's half of the {which}", whole_image=False)


def validate(settings: Settings) -> None:
    """Refuse bad values (see :mod:`nanobragg.config.checks`: ranges, a mask of the wrong size, ...) and
    unwritable output folders."""
    _check_settings(settings)
    out = settings.output
    for path in (out.floatfile, out.intfile, out.pgmfile if out.write_pgm else None,
                 out.noisefile if out.calculate_noise else None, out.pngfile):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise UsageError(f"cannot write {path}: folder {folder} does not exist")
