"""``nb-compare``: run two nanoBragg programs with the same arguments and compare.

Usage::

    nb-compare [--outdir DIR] [--roi xmin xmax ymin ymax] [--threshold T]
               [--resample] [--png-scale PCTL] [--save-diff] [--timeout S]
               [--keep-files] [--c-bin PATH] [--py-bin PATH] [--image KIND] -- ARGS...
    nb-compare --files REF TEST [--frame N] [options] [-- ARGS...]

The reference program ("c": ``--c-bin``, else ``$NB_C_BIN``, else
``./nanoBragg``) and the program under test ("py": ``--py-bin``, else
``$NB_PY_BIN``, else this project's ``nanoBragg`` command) each run with
``ARGS`` plus their own ``-floatfile`` in a fresh temporary folder of their
own, so that neither overwrites the other's files nor the user's
(``intimage.img``, ``image.pgm``, ``Fdump.bin``...). Relative paths in
``ARGS`` that name existing files in the current folder (``-hkl P1.hkl``,
``-mat A.mat``) are passed as absolute paths; output file names
(``-intfile``, ``-noisefile``, ``-pgmfile``, ``-pngfile``, ``-stolout``,
``-dump``) keep only their base name, inside the program's folder; an
existing structure-factor cache (``Fdump.bin`` or ``-dump``'s file) is
copied in when ``ARGS`` has no ``-hkl``. The folders are removed afterwards
(with ``--keep-files`` their contents move to ``DIR/c_files`` and
``DIR/py_files``). Each program is killed (its whole process group) after
``--timeout`` seconds (default 600; 0 = no limit).

``--image smv|cbf|nxmx`` compares another of the programs' outputs instead
of the float images: each program also gets ``-intfile``, ``-cbffile`` or
``-h5file`` (a file in the artifact folder), read with fabio (SMV, CBF) or
h5py (NXmx, frame ``--frame``); C's nanoBragg writes float and SMV files
only. ``--files REF TEST`` runs nothing and compares two existing files, each
read by its own format (an HDF5 file as NXmx, ``###CBF`` as CBF, an SMV
header as SMV, anything else as raw float32, its shape from ``ARGS`` when
given); REF takes the "c" side, TEST the "py" side.

The float images are compared and everything is kept in the artifact folder
(``comparisons/YYYYMMDD-HHMMSS-<hash>/`` unless ``--outdir``); nothing else
in the current folder is written.

Exit codes: 0 success, 1 usage error (also an ``--outdir`` that cannot be a
folder), 2 a program failed or is missing, 3 correlation below
``--threshold``, 4 a program timed out (killed), 5 NaN or infinity in an
image, 6 shape mismatch without ``--resample``, 7 unreadable output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # scipy (peak matching) comes with the tools extra: pip install "nanobragg[tools]"
    from nanobragg.tools.metrics import compare_images, finite_or_none
except ImportError as _exc:
    compare_images = finite_or_none = None
    _MISSING = _exc.name
else:
    _MISSING = None
from nanobragg.tools.preview import write_previews

(EXIT_OK, EXIT_USAGE, EXIT_RUNNER, EXIT_THRESHOLD, EXIT_TIMEOUT, EXIT_NONFINITE, EXIT_SHAPE,
 EXIT_UNREADABLE) = range(8)
DEFAULT_TIMEOUT_S = 600.0
#: Flags naming a file the program writes: kept to its base name, inside the program's own folder.
OUTPUT_FLAGS = ("-floatfile", "-floatimage", "-intfile", "-intimage", "-noisefile", "-noiseimage",
                "-pgmfile", "-pgmimage", "-pngfile", "-stolout")
#: Flags naming the structure-factor cache, read when there is no ``-hkl`` and written after one.
DUMP_FLAGS = ("-dump",)
DEFAULT_DUMP = "Fdump.bin"
DEFAULT_PNG_PERCENTILE = 99.5
DEFAULT_PIXEL_MM = 0.1
DEFAULT_DETSIZE_MM = 102.4
#: --image: each kind's output flag and file extension (float: the -floatfile nb-compare always gives).
IMAGE_KINDS = {"float": ("-floatfile", ".bin"), "smv": ("-intfile", ".img"), "cbf": ("-cbffile", ".cbf"),
               "nxmx": ("-h5file", ".h5")}
SUMMARY_KEYS = (
    "args", "c_bin", "py_bin", "roi", "resample", "runtime_c_ms", "runtime_py_ms",
    "correlation", "mse", "rmse", "max_abs_diff", "sum_c", "sum_py", "sum_ratio",
    "max_c", "max_py", "max_c_at", "max_py_at", "peaks_matched_fraction",
    "peaks_mean_distance_px", "peaks_max_distance_px", "png_scale_method",
)


class CompareError(Exception):
    """A failure that ends the comparison with a given exit code and status."""

    def __init__(self, code: int, status: str, message: str):
        super().__init__(message)
        self.code = code
        self.status = status


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors exit with status 1 instead of 2."""

    def error(self, message):
        """Print usage and ``message`` to stderr, then exit 1."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# ------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    """The option parser for the part of the command line before ``--``."""
    p = _Parser(prog="nb-compare", usage="%(prog)s [options] -- ARGS...",
                description="Run two nanoBragg programs with the same ARGS and "
                            "compare their float images.")
    p.add_argument("--outdir", type=Path, help="artifact folder (default "
                   "comparisons/YYYYMMDD-HHMMSS-<hash of ARGS>)")
    p.add_argument("--roi", type=int, nargs=4, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help="inclusive pixel bounds (x fast, y slow) for metrics and previews")
    p.add_argument("--threshold", type=float, help="exit 3 if correlation is below T")
    p.add_argument("--resample", action="store_true",
                   help="resize the py image to the c image's shape (nearest) if they differ")
    p.add_argument("--png-scale", type=float, default=DEFAULT_PNG_PERCENTILE,
                   metavar="PCTL", help="percentile of both images mapped to the top "
                   "of the preview scale (default %(default)s)")
    p.add_argument("--save-diff", action="store_true", help="also write diff.png (py - c)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help="kill a program still running after S seconds and exit 4; "
                   "0 = no limit (default %(default)g)")
    p.add_argument("--keep-files", action="store_true", help="keep the other files each "
                   "program wrote, in DIR/c_files and DIR/py_files")
    p.add_argument("--c-bin", help="reference program (default $NB_C_BIN or ./nanoBragg)")
    p.add_argument("--py-bin", help="program under test (default $NB_PY_BIN or "
                   "this project's nanoBragg command)")
    p.add_argument("--image", choices=tuple(IMAGE_KINDS), default="float",
                   help="which output of the programs to compare: float (default), smv (-intfile), cbf "
                   "(-cbffile) or nxmx (-h5file); C's nanoBragg writes float and smv only")
    p.add_argument("--files", nargs=2, type=Path, metavar=("REF", "TEST"),
                   help="run nothing: compare two existing files (raw float32, SMV, CBF or NXmx, each "
                   "recognised by its content; REF is the c side)")
    p.add_argument("--frame", type=int, default=0, metavar="N",
                   help="frame of an NXmx file's /entry/data/data (default 0)")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``OPTIONS -- ARGS``; usage errors raise ``SystemExit(1)``."""
    parser = build_parser()
    if "--" in argv:
        split = argv.index("--")
        options, args = argv[:split], argv[split + 1:]
    else:
        options, args = argv, []
    opts = parser.parse_args(options)
    if not args and opts.files is None:
        parser.error("no program arguments: give them after '--'")
    _check_options(parser, opts)
    opts.args = list(args)
    return opts


