"""``-trace_pixel S F``: print every intermediate value of one pixel's calculation.

One line per quantity, ``TRACE name value...``, floats at full precision;
the last line is ``TRACE final_pixel_value <value>``, the number the image
holds at that pixel. See :mod:`nanobragg.engine.trace` for the quantities.
"""
from __future__ import annotations

from ..engine.trace import format_trace, trace_pixel
from ..resolve import Resolved
from .settings import Settings


def _image_value(image, slow: int, fast: int):
    """The rendered value at (slow, fast) as a float, or None without an image."""
    return None if image is None else float(image[slow][fast])


def traced_lines(res: Resolved, slow: int, fast: int, image=None):
    """The trace of one pixel, matching C's interpolation state to the image when possible.

    C switches tricubic interpolation off for good at the first stencil that
    leaves the grid; a pixel rendered after that sees it off. The state on
    entry is therefore either the initial one or off: the one whose value
    is closer to the image's value is kept (the image may be single precision).
    """
    lines = trace_pixel(res.inputs, slow, fast)
    want = _image_value(image, slow, fast)
    if want is None or not res.inputs.interpolate or lines[-1][1][0] == want:
        return lines
    other = trace_pixel(res.inputs, slow, fast, interp_on=False)
    return other if abs(other[-1][1][0] - want) < abs(lines[-1][1][0] - want) else lines


def print_trace(res: Resolved, settings: Settings, image, log=print) -> None:
    """Print the trace of ``settings.output.trace_pixel`` (slow, fast) through ``log``, if one was asked for.

    ``image`` is the rendered (slow, fast) image (tensor or array) or None.
    A pixel off the detector is reported and skipped; a pixel outside the
    ROI or masked is traced but noted, since the image holds 0 there.
    """
    where = settings.output.trace_pixel
    if where is None:
        return
    slow, fast = (int(v) for v in where)
    g = res.detector
    if not (0 <= slow < g.spixels and 0 <= fast < g.fpixels):
        log(f"WARNING: -trace_pixel {slow} {fast} is off the {g.fpixels}x{g.spixels} detector; nothing traced")
        return
    lines = traced_lines(res, slow, fast, image)
    want = _image_value(image, slow, fast)
    if want is not None and want == 0.0 and lines[-1][1][0] != 0.0:
        log(f"note: pixel {slow} {fast} is outside the ROI or masked; the image holds 0 there")
    for text in format_trace(lines):
        log(text)


def print_printout(res: Resolved, settings: Settings, image, log=print) -> None:
    """C's ``-printout_pixel F S`` block (fast index first), in C's words, from the pixel's trace.

    C prints the values of its last loop iteration for that pixel; the
    quantities here are those of the first (layer, sub-pixel, source,
    orientation), as ``-trace_pixel`` reports them. ``-printout`` without a
    pixel (C's dump of every pixel) prints nothing: use ``-trace_pixel``.
    """
    where = settings.output.printout_pixel
    g = res.detector
    if not settings.output.printout or where is None:
        return
    fast, slow = (int(v) for v in where)
    if not (0 <= slow < g.spixels and 0 <= fast < g.fpixels):
        return
    t = dict(traced_lines(res, slow, fast, image))
    stol = float(t["stol"][0])
    h, n = t["hkl_frac"], t["hkl_nearest"]
    log("%4d %4d : stol = %g or %g" % (fast, slow, stol, stol * 1e-10))
    log("at %g %g %g" % tuple(t["pixel_pos"]))
    log("hkl= %f %f %f  hkl0= %d %d %d" % (*h, *n))
    log(" F_cell=%g  F_latt=%g   I = %g" % (t["F_cell"][0], t["F_latt"][0], t["I"][0]))
    for name, key in (("I/steps", None), ("polar  ", "polar"), ("omega  ", "omega"),
                      ("capfrac", "capture_fraction"), ("pixel  ", "final_pixel_value")):
        value = t["I"][0] / t["steps"][0] if key is None else t[key][0]
        log("%s %15.10g" % (name, value))
    log("real-space cell vectors (Angstrom):")
    log("     %-10s  %-10s  %-10s" % ("a", "b", "c"))
    for axis, i in (("X", 0), ("Y", 1), ("Z", 2)):
        log("%s: %11.8f %11.8f %11.8f" % (axis, t["a"][i] * 1e10, t["b"][i] * 1e10, t["c"][i] * 1e10))
