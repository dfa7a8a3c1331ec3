"""Dataclasses that describe one simulation, in SI units.

Lengths are metres, angles radians, wavelengths metres, fluence photons/m^2.
Numbers that are differentiable parameters may be given as Python floats or
as torch tensors (with ``requires_grad``); :func:`nanobragg.resolve.resolve` keeps
tensors as they are so gradients flow back to them.

Step counts use the C program's sentinel ``-1`` for "not given": the C
program's auto-selection logic depends on which of range, step and count the
user supplied, so "unset" must be distinguishable from any value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

Vec3 = Optional[tuple]
Number = Any  # float or 0-d torch tensor

#: C's default fluence in photons/m^2.
DEFAULT_FLUENCE = 125932015286227086360700780544.0


@dataclass
class DetectorConfig:
    """Detector geometry. Pixel counts, when given, win over ``detsize_*``."""

    fpixels: Optional[int] = None
    spixels: Optional[int] = None
    detsize_f: float = 102.4e-3
    detsize_s: float = 102.4e-3
    pixel_size: Number = 0.1e-3
    distance: Number = 100.0e-3
    close_distance: Optional[Number] = None
    beam_x: Optional[Number] = None  #: C's Xbeam (m), convention-dependent meaning
    beam_y: Optional[Number] = None  #: C's Ybeam (m)
    close_x: Optional[float] = None  #: C's Xclose (m)
    close_y: Optional[float] = None  #: C's Yclose (m)
    orgx: Optional[Number] = None  #: XDS ORGX (pixels)
    orgy: Optional[Number] = None  #: XDS ORGY (pixels)
    convention: str = "mosflm"  #: mosflm, xds, adxv, denzo, dials or custom
    pivot: str = "beam"  #: as set by flags; conventions other than custom override it
    rotx: Number = 0.0
    roty: Number = 0.0
    rotz: Number = 0.0
    twotheta: Number = 0.0
    twotheta_axis: Vec3 = None
    fdet_vector: Vec3 = None
    sdet_vector: Vec3 = None
    odet_vector: Vec3 = None
    pix0_vector: Vec3 = None  #: accepted like C; C's pivot code then recomputes pix0
    curved: bool = False
    point_pixel: bool = False
    thickness: float = 0.0  #: sensor thickness (m)
    attenuation_length: Optional[float] = None  #: 1/mu (m); ``inf``/0 turns absorption off
    thicksteps: int = -1
    thickstep: float = -1.0
    roi: Optional[tuple] = None  #: (xmin, xmax, ymin, ymax) inclusive pixel bounds
    mask: Optional[np.ndarray] = None  #: (spixels, fpixels); zero pixels are skipped


@dataclass
class BeamConfig:
    """Incident beam: wavelength, spectrum, divergence, fluence, polarization."""

    wavelength: Number = 1.0e-10
    dispersion: float = 0.0  #: full width, fraction of the wavelength
    dispsteps: int = -1
    dispstep: float = -1.0
    hdivrange: float = -1.0
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    fluence: Number = DEFAULT_FLUENCE
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    polarization: Number = 0.0  #: Kahn factor
    nopolar: bool = False
    beam_vector: Vec3 = None
    polar_vector: Vec3 = None
    sources: Optional[np.ndarray] = None  #: (n, 5): X Y Z I lambda, NaN = default


@dataclass
class CrystalConfig:
    """Crystal: cell or orientation matrix, size, shape, mosaicity, rotation."""

    cell: Optional[tuple] = None  #: (a, b, c, alpha, beta, gamma) in m and rad
    matrix: Optional[np.ndarray] = None  #: MOSFLM A matrix as read (3x3, 1/Angstrom x lambda)
    misset: Any = None  #: None, (rotx, roty, rotz) in rad, or "random"
    misset_seed: Optional[int] = None  #: C value (negative); None = same as noise seed
    mosaic_spread: float = -1.0
    mosaic_domains: int = -1
    mosaic_seed: int = -12345678
    mosaic_umats: Any = None  #: explicit (domains, 3, 3) rotations, overrides the seed
    spindle_axis: Vec3 = None  #: custom spindle axis (sets the custom convention)
    Na: Number = 1.0
    Nb: Number = 1.0
    Nc: Number = 1.0
    sample_x: float = 0.0  #: crystal size (m) along a; 0 = use Na
    sample_y: float = 0.0
    sample_z: float = 0.0
    shape: str = "square"  #: square, round, gauss or tophat
    fudge: Number = 1.0
    phi0: Number = 0.0
    osc: Number = -1.0
    phistep: Number = -1.0
    phisteps: int = -1
    fgrid: Any = None  #: structure factors on a grid (nanobragg.io.hkl.FGrid) or None
    default_F: Number = 0.0
    interpolate: Optional[bool] = None  #: None: auto (on when any N <= 2)
    water_size: float = 0.0  #: water thickness (m) for the background


@dataclass
class SamplingConfig:
    """Sub-pixel sampling and resolution cut-off."""

    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    dmin: float = 0.0  #: metres; 0 = no cut-off


@dataclass
class OutputConfig:
    """Output files and their scaling (the command line's concern, not the engine's)."""

    floatfile: Optional[str] = "floatimage.bin"
    intfile: Optional[str] = "intimage.img"
    pgmfile: Optional[str] = "image.pgm"
    noisefile: Optional[str] = "noiseimage.img"
    pngfile: Optional[str] = None
    png_linear: bool = False
    cbffile: Optional[str] = None  #: Pilatus mini-CBF of the int image (the noise image with noise on)
    h5file: Optional[str] = None  #: NeXus/NXmx HDF5 of the same pixels
    h5_float: bool = False  #: the NXmx file also holds the float image
    write_pgm: bool = True
    calculate_noise: bool = True
    noise_rng: str = "c"
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    adc: float = 40.0
    seed: Optional[int] = None  #: C value (negative); None = from the clock
    dumpfile: str = "Fdump.bin"
    printout: bool = False
    printout_pixel: Optional[tuple] = None  #: (fast, slow)
    trace_pixel: Optional[tuple] = None  #: (slow, fast)
    progress: Optional[bool] = None


@dataclass
class Experiment:
    """Everything one render needs."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    crystal: CrystalConfig = field(default_factory=CrystalConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    #: Where each value came from, for error messages: dotted field -> flag, file and key, or
    #: argument name (see :mod:`nanobragg.config.checks`); fields not listed are named by their path.
    origins: dict = field(default_factory=dict, repr=False, compare=False)
