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