def _check_options(parser: argparse.ArgumentParser, opts: argparse.Namespace) -> None:
    """Reject option values that parse but make no sense."""
    if opts.roi is not None:
        xmin, xmax, ymin, ymax = opts.roi
        if min(opts.roi) < 0 or xmin > xmax or ymin > ymax:
            parser.error("--roi needs 0 <= xmin <= xmax and 0 <= ymin <= ymax")
    if not 0.0 < opts.png_scale <= 100.0:
        parser.error("--png-scale must be a percentile in (0, 100]")
    if opts.threshold is not None and not math.isfinite(opts.threshold):
        parser.error("--threshold must be a finite number")
    if not (math.isfinite(opts.timeout) and opts.timeout >= 0.0):
        parser.error("--timeout must be a number of seconds >= 0 (0 = no limit)")
    if opts.frame < 0:
        parser.error("--frame must be >= 0")
    if opts.files is not None:
        given = [name for name, value in (("--c-bin", opts.c_bin), ("--py-bin", opts.py_bin),
                                          ("--keep-files", opts.keep_files), ("--image", opts.image != "float"))
                 if value]
        if given:
            parser.error(f"--files compares two files and runs no program: {', '.join(given)} not used")


# ------------------------------------------------------------------ programs


@dataclass
class RunResult:
    """Outcome of one program run."""

    returncode: int
    runtime_ms: float


