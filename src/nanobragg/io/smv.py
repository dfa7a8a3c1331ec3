"""SMV (ADSC) images: header formatting, writing, reading, int conversion.

The header is ASCII: ``{`` newline, ``KEY=VALUE;`` lines, ``}`` and a form
feed, then blanks up to HEADER_BYTES (512); the pixel data follows as
unsigned 16-bit integers, fast index varying fastest.  nanoBragg writes one
line, DIALS_ORIGIN, without the closing semicolon; that is reproduced.
"""

import math
import sys

import numpy as np

from ..units import RTD  # C's radians-to-degrees factor, 180.0*M_1_PI
from .atomic import atomic_write
from .cformat import c_g
from .errors import InputError, read_bytes

#: header size nanoBragg always writes.
HEADER_BLOCK = 512

#: keys written without the trailing semicolon.
_NO_SEMICOLON = frozenset({"DIALS_ORIGIN"})


def native_byte_order():
    """``"little_endian"`` or ``"big_endian"``, the BYTE_ORDER of this machine."""
    return "little_endian" if sys.byteorder == "little" else "big_endian"


def smv_header_values(*, fpixels, spixels, pixel_size, distance, wavelength,
                      xbeam, ybeam, fbeam, sbeam, detsize_s, dials_origin,
                      orgx, orgy, close_distance, phi0, osc, twotheta,
                      noise=False, byte_order=None):
    """Ordered header values of nanoBragg's int (or noise) image.

    Arguments are C's variables in SI units (metres, radians): lengths are
    turned into mm, the wavelength into Angstrom and angles into degrees
    with C's exact expressions.  ``noise=True`` gives the noise image's
    DENZO lines, which add ``0.0*pixel`` instead of subtracting it (that
    turns a -0.0 beam centre into +0.0).  Returns a dict for
    format_smv_header; HEADER_BYTES is added by the formatter.
    """
    zero = 0.0 * pixel_size
    denzo_x = (sbeam + zero) * 1000.0 if noise else (sbeam - zero) * 1000.0
    denzo_y = (fbeam + zero) * 1000.0 if noise else (fbeam - zero) * 1000.0
    return {
        "DIM": 2,
        "BYTE_ORDER": byte_order or native_byte_order(),
        "TYPE": "unsigned_short",
        "SIZE1": int(fpixels),
        "SIZE2": int(spixels),
        "PIXEL_SIZE": pixel_size * 1000.0,
        "DISTANCE": distance * 1000.0,
        "WAVELENGTH": wavelength * 1e10,
        "BEAM_CENTER_X": xbeam * 1000.0,
        "BEAM_CENTER_Y": ybeam * 1000.0,
        "ADXV_CENTER_X": fbeam * 1000.0,
        "ADXV_CENTER_Y": (detsize_s - sbeam) * 1000.0,
        "MOSFLM_CENTER_X": (sbeam - 0.5 * pixel_size) * 1000.0,
        "MOSFLM_CENTER_Y": (fbeam - 0.5 * pixel_size) * 1000.0,
        "DENZO_X_BEAM": denzo_x,
        "DENZO_Y_BEAM": denzo_y,
        "DIALS_ORIGIN": tuple(float(v) for v in dials_origin),
        "XDS_ORGX": float(orgx),
        "XDS_ORGY": float(orgy),
        "CLOSE_DISTANCE": close_distance * 1000.0,
        "PHI": phi0 * RTD,
        "OSC_START": phi0 * RTD,
        "OSC_RANGE": osc * RTD,
        "TWOTHETA": twotheta * RTD,
        "DETECTOR_SN": "000",
        "BEAMLINE": "fake",
    }


