"""The ``nonBragg`` command line as data: every flag of nonBragg.c, its synonyms, values and units.

Same design as :mod:`nanobragg.cli.flags` (and read by the same parser,
:func:`nanobragg.cli.parser.split_flags` with this table): each flag fills a
field of :class:`NonBraggSettings` in SI units, converted as C converts it
(``atof(value)/1000.0`` for millimetres, ``/RTD`` for degrees). Flags match
exactly; C's substring matches (any flag containing ``-thick`` sets the sample
thickness, ``-twotheta_axis`` also sets ``-twotheta``...) are not copied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ..units import RTD  # C's radians-to-degrees factor (180.0*M_1_PI)
from . import units as u
from .flags import Flag


def _div(factor):
    def convert(text):
        return u.number(text) / factor
    convert.__name__ = f"div({factor:g})"
    return convert


def _mul(factor):
    def convert(text):
        return u.number(text) * factor
    convert.__name__ = f"mul({factor:g})"
    return convert


MM = _div(1000.0)
DEGREES = _div(RTD)
MRAD = _div(1000.0)


def _energy(text):
    return (12398.42 / u.positive(u.number)(text)) / 1.0e10


def _angstrom(text):
    return u.positive(u.number)(text) / 1.0e10


@dataclass
class NonBraggSettings:
    """Every value the C program reads from its command line, SI units, C's defaults (NaN = unset)."""

    stol: str | None = None
    stol_mult: float = 1.0e10
    img: str | None = None
    sourcefile: str | None = None
    stolout: str = "output.stol"
    floatfile: str = "floatimage.bin"
    intfile: str = "intimage.img"
    pgmfile: str = "image.pgm"
    noisefile: str = "noiseimage.img"
    calculate_noise: bool = True
    write_pgm: bool = True
    # sample
    sample_x: float = 1e-4
    sample_y: float = 1e-4
    sample_z: float = 1e-4
    density: float = 1.0e6
    molecular_weight: float = 18.0
    molecules: float = 0.0
    # beam
    lambda0: float = 1.0e-10
    fluence: float = 125932015286227086360700780544.0
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    dispersion: float = 0.0
    dispsteps: int = -1
    hdivrange: float = -1.0
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    source_distance: float = 10.0
    polarization: float = 0.0
    nopolar: bool = False
    beam_vector: tuple = (1.0, 0.0, 0.0)
    polar_vector: tuple = (0.0, 0.0, 1.0)
    spindle_vector: tuple = (0.0, 0.0, 1.0)
    # detector
    pixel_size: float = 0.1e-3
    distance: float = 100.0e-3
    close_distance: float = math.nan
    detsize_x: float = 102.4e-3
    detsize_y: float = 102.4e-3
    fpixels: int = 0
    spixels: int = 0
    xbeam: float = math.nan
    ybeam: float = math.nan
    xclose: float = math.nan
    yclose: float = math.nan
    orgx: float = math.nan
    orgy: float = math.nan
    pivot: str = "beam"
    fdet_vector: tuple = (0.0, 0.0, 1.0)
    sdet_vector: tuple = (0.0, -1.0, 0.0)
    odet_vector: tuple = (1.0, 0.0, 0.0)
    twotheta_axis: tuple = (0.0, 1.0, 0.0)
    pix0_vector: tuple | None = None
    rotx: float = 0.0
    roty: float = 0.0
    rotz: float = 0.0
    twotheta: float = 0.0
    curved: bool = False
    point_pixel: bool = False
    fmap: bool = False
    oversample: int = -1
    roi: tuple | None = None
    # header-only spindle values
    phi0: float = 0.0
    osc: float = -1.0
    phistep: float = -1.0
    phisteps: int = -1
    # outputs
    adc: float = 40.0
    gain: float = 1.0
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    ignore: list = field(default_factory=list)
    seed: int | None = None
    printout: bool = False
    printout_pixel: tuple | None = None
    progress: bool = True
    dtype: str = "float64"
    device: str = "cpu"
    help: bool = False
    source: str | None = None  #: the flag being applied (for error messages)
    given: set = field(default_factory=set)  #: fields set on the command line

    def assign(self, target: str, value) -> None:
        setattr(self, target, value)
        self.given.add(target)

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]


