"""The ``noisify`` command: a photons-per-pixel float image -> detector images, as the C program makes them.

Flags (same table design as :mod:`nanobragg.cli.flags`, read by
:func:`nanobragg.cli.parser.split_flags`) -> image size and header -> the C
pipeline of :func:`nanobragg.physics.detector_effects.noisify_c` (every random
draw in C's order) -> int, PGM and noise files, all checked and opened before
the work and published together. Bad input: one line on stderr, exit 2, no file touched.
"""
from __future__ import annotations

from . import entry  # noqa: F401  (first: the OpenMP thread policy before torch loads)

# isort: split
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..io import InputError, OutputSet
from ..io.errors import read_bytes
from ..io.pgm import pgm_header
from ..io.smv import format_smv_header, parse_smv_header
from . import units as u
from .flags import Flag
from .parser import apply_flag, split_flags

PROG = "noisify"


def _div(factor):
    def convert(text):
        return u.number(text) / factor
    return convert


@dataclass
class NoisifySettings:
    """The C program's variables, C's defaults and units (m for lengths, Angstrom for the header's lambda)."""

    floatfile: str | None = None
    header: str | None = None
    intfile: str = "intimage.img"
    pgmfile: str = "image.pgm"
    noisefile: str = "noiseimage.img"
    calculate_noise: bool = True
    write_pgm: bool = True
    distance: float = 100.0e-3
    detsize_x: float = 102.4e-3
    detsize_y: float = 102.4e-3
    pixel: float = 0.1e-3
    xbeam: float = -1e99
    ybeam: float = -1e99
    xpixels: int = 0
    ypixels: int = 0
    wavelength: float = 1.0
    psf: str | None = None
    psf_fwhm: float = float(np.float32(46e-6))
    psf_radius: int = 0
    fluence: float = 125932015286227086360700780544.0
    scale: float = 1.0
    bits: int = 16
    readout: float = 0.0
    flicker: float = 0.0
    calibration: float = 0.03
    adc: float = 40.0
    gain: float = 1.0
    seed: int | None = None
    calib_seed: int = 123456789
    badpix_seed: int = 1234
    hotpix_seed: int = 5678
    phi0: float = 0.0
    osc: float = 1.0
    help: bool = False
    source: str | None = None
    given: set = field(default_factory=set)

    def assign(self, target: str, value) -> None:
        setattr(self, target, value)
        self.given.add(target)


def _seed(target):
    def act(s, v):
        s.assign(target, -u.integer(v[0]))
    return act


def _both(*targets):
    def act(s, v):
        for t in targets:
            s.assign(t, v[0])
    return act


def _psf(s, v):
    if v[0] not in ("gauss", "fiber"):
        raise ValueError(f"'{v[0]}' is not gauss or fiber")
    s.assign("psf", v[0])


def _fwhm(text):
    return float(np.float32(u.number(text) / 1e6))


def _radius(text):
    value = u.number(text)
    if value < 0 or value > 1 << 20:
        raise ValueError(f"'{text}' must be between 0 and 1048576 pixels")
    return int(value)


def _bits(text):
    value = u.integer(text)
    if value not in (16, 32):
        raise ValueError(f"'{text}' is not 16 or 32")
    return value


MM = _div(1000.0)