def _format_value(value):
    """C-style text of one header value."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return "%d" % value
    if isinstance(value, (tuple, list, np.ndarray)):
        return ",".join(_format_value(v) for v in value)
    return c_g(value)


def _header_text(values, header_bytes):
    """Header lines from ``{`` to the closing ``}\\f``, without padding."""
    lines = ["{", "HEADER_BYTES=%d;" % header_bytes]
    for key, value in values.items():
        if key == "HEADER_BYTES":
            continue
        end = "" if key in _NO_SEMICOLON else ";"
        lines.append(f"{key}={_format_value(value)}{end}")
    return ("\n".join(lines) + "\n}\f").encode("ascii")


def format_smv_header(values):
    """Header bytes for ``values`` (dict, in order), padded with blanks.

    Strings are used verbatim, ints with ``%d``, floats with C's ``%g`` and
    sequences as comma-separated ``%g``.  HEADER_BYTES always comes first
    and is computed (any given value is ignored): 512, or the next multiple
    of 512 if the text would not fit.
    """
    size = HEADER_BLOCK
    text = _header_text(values, size)
    while len(text) > size:
        size = HEADER_BLOCK * math.ceil(len(text) / HEADER_BLOCK)
        text = _header_text(values, size)
    return text + b" " * (size - len(text))


def _data_dtype(byte_order):
    """numpy dtype of unsigned shorts in an SMV BYTE_ORDER."""
    if byte_order == "little_endian":
        return np.dtype("<u2")
    if byte_order == "big_endian":
        return np.dtype(">u2")
    raise ValueError(f"unknown BYTE_ORDER {byte_order!r}")


def smv_header(header_values, shape):
    """(header bytes, pixel dtype) of an SMV file of ``shape`` (slow, fast) uint16 pixels.

    SIZE1/SIZE2 are taken from ``shape`` (overriding the dict) and the pixels
    are stored in the dict's BYTE_ORDER (default: this machine's).
    """
    values = dict(header_values)
    values.setdefault("BYTE_ORDER", native_byte_order())
    values["SIZE1"], values["SIZE2"] = int(shape[1]), int(shape[0])
    return format_smv_header(values), _data_dtype(values["BYTE_ORDER"])


def smv_parts(header_values, data):
    """(header bytes, pixel array) of an SMV file holding ``data`` (uint16, (slow, fast)); see smv_header."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"SMV data must be 2-D, got shape {data.shape}")
    header, dtype = smv_header(header_values, data.shape)
    return header, np.ascontiguousarray(data, dtype=dtype)


def smv_bytes(header_values, data):
    """The bytes of an SMV file: header plus ``data``; see smv_parts."""
    header, pixels = smv_parts(header_values, data)
    return header + pixels.tobytes()


def write_smv(path, header_values, data):
    """Write an SMV image without copying the pixels; see smv_parts and atomic_write."""
    header, pixels = smv_parts(header_values, data)
    atomic_write(path, header, memoryview(pixels).cast("B"))


def parse_smv_header(text):
    """``{KEY: VALUE}`` from header text; keys exact, last duplicate wins.

    Lines look like ``KEY=VALUE;`` (the semicolon optional); blanks around
    key and value are dropped.  Parsing stops at the closing ``}``.
    """
    header = {}
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("}"):
            break
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if value.endswith(";"):
            value = value[:-1].rstrip()
        header[key.strip()] = value
    return header


def _header_int(path, header, key):
    """Integer value of header ``key``; InputError if missing or malformed."""
    try:
        return int(float(header[key]))
    except KeyError:
        raise InputError(path, f"SMV header has no {key}") from None
    except ValueError:
        raise InputError(path, f"SMV header {key}={header[key]!r} is not a number") from None


def _header_size(path, raw):
    """HEADER_BYTES of an SMV file from its first block."""
    if not raw.startswith(b"{"):
        raise InputError(path, "not an SMV file (does not start with '{')")
    first = raw[:HEADER_BLOCK].decode("latin-1")
    size = _header_int(path, parse_smv_header(first), "HEADER_BYTES")
    if size < 1:
        raise InputError(path, f"SMV HEADER_BYTES={size} is not positive")
    if len(raw) < size:
        raise InputError(path, f"SMV header truncated: file has {len(raw)} bytes, HEADER_BYTES={size}")
    return size


