"""Domain checks the C program does not make (it renders garbage instead)."""
from __future__ import annotations

import math
import os

from .parser import UsageError
from .settings import Settings


def _check_mask(settings: Settings) -> None:
    """The -mask image must have the detector's pixel counts (flags after it may change them)."""
    det = settings.experiment.detector
    if det.mask is None:
        return
    masks, maskf = det.mask.shape
    if (det.spixels, det.fpixels) != (masks, maskf):
        raise UsageError(f"-mask {settings.files.mask}: mask has {maskf}x{masks} pixels, "
                         f"the detector {det.fpixels}x{det.spixels}")


def validate(settings: Settings) -> None:
    """Refuse non-positive sizes and counts, inverted ROIs, a mask of the wrong size and unwritable output folders."""
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
    _check_mask(settings)
    out = settings.output
    for path in (out.floatfile, out.intfile, out.pgmfile if out.write_pgm else None,
                 out.noisefile if out.calculate_noise else None, out.pngfile):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise UsageError(f"cannot write {path}: folder {folder} does not exist")