def _resolve_executable(name: str) -> str | None:
    """Absolute path of ``name`` (a path, or a command looked up on PATH)."""
    if os.sep in name or (os.altsep and os.altsep in name):
        path = Path(name).expanduser().resolve()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name)


def resolve_command(flag: str | None, env_name: str, fallback) -> tuple[list[str], str]:
    """Command list for one side, and its description; missing raises exit 2.

    ``fallback`` is used when neither the flag nor the environment variable
    is set; it is a program name or a callable returning a command list.
    """
    chosen = flag or os.environ.get(env_name)
    if not chosen:
        if callable(fallback):
            cmd = fallback()
            return cmd, " ".join(cmd)
        chosen = fallback
    path = _resolve_executable(chosen)
    if path is None:
        raise CompareError(EXIT_RUNNER, "missing_binary", f"program not found: {chosen}")
    return [path], path


def own_command() -> list[str]:
    """This project's nanoBragg command: the installed script, else ``python -m``."""
    found = shutil.which("nanoBragg")
    return [found] if found else [sys.executable, "-m", "nanobragg"]


def _is_number(text: str) -> bool:
    """True when ``text`` reads as a number (a flag's value, never a file name here)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def program_args(args: list[str], cwd: Path) -> tuple[list[str], list[Path]]:
    """``args`` made safe to run in a fresh folder, and the files to copy into that folder.

    Output file names (:data:`OUTPUT_FLAGS`, :data:`DUMP_FLAGS`) keep only
    their base name, so that every file a program writes lands in its own
    folder; any other argument that is a relative path to an existing file or
    folder in ``cwd`` (and is not a number) becomes absolute. Without ``-hkl`` the structure-factor
    cache the program would read (``Fdump.bin`` or ``-dump``'s file, in
    ``cwd``) is to be copied in (a copy: the program may rewrite it).
    """
    out: list[str] = []
    dump = DEFAULT_DUMP
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        if arg in OUTPUT_FLAGS + DUMP_FLAGS and i + 1 < len(args):
            value = args[i + 1]
            if arg in DUMP_FLAGS:
                dump = value
            out.append(Path(value).name or "output")
            i += 2
            continue
        if (arg and not arg.startswith("-") and not _is_number(arg) and not os.path.isabs(arg)
                and (cwd / arg).exists()):
            out[-1] = str((cwd / arg).resolve())
        i += 1
    copies = []
    if "-hkl" not in args and (cwd / dump).is_file():
        copies.append((cwd / dump).resolve())
    return out, copies


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (its own process group), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_program(cmd: list[str], args: list[str], floatfile: Path, outdir: Path, side: str,
                rundir: Path, timeout: float | None = None, extra: tuple = ()) -> RunResult:
    """Run one program in ``rundir`` (killed after ``timeout`` s); keep its stdout and stderr.

    The program gets its own process group, so that a timeout (exit 4) or an
    interruption of nb-compare kills it and any children it started.
    """
    floatfile.unlink(missing_ok=True)
    with open(outdir / f"{side}_stdout.txt", "wb") as out, \
            open(outdir / f"{side}_stderr.txt", "wb") as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd + args + ["-floatfile", str(floatfile), *extra], cwd=rundir,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
        except OSError as exc:
            err.write(f"{exc}\n".encode())
            raise CompareError(EXIT_RUNNER, "runner_failed",
                               f"{side}: could not start {cmd[0]}: {exc}") from exc
        try:
            returncode = proc.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise CompareError(EXIT_TIMEOUT, "timeout",
                               f"{side}: still running after {timeout:g} s, killed "
                               f"(--timeout); see {outdir / (side + '_stderr.txt')}") from None
        except BaseException:
            _kill_group(proc)
            raise
    runtime_ms = (time.perf_counter() - start) * 1000.0
    return RunResult(returncode, runtime_ms)


def _collect_files(rundir: Path, outdir: Path, side: str, keep: bool) -> dict[str, int]:
    """Sizes of the files a program left in ``rundir``; moved to ``outdir/<side>_files`` with ``keep``."""
    found = {str(p.relative_to(rundir)): p.stat().st_size
             for p in sorted(rundir.rglob("*")) if p.is_file()}
    if keep and found:
        target = outdir / f"{side}_files"
        if target.is_dir():
            shutil.rmtree(target)
        shutil.move(str(rundir), str(target))
    return found


# ------------------------------------------------------------------ images


def _number(text: str):
    """``text`` as a float, or ``None`` when it is not a number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def expected_shape(args: list[str]) -> tuple[int, int]:
    """``(slow, fast)`` pixel counts implied by nanoBragg arguments.

    Follows nanoBragg's rules: later flags win, pixel counts override
    detector sizes, and ``pixels = ceil(size / pixel - 0.5)``.
    """
    pixel = DEFAULT_PIXEL_MM / 1000.0
    size_f = size_s = DEFAULT_DETSIZE_MM / 1000.0
    npix_f = npix_s = 0
    for flag, text in zip(args, args[1:]):
        value = _number(text)
        if value is None:
            continue
        if flag in ("-detsize", "-detsize_f"):
            size_f = value / 1000.0
        if flag in ("-detsize", "-detsize_s"):
            size_s = value / 1000.0
        if flag in ("-detpixels", "-detpixels_f", "-detpixels_x"):
            npix_f = int(value)
        if flag in ("-detpixels", "-detpixels_s", "-detpixels_y"):
            npix_s = int(value)
        if flag == "-pixel":
            pixel = value / 1000.0
    if pixel <= 0.0:
        return (0, 0)
    size_f = pixel * npix_f if npix_f else size_f
    size_s = pixel * npix_s if npix_s else size_s
    return (math.ceil(size_s / pixel - 0.5), math.ceil(size_f / pixel - 0.5))