def _image_shape(path, header):
    """``(height, width)`` from SIZE2/SIZE1 (or DETECTOR_DIMENSIONS)."""
    if "SIZE1" not in header and "DETECTOR_DIMENSIONS" in header:
        side = _header_int(path, header, "DETECTOR_DIMENSIONS")
        return side, side
    width = _header_int(path, header, "SIZE1")
    height = _header_int(path, header, "SIZE2")
    if width < 1 or height < 1:
        raise InputError(path, f"SMV image size {width}x{height} is empty")
    return height, width


def read_smv(path):
    """Read an SMV image: ``(header dict of str, uint16 array (height, width))``.

    The data are converted from the file's BYTE_ORDER to native order.
    TYPE, when present, must be unsigned_short.  InputError for a missing
    file, a header shorter than HEADER_BYTES, missing sizes or byte order,
    or fewer than SIZE1*SIZE2 pixels.  Bytes after the pixels are ignored.
    """
    raw = read_bytes(path)
    size = _header_size(path, raw)
    header = parse_smv_header(raw[:size].decode("latin-1"))
    if header.get("TYPE", "unsigned_short") != "unsigned_short":
        raise InputError(path, f"SMV TYPE={header['TYPE']} is not supported (unsigned_short only)")
    try:
        dtype = _data_dtype(header.get("BYTE_ORDER"))
    except ValueError:
        raise InputError(path, f"SMV BYTE_ORDER={header.get('BYTE_ORDER')!r} is not little_endian/big_endian") from None
    height, width = _image_shape(path, header)
    needed = 2 * width * height
    if len(raw) - size < needed:
        raise InputError(path, f"SMV data truncated: {len(raw) - size} bytes, expected {needed}")
    data = np.frombuffer(raw, dtype=dtype, count=width * height, offset=size)
    return header, data.astype(np.uint16).reshape(height, width)


def auto_int_scale(max_I, user_scale=0.0):
    """C's intfile scale: ``user_scale`` if > 0, else 55000/max_I (1 if max_I <= 0)."""
    if not user_scale <= 0.0:
        return user_scale
    return 55000.0 / max_I if max_I > 0.0 else 1.0


#: Pixels per block of the int conversion (its float64 intermediates stay in cache).
INT_BLOCK = 1 << 16


def int_image_from_float(float_img, scale, adc=40.0, roi=None, kernel=None):
    """uint16 image as C converts the float image for the int file (see c_int_values).

    Pixels outside ``roi`` (see zero_outside_roi) are 0. Converted a block
    at a time, so the float64 intermediates stay in cache: images can be
    tens of millions of pixels. ``kernel(values, scale, adc, out)``, when
    given, converts blocks of its own fixed size (the compiled form of
    c_int_values; see nanobragg.engine.compiled.compiled_int_kernel).
    """
    import torch

    from ..engine.int_values import c_int_values  # torch loads only when an int image is made

    img = np.ascontiguousarray(float_img, dtype=np.float32)
    out = np.empty(img.shape, dtype=np.uint16)
    src, dst = torch.from_numpy(img.reshape(-1)), torch.from_numpy(out.reshape(-1))
    if kernel is not None:
        kernel(src, float(scale), float(adc), dst)
    else:
        for start in range(0, src.numel(), INT_BLOCK):
            block = slice(start, start + INT_BLOCK)
            dst[block].copy_(c_int_values(src[block], float(scale), float(adc)))
    zero_outside_roi(out, roi)
    return out


def zero_outside_roi(image, roi):
    """Set pixels outside C's inclusive ROI (xmin, xmax, ymin, ymax) to 0, in place; None keeps all."""
    if roi is None:
        return
    xmin, xmax, ymin, ymax = roi
    image[:max(ymin, 0)] = 0
    image[max(ymax + 1, 0):] = 0
    image[:, :max(xmin, 0)] = 0
    image[:, max(xmax + 1, 0):] = 0
