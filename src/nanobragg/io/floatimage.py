"""Raw float images (``-floatfile``): 4-byte little-endian floats, no header."""

import numpy as np

from .atomic import atomic_write
from .errors import InputError, read_bytes

_DTYPE = np.dtype("<f4")


def float_bytes(img):
    """The file's bytes of ``img`` (any shape, C order) as a bytes-like view: float32 little-endian,
    rounded like C's ``float`` image."""
    return memoryview(np.ascontiguousarray(img, dtype=_DTYPE)).cast("B")


def write_float_image(path, img):
    """Write ``img`` ((slow, fast); any shape is written in C order) as a float file (see atomic_write)."""
    atomic_write(path, float_bytes(img))


def read_float_image(path, shape=None):
    """Read a float image as float32 (native order).

    With ``shape`` (e.g. ``(spixels, fpixels)``) the file must hold exactly
    that many values and the array is reshaped; without it a flat array is
    returned.  InputError for a missing file, a size that is not a multiple
    of 4 bytes, or a size that does not match ``shape``.
    """
    raw = read_bytes(path)
    if len(raw) % _DTYPE.itemsize:
        raise InputError(path, f"size {len(raw)} bytes is not a whole number of 4-byte floats")
    data = np.frombuffer(raw, dtype=_DTYPE).astype(np.float32)
    if shape is None:
        return data
    shape = tuple(int(n) for n in shape)
    if data.size != int(np.prod(shape)):
        raise InputError(path, f"holds {data.size} floats, expected {shape} = {int(np.prod(shape))}")
    return data.reshape(shape)
