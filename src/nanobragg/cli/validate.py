"""Domain checks the C program does not make (it renders garbage instead)."""
from __future__ import annotations

import math
import os

from .parser import UsageError
from .settings import Settings


def validate(settings: Settings) -> None:
    """Refuse non-positive sizes and counts, inverted ROIs and unwritable output folders."""
    det = settings.experiment.detector
    if det.roi is not None:
        xmin, xmax, ymin, ymax = det.roi
        if xmin > xmax or ymin > ymax:
            raise UsageError("-roi: minimum exceeds maximum")
    for name, value in (("-detsize", det.detsize_f), ("-detsize", det.detsize_s)):
        if not value > 0 or not math.isfinite(value):
            raise UsageError(f"{name}: must be positive")
    if settings.experiment.sampling.oversample == 0:
        raise UsageError("-oversample: must be positive")
    out = settings.output
    for path in (out.floatfile, out.intfile, out.pgmfile if out.write_pgm else None,
                 out.noisefile if out.calculate_noise else None, out.pngfile):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise UsageError(f"cannot write {path}: folder {folder} does not exist")