FLAGS = [
    Flag(("-floatfile", "-floatimage", "-bin"), (u.text,), "floatfile", help="input: 4-byte floats, photons/pixel"),
    Flag(("-header",), (u.text,), "header", help="SMV file whose header sets the size and is copied to the outputs"),
    Flag(("-intfile", "-intimage"), (u.text,), "intfile", help="noiseless SMV image (default intimage.img)"),
    Flag(("-pgmfile", "-pgmimage"), (u.text,), "pgmfile", help="PGM of the noiseless image (default image.pgm)"),
    Flag(("-noisefile", "-noiseimage"), (u.text,), "noisefile", help="noisy SMV image (default noiseimage.img)"),
    Flag(("-nonoise",), implies=(("calculate_noise", False),), help="no noise: no calibration/flicker/read noise"),
    Flag(("-nopgm",), implies=(("write_pgm", False),), help="no PGM file"),
    Flag(("-scale",), (u.number,), "scale", help="factor putting the input on the photon scale"),
    Flag(("-fluence",), (u.number,), "fluence", help="photons/m^2 (the input is per electron: x fluence r_e^2)"),
    Flag(("-gain",), (u.number,), "gain", help="ADU per photon"),
    Flag(("-adc",), (u.number,), "adc", help="offset added after noise (ADU, default 40)"),
    Flag(("-readout_noise", "-readout", "-readnoise", "-read_noise"), (u.number,), "readout",
         help="Gaussian read-out noise (ADU)"),
    Flag(("-flicker",), (u.number,), "flicker", help="fractional source flicker"),
    Flag(("-calibration",), (u.number,), "calibration", help="static fractional pixel error (default 0.03)"),
    Flag(("-seed",), (u.text,), action=_seed("seed"), help="seed of the noise"),
    Flag(("-calib_seed",), (u.text,), action=_seed("calib_seed"), help="seed of the calibration error"),
    Flag(("-badpix_seed",), (u.text,), action=_seed("badpix_seed"), help="accepted (unused, as in C)"),
    Flag(("-hotpix_seed",), (u.text,), action=_seed("hotpix_seed"), help="accepted (unused, as in C)"),
    Flag(("-bits",), (_bits,), "bits", help="16 or 32-bit int and noise images"),
    Flag(("-psf",), (u.text,), action=_psf, help="gauss or fiber point-spread function"),
    Flag(("-psf_fwhm", "-psf_sigma", "-psf_width", "-psf_size"), (_fwhm,), "psf_fwhm", help="PSF FWHM (um)"),
    Flag(("-psf_radius",), (_radius,), "psf_radius", help="PSF radius (pixels; default automatic)"),
    Flag(("-distance",), (MM,), "distance", help="header distance (mm)"),
    Flag(("-detsize",), (MM,), action=_both("detsize_x", "detsize_y"), help="detector edge (mm)"),
    Flag(("-detsize_x",), (MM,), "detsize_x", help="detector fast size (mm)"),
    Flag(("-detsize_y",), (MM,), "detsize_y", help="detector slow size (mm)"),
    Flag(("-detpixels",), (u.integer,), action=_both("xpixels", "ypixels"), help="pixels along both axes"),
    Flag(("-detpixels_x", "-detpixels_f"), (u.integer,), "xpixels", help="fast pixels"),
    Flag(("-detpixels_y", "-detpixels_s"), (u.integer,), "ypixels", help="slow pixels"),
    Flag(("-pixel",), (MM,), "pixel", help="pixel size (mm)"),
    Flag(("-Xbeam",), (MM,), "xbeam", help="header beam centre, fast (mm)"),
    Flag(("-Ybeam",), (MM,), "ybeam", help="header beam centre, slow (mm)"),
    Flag(("-lambda", "-wavelength"), (u.number,), "wavelength", help="header wavelength (A)"),
    Flag(("-phi",), (u.number,), "phi0", help="header phi (deg)"),
    Flag(("-osc",), (u.number,), "osc", help="header oscillation (deg)"),
    Flag(("-h", "-help", "--help"), implies=(("help", True),), help="this help"),
]
BY_NAME = {name: flag for flag in FLAGS for name in flag.names}


def usage_text() -> str:
    lines = [f"usage: {PROG} -floatfile floatimage.bin [flags]", "flags:"]
    for flag in FLAGS:
        lines.append(f"  {'|'.join(flag.names)}{' V' * len(flag.values)}  {flag.help}")
    return "\n".join(lines)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"Try '{PROG} -h' for the list of flags.", file=sys.stderr)
    return 2


def build_settings(argv: list[str]) -> NoisifySettings:
    """Flags in order (last wins); a bare argument (C: one containing ``floatimage.bin``) names the input."""
    flags, i = [], 0
    s = NoisifySettings()
    while i < len(argv):
        token = argv[i]
        flag = BY_NAME.get(token)
        if flag is None and not token.startswith("-"):
            s.assign("floatfile", token)
            i += 1
            continue
        count = len(flag.values) if flag is not None else 0
        flags.extend(argv[i:i + 1 + count])
        i += 1 + count
    for flag, name, values in split_flags(flags, BY_NAME):
        apply_flag(s, flag, name, values)
    return s


def read_header(path: str) -> tuple[bytes, dict]:
    """(the header bytes, copied verbatim to the outputs, and its values) of an SMV file."""
    raw = read_bytes(path)
    if not raw.startswith(b"{\nHEADER_BYT"):
        raise InputError(path, "does not look like an SMV (ADSC) file")
    values = parse_smv_header(raw[:512].decode("latin-1"))
    try:
        size = int(float(values.get("HEADER_BYTES", "")))
    except ValueError:
        raise InputError(path, "SMV header has no HEADER_BYTES") from None
    if size < 1 or size > len(raw):
        raise InputError(path, f"SMV HEADER_BYTES={size} does not fit the file ({len(raw)} bytes)")
    header = raw[:size]
    return header, parse_smv_header(header.decode("latin-1"))


