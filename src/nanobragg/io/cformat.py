"""C printf-compatible number formatting used by the nanobragg writers."""

import math


def c_g(value):
    """Format ``value`` like glibc's ``printf("%g")``.

    Python's ``'%g'`` already matches C for finite numbers and infinities;
    only a NaN with its sign bit set differs (glibc prints ``-nan``).
    """
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return "%g" % value
