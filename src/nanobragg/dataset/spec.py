"""What a dataset is: the user's nanoBragg flags, and image i's complete argument list.

Every image is the ``nanoBragg`` run of :meth:`DatasetSpec.image_args`:
the user's flags (input paths made absolute, so that the list works from
any folder), then what decides the arithmetic spelled out (``-dtype``,
``-device``, ``-numba``/``-compile``/``-nocompile``), the numbered output files, the
image's ``-phi`` (rotation series) or ``-misset`` (random orientations), its
noise ``-seed`` and the absolute ``-dump`` path. The output names are bare
file names: ``cd OUTDIR && nanoBragg <args>`` rewrites the image, byte for
byte. The list is parsed by the command's own parser
(:func:`nanobragg.cli.main.build_settings`) for every image, in the dataset
as in the single command.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Optional

from .orientations import random_misset

#: Output flags of nanoBragg (canonical name -> OutputConfig field), in the order the args list them.
OUTPUT_FLAGS = (("-floatfile", "floatfile"), ("-intfile", "intfile"), ("-pgmfile", "pgmfile"),
                ("-noisefile", "noisefile"), ("-pngfile", "pngfile"), ("-cbffile", "cbffile"), ("-h5file", "h5file"))
_OUTPUT_TARGETS = {f"output.{fld}" for _, fld in OUTPUT_FLAGS}
#: Flags whose value is an input file (made absolute in the image's args).
_INPUT_TARGETS_PREFIX = "files."
#: Flags the dataset sets for every image itself (dropped from the user's flags, then written explicitly).
_REPLACED = {"-seed", "-dtype", "-device", "-compile", "-nocompile", "-numba", "-dump", "-progress", "-noprogress"}

MODES = ("rotation", "random")
#: The background's float file (nonBragg -floatfile, once per dataset) and each image's sum (float_add's output).
BACKGROUND_FILE = "background.bin"
TOTAL_FILE = "total.bin"
#: noisify's outputs in a dataset when its flags name none (noisify's own defaults are nanoBragg's names).
NOISIFY_DEFAULTS = (("-intfile", "detector_int.img"), ("-pgmfile", "detector.pgm"), ("-noisefile", "detector.img"))
#: Digits of the image number in file names (1-based).
DIGITS = 5
#: Output formats of a dataset: each image's own files, or those and an NXmx series (data files and a master).
FORMATS = ("files", "nxmx")
#: --format nxmx: data file NNNNN (numbered from 1) holds frames_per_file int images; the master joins them.
NXMX_DATA = "series.h5"
NXMX_MASTER = "series_master.h5"
#: --format nxmx: frames per data file (and per Dask task) when --chunk gives none.
FRAMES_PER_FILE = 16


class DatasetError(ValueError):
    """Bad dataset input: one line naming the problem (the command exits with status 2)."""


def _engine_flag(compile, experiment) -> str:
    """The flag that fixes the engine of every image, as the run's ``compile`` asks: -compile,
    -nocompile or -numba; neither given: -numba (the numba loop, fastest and built once for every kind)
    where it renders the run, else -compile (a curved detector and the -oversample_* recurrence)."""
    if compile is not None:
        return {True: "-compile", False: "-nocompile", "numba": "-numba"}[compile]
    sampling = experiment.sampling
    beyond = experiment.detector.curved or sampling.oversample_thick or sampling.oversample_polar \
        or sampling.oversample_omega
    return "-compile" if beyond else "-numba"


def numbered(name: str, number: int) -> str:
    """``intimage.img`` -> ``intimage_00001.img`` (the folder part dropped: files go to OUTDIR)."""
    stem, ext = os.path.splitext(os.path.basename(name))
    return f"{stem}_{number:0{DIGITS}d}{ext}"


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass
class DatasetSpec:
    """A whole dataset, as plain data (picklable, JSON-able): everything image_args needs."""

    outdir: str  #: absolute
    flags: list  #: the user's nanoBragg flags, as given
    images: int
    mode: str = "rotation"  #: "rotation" or "random"
    seed: Optional[int] = None  #: orientation seed (random mode)
    noise_seed: int = 0  #: image i gets -seed noise_seed + i
    kept: list = field(default_factory=list)  #: the user's flags less the replaced ones, input paths absolute
    fixed: list = field(default_factory=list)  #: -dtype D -device X -numba|-compile|-nocompile
    outputs: list = field(default_factory=list)  #: [flag, name as given] of every output the run writes
    phi0: str = "0"  #: degrees, decimal text (rotation mode)
    osc: str = "0"  #: degrees, decimal text (rotation mode)
    dump: str = ""  #: absolute dump-file path
    #: nonBragg flags of the amorphous background (input paths absolute); [] for none
    background: list = field(default_factory=list)
    #: noisify flags of the detector effects (input paths absolute, outputs numbered); [] for none
    detector_effects: list = field(default_factory=list)
    noisify_outputs: list = field(default_factory=list)  #: [flag, name as given] of noisify's outputs
    format: str = "files"  #: "files" (each image's files) or "nxmx" (those and an NXmx series)
    frames_per_file: int = 0  #: --format nxmx: images per data file (the last one may hold fewer)

    # ---- NXmx series -----------------------------------------------------------------------
    def nxmx_place(self, index: int) -> tuple:
        """(data file name, frame in it) of image ``index`` (--format nxmx)."""
        return numbered(NXMX_DATA, index // self.frames_per_file + 1), index % self.frames_per_file

    def file_groups(self) -> list:
        """The images of each data file, in order (--format nxmx)."""
        n = self.frames_per_file
        return [list(range(k, min(k + n, self.images))) for k in range(0, self.images, n)]

    # ---- per image -------------------------------------------------------------------------
    def files(self, index: int) -> dict:
        """Output flag -> file name (in OUTDIR) of image ``index`` (0-based; numbered from 1): nanoBragg's,
        then with a background ``total`` (float_add's sum), then noisify's (``noisify -intfile`` ...)."""
        names = self.spot_files(index)
        if self.background:
            names["total"] = numbered(TOTAL_FILE, index + 1)
        for flag, name in self.noisify_outputs:
            names[f"noisify {flag}"] = numbered(name, index + 1)
        if self.format == "nxmx":
            names["nxmx"] = self.nxmx_place(index)[0]
        return names

    def spot_files(self, index: int) -> dict:
        """nanoBragg's output flag -> file name (in OUTDIR) of image ``index``."""
        return {flag: numbered(name, index + 1) for flag, name in self.outputs}

    def spots_file(self, index: int) -> str:
        """The float file of image ``index``'s spots (nanoBragg's -floatfile)."""
        return numbered(dict(self.outputs)["-floatfile"], index + 1)

    def background_args(self) -> list:
        """``nonBragg`` arguments writing the dataset's background float file (run in OUTDIR)."""
        return list(self.background) + ["-floatfile", BACKGROUND_FILE]

    def float_add_args(self, index: int) -> list:
        """``float_add`` arguments of image ``index``'s sum (spots + background), in OUTDIR."""
        return [self.spots_file(index), BACKGROUND_FILE, numbered(TOTAL_FILE, index + 1)]

    def noisify_args(self, index: int) -> list:
        """The complete ``noisify`` argument list of image ``index`` (its input: the total, else the spots)."""
        source = numbered(TOTAL_FILE, index + 1) if self.background else self.spots_file(index)
        args = list(self.detector_effects) + ["-floatfile", source]
        for flag, name in self.noisify_outputs:
            args += [flag, numbered(name, index + 1)]
        return args + ["-seed", str(self.noise_seed + index)]

    def chain(self, index: int) -> dict:
        """The command chain after nanoBragg that makes image ``index``'s other files (manifest ``chain``)."""
        chain = {}
        if self.background:
            chain["nonBragg"] = self.background_args()
            chain["float_add"] = self.float_add_args(index)
        if self.detector_effects:
            chain["noisify"] = self.noisify_args(index)
        return chain

    def orientation(self, index: int) -> list:
        """The image's own flags: ``-phi X`` (rotation series) or ``-misset X Y Z`` (random)."""
        if self.mode == "random":
            return ["-misset", *random_misset(self.seed, index)]
        return ["-phi", _decimal_text(Decimal(self.phi0) + index * Decimal(self.osc))]

    def image_args(self, index: int) -> list:
        """The complete ``nanoBragg`` argument list of image ``index`` (output names relative to OUTDIR)."""
        if not 0 <= index < self.images:
            raise IndexError(f"image {index} outside 0..{self.images - 1}")
        args = list(self.kept) + list(self.fixed)
        for flag, name in self.spot_files(index).items():
            args += [flag, name]
        args += self.orientation(index)
        args += ["-seed", str(self.noise_seed + index), "-dump", self.dump]
        return args

    # ---- identity --------------------------------------------------------------------------
    def describe(self) -> dict:
        """What identifies the dataset (dataset.json): a rerun with --resume must match it."""
        d = asdict(self)
        d.pop("outdir")
        if d["format"] == "files":  # as before --format existed: older datasets resume
            d.pop("format")
            d.pop("frames_per_file")
        return {"tool": "nb-dataset", "version": 1, **d}

    @property
    def token(self) -> str:
        """A short hash of the dataset's identity (worker caches, task names)."""
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:16]


