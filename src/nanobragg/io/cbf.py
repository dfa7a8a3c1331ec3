"""Pilatus mini-CBF images: the header DIALS's ``FormatCBFMiniPilatus`` reads, byte-offset data by fabio.

A mini-CBF file is a CIF text header (``_array_data.header_contents``: one
``# Key value`` line per Pilatus setting), then a MIME-like binary section
whose data are the image's signed 32-bit integers, fast index varying
fastest, compressed with CBF's byte-offset scheme (each pixel stored as its
difference from the previous one, in 1, 3 or 7 bytes). The compression is
done by fabio (``fabio.compression.compByteOffset``), a band of rows at a
time: each band is encoded after the last pixel of the previous one, so
the bands' codes joined are the whole image's code. The compressed bands
go to an unnamed scratch file, and the CBF is written from it at the end,
once the binary size and MD5 that its header gives are known: memory stays
one band's worth at any image size.

Units in the header are the Pilatus convention's: metres, seconds,
Angstrom, degrees, and the beam centre in pixels from the outer corner of
the first pixel along fast and slow (``Beam_xy``: DIALS places the beam at
``Beam_xy * Pixel_size``). The header only describes a flat detector
facing the beam (fast = +x, slow = -y in DIALS's frame); tilted detectors
need NXmx (:mod:`nanobragg.io.nexus`).
"""
from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ..units import RTD
from .atomic import OutputFile, atomic_write
from .errors import InputError

#: The four bytes that start a CBF binary section's data.
STARTER = b"\x0c\x1a\x04\xd5"
#: Zero bytes after the data, as Pilatus detectors write them.
PADDING = 4095
#: Pixel values from which a pixel is overloaded (the SMV int image's largest value, 2^16 - 1).
COUNT_CUTOFF = 65535
#: Bytes copied at a time from the scratch file into the CBF.
COPY_BLOCK = 1 << 24
CRLF = "\r\n"


def require_fabio(flag: str = "-cbffile"):
    """The fabio compression module, or InputError saying what to install."""
    try:
        from fabio import compression
    except ImportError:
        raise InputError(f"{flag} needs fabio: pip install 'nanobragg[formats]'") from None
    return compression


def _n(value) -> str:
    """A number as the header writes it: 10 significant digits (exact for float32 values)."""
    return "%.10g" % float(value)


def timestamp() -> str:
    """ISO time of the image: $SOURCE_DATE_EPOCH when set (reproducible files), else now, UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
            else datetime.datetime.now(datetime.timezone.utc))
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (when.microsecond // 1000)


@dataclass
class PilatusHeader:
    """The run's values for a mini-CBF header, SI units (metres, seconds, radians)."""

    pixel_size: float  #: m
    thickness: float  #: sensor thickness, m
    exposure: float  #: s
    wavelength: float  #: m
    distance: float  #: sample to the beam spot on the detector, m
    beam_f: float  #: beam spot along the fast axis from the first pixel's corner, m
    beam_s: float  #: along the slow axis, m
    start_angle: float  #: spindle angle at the start, rad
    increment: float  #: oscillation range, rad
    twotheta: float = 0.0  #: rad
    count_cutoff: int = COUNT_CUTOFF
    time: str = ""  #: ISO time; default now (see timestamp)

    def lines(self) -> list:
        """The ``# Key value`` lines of ``_array_data.header_contents``, in the Pilatus order."""
        deg = RTD
        pix = _n(self.pixel_size)
        return [
            "# Detector: PILATUS (nanoBragg simulation), S/N 00-0000",
            f"# {self.time or timestamp()}",
            f"# Pixel_size {pix} m x {pix} m",
            f"# Silicon sensor, thickness {_n(self.thickness)} m",
            f"# Exposure_time {_n(self.exposure)} s",
            f"# Exposure_period {_n(self.exposure)} s",
            "# Tau = 0 s",
            f"# Count_cutoff {int(self.count_cutoff)} counts",
            "# Threshold_setting: 0 eV",
            "# Gain_setting: not set (vrf = 0.000)",
            "# N_excluded_pixels = 0",
            "# Excluded_pixels: (nil)",
            "# Flat_field: (nil)",
            "# Trim_file: (nil)",
            "# Image_path: (nil)",
            f"# Wavelength {_n(self.wavelength * 1e10)} A",
            f"# Detector_distance {_n(self.distance)} m",
            f"# Beam_xy ({_n(self.beam_f / self.pixel_size)}, {_n(self.beam_s / self.pixel_size)}) pixels",
            "# Flux 0",
            "# Filter_transmission 1.0000",
            f"# Start_angle {_n(self.start_angle * deg)} deg.",
            f"# Angle_increment {_n(self.increment * deg)} deg.",
            f"# Detector_2theta {_n(self.twotheta * deg)} deg.",
            "# Alpha 0.0000 deg.",
            "# Kappa 0.0000 deg.",
            f"# Phi {_n(self.start_angle * deg)} deg.",
            f"# Phi_increment {_n(self.increment * deg)} deg.",
            "# Chi 0.0000 deg.",
            "# Chi_increment 0.0000 deg.",
            "# Oscillation_axis X, CW",
            "# N_oscillations 1",
        ]