def _header_number(path, values, key):
    if key not in values:
        return None
    try:
        return float(values[key])
    except ValueError:
        raise InputError(path, f"SMV header {key}={values[key]!r} is not a number") from None


def resolve(s: NoisifySettings, log=print):
    """(flat float32 input, header bytes or None, xpixels, ypixels): C's size decisions."""
    if s.floatfile is None:
        raise UsageError("no input float image given (-floatfile FILE)")
    raw = read_bytes(s.floatfile)
    pixels = len(raw) // 4
    header = None
    xpixels, ypixels = s.xpixels, s.ypixels
    if s.header is not None:
        log(f"taking header from {s.header}")
        header, values = read_header(s.header)
        try:
            xpixels, ypixels = int(float(values["SIZE1"])), int(float(values["SIZE2"]))
        except (KeyError, ValueError):
            raise InputError(s.header, "SMV header has no SIZE1/SIZE2") from None
        pixels = xpixels * ypixels
        if (v := _header_number(s.header, values, "PIXEL_SIZE")) is not None:
            s.pixel = v / 1000.0
        s.detsize_x, s.detsize_y = s.pixel * xpixels, s.pixel * ypixels
        if (v := _header_number(s.header, values, "DISTANCE")) is not None:
            s.distance = v / 1000.0
        if (v := _header_number(s.header, values, "WAVELENGTH")) is not None:
            s.wavelength = v / 1e10
        if (v := _header_number(s.header, values, "BEAM_CENTER_X")) is not None:
            s.xbeam = v / 1000.0
        if (v := _header_number(s.header, values, "BEAM_CENTER_Y")) is not None:
            s.ybeam = s.detsize_y - v / 1000.0
    if xpixels < 0 or ypixels < 0:
        raise UsageError("-detpixels must not be negative")
    if not xpixels and not ypixels:
        log("WARNING: guessing xy pixel dimensions.")
        xpixels = int(math.sqrt(pixels))
        ypixels = pixels // xpixels if xpixels else 0
        while xpixels > 0 and pixels != xpixels * ypixels:
            xpixels -= 1
            ypixels = pixels // xpixels if xpixels else 0
        if pixels != xpixels * ypixels:
            xpixels, ypixels = pixels, 1
    if xpixels and not ypixels:
        ypixels = pixels // xpixels
    if not xpixels and ypixels:
        xpixels = pixels // ypixels
    if s.pixel <= 0:
        raise UsageError("-pixel must be positive")
    s.detsize_x = s.pixel * xpixels
    s.detsize_y = s.pixel * ypixels
    if xpixels * ypixels == 0:
        raise InputError(s.floatfile, "holds no pixels")
    if len(raw) < 4 * xpixels * ypixels:
        raise InputError(s.floatfile, f"holds {len(raw) // 4} floats, the {xpixels}x{ypixels} image needs "
                                      f"{xpixels * ypixels}")
    image = np.frombuffer(raw, dtype="<f4", count=xpixels * ypixels).astype(np.float32)
    if s.xbeam <= -1e99:
        s.xbeam = s.detsize_x / 2.0
    if s.ybeam <= -1e99:
        s.ybeam = s.detsize_y / 2.0
    return image.reshape(ypixels, xpixels), header, xpixels, ypixels


def smv_header(s: NoisifySettings, xpixels: int, ypixels: int) -> bytes:
    """The header noisify makes up when no -header is given."""
    return format_smv_header({
        "DIM": 2, "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short" if s.bits == 16 else "long_integer",
        "SIZE1": int(xpixels), "SIZE2": int(ypixels), "PIXEL_SIZE": s.pixel * 1000.0,
        "DISTANCE": s.distance * 1000.0, "WAVELENGTH": s.wavelength, "BEAM_CENTER_X": s.xbeam * 1000.0,
        "BEAM_CENTER_Y": (s.detsize_y - s.ybeam) * 1000, "PHI": s.phi0, "OSC_START": s.phi0, "OSC_RANGE": s.osc,
        "DETECTOR_SN": "000", "BEAMLINE": "fake",
    })


def _g(v):
    from ..io.cformat import c_g
    return c_g(float(v))


