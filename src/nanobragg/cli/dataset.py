"""The ``nb-dataset`` command: ``nb-dataset OUTDIR [options] -- NANOBRAGG_FLAGS...``.

Renders a rotation series (default) or a set of randomly oriented shots
(``--random-orientations --seed S``) into OUTDIR, every image as
``nanoBragg`` would write it alone; see :mod:`nanobragg.dataset`. Bad input
ends with one line on stderr and exit status 2 before anything is written;
Ctrl-C, SIGTERM or SIGHUP end it with 128 + the signal, leaving every
finished image complete and listed in the manifest (``--resume`` continues).
"""
from . import entry  # noqa: F401  (first: the OpenMP thread policy, before torch loads)

# isort: split
import argparse
import gc
import shlex
import sys

from .interrupts import run_interruptible

PROG = "nb-dataset"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the usage too)
        raise _Usage(message)


class _Usage(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, allow_abbrev=False, usage=f"{PROG} OUTDIR --images N [options] -- NANOBRAGG_FLAGS...",
                description="Render a rotation series or a set of randomly oriented shots: image i is the nanoBragg "
                            "run of the flags after '--' with -phi phi0 + i*osc (default) or a random -misset; files "
                            "numbered name_00001.ext in OUTDIR, listed in OUTDIR/manifest.jsonl with their sha256 and "
                            "the nanoBragg arguments that reproduce them.")
    p.add_argument("outdir", metavar="OUTDIR", help="folder of the dataset (created)")
    p.add_argument("--images", type=int, required=True, metavar="N", help="number of images")
    p.add_argument("--random-orientations", action="store_true",
                   help="each shot in an orientation drawn uniformly from --seed (given as -misset)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the orientations; also the first noise seed "
                   "when the flags have no -seed (image i uses seed + i)")
    p.add_argument("--resume", action="store_true", help="continue the dataset in OUTDIR: render only images "
                   "missing from the manifest or whose files fail their sha256")
    p.add_argument("--workers", type=int, metavar="K", help="render on an embedded Dask LocalCluster of K "
                   "single-threaded worker processes (needs nanobragg[dataset])")
    p.add_argument("--scheduler", metavar="ADDRESS", help="render on an existing Dask cluster, e.g. tcp://host:8786")
    p.add_argument("--background", metavar="ARGS", help="nonBragg flags, one quoted string (e.g. '-stol water "
                   "-thickness 0.01 -distance 100 -detpixels 512 -Xbeam 25.7 -Ybeam 25.7'): the amorphous "
                   "background, written once as background.bin and added to each image as total_NNNNN.bin")
    p.add_argument("--detector-effects", metavar="ARGS", help="noisify flags, one quoted string (e.g. '-readout 3 "
                   "-psf gauss -psf_fwhm 100 -psf_radius 3'): run on each image's total (else its float file) with "
                   "the image's noise seed, writing detector_int_NNNNN.img, detector_NNNNN.img")
    p.add_argument("--chunk", type=int, metavar="M", help="images per Dask task (default: about 4 tasks per worker); "
                   "with --format nxmx, frames per NXmx data file and per task (default 16)")
    p.add_argument("--format", choices=("files", "nxmx"), default="files",
                   help="files: each image's own files (default); nxmx: those and an NXmx series of the SMV int "
                   "images (-intfile): data files series_NNNNN.h5, each written by the task that renders its "
                   "frames, and series_master.h5, written at the end, whose /entry/data/data is every frame in "
                   "order and whose omega values are the images' phi (needs nanobragg[formats])")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="progress bar always")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message} (try '{PROG} -h')", file=sys.stderr)
    return 2


def run(argv: list) -> int:
    """Run the command; returns the exit status."""
    from ..dataset import DatasetError, run_dataset
    from ..io import InputError
    from ..resolve import ConfigError
    from .parser import UsageError

    if "--" in argv:
        cut = argv.index("--")
        own, flags = argv[:cut], argv[cut + 1:]
    else:
        own, flags = argv, None
        if not {"-h", "--help"} & set(argv):
            return _fail("give the nanoBragg flags after '--' (nb-dataset OUTDIR --images N -- -hkl ... -osc 0.1 ...)")
    try:
        opts = _parser().parse_args(own)
    except _Usage as exc:
        return _fail(str(exc))
    if opts.workers is not None and opts.scheduler is not None:
        return _fail("--workers and --scheduler: give one of them")
    try:
        summary = run_dataset(opts.outdir, flags, opts.images, random_orientations=opts.random_orientations,
                              seed=opts.seed, resume=opts.resume, workers=opts.workers, scheduler=opts.scheduler,
                              chunk=opts.chunk, progress=opts.progress,
                              background=shlex.split(opts.background) if opts.background else None,
                              detector_effects=shlex.split(opts.detector_effects) if opts.detector_effects else None,
                              format=opts.format)
    except (DatasetError, UsageError, InputError, ConfigError) as exc:
        return _fail(str(exc))
    except OSError as exc:  # the manifest or OUTDIR itself (a full disk, a folder removed)
        return _fail(f"{exc.filename or opts.outdir}: {exc.strerror or exc}; every finished image is listed: "
                     "rerun with --resume")
    print(summary.line())
    return 0


def main(argv=None) -> int:
    """The command's exit status (usable in-process). Interrupted: 128 + the signal."""
    return run_interruptible(
        PROG, run, sys.argv[1:] if argv is None else list(argv),
        interrupted="; every finished image is listed in the manifest: rerun with --resume to complete the dataset",
        terminated="; rerun with --resume to complete the dataset")


def console() -> None:
    """The ``nb-dataset`` console script: torch and the dataset's modules load with the garbage collector
    off and are frozen out of its later passes (as ``nanoBragg`` does, see entry.console); then
    entry.run_program."""
    gc.disable()
    from .. import dataset  # noqa: F401  (numpy and the dataset's modules)
    from . import simulate  # noqa: F401  (torch and the command's pipeline)
    gc.freeze()
    gc.enable()
    entry.run_program(main)


if __name__ == "__main__":
    console()