def _abs_input(value: str) -> str:
    """An input file's path made absolute; other values of ``files.*`` flags (``-mtz_column FP``) as they are."""
    return os.path.abspath(value) if value not in ("", "-") and os.path.exists(value) else value


def _background_flags(flags: list) -> list:
    """nonBragg flags checked as nonBragg checks them, its outputs refused, input paths absolute."""
    from ..cli.nonbragg import build_settings as nonbragg_settings
    from ..cli.nonbragg import validate
    from ..cli.nonbragg_flags import BY_NAME
    from ..cli.parser import split_flags
    kept = []
    for flag, name, values in split_flags(flags, BY_NAME):
        canon = flag.names[0]
        if canon in ("-floatfile", "-intfile", "-pgmfile", "-noisefile", "-stolout", "-img"):
            raise DatasetError(f"--background: {name}: the dataset writes {BACKGROUND_FILE} itself "
                               "(nonBragg's other outputs and -img are not used)")
        if canon in ("-dtype", "-device"):
            raise DatasetError(f"--background: {name}: the background is rendered as nonBragg's default "
                               "(float64 on the CPU, C's file)")
        if canon in ("-stol", "-4stol", "-Q", "-sourcefile"):
            values = [_abs_input(values[0])]
        kept += [name, *values]
    validate(nonbragg_settings(kept)[0])
    return kept