def read_float_image(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a raw little-endian float32 image of ``shape`` (slow, fast).

    A file of another size that holds a square number of floats is read as
    a square image; anything else raises exit 7.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CompareError(EXIT_UNREADABLE, "unreadable_output",
                           f"cannot read {path}: {exc}") from exc
    count, rest = divmod(len(data), 4)
    if count == 0 or rest:
        raise CompareError(EXIT_UNREADABLE, "unreadable_output",
                           f"{path.name}: {len(data)} bytes is not a float32 image")
    img = np.frombuffer(data, dtype="<f4")
    if count == shape[0] * shape[1]:
        return img.reshape(shape)
    side = math.isqrt(count)
    if side * side == count:
        print(f"note: {path.name} holds {count} floats, not {shape[1]}x{shape[0]}; "
              f"reading it as {side}x{side}", file=sys.stderr)
        return img.reshape(side, side)
    raise CompareError(EXIT_UNREADABLE, "unreadable_output",
                       f"{path.name}: {count} floats fit neither {shape[1]}x{shape[0]} "
                       "nor a square image")


def _unreadable(message: str) -> CompareError:
    return CompareError(EXIT_UNREADABLE, "unreadable_output", message)


def image_kind(path: Path) -> str:
    """The format of an image file from its first bytes: nxmx (HDF5), cbf, smv, else float."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise _unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "nxmx"
    if head.startswith(b"###CBF"):
        return "cbf"
    if head.startswith(b"{") and b"HEADER_BYTES" in head[:128]:
        return "smv"
    return "float"


def _require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise _unreadable(f"reading {what} needs {module}: pip install 'nanobragg[formats]'") from None


def read_fabio_image(path: Path, what: str) -> np.ndarray:
    """An SMV or CBF image read by fabio, as float64 (slow, fast)."""
    fabio = _require("fabio", what)
    try:
        data = fabio.open(str(path)).data
    except Exception as exc:  # noqa: BLE001 - fabio raises many kinds for a bad file
        raise _unreadable(f"{path.name}: not a readable {what} image ({type(exc).__name__}: {exc})") from None
    if data is None or np.ndim(data) != 2 or data.size == 0:
        raise _unreadable(f"{path.name}: fabio read no 2-D {what} image")
    return np.asarray(data, dtype=np.float64)


def read_nxmx_image(path: Path, frame: int = 0) -> np.ndarray:
    """Frame ``frame`` of an NXmx file's ``/entry/data/data`` read by h5py, as float64 (slow, fast)."""
    h5py = _require("h5py", "NXmx")
    _require("hdf5plugin", "NXmx")  # registers the bitshuffle-LZ4 filter
    try:
        with h5py.File(path, "r") as f:
            data = f.get("/entry/data/data")
            if not isinstance(data, h5py.Dataset):
                raise _unreadable(f"{path.name}: no /entry/data/data dataset (not an NXmx file)")
            if data.ndim != 3:
                raise _unreadable(f"{path.name}: /entry/data/data has shape {data.shape}, not (frames, slow, "
                                  "fast) (a multi-panel file is not compared)")
            if frame >= data.shape[0]:
                raise _unreadable(f"{path.name}: --frame {frame}, the file holds {data.shape[0]} frame(s)")
            return np.asarray(data[frame], dtype=np.float64)
    except CompareError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise _unreadable(f"{path.name}: not a readable NXmx file ({exc})") from None


def read_image(path: Path, shape: tuple[int, int], kind: str | None = None, frame: int = 0) -> np.ndarray:
    """An image of any kind (``kind`` None: from the file's content); raw floats need ``shape``."""
    kind = kind or image_kind(path)
    if kind == "float":
        return read_float_image(path, shape)
    if kind == "nxmx":
        return read_nxmx_image(path, frame)
    return read_fabio_image(path, kind.upper())


def resample_nearest(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``img`` to ``shape`` by nearest neighbour (pixel centres)."""
    rows = _nearest_index(img.shape[0], shape[0])
    cols = _nearest_index(img.shape[1], shape[1])
    return img[np.ix_(rows, cols)]


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """Source index for each of ``dst`` output pixels spanning ``src`` pixels."""
    centres = (np.arange(dst) + 0.5) * (src / dst)
    return np.minimum(centres.astype(np.int64), src - 1)


def crop_roi(img: np.ndarray, roi) -> np.ndarray:
    """The inclusive region ``roi = (xmin, xmax, ymin, ymax)`` of ``img``."""
    if roi is None:
        return img
    xmin, xmax, ymin, ymax = roi
    if xmax >= img.shape[1] or ymax >= img.shape[0]:
        raise CompareError(EXIT_USAGE, "bad_roi",
                           f"--roi {xmin} {xmax} {ymin} {ymax} lies outside the "
                           f"{img.shape[1]}x{img.shape[0]} image")
    return img[ymin:ymax + 1, xmin:xmax + 1]


# ------------------------------------------------------------------ artifacts


def args_hash(args: list[str]) -> str:
    """Eight hex digits identifying an argument list."""
    return hashlib.sha256("\0".join(args).encode()).hexdigest()[:8]


def make_outdir(outdir: Path | None, args: list[str]) -> Path:
    """Create the artifact folder (a fresh timestamped one unless given).

    A path that exists but is not a folder, or that cannot be created,
    raises exit 1 (a usage error) with a one-line message.
    """
    try:
        if outdir is not None:
            if outdir.exists() and not outdir.is_dir():
                raise CompareError(EXIT_USAGE, "bad_outdir",
                                   f"--outdir {outdir}: exists and is not a folder")
            outdir.mkdir(parents=True, exist_ok=True)
            return outdir.resolve()
        base = Path("comparisons") / f"{time.strftime('%Y%m%d-%H%M%S')}-{args_hash(args)}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir(parents=True)
        return path.resolve()
    except OSError as exc:
        where = f"--outdir {outdir}" if outdir is not None else "artifact folder"
        raise CompareError(EXIT_USAGE, "bad_outdir",
                           f"{where}: cannot create a folder there ({exc.strerror or exc})") from exc


def new_summary(opts: argparse.Namespace, c_desc: str, py_desc: str) -> dict:
    """A summary with every required key, metrics still unknown."""
    summary = dict.fromkeys(SUMMARY_KEYS)
    summary.update(args=opts.args, c_bin=c_desc, py_bin=py_desc,
                   roi=list(opts.roi) if opts.roi else None, resample=opts.resample,
                   threshold=opts.threshold, png_scale_percentile=opts.png_scale,
                   png_scale_method=(f"linear, shared by c and py, from the minimum to "
                                     f"the {opts.png_scale:g}th percentile of both"),
                   status=None, exit_code=None, error=None)
    return summary


def write_summary(outdir: Path, summary: dict) -> None:
    """Write ``summary.json`` (non-finite numbers become null)."""
    clean = {k: (finite_or_none(v) if isinstance(v, float) else v)
             for k, v in summary.items()}
    (outdir / "summary.json").write_text(json.dumps(clean, indent=2) + "\n")


# ------------------------------------------------------------------ report


def _fmt(value, spec=".6g") -> str:
    """Format a number, or ``n/a`` for ``None``."""
    return "n/a" if value is None else format(value, spec)


def summary_line(s: dict) -> str:
    """One line: verdict and headline metrics."""
    return (f"{s['status'].upper()}: corr={_fmt(s['correlation'], '.6f')} "
            f"rmse={_fmt(s['rmse'])} max|diff|={_fmt(s['max_abs_diff'])} "
            f"sum ratio={_fmt(s['sum_ratio'], '.6f')} "
            f"peaks matched={_fmt(s['peaks_matched_fraction'], '.2f')} "
            f"shape={s['shape'][1]}x{s['shape'][0]} -> {s['outdir']}")


def metrics_table(s: dict) -> str:
    """A small fixed-width table of all metrics."""
    rows = [
        ("correlation", _fmt(s["correlation"], ".8f")),
        ("mse", _fmt(s["mse"])), ("rmse", _fmt(s["rmse"])),
        ("max abs diff", _fmt(s["max_abs_diff"])),
        ("sum", f"c={_fmt(s['sum_c'])}  py={_fmt(s['sum_py'])}  "
                f"py/c={_fmt(s['sum_ratio'], '.6f')}"),
        ("max c", f"{_fmt(s['max_c'])} at (x,y)={s['max_c_at']}"),
        ("max py", f"{_fmt(s['max_py'])} at (x,y)={s['max_py_at']}"),
        ("peaks", f"{s['peaks_matched']}/{max(s['peaks_c'], s['peaks_py'])} matched "
                  f"(c {s['peaks_c']}, py {s['peaks_py']}), "
                  f"mean {_fmt(s['peaks_mean_distance_px'], '.3f')} px, "
                  f"max {_fmt(s['peaks_max_distance_px'], '.3f')} px"),
    ]
    return "\n".join(f"  {name:<13} {value}" for name, value in rows)


# ------------------------------------------------------------------ driver


def run_both(opts, commands, outdir: Path, summary: dict) -> dict[str, Path]:
    """Run c then py, each in a fresh temporary folder; record runtimes.

    A failure raises exit 2, a timeout exit 4. The folders are removed
    whatever happens (their files move to ``outdir`` with ``--keep-files``).
    """
    args, copies = program_args(opts.args, Path.cwd())
    summary["timeout_s"] = opts.timeout or None
    floats = {}
    image = getattr(opts, "image", "float")
    flag, ext = IMAGE_KINDS[image]
    for side in ("c", "py"):
        floats[side] = outdir / f"{side}_float.bin"
        extra = ()
        if image != "float":
            floats[side] = outdir / f"{side}_image{ext}"
            floats[side].unlink(missing_ok=True)
            extra = (flag, str(floats[side]))
        rundir = Path(tempfile.mkdtemp(prefix=f"nb-compare-{side}-"))
        try:
            for src in copies:
                shutil.copy2(src, rundir / src.name)
            result = run_program(commands[side], args, outdir / f"{side}_float.bin", outdir, side, rundir,
                                 opts.timeout, extra)
            summary[f"run_files_{side}"] = _collect_files(rundir, outdir, side, opts.keep_files)
        finally:
            shutil.rmtree(rundir, ignore_errors=True)
        summary[f"runtime_{side}_ms"] = result.runtime_ms
        summary[f"returncode_{side}"] = result.returncode
        print(f"{side:>2} runtime: {result.runtime_ms:10.1f} ms  ({summary[f'{side}_bin']})")
        if result.returncode != 0:
            raise CompareError(EXIT_RUNNER, "runner_failed",
                               f"{side}: exit status {result.returncode}; see "
                               f"{outdir / (side + '_stderr.txt')}")
    return floats


def check_finite(img: np.ndarray, side: str, summary: dict) -> None:
    """Raise exit 5 when ``img`` holds NaN or infinity (counts go into the summary)."""
    bad = ~np.isfinite(img)
    count = int(bad.sum())
    summary[f"nonfinite_{side}"] = count
    if count:
        nan = int(np.isnan(img).sum())
        y, x = (int(v) for v in np.argwhere(bad)[0])
        raise CompareError(EXIT_NONFINITE, "non_finite",
                           f"{side}: {count} of {img.size} pixels are not finite ({nan} NaN, "
                           f"{count - nan} infinite; first at x={x}, y={y})")


def load_pair(opts, floats: dict[str, Path], summary: dict):
    """Read both images and bring them to one shape (or raise exit 5/6/7)."""
    shape = expected_shape(opts.args)
    files, image, frame = getattr(opts, "files", None), getattr(opts, "image", "float"), getattr(opts, "frame", 0)
    kinds = {side: (image_kind(floats[side]) if files is not None else image) for side in ("c", "py")}
    if image == "float" and files is None:
        ref, other = read_float_image(floats["c"], shape), read_float_image(floats["py"], shape)
    else:
        for side in ("c", "py"):
            if not floats[side].exists():
                raise _unreadable(f"{side}: wrote no {floats[side].name} ({IMAGE_KINDS[kinds[side]][0]})")
        ref = read_image(floats["c"], shape, kinds["c"], frame)
        other = read_image(floats["py"], shape, kinds["py"], frame)
    summary.update(shape_c=list(ref.shape), shape_py=list(other.shape), image_c=kinds["c"], image_py=kinds["py"])
    check_finite(ref, "c", summary)
    check_finite(other, "py", summary)
    if ref.shape != other.shape:
        if not opts.resample:
            raise CompareError(EXIT_SHAPE, "shape_mismatch",
                               f"shapes differ: c {ref.shape[1]}x{ref.shape[0]}, py "
                               f"{other.shape[1]}x{other.shape[0]} (use --resample)")
        other = resample_nearest(other, ref.shape)
    summary["shape"] = list(ref.shape)
    return ref, other


def analyse(opts, ref, other, outdir: Path, summary: dict) -> int:
    """Metrics and previews over the ROI; returns the exit code."""
    ref_roi, other_roi = crop_roi(ref, opts.roi), crop_roi(other, opts.roi)
    origin = (opts.roi[0], opts.roi[2]) if opts.roi else (0, 0)
    summary.update(compare_images(ref_roi, other_roi, origin))
    titles = (f"c: {Path(summary['c_bin']).name}", f"py: {Path(summary['py_bin']).name}")
    summary.update(write_previews(outdir, ref_roi, other_roi, opts.png_scale,
                                  opts.save_diff, titles))
    corr = summary["correlation"]
    failed = opts.threshold is not None and (corr is None or corr < opts.threshold)
    summary["status"] = "below_threshold" if failed else "ok"
    return EXIT_THRESHOLD if failed else EXIT_OK


class _Terminated(BaseException):
    """SIGTERM received: unwind (killing the running program), then exit 143."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def compare(opts: argparse.Namespace) -> int:
    """Run the whole comparison for parsed options; returns the exit code."""
    files = getattr(opts, "files", None)
    try:
        if files is not None:
            for path in files:
                if not path.is_file():
                    raise _unreadable(f"--files: {path}: no such file")
            (c_cmd, c_desc), (py_cmd, py_desc) = ([], str(files[0])), ([], str(files[1]))
        else:
            c_cmd, c_desc = resolve_command(opts.c_bin, "NB_C_BIN", "./nanoBragg")
            py_cmd, py_desc = resolve_command(opts.py_bin, "NB_PY_BIN", own_command)
        outdir = make_outdir(opts.outdir, opts.args or [str(p) for p in files])
    except CompareError as exc:
        print(f"nb-compare: {exc}", file=sys.stderr)
        return exc.code
    summary = new_summary(opts, c_desc, py_desc)
    summary["outdir"] = str(outdir)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        pass
    try:
        if files is not None:
            floats = {"c": files[0].resolve(), "py": files[1].resolve()}
        else:
            floats = run_both(opts, {"c": c_cmd, "py": py_cmd}, outdir, summary)
        ref, other = load_pair(opts, floats, summary)
        code = analyse(opts, ref, other, outdir, summary)
    except CompareError as exc:
        summary.update(status=exc.status, exit_code=exc.code, error=str(exc))
        write_summary(outdir, summary)
        print(f"nb-compare: {exc}", file=sys.stderr)
        return exc.code
    except (_Terminated, KeyboardInterrupt) as exc:
        code, what = (143, "terminated") if isinstance(exc, _Terminated) else (130, "interrupted")
        summary.update(status=what, exit_code=code, error=what)
        write_summary(outdir, summary)
        print(f"nb-compare: {what}; the running program was killed", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary["exit_code"] = code
    write_summary(outdir, summary)
    print(summary_line(summary))
    print(metrics_table(summary))
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nb-compare``; returns the exit code (never raises SystemExit)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if _MISSING is not None:
        print(f"nb-compare: error: {_MISSING} is not installed; nb-compare needs scipy (and matplotlib for "
              "its figures): pip install 'nanobragg[tools]'", file=sys.stderr)
        return EXIT_RUNNER
    try:
        opts = parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return compare(opts)


if __name__ == "__main__":
    sys.exit(main())