def _set(*pairs):
    return dict(implies=tuple(pairs))


def _seed(s, v):
    s.assign("seed", -u.integer(v[0]))


def _ignore(s, v):
    s.ignore.append(v[0])


def _pivot(s, v):
    if "sample" in v[0]:
        s.assign("pivot", "sample")
    if "beam" in v[0]:
        s.assign("pivot", "beam")


def _detpixels(s, v):
    s.assign("fpixels", v[0])
    s.assign("spixels", v[0])


def _sizes(*targets):
    def act(s, v):
        for t in targets:
            s.assign(t, v[0])
    return act


_NUM3 = (u.number,) * 3
_SAMPLE = ("sample_x", "sample_y", "sample_z")

FLAGS = [
    # inputs
    Flag(("-stol",), (u.text,), "stol", implies=(("stol_mult", 1.0e10),),
         help="table of sin(theta)/lambda (1/A) and F"),
    Flag(("-4stol",), (u.text,), "stol", implies=(("stol_mult", 1.0e10 / 4),), help="as -stol, first column 4 stol"),
    Flag(("-Q",), (u.text,), "stol", implies=(("stol_mult", 1.0e10 / math.pi / 4),), help="as -stol, first column Q"),
    Flag(("-img",), (u.text,), "img", help="SMV image: geometry defaults from its header; writes -stolout"),
    Flag(("-stolout",), (u.text,), "stolout", help="stol table measured from -img (default output.stol)"),
    Flag(("-ignore",), (u.number,), action=_ignore, help="-img pixel value to ignore (repeatable)"),
    Flag(("-sourcefile",), (u.text,), "sourcefile", help="file of sources: X Y Z (m) weight lambda (m)"),
    # sample
    Flag(("-samplesize", "-sample_size"), (MM,), action=_sizes(*_SAMPLE), help="cube sample edge (mm)"),
    Flag(("-thickness", "-thick", "-sample_thick", "-sample_thickness", "-sample_x"), (MM,), "sample_x",
         help="sample thickness along the beam (mm)"),
    Flag(("-width", "-sample_width", "-sample_y"), (MM,), "sample_y", help="sample width (mm)"),
    Flag(("-height", "-sample_height", "-sample_z"), (MM,), "sample_z", help="sample height (mm)"),
    Flag(("-density", "-sample_density"), (_mul(1e6),), "density", help="sample density (g/cm^3)"),
    Flag(("-molecules", "-sample_molecules"), (u.number,), "molecules", help="number of molecules (overrides density)"),
    Flag(("-MW", "-molecular_weight"), (u.number,), "molecular_weight", help="molecular weight (g/mol)"),
    # beam
    Flag(("-lambda", "-wavelength", "-wave"), (_angstrom,), "lambda0", help="wavelength (A)"),
    Flag(("-energy",), (_energy,), "lambda0", help="photon energy (eV)"),
    Flag(("-fluence",), (u.number,), "fluence", help="photons/m^2"),
    Flag(("-flux",), (u.number,), "flux", help="photons/s (with -exposure, -beamsize)"),
    Flag(("-exposure",), (u.number,), "exposure", help="exposure time (s)"),
    Flag(("-beamsize",), (MM,), "beamsize", help="square beam edge (mm); clips the sample"),
    Flag(("-dispersion",), (_div(100.0),), "dispersion", help="spectral dispersion (%)"),
    Flag(("-dispsteps",), (u.integer,), "dispsteps", help="wavelengths in the dispersion"),
    Flag(("-divergence",), (MRAD,), action=_sizes("hdivrange", "vdivrange"), help="divergence, both ranges (mrad)"),
    Flag(("-hdivrange",), (MRAD,), "hdivrange", help="horizontal divergence (mrad)"),
    Flag(("-vdivrange",), (MRAD,), "vdivrange", help="vertical divergence (mrad)"),
    Flag(("-hdivstep",), (MRAD,), "hdivstep", help="horizontal divergence step (mrad)"),
    Flag(("-vdivstep",), (MRAD,), "vdivstep", help="vertical divergence step (mrad)"),
    Flag(("-hdivsteps",), (u.integer,), "hdivsteps", help="horizontal divergence steps"),
    Flag(("-vdivsteps",), (u.integer,), "vdivsteps", help="vertical divergence steps"),
    Flag(("-divsteps",), (u.integer,), action=_sizes("hdivsteps", "vdivsteps"), help="both divergence step counts"),
    Flag(("-round_div",), **_set(("round_div", True)), help="elliptical divergence (default)"),
    Flag(("-square_div",), **_set(("round_div", False)), help="rectangular divergence grid"),
    Flag(("-source_distance",), (MM,), "source_distance", help="distance of generated sources (mm)"),
    Flag(("-polar",), (u.number,), "polarization", implies=(("nopolar", False),), help="Kahn polarization factor"),
    Flag(("-nopolar",), **_set(("nopolar", True)), help="no polarization factor"),
    Flag(("-beam_vector",), _NUM3, "beam_vector", help="incident beam direction"),
    Flag(("-polar_vector",), _NUM3, "polar_vector", help="polarization (E-vector) direction"),
    Flag(("-spindle_axis",), _NUM3, "spindle_vector", help="accepted (header only in C)"),
    # detector
    Flag(("-distance",), (MM,), "distance", implies=(("pivot", "beam"),), help="sample to detector (mm), beam pivot"),
    Flag(("-close_distance",), (MM,), "close_distance", implies=(("pivot", "sample"),),
         help="closest approach (mm), sample pivot"),
    Flag(("-detsize",), (MM,), action=_sizes("detsize_x", "detsize_y"), help="detector edge (mm)"),
    Flag(("-detsize_x",), (MM,), "detsize_x", help="detector fast size (mm)"),
    Flag(("-detsize_y",), (MM,), "detsize_y", help="detector slow size (mm)"),
    Flag(("-detpixels",), (u.integer,), action=_detpixels, help="pixels along both axes"),
    Flag(("-detpixels_f", "-detpixels_x"), (u.integer,), "fpixels", help="fast pixels"),
    Flag(("-detpixels_s", "-detpixels_y"), (u.integer,), "spixels", help="slow pixels"),
    Flag(("-pixel",), (MM,), "pixel_size", help="pixel size (mm)"),
    Flag(("-Xbeam",), (MM,), "xbeam", implies=(("pivot", "beam"),), help="direct beam fast position (mm)"),
    Flag(("-Ybeam",), (MM,), "ybeam", implies=(("pivot", "beam"),), help="direct beam slow position (mm)"),
    Flag(("-Xclose",), (MM,), "xclose", implies=(("pivot", "sample"),), help="closest point, fast (mm)"),
    Flag(("-Yclose",), (MM,), "yclose", implies=(("pivot", "sample"),), help="closest point, slow (mm)"),
    Flag(("-ORGX",), (u.number,), "orgx", implies=(("pivot", "sample"),), help="closest point, fast (pixels)"),
    Flag(("-ORGY",), (u.number,), "orgy", implies=(("pivot", "sample"),), help="closest point, slow (pixels)"),
    Flag(("-pivot",), (u.choice("sample", "beam"),), action=_pivot, help="sample or beam"),
    Flag(("-fdet_vector",), _NUM3, "fdet_vector", help="fast axis"),
    Flag(("-sdet_vector",), _NUM3, "sdet_vector", help="slow axis"),
    Flag(("-odet_vector",), _NUM3, "odet_vector", help="accepted (C recomputes it as fdet x sdet)"),
    Flag(("-twotheta_axis",), _NUM3, "twotheta_axis", help="two-theta rotation axis"),
    Flag(("-pix0_vector",), _NUM3, "pix0_vector", help="accepted (C overwrites it: no effect)"),
    Flag(("-detector_rotx",), (DEGREES,), "rotx", help="detector rotation about x (deg)"),
    Flag(("-detector_roty",), (DEGREES,), "roty", help="detector rotation about y (deg)"),
    Flag(("-detector_rotz",), (DEGREES,), "rotz", help="detector rotation about z (deg)"),
    Flag(("-twotheta",), (DEGREES,), "twotheta", implies=(("pivot", "sample"),), help="two-theta swing (deg)"),
    Flag(("-curved_det",), **_set(("curved", True)), help="every pixel at the same distance"),
    Flag(("-point_pixel",), **_set(("point_pixel", True)), help="solid angle 1/R^2 (no obliquity)"),
    Flag(("-Fmap",), **_set(("fmap", True)), help="image of the interpolated F instead of photons"),
    Flag(("-oversample",), (u.integer,), "oversample", help="sub-pixels per pixel edge"),
    Flag(("-roi",), (u.integer,) * 4, "roi", help="xmin xmax ymin ymax (inclusive pixels)"),
    Flag(("-phi",), (DEGREES,), "phi0", help="spindle start (header only, deg)"),
    Flag(("-osc",), (DEGREES,), "osc", help="oscillation (header only, deg)"),
    Flag(("-phistep",), (DEGREES,), "phistep", help="spindle step (header only, deg)"),
    Flag(("-phisteps",), (u.integer,), "phisteps", help="spindle steps (header only)"),
    # outputs
    Flag(("-floatfile", "-floatimage"), (u.text,), "floatfile", help="float image (4-byte floats)"),
    Flag(("-intfile", "-intimage"), (u.text,), "intfile", help="SMV image"),
    Flag(("-pgmfile", "-pgmimage"), (u.text,), "pgmfile", help="PGM image"),
    Flag(("-noisefile", "-noiseimage"), (u.text,), "noisefile", implies=(("calculate_noise", True),),
         help="SMV image with Poisson noise"),
    Flag(("-nonoise",), **_set(("calculate_noise", False)), help="no noise image"),
    Flag(("-nopgm",), **_set(("write_pgm", False)), help="no PGM image (C ignores it)"),
    Flag(("-noreject",), help="accepted (no outlier rejection, as in C)"),
    Flag(("-scale",), (u.number,), "intfile_scale", help="SMV scale (default 55000/max)"),
    Flag(("-pgmscale",), (u.number,), "pgm_scale", help="PGM scale"),
    Flag(("-adc",), (u.number,), "adc", help="SMV offset (default 40)"),
    Flag(("-gain",), (u.number,), "gain", help="ADU per photon (used by -img)"),
    Flag(("-seed",), (u.text,), action=_seed, help="noise seed"),
    Flag(("-coherent",), help="accepted for compatibility (no effect)"),
    Flag(("-printout",), **_set(("printout", True)), help="print pixel values"),
    Flag(("-printout_pixel",), (u.integer, u.integer), "printout_pixel", implies=(("printout", True),),
         help="fast slow: print one pixel"),
    Flag(("-noprogress",), **_set(("progress", False)), help="no progress meter"),
    Flag(("-progress",), **_set(("progress", True)), help="progress meter"),
    Flag(("-dtype",), (u.choice("float32", "float64"),), "dtype", help="arithmetic precision (default float64)"),
    Flag(("-device",), (u.choice("cpu", "cuda", "auto"),), "device", help="cpu (default), cuda or auto"),
    Flag(("-h", "-help", "--help"), **_set(("help", True)), help="this help"),
]

BY_NAME = {name: flag for flag in FLAGS for name in flag.names}


def usage_text(prog: str = "nonBragg") -> str:
    """``-h``: every flag with its synonyms and meaning."""
    lines = [f"usage: {prog} -stol water.stol [flags]", "flags:"]
    for flag in FLAGS:
        names = "|".join(flag.names)
        values = " V" * len(flag.values)
        lines.append(f"  {names}{values}  {flag.help}")
    return "\n".join(lines)