def _noisify_flags(flags: list) -> tuple:
    """(noisify flags less outputs and seed, input paths absolute; [[flag, name], ...] of its outputs)."""
    from ..cli.noisify import BY_NAME, build_settings
    from ..cli.parser import split_flags
    settings = build_settings(flags)
    given, kept = {}, []
    for flag, name, values in split_flags(flags, BY_NAME):
        canon = flag.names[0]
        if canon in ("-floatfile", "-seed"):
            raise DatasetError(f"--detector-effects: {name}: the dataset gives noisify its input (the image's "
                               "total, else its -floatfile) and -seed (the image's noise seed)")
        if canon in ("-intfile", "-pgmfile", "-noisefile"):
            given[canon] = values[0]
            continue
        if canon == "-header":
            values = [_abs_input(values[0])]
        kept += [name, *values]
    if settings.floatfile is not None:
        raise DatasetError(f"--detector-effects: {settings.floatfile}: the dataset gives noisify its input")
    outputs = []
    for flag, default in NOISIFY_DEFAULTS:
        if flag == "-pgmfile" and not settings.write_pgm or flag == "-noisefile" and not settings.calculate_noise:
            continue
        outputs.append([flag, given.get(flag, default)])
    return kept, outputs


def make_spec(outdir: str, flags: list, images: int, random_orientations: bool = False,
              seed: Optional[int] = None, noise_seed: Optional[int] = None, device: Optional[str] = None,
              background: Optional[list] = None, detector_effects: Optional[list] = None,
              format: str = "files", frames_per_file: Optional[int] = None):
    """Check the dataset options and the nanoBragg flags as ``nanoBragg`` would; returns (spec, settings).

    ``settings`` are image 0's, parsed from its argument list (outputs still
    relative). Raises DatasetError (or the command's UsageError/InputError)
    with one line; nothing is written. ``noise_seed`` (else the flags'
    ``-seed``, else ``seed``, else the clock) is image 0's noise seed.
    ``device``: the device that ``-device auto`` resolved to (else cpu). ``background``: nonBragg
    flags (the amorphous background, once per dataset, added to every image as float_add does);
    ``detector_effects``: noisify flags (run on every image's sum, else its spots). ``format="nxmx"``:
    the images' SMV int images also go, ``frames_per_file`` at a time (default FRAMES_PER_FILE), to
    NXmx data files ``series_NNNNN.h5`` joined by the master ``series_master.h5`` (a rotation series only).
    """
    from ..cli.main import build_settings
    from ..cli.parser import split_flags
    from ..cli.units import integer

    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise DatasetError(f"--images must be a positive whole number (got {images!r})")
    if images > 10 ** DIGITS - 1:
        raise DatasetError(f"--images {images}: at most {10 ** DIGITS - 1} images (5-digit file numbers)")
    mode = "random" if random_orientations else "rotation"
    if format not in FORMATS:
        raise DatasetError(f"--format {format}: not one of {', '.join(FORMATS)}")
    if format == "nxmx":
        if mode == "random":
            raise DatasetError("--format nxmx writes a rotation series (one omega angle per frame): "
                               "not with --random-orientations")
        if frames_per_file is None:
            frames_per_file = FRAMES_PER_FILE
        if not isinstance(frames_per_file, int) or isinstance(frames_per_file, bool) or frames_per_file < 1:
            raise DatasetError(f"--chunk must be a positive whole number (got {frames_per_file!r})")
    else:
        frames_per_file = 0
    if mode == "random" and seed is None:
        raise DatasetError("--random-orientations needs --seed S (the orientations are drawn from it)")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise DatasetError(f"--seed must be a whole number >= 0 (got {seed!r})")
    flags = [str(f) for f in flags]
    groups = split_flags(flags)
    names = [flag.names[0] for flag, _, _ in groups]
    if "-h" in names:
        raise DatasetError("-h among the nanoBragg flags: run 'nanoBragg -h' for them, "
                           "'nb-dataset -h' for the dataset's")
    settings = build_settings(flags)
    if getattr(settings.files, "geom", None) is not None:
        raise DatasetError("-geom: multi-panel detectors are not supported by nb-dataset yet (one panel's flags are)")
    xtal = settings.experiment.crystal
    kept, outputs_given = [], {}
    phi_text = osc_text = seed_text = dump_text = None
    for flag, name, values in groups:
        canon = flag.names[0]
        if flag.target in _OUTPUT_TARGETS:
            outputs_given[flag.target] = values[0]
            continue
        if canon == "-seed":
            seed_text = values[0]
            continue
        if canon == "-dump":
            dump_text = values[0]
            continue
        if canon in _REPLACED:
            continue
        if canon == "-phi" and mode == "rotation":
            phi_text = values[0]
            continue
        if canon == "-osc":
            osc_text = values[0]
        if canon == "-misset" and mode == "random":
            raise DatasetError("-misset: --random-orientations sets every shot's misset; remove -misset from the flags")
        if isinstance(flag.target, str) and flag.target.startswith(_INPUT_TARGETS_PREFIX):
            values = [_abs_input(values[0])]
        kept += [name, *values]
    if xtal.misset == "random" and xtal.misset_seed is None:
        raise DatasetError("-misset random: give -misset_seed too (else each image's noise seed would change the "
                           "orientation), or use --random-orientations --seed S")
    phi0 = osc = "0"
    if mode == "rotation":
        if not float(xtal.osc) > 0:
            raise DatasetError("a rotation series needs -osc DEG "
                               "(each image's width; image i starts at -phi + i * osc)")
        try:
            phi0 = _decimal_text(Decimal(phi_text if phi_text is not None else repr(math.degrees(float(xtal.phi0)))))
            osc = _decimal_text(Decimal(osc_text if osc_text is not None else repr(math.degrees(float(xtal.osc)))))
        except InvalidOperation:
            raise DatasetError(f"-phi/-osc: not a decimal number ({phi_text!r}, {osc_text!r})") from None
    if noise_seed is None:
        if seed_text is not None:
            noise_seed = integer(seed_text)
        elif seed is not None:
            noise_seed = seed
        else:
            import time
            noise_seed = int(time.time())
    run = settings.run
    fixed = ["-dtype", run.dtype, "-device", device or ("cpu" if run.device == "auto" else run.device),
             _engine_flag(run.compile, settings.experiment)]
    out = settings.output
    wanted = {"floatfile": bool(out.floatfile), "intfile": bool(out.intfile),
              "pgmfile": bool(out.pgmfile) and out.write_pgm, "noisefile": bool(out.noisefile) and out.calculate_noise,
              "pngfile": bool(out.pngfile), "cbffile": bool(out.cbffile), "h5file": bool(out.h5file)}
    outputs = [[flag, getattr(out, fld)] for flag, fld in OUTPUT_FLAGS if wanted[fld]]
    if not outputs:
        raise DatasetError("the flags write no image file (give at least one of -floatfile, -intfile, ...)")
    if format == "nxmx" and not wanted["intfile"]:
        raise DatasetError("--format nxmx: the frames are the SMV int images: give -intfile among the flags")
    seen = {}
    for flag, name in outputs:
        other = seen.setdefault(numbered(name, 1), flag)
        if other != flag:
            raise DatasetError(f"{other} and {flag} would both write {numbered(name, 1)} (give them different names)")
    dump = os.path.abspath(dump_text if dump_text is not None else out.dumpfile)
    bg_flags = _background_flags([str(f) for f in background]) if background else []
    fx_flags, fx_outputs = _noisify_flags([str(f) for f in detector_effects]) if detector_effects else ([], [])
    if (bg_flags or fx_flags) and not out.floatfile:
        raise DatasetError("--background/--detector-effects need the spots' float file (nanoBragg's -floatfile)")
    spec = DatasetSpec(outdir=os.path.abspath(outdir), flags=flags, images=images, mode=mode, seed=seed,
                       noise_seed=int(noise_seed), kept=kept, fixed=fixed, outputs=outputs, phi0=phi0, osc=osc,
                       dump=dump, background=bg_flags, detector_effects=fx_flags, noisify_outputs=fx_outputs,
                       format=format, frames_per_file=frames_per_file)
    seen = {}
    for key, name in spec.files(0).items():
        other = seen.setdefault(name, key)
        if other != key:
            raise DatasetError(f"{other} and {key} would both write {name} (give them different names)")
    if bg_flags and BACKGROUND_FILE in seen:
        raise DatasetError(f"{seen[BACKGROUND_FILE]} would write {BACKGROUND_FILE}, the background's file")
    return spec, build_settings(spec.image_args(0))
