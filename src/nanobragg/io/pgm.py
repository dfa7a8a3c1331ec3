"""PGM (P5) preview image written by nanoBragg."""

import numpy as np

from .atomic import atomic_write
from .cformat import c_g
from .smv import zero_outside_roi


def auto_pgm_scale(intfile_scale, rmsd, user_scale=0.0):
    """C's PGM scale: ``user_scale`` if > 0, else 250/(5*rmsd), or ``intfile_scale`` if rmsd <= 0.

    ``intfile_scale`` is the scale actually used for the int image (after
    auto_int_scale).
    """
    if not user_scale <= 0.0:
        return user_scale
    return 250.0 / (5.0 * rmsd) if rmsd > 0.0 else intfile_scale


def pgm_header(width, height, pgm_scale):
    """The PGM header C writes, including the ``# pixels scaled by`` comment."""
    return ("P5\n%d %d\n# pixels scaled by %s\n255\n" % (width, height, c_g(pgm_scale))).encode("ascii")


def pgm_pixels(float_img, pgm_scale, roi=None):
    """uint8 (slow, fast) pixels as C computes them.

    ``value*pgm_scale`` in double, capped at 255, then converted like C's
    ``(unsigned char)`` cast on x86-64: truncation toward zero to a 32-bit
    int whose low byte is kept (so a small negative value wraps, NaN gives
    0).  Pixels outside ``roi`` (see smv.zero_outside_roi) are 0.
    """
    img = np.asarray(float_img, dtype=np.float32)
    test = img.astype(np.float64) * float(pgm_scale)
    test = np.where(test > 255.0, 255.0, test)
    bad = ~np.isfinite(test) | (test < -2.0**31)
    truncated = np.trunc(np.where(bad, 0.0, test)).astype(np.int64)
    out = (truncated & 0xFF).astype(np.uint8)
    zero_outside_roi(out, roi)
    return out


def pgm_bytes(float_img, pgm_scale, roi=None):
    """The whole PGM file for a (slow, fast) float image."""
    pixels = pgm_pixels(float_img, pgm_scale, roi)
    height, width = pixels.shape
    return pgm_header(width, height, pgm_scale) + pixels.tobytes()


def write_pgm(path, float_img, pgm_scale, roi=None):
    """Write the PGM preview (see atomic_write)."""
    atomic_write(path, pgm_bytes(float_img, pgm_scale, roi))
