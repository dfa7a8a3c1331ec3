"""What a dataset is: the user's nanoBragg flags, and image i's complete argument list.

Every image is the ``nanoBragg`` run of :meth:`DatasetSpec.image_args`:
the user's flags (input paths made absolute, so that the list works from
any folder), then what decides the arithmetic spelled out (``-dtype``,
``-device``, ``-compile``/``-nocompile``), the numbered output files, the
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
_REPLACED = {"-seed", "-dtype", "-device", "-compile", "-nocompile", "-dump", "-progress", "-noprogress"}

MODES = ("rotation", "random")
#: Digits of the image number in file names (1-based).
DIGITS = 5


class DatasetError(ValueError):
    """Bad dataset input: one line naming the problem (the command exits with status 2)."""


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
    fixed: list = field(default_factory=list)  #: -dtype D -device X -compile|-nocompile
    outputs: list = field(default_factory=list)  #: [flag, name as given] of every output the run writes
    phi0: str = "0"  #: degrees, decimal text (rotation mode)
    osc: str = "0"  #: degrees, decimal text (rotation mode)
    dump: str = ""  #: absolute dump-file path

    # ---- per image -------------------------------------------------------------------------
    def files(self, index: int) -> dict:
        """Output flag -> file name (in OUTDIR) of image ``index`` (0-based; numbered from 1)."""
        return {flag: numbered(name, index + 1) for flag, name in self.outputs}

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
        for flag, name in self.files(index).items():
            args += [flag, name]
        args += self.orientation(index)
        args += ["-seed", str(self.noise_seed + index), "-dump", self.dump]
        return args

    # ---- identity --------------------------------------------------------------------------
    def describe(self) -> dict:
        """What identifies the dataset (dataset.json): a rerun with --resume must match it."""
        d = asdict(self)
        d.pop("outdir")
        return {"tool": "nb-dataset", "version": 1, **d}

    @property
    def token(self) -> str:
        """A short hash of the dataset's identity (worker caches, task names)."""
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:16]


def _abs_input(value: str) -> str:
    """An input file's path made absolute; other values of ``files.*`` flags (``-mtz_column FP``) as they are."""
    return os.path.abspath(value) if value not in ("", "-") and os.path.exists(value) else value


def make_spec(outdir: str, flags: list, images: int, random_orientations: bool = False,
              seed: Optional[int] = None, noise_seed: Optional[int] = None, device: Optional[str] = None):
    """Check the dataset options and the nanoBragg flags as ``nanoBragg`` would; returns (spec, settings).

    ``settings`` are image 0's, parsed from its argument list (outputs still
    relative). Raises DatasetError (or the command's UsageError/InputError)
    with one line; nothing is written. ``noise_seed`` (else the flags'
    ``-seed``, else ``seed``, else the clock) is image 0's noise seed.
    ``device``: the device that ``-device auto`` resolved to (else cpu).
    """
    from ..cli.main import build_settings
    from ..cli.parser import split_flags
    from ..cli.units import integer

    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise DatasetError(f"--images must be a positive whole number (got {images!r})")
    if images > 10 ** DIGITS - 1:
        raise DatasetError(f"--images {images}: at most {10 ** DIGITS - 1} images (5-digit file numbers)")
    mode = "random" if random_orientations else "rotation"
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
             "-nocompile" if run.compile is False else "-compile"]
    out = settings.output
    wanted = {"floatfile": bool(out.floatfile), "intfile": bool(out.intfile),
              "pgmfile": bool(out.pgmfile) and out.write_pgm, "noisefile": bool(out.noisefile) and out.calculate_noise,
              "pngfile": bool(out.pngfile), "cbffile": bool(out.cbffile), "h5file": bool(out.h5file)}
    outputs = [[flag, getattr(out, fld)] for flag, fld in OUTPUT_FLAGS if wanted[fld]]
    if not outputs:
        raise DatasetError("the flags write no image file (give at least one of -floatfile, -intfile, ...)")
    seen = {}
    for flag, name in outputs:
        other = seen.setdefault(numbered(name, 1), flag)
        if other != flag:
            raise DatasetError(f"{other} and {flag} would both write {numbered(name, 1)} (give them different names)")
    dump = os.path.abspath(dump_text if dump_text is not None else out.dumpfile)
    spec = DatasetSpec(outdir=os.path.abspath(outdir), flags=flags, images=images, mode=mode, seed=seed,
                       noise_seed=int(noise_seed), kept=kept, fixed=fixed, outputs=outputs, phi0=phi0, osc=osc,
                       dump=dump)
    return spec, build_settings(spec.image_args(0))