def cif_text(header: PilatusHeader, name: str = "nanobragg") -> bytes:
    """The CIF text before the binary section, up to and including ``_array_data.data`` and its ``;``."""
    lines = ["###CBF: VERSION 1.5, CBFlib v0.7.8 - PILATUS detectors (written by nanoBragg)", "",
             f"data_{name}", "", '_array_data.header_convention "PILATUS_1.2"',
             "_array_data.header_contents", ";", *header.lines(), ";", "", "_array_data.data", ";", ""]
    return CRLF.join(lines).encode("ascii")


def binary_header(size: int, md5: bytes, shape: tuple) -> bytes:
    """The binary section's MIME header and the data STARTER, for ``size`` bytes of byte-offset data."""
    slow, fast = shape
    lines = ["--CIF-BINARY-FORMAT-SECTION--", "Content-Type: application/octet-stream;",
             '     conversions="x-CBF_BYTE_OFFSET"', "Content-Transfer-Encoding: BINARY",
             f"X-Binary-Size: {size}", "X-Binary-ID: 1", 'X-Binary-Element-Type: "signed 32-bit integer"',
             "X-Binary-Element-Byte-Order: LITTLE_ENDIAN", "Content-MD5: " + md5.decode("ascii"),
             f"X-Binary-Number-of-Elements: {slow * fast}", f"X-Binary-Size-Fastest-Dimension: {fast}",
             f"X-Binary-Size-Second-Dimension: {slow}", f"X-Binary-Size-Padding: {PADDING}", "", ""]
    return CRLF.join(lines).encode("ascii") + STARTER


def trailer() -> bytes:
    """What follows the data: the padding, the section's end and the closing ``;``."""
    return b"\x00" * PADDING + CRLF.join(["", "--CIF-BINARY-FORMAT-SECTION----", ";", ""]).encode("ascii")


def _code_length(value: int) -> int:
    """Bytes of the byte-offset code of one difference (fabio's thresholds)."""
    a = abs(int(value))
    return 1 if a <= 127 else 3 if a <= 32767 else 7 if a <= 2147483647 else 15


class ByteOffsetEncoder:
    """Byte-offset code of an image given as successive bands of rows (fabio encodes each band).

    ``encode(values)`` returns the code of the band's pixels continuing from
    the previous band's last pixel; ``size`` and ``md5`` cover every code so far.
    """

    def __init__(self):
        self._comp = require_fabio().compByteOffset
        self.last = 0
        self.size = 0
        self._md5 = hashlib.md5()

    def encode(self, values: np.ndarray) -> bytes:
        flat = np.ascontiguousarray(values, dtype=np.int32).reshape(-1)
        if flat.size == 0:
            return b""
        code = bytes(self._comp(np.concatenate([np.array([self.last], np.int32), flat])))
        code = code[_code_length(self.last):]  # drop the code of the previous pixel itself
        self.last = int(flat[-1])
        self.size += len(code)
        self._md5.update(code)
        return code

    @property
    def md5(self) -> bytes:
        """Base64 MD5 of the code, as Content-MD5 gives it."""
        import base64
        return base64.b64encode(self._md5.digest())


class CbfWriter:
    """A mini-CBF written band by band into an OutputFile (see the module docstring).

    ``band(values)`` takes the next rows (any integer dtype), ``finish()``
    writes the file, ``close()`` discards the scratch file (always call it).
    """

    def __init__(self, out: OutputFile, shape: tuple, header: PilatusHeader):
        self.out, self.shape, self.header = out, tuple(shape), header
        self._encoder = ByteOffsetEncoder()
        self._scratch = OutputFile(os.path.join(tempfile.gettempdir(), "nanobragg-cbf-scratch.bin"))
        self._rows = 0

    def band(self, values: np.ndarray) -> None:
        code = self._encoder.encode(values)
        self._scratch.write_at(code, self._encoder.size - len(code))
        self._rows += values.shape[0]

    def finish(self) -> None:
        if self._rows != self.shape[0]:
            raise ValueError(f"CBF given {self._rows} rows of {self.shape[0]}")
        head = cif_text(self.header) + binary_header(self._encoder.size, self._encoder.md5, self.shape)
        self.out.write_at(head, 0)
        offset, done = len(head), 0
        buffer = bytearray(min(COPY_BLOCK, max(self._encoder.size, 1)))
        while done < self._encoder.size:
            view = memoryview(buffer)[:min(len(buffer), self._encoder.size - done)]
            self._scratch.read_into(view, done)
            self.out.write_at(view, offset)
            offset, done = offset + len(view), done + len(view)
        self.out.write_at(trailer(), offset)

    def close(self) -> None:
        self._scratch.abort()


def cbf_bytes(data: np.ndarray, header: PilatusHeader) -> bytes:
    """The bytes of a mini-CBF holding ``data`` (2-D integers, (slow, fast)) in one piece."""
    data = np.asarray(data)
    encoder = ByteOffsetEncoder()
    code = encoder.encode(data)
    return cif_text(header) + binary_header(encoder.size, encoder.md5, data.shape) + code + trailer()


def write_cbf(path, data: np.ndarray, header: PilatusHeader) -> None:
    """Write a mini-CBF of ``data`` (2-D integers, (slow, fast)) atomically; see cbf_bytes."""
    atomic_write(path, cbf_bytes(data, header))
