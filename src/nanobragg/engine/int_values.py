"""C's conversion of the float image to the int file's pixels, as one formula.

Used by the SMV writer (:func:`nanobragg.io.smv.int_image_from_float`) and
traced by the compiled int kernel (:mod:`nanobragg.engine.compiled`), so both
paths give the same bits.
"""
import torch


def c_int_values(values, scale, adc):
    """C's int-file values of float32 ``values`` (a torch tensor), as float32 whole numbers.

    ``test = value*scale + adc`` in double, clipped to [0, 65535], then
    ``floorf(test + 0.5)``: the sum is rounded to float32 first, and the
    floor is the truncation of the caller's integer conversion (every value
    is at least 0.5). NaN fails both of C's tests and becomes 0, as on x86-64.
    """
    test = values.to(torch.float64) * scale + adc
    test = (test.clamp(0.0, 65535.0) + 0.5).to(torch.float32)
    return torch.where(test == test, test, 0.0)  # not isnan: compiled, a comparison stays vectorised
