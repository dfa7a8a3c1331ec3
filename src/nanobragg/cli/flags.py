"""The command line as data: every nanoBragg flag, its synonyms, values, units and effects.

Each :class:`Flag` names the setting it fills (a dotted target such as
``detector.distance``), the converter of each value (units of the C program
-> SI), and what else it implies (``-distance`` sets the BEAM pivot). Flags
whose effect is not a plain assignment carry a small ``action`` instead.
The parser (:mod:`nanobragg.cli.parser`) reads this table and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..physics.shapes import SHAPES
from ..units import ANGSTROM, DEG
from . import units as u


@dataclass(frozen=True)
class Flag:
    names: tuple
    values: tuple = ()  #: one converter per value
    target: object = None  #: dotted field, or tuple of fields all set to the (single) value
    implies: tuple = ()  #: (target, value) pairs also assigned
    action: Optional[Callable] = None  #: action(settings, values) for non-assignments
    help: str = ""
    #: a word that may stand alone instead of the values (matched by its start, as C does: -misset random)
    word: Optional[str] = None
    #: flags are applied by stage, then in the order given (C reads -mask's, then -img's header first)
    stage: int = 0


def _set(*pairs):
    """A flag with no values that assigns constants."""
    return dict(implies=tuple(pairs))


def _vector(target):
    return dict(values=(u.number,) * 3, target=target, implies=(("detector.convention", "custom"),))


def _cell(s, v):
    s.assign("crystal.cell", (v[0] * ANGSTROM, v[1] * ANGSTROM, v[2] * ANGSTROM, v[3] * DEG, v[4] * DEG, v[5] * DEG))


def _detector_abs(s, v):
    # C: "inf" or 0 switches absorption off and zeroes the thickness at this point of the command line
    if v[0] in ("inf", "INF", "infinity") or u.number(v[0]) == 0.0:
        s.assign("detector.thickness", 0.0)
        s.assign("detector.attenuation_length", float("inf"))
    else:
        s.assign("detector.attenuation_length", u.positive(u.um)(v[0]))


def _misset(s, v):
    s.assign("crystal.misset", "random" if len(v) == 1 else tuple(u.deg(x) for x in v))


def _smv_header(is_mask: bool):
    """-mask/-img: the file's SMV header initialises the detector (the mask's pixels are kept)."""
    def act(s, v):
        from .loaders import apply_smv_header

        s.assign("files.mask" if is_mask else "files.img", v[0])
        data = apply_smv_header(s, v[0], is_mask)
        if is_mask:
            s.experiment.detector.mask = data
    return act


def _seed(target):
    def act(s, v):
        s.assign(target, -u.integer(v[0]))
    return act


_XTAL = ("crystal.sample_x", "crystal.sample_y", "crystal.sample_z")
_DET_AXES = ("detector.fpixels", "detector.spixels")

FLAGS = [
    # input files
    Flag(("-hkl",), (u.text,), "files.hkl", help="text file of h k l F (P1)"),
    Flag(("-mtz",), (u.text,), "files.mtz", help="merged MTZ file: F (or I, F(+)/F(-)) expanded to P1 (gemmi)"),
    Flag(("-mtz_column",), (u.text,), "files.mtz_column", help="column of -mtz/-sfcif (default: the first F)"),
    Flag(("-sfcif",), (u.text,), "files.sfcif", help="structure-factor mmCIF, as -mtz (gemmi)"),
    Flag(("-pdb",), (u.text,), "files.pdb", help="PDB or mmCIF model: F computed to the detector corner (gemmi)"),
    Flag(("-solvent",), (u.number, u.number), "files.solvent", help="k_sol (e/A^3) B_sol (A^2): -pdb bulk solvent"),
    Flag(("-anomalous",), **_set(("files.anomalous", True)), help="-pdb with f', f'' at the wavelength"),
    Flag(("-mat", "-matrix"), (u.text,), "files.mat", help="MOSFLM-style orientation matrix file"),
    Flag(("-sourcefile",), (u.text,), "files.sourcefile", help="file of source positions X Y Z I lambda"),
    Flag(("-img",), (u.text,), action=_smv_header(False), stage=-1, help="initialise the detector from an SMV header"),
    Flag(("-mask",), (u.text,), action=_smv_header(True), stage=-2, help="SMV mask: zero pixels are not rendered"),
    Flag(("-stol",), (u.text,), "files.stol", help="amorphous S(stol) file (read, not used for the image)"),
    Flag(("-4stol",), (u.text,), "files.stol", help="as -stol with 4stol units"),
    Flag(("-Q",), (u.text,), "files.stol", help="as -stol with Q units"),
    Flag(("-stolout",), (u.text,), "files.stolout", help="accepted for compatibility"),
    Flag(("-geom",), (u.text,), "files.geom", help="CrystFEL geometry file: a multi-panel detector"),
    Flag(("-dump",), (u.text,), "output.dumpfile", help="structure-factor cache file (default Fdump.bin)"),
    Flag(("-default_F",), (u.number,), "crystal.default_F", help="F of every reflection not in -hkl"),
    # unit cell and orientation
    Flag(("-cell",), (u.positive(u.number),) * 6, action=_cell, help="a b c alpha beta gamma (A, deg)"),
    Flag(("-misset",), (u.text,) * 3, action=_misset, word="rand", help="rotx roty rotz (deg), or 'random'"),
    Flag(("-misset_seed",), (u.text,), action=_seed("crystal.misset_seed"), help="seed of -misset random"),
    # crystal size and shape
    Flag(("-N",), (u.integer,), ("crystal.Na", "crystal.Nb", "crystal.Nc"), help="unit cells along a, b and c"),
    Flag(("-Na",), (u.integer,), "crystal.Na", help="unit cells along a"),
    Flag(("-Nb",), (u.integer,), "crystal.Nb", help="unit cells along b"),
    Flag(("-Nc",), (u.integer,), "crystal.Nc", help="unit cells along c"),
    Flag(("-samplesize", "-sample_size", "-xtalsize", "-xtal_size"), (u.mm,), _XTAL, help="crystal full width (mm)"),
    Flag(("-sample_thick", "-sample_x", "-xtal_thick", "-xtal_x"), (u.mm,), "crystal.sample_x",
         help="crystal size along a (mm)"),
    Flag(("-sample_width", "-sample_y", "-width", "-xtal_width", "-xtal_y"), (u.mm,), "crystal.sample_y",
         help="along b (mm)"),
    Flag(("-sample_height", "-sample_heigh", "-sample_z", "-height", "-heigh", "-xtal_height", "-xtal_heigh",
          "-xtal_z"),
         (u.mm,), "crystal.sample_z", help="along c (mm)"),
    Flag(("-density", "-sample_density"), (u.number,), help="accepted for compatibility (unused, as in C)"),
    Flag(("-MW", "-molecular_weight", "-molecules"), (u.number,), help="accepted for compatibility (unused, as in C)"),
    *(Flag(s.flags, **_set(("crystal.shape", s.name)), help=s.help) for s in SHAPES.values()),
    Flag(("-fudge",), (u.number,), "crystal.fudge", help="shape-transform width factor"),
    Flag(("-mosaic", "-mosaici", "-mosaic_spr", "-mosaic_spread"), (u.deg,), "crystal.mosaic_spread",
         help="mosaic spread (deg)"),
    Flag(("-mosaic_dom", "-mosaic_domains"), (u.integer,), "crystal.mosaic_domains", help="number of mosaic domains"),
    Flag(("-mosaic_seed",), (u.text,), action=_seed("crystal.mosaic_seed"), help="seed of the mosaic domains"),
    # spindle
    Flag(("-phi",), (u.deg,), "crystal.phi0", help="starting spindle angle (deg)"),
    Flag(("-osc",), (u.deg,), "crystal.osc", help="oscillation range (deg)"),
    Flag(("-phistep",), (u.deg,), "crystal.phistep", help="spindle step (deg)"),
    Flag(("-phisteps",), (u.integer,), "crystal.phisteps", help="number of spindle steps"),
    Flag(("-spindle_axis",), **_vector("crystal.spindle_axis"), help="spindle rotation axis"),
    # beam
    Flag(("-lambda", "-wave"), (u.positive(u.angstrom),), "beam.wavelength", help="wavelength (A)"),
    Flag(("-energy",), (u.energy_ev,), "beam.wavelength", help="photon energy (eV)"),
    Flag(("-dispersion",), (u.percent,), "beam.dispersion", help="spectral width (percent)"),
    Flag(("-dispsteps",), (u.integer,), "beam.dispsteps", help="number of wavelengths"),
    Flag(("-divergence",), (u.mrad,), ("beam.hdivrange", "beam.vdivrange"), help="divergence range (mrad)"),
    Flag(("-hdivrange",), (u.mrad,), "beam.hdivrange", help="horizontal divergence (mrad)"),
    Flag(("-vdivrange",), (u.mrad,), "beam.vdivrange", help="vertical divergence (mrad)"),
    Flag(("-hdivstep",), (u.mrad,), "beam.hdivstep", help="horizontal divergence step (mrad)"),
    Flag(("-vdivstep",), (u.mrad,), "beam.vdivstep", help="vertical divergence step (mrad)"),
    Flag(("-hdivsteps",), (u.integer,), "beam.hdivsteps", help="horizontal divergence steps"),
    Flag(("-vdivsteps",), (u.integer,), "beam.vdivsteps", help="vertical divergence steps"),
    Flag(("-divsteps",), (u.integer,), ("beam.hdivsteps", "beam.vdivsteps"), help="divergence steps, both"),
    Flag(("-round_div",), **_set(("beam.round_div", True)), help="trim the divergence grid to an ellipse (default)"),
    Flag(("-square_div",), **_set(("beam.round_div", False)), help="full divergence grid"),
    Flag(("-fluence",), (u.positive(u.number),), "beam.fluence", help="photons/m^2"),
    Flag(("-flux",), (u.number,), "beam.flux", help="photons/s (with -exposure, -beamsize)"),
    Flag(("-exposure",), (u.number,), "beam.exposure", help="exposure time (s)"),
    Flag(("-beamsize",), (u.mm,), "beam.beamsize", help="beam size (mm)"),
    Flag(("-polar",), (u.number,), "beam.polarization", implies=(("beam.nopolar", False),),
         help="Kahn polarization factor"),
    Flag(("-nopolar",), **_set(("beam.nopolar", True)), help="no polarization correction"),
    Flag(("-beam_vector",), **_vector("beam.beam_vector"), help="beam direction"),
    Flag(("-polar_vector",), **_vector("beam.polar_vector"), help="E-vector direction"),
    # detector
    Flag(("-pixel",), (u.positive(u.mm),), "detector.pixel_size", help="pixel size (mm)"),
    Flag(("-detpixels",), (u.positive(u.integer),), _DET_AXES, help="pixels per side"),
    Flag(("-detpixels_f", "-detpixels_x"), (u.positive(u.integer),), "detector.fpixels", help="fast pixels"),
    Flag(("-detpixels_s", "-detpixels_y"), (u.positive(u.integer),), "detector.spixels", help="slow pixels"),
    Flag(("-detsize",), (u.positive(u.mm),), ("detector.detsize_f", "detector.detsize_s"), help="detector size (mm)"),
    Flag(("-detsize_f",), (u.positive(u.mm),), "detector.detsize_f", help="fast size (mm)"),
    Flag(("-detsize_s",), (u.positive(u.mm),), "detector.detsize_s", help="slow size (mm)"),
    Flag(("-distance",), (u.positive(u.mm),), "detector.distance", implies=(("detector.pivot", "beam"),),
         help="sample to beam spot (mm)"),
    Flag(("-close_distance",), (u.positive(u.mm),), "detector.close_distance", implies=(("detector.pivot", "sample"),),
         help="sample to nearest detector point (mm)"),
    Flag(("-Xbeam",), (u.mm,), "detector.beam_x", implies=(("detector.pivot", "beam"),), help="beam centre (mm)"),
    Flag(("-Ybeam",), (u.mm,), "detector.beam_y", implies=(("detector.pivot", "beam"),), help="beam centre (mm)"),
    Flag(("-Xclose",), (u.mm,), "detector.close_x", implies=(("detector.pivot", "sample"),), help="near point (mm)"),
    Flag(("-Yclose",), (u.mm,), "detector.close_y", implies=(("detector.pivot", "sample"),), help="near point (mm)"),
    Flag(("-ORGX",), (u.number,), "detector.orgx", implies=(("detector.pivot", "sample"),), help="XDS origin (pixels)"),
    Flag(("-ORGY",), (u.number,), "detector.orgy", implies=(("detector.pivot", "sample"),), help="XDS origin (pixels)"),
    Flag(("-pivot",), (u.choice("beam", "sample"),), "detector.pivot", help="beam or sample"),
    Flag(("-mosflm",), **_set(("detector.convention", "mosflm"), ("detector.pivot", "beam")),
         help="MOSFLM convention (default)"),
    Flag(("-xds",), **_set(("detector.convention", "xds"), ("detector.pivot", "sample")), help="XDS convention"),
    Flag(("-adxv",), **_set(("detector.convention", "adxv"), ("detector.pivot", "beam")), help="ADXV convention"),
    Flag(("-denzo",), **_set(("detector.convention", "denzo"), ("detector.pivot", "beam")), help="DENZO convention"),
    Flag(("-dials",), **_set(("detector.convention", "dials"), ("detector.pivot", "beam")), help="DIALS convention"),
    Flag(("-fdet_vector",), **_vector("detector.fdet_vector"), help="fast axis"),
    Flag(("-sdet_vector",), **_vector("detector.sdet_vector"), help="slow axis"),
    Flag(("-odet_vector",), **_vector("detector.odet_vector"), help="detector normal"),
    Flag(("-twotheta_axis",), **_vector("detector.twotheta_axis"), help="two-theta rotation axis"),
    Flag(("-pix0_vector",), **_vector("detector.pix0_vector"), help="first pixel position (m)"),
    Flag(("-pix0_vector_mm",), values=(u.mm,) * 3, target="detector.pix0_vector",
         implies=(("detector.convention", "custom"),), help="first pixel position (mm)"),
    Flag(("-detector_rotx",), (u.deg,), "detector.rotx", help="detector rotation about x (deg)"),
    Flag(("-detector_roty",), (u.deg,), "detector.roty", help="about y (deg)"),
    Flag(("-detector_rotz",), (u.deg,), "detector.rotz", help="about z (deg)"),
    Flag(("-twotheta",), (u.deg,), "detector.twotheta", implies=(("detector.pivot", "sample"),),
         help="two-theta (deg)"),
    Flag(("-curved_det",), **_set(("detector.curved", True)), help="all pixels at the same distance"),
    Flag(("-point_pixel",), **_set(("detector.point_pixel", True)), help="no obliquity in the solid angle"),
    Flag(("-detector_abs", "-detector_absorb"), (u.text,), action=_detector_abs, help="attenuation depth (um) or inf"),
    Flag(("-detector_thick",), (u.um,), "detector.thickness", help="sensor thickness (um)"),
    Flag(("-detector_thicksteps", "-thicksteps"), (u.integer,), "detector.thicksteps", help="sensor layers"),
    Flag(("-roi",), (u.integer,) * 4, "detector.roi", help="xmin xmax ymin ymax (inclusive pixels)"),
    # sampling
    Flag(("-oversample",), (u.integer,), "sampling.oversample", help="sub-pixels per pixel side"),
    Flag(("-oversample_thick",), **_set(("sampling.oversample_thick", True)), help="absorption per sub-pixel"),
    Flag(("-oversample_polar",), **_set(("sampling.oversample_polar", True)), help="polarization per sub-pixel"),
    Flag(("-oversample_omega",), **_set(("sampling.oversample_omega", True)), help="solid angle per sub-pixel"),
    Flag(("-dmin",), (u.angstrom,), "sampling.dmin", help="resolution limit (A)"),
    Flag(("-interpolate",), **_set(("crystal.interpolate", True)), help="tricubic interpolation of F"),
    Flag(("-nointerpolate",), **_set(("crystal.interpolate", False)), help="nearest-neighbour F"),
    Flag(("-water",), (u.um,), "crystal.water_size", help="water background thickness (um)"),
    # outputs
    Flag(("-floatfile", "-floatimage"), (u.text,), "output.floatfile", help="float image (4-byte floats)"),
    Flag(("-intfile", "-intimage"), (u.text,), "output.intfile", help="SMV image"),
    Flag(("-noisefile", "-noiseimage"), (u.text,), "output.noisefile", implies=(("output.calculate_noise", True),),
         help="SMV image with Poisson noise"),
    Flag(("-pgmfile", "-pgmimage"), (u.text,), "output.pgmfile", implies=(("output.write_pgm", True),),
         help="PGM image"),
    Flag(("-pngfile",), (u.text,), "output.pngfile", help="PNG preview (log scale)"),
    Flag(("-pnglinear",), **_set(("output.png_linear", True)), help="linear PNG scale"),
    Flag(("-cbffile",), (u.text,), "output.cbffile",
         help="Pilatus mini-CBF (the int image, or noise image with noise on)"),
    Flag(("-h5file",), (u.text,), "output.h5file", help="NeXus/NXmx HDF5 (the same pixels as -cbffile)"),
    Flag(("-h5float",), **_set(("output.h5_float", True)), help="-h5file also holds the float image"),
    Flag(("-nonoise",), **_set(("output.calculate_noise", False)), help="no noise image"),
    Flag(("-nopgm",), **_set(("output.write_pgm", False)), help="no PGM image"),
    Flag(("-noise_rng",), (u.choice("c", "torch"),), "output.noise_rng", help="c (bit-identical) or torch (fast)"),
    Flag(("-scale",), (u.number,), "output.intfile_scale", help="SMV scale (default auto)"),
    Flag(("-pgmscale",), (u.number,), "output.pgm_scale", implies=(("output.write_pgm", True),), help="PGM scale"),
    Flag(("-adc", "-adcoffset"), (u.number,), "output.adc", help="SMV offset (default 40)"),
    Flag(("-seed",), (u.text,), action=_seed("output.seed"), help="noise seed"),
    Flag(("-coherent",), help="accepted for compatibility (no effect, as in C)"),
    # reporting and running
    Flag(("-printout",), **_set(("output.printout", True)), help="print pixel values"),
    Flag(("-printout_pixel",), (u.integer, u.integer), "output.printout_pixel", implies=(("output.printout", True),),
         help="fast slow: print one pixel"),
    Flag(("-trace_pixel",), (u.integer, u.integer), "output.trace_pixel", help="slow fast: trace one pixel"),
    Flag(("-noprogress",), **_set(("output.progress", False)), help="no progress bar"),
    Flag(("-progress",), **_set(("output.progress", True)), help="progress bar"),
    Flag(("-dtype",), (u.choice("float32", "float64"),), "run.dtype", help="arithmetic precision (default float32)"),
    Flag(("-device",), (u.choice("cpu", "cuda", "auto"),), "run.device", help="cpu, cuda or auto"),
    Flag(("-max_memory",), (u.positive(u.number),), "run.max_memory_mb", help="engine memory budget (MB)"),
    Flag(("-compile",), **_set(("run.compile", True)),
         help="CPU: build the AOTInductor kernel if not cached (20-50 s, once), even where it does not pay back"),
    Flag(("-nocompile",), **_set(("run.compile", False)), help="never use a compiled kernel (eager engine)"),
    Flag(("-numba",), **_set(("run.compile", "numba")),
         help="render with the numba loop (the eager engine where it cannot render); no compiled kernel used"),
    Flag(("-prepare",), **_set(("run.prepare", True)),
         help="build (or find) the compiled kernel of this kind of run and exit: nothing rendered or written"),
    Flag(("-h", "-help", "--help"), **_set(("run.help", True)), help="this help"),
]

BY_NAME = {name: flag for flag in FLAGS for name in flag.names}