def noisify_and_write(s: NoisifySettings, log=print) -> int:
    from ..physics.detector_effects import noisify_c
    if s.seed is None:
        s.seed = -int(time.time())
    image, given_header, xpixels, ypixels = resolve(s, log)
    pixels = xpixels * ypixels
    header = given_header if given_header is not None else smv_header(s, xpixels, ypixels)
    nbytes = len(header) + pixels * (2 if s.bits == 16 else 4)
    with OutputSet() as outputs:
        int_out = outputs.add(s.intfile, size=nbytes)
        pgm_out = outputs.add(s.pgmfile, size=pixels + 64) if s.write_pgm else None
        noise_out = outputs.add(s.noisefile, size=nbytes) if s.calculate_noise else None
        calibration, readout, flick = (s.calibration, s.readout, s.flicker) if s.calculate_noise else (0.0, 0.0, 0.0)
        log(f"importing {pixels} pixel intensites: {s.floatfile}")
        log(f"  distance={_g(s.distance)} detsize={_g(s.detsize_x)}x{_g(s.detsize_y)}  pixel={_g(s.pixel)} meters "
            f"({xpixels}x{ypixels} pixels)")
        log(f"  Xbeam={_g(s.xbeam)} Ybeam={_g(s.ybeam)}")
        if s.psf is not None:
            radius = f"with rendering radius: {s.psf_radius}" if s.psf_radius else "with automatic rendering radius"
            log(f"  {'Gaussian' if s.psf == 'gauss' else 'fiber'} PSF fwhm = {_g(s.psf_fwhm * 1e6)} um {radius}")
        log(f"  seed: {s.seed}")
        log(f"  calibration noise seed: {s.calib_seed}")
        log(f"  calibration_noise = {_g(calibration * 100)} %")
        log(f"  input file scale = {_g(s.scale)}")
        log(f"  readout_noise = {_g(readout)} ADU")
        log(f"  flicker_noise = {_g(flick * 100)} %")
        log(f"  quantum_gain = {_g(s.gain)} ADU/photon")
        log(f"  adc_offset = {_g(s.adc)} ADU")
        log("")
        flat = image.reshape(-1)
        negative = np.flatnonzero(flat < 0)
        for k in negative[:10]:
            log(f"WARNING: negative intensity in {s.floatfile}: {_g(flat[k])}")
        if len(negative) > 10:
            log(f"WARNING: {len(negative)} negative intensities in {s.floatfile}")
        fwhm_pixels = float(np.float64(np.float32(s.psf_fwhm)) / s.pixel)
        res = noisify_c(image, seed=s.seed, calib_seed=s.calib_seed, scale=s.scale, fluence=s.fluence, gain=s.gain,
                        adc_offset=s.adc, readout=s.readout, flicker_fraction=s.flicker, calibration=s.calibration,
                        psf=s.psf if s.psf_fwhm > 0 else None, psf_fwhm_pixels=fwhm_pixels,
                        psf_radius=s.psf_radius, bits=s.bits, calculate_noise=s.calculate_noise, log=log)
        top = res.max_input
        log(f"maximum value in input file: {_g(top)} ( {_g(top * s.scale * s.fluence * 7.94079248018965e-30)} "
            "on photon scale)")
        ints = res.int16 if s.bits == 16 else res.int32
        log(f"writing {s.intfile} as {pixels} {2 if s.bits == 16 else 4}-byte integers")
        int_out.write_at(header + ints.astype("<u2" if s.bits == 16 else "<u4").tobytes(), 0)
        if pgm_out is not None:
            log(f"writing {s.pgmfile} as 1-byte integers")
            pgm = np.minimum(res.int16, 255).astype(np.uint8)
            pgm_out.write_at(pgm_header(xpixels, ypixels, 1.0) + pgm.tobytes(), 0)
        if noise_out is not None:
            log("%.0f photons on noise image (%d overloads)" % (res.photons, res.overloads))
            noise = res.noise16 if s.bits == 16 else res.noise32
            log(f"writing {s.noisefile} as {2 if s.bits == 16 else 4}-byte integers")
            noise_out.write_at(header + noise.astype("<u2" if s.bits == 16 else "<u4").tobytes(), 0)
    return 0


def run(argv: list[str], log=print) -> int:
    """Run the command; returns the exit status."""
    try:
        s = build_settings(argv)
        if s.help:
            print(usage_text())
            return 0
        log("noisify - add noise to pixels - James Holton 3-19-16")
        return noisify_and_write(s, log)
    except (UsageError, InputError) as exc:
        return _fail(str(exc))


def main(argv: list[str] | None = None) -> int:
    """Run the command and return its exit status; Ctrl-C, SIGTERM and SIGHUP leave no partial file."""
    from .interrupts import run_interruptible

    return run_interruptible(PROG, run, sys.argv[1:] if argv is None else argv)


def console() -> None:
    """The ``noisify`` console script."""
    from .entry import run_program
    run_program(main)
