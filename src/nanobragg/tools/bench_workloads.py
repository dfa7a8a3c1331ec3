"""The fixed workloads timed by ``nanobragg-bench``.

Each workload is a nanoBragg command line without its detector size; the
size is added by :meth:`Workload.argv`, so that the same case can be run
full size, shrunk (``--quick``) or tiny (the C program's fixed start-up).
Every run also gets :data:`COMMON_ARGS` (no noise, no PGM, a float file).
The real experiment (a Pilatus 6M lysozyme job) reads ``A.mat`` and
``scaled.hkl`` from the real-inputs folder (:data:`REAL_INPUTS`); float64
rows give this project ``-dtype float64`` (the C program computes in double
either way).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FLOATFILE = "f.bin"
COMMON_ARGS = ("-nonoise", "-nopgm", "-floatfile", FLOATFILE)
#: Detector size of the runs that measure the C program's fixed start-up.
TINY_DETPIXELS = 8
#: ``--quick`` divides every detector size by this.
QUICK_DIVISOR = 16

_CUBIC = ("-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90",
          "-lambda", "6.2", "-N", "5", "-distance", "100")
_TRICLINIC = ("-default_F", "100", "-cell", "70", "80", "90", "75", "85", "95",
              "-lambda", "1.0", "-N", "5", "-distance", "100", "-misset", "10", "5", "3",
              "-oversample", "1")
_COMPREHENSIVE = ("-default_F", "100", "-cell", "70", "80", "90", "75", "85", "95",
                  "-lambda", "1.0", "-N", "5", "-mosaic", "0.5", "-mosaic_dom", "5",
                  "-phi", "0", "-osc", "90", "-phisteps", "9",
                  "-detector_rotx", "5", "-detector_roty", "3", "-detector_rotz", "2",
                  "-twotheta", "10", "-detector_abs", "500", "-detector_thick", "450",
                  "-thicksteps", "5", "-polar", "0.95", "-pixel", "0.1", "-distance", "100",
                  "-oversample", "1", "-seed", "12", "-mosaic_seed", "4")
_SOURCES = ("-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90",
            "-lambda", "1.0", "-N", "5", "-distance", "100",
            "-hdivrange", "0.3", "-hdivsteps", "7", "-vdivrange", "0.3", "-vdivsteps", "7",
            "-square_div", "-dispersion", "2", "-dispsteps", "3", "-oversample", "1")
_SOURCES_1000 = ("-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90",
                 "-lambda", "1.0", "-N", "5", "-distance", "100",
                 "-hdivrange", "0.3", "-hdivsteps", "10", "-vdivrange", "0.3", "-vdivsteps", "10",
                 "-square_div", "-dispersion", "2", "-dispsteps", "10", "-oversample", "1")
#: The real experiment of issue 12 (a Pilatus 6M job: 10 phi steps, 64k structure factors), without its
#: input files and detector size.
_PILATUS = tuple(
    "-nointerpolate -oversample 1 -exposure 1 -flux 1e18 -beamsize 1.0 "
    "-spindle_axis -1 0 0 -Xbeam 217.742295 -Ybeam 213.907080 -distance 231.274660 "
    "-lambda 0.976800 -pixel 0.172 "
    "-odet_vector -0.000088 0.004914 -0.999988 -sdet_vector -0.005998 -0.999970 -0.004913 "
    "-fdet_vector 0.999982 -0.005998 -0.000118 -pix0_vector -0.216336293 0.215205512 -0.230200866 "
    "-beam_vector 0.00051387949 0.0 -0.99999986 -Na 36 -Nb 47 -Nc 29 -osc 0.1 -phi 0 -phisteps 10 "
    "-detector_rotx 0 -detector_roty 0 -detector_rotz 0 -twotheta 0".split())
PILATUS_PIXELS = (2463, 2527)  #: (fast x, slow y)
#: The real experiment's input files: (flag, file name in the real-inputs folder).
REAL_INPUTS = (("-mat", "A.mat"), ("-hkl", "scaled.hkl"))


@dataclass(frozen=True)
class Workload:
    """One benchmark case: a family name, its flags and its detector size in pixels.

    ``shape``: (fast, slow) pixels of a detector that is not square (``detpixels`` is then its fast
    side); ``inputs``: (flag, file) pairs read from the real-inputs folder; ``dtype``: this project's
    ``-dtype``.
    """

    family: str
    args: tuple[str, ...]
    detpixels: int
    note: str = ""
    shape: tuple[int, int] | None = None
    inputs: tuple[tuple[str, str], ...] = ()
    dtype: str = "float32"

    @property
    def name(self) -> str:
        """``family-detpixels``, e.g. ``cubic-2048``, ``pilatus-2463x2527``, ``cubic-4096-float64``."""
        size = "x".join(map(str, self.shape)) if self.shape else str(self.detpixels)
        return f"{self.family}-{size}" + ("" if self.dtype == "float32" else f"-{self.dtype}")

    def size(self, quick: bool) -> int:
        """Detector size of this run: full, or divided by :data:`QUICK_DIVISOR` with ``quick``."""
        return max(TINY_DETPIXELS, self.detpixels // QUICK_DIVISOR) if quick else self.detpixels

    def pixels_at(self, detpixels: int) -> tuple[int, int]:
        """(fast, slow) pixel counts at fast side ``detpixels``: the slow side scaled alike."""
        if self.shape is None:
            return detpixels, detpixels
        x, y = self.shape
        return detpixels, max(TINY_DETPIXELS, round(y * detpixels / x))

    def argv(self, detpixels: int, inputs: Path | None = None) -> list[str]:
        """The full nanoBragg argument list at the given detector size, input files in ``inputs``."""
        x, y = self.pixels_at(detpixels)
        size = ["-detpixels", str(x)] if self.shape is None else ["-detpixels_x", str(x), "-detpixels_y", str(y)]
        files = [a for flag, name in self.inputs for a in (flag, str(Path(inputs or ".") / name))]
        return [*files, *self.args, *size, *COMMON_ARGS]

    def own_args(self) -> list[str]:
        """Flags for this project's program only (the C program has no -dtype)."""
        return [] if self.dtype == "float32" else ["-dtype", self.dtype]

    def missing_inputs(self, inputs: Path | None) -> list[str]:
        """The input files absent from ``inputs`` (all of them when it is None)."""
        return [name for _, name in self.inputs if inputs is None or not (Path(inputs) / name).is_file()]


WORKLOADS: tuple[Workload, ...] = (
    Workload("cubic", _CUBIC + ("-oversample", "1"), 1024),
    Workload("cubic", _CUBIC + ("-oversample", "1"), 2048),
    Workload("cubic", _CUBIC + ("-oversample", "1"), 4096),
    Workload("triclinic", _TRICLINIC, 1024),
    Workload("triclinic", _TRICLINIC, 2048),
    Workload("comprehensive", _COMPREHENSIVE, 512,
             "mosaic 5 domains, 9 phi steps, 5 thickness layers, rotated detector"),
    Workload("sources", _SOURCES, 1024, "147 sources (7 x 7 divergence x 3 wavelengths)"),
    Workload("large", _CUBIC + ("-pixel", "0.025", "-oversample", "2"), 4096,
             "cubic at 0.025 mm pixels, 2 x 2 sub-pixels"),
    Workload("sources1000", _SOURCES_1000, 1024,
             "1000 sources (10 x 10 divergence x 10 wavelengths): the memory bound"),
    Workload("pilatus", _PILATUS, PILATUS_PIXELS[0], "real experiment: A.mat, scaled.hkl (64k F), 10 phi steps",
             PILATUS_PIXELS, REAL_INPUTS),
    Workload("cubic", _CUBIC + ("-oversample", "1"), 4096, "float64", dtype="float64"),
    Workload("pilatus", _PILATUS, PILATUS_PIXELS[0], "real experiment, float64", PILATUS_PIXELS, REAL_INPUTS,
             "float64"),
)


def select(spec: str | None) -> list[Workload]:
    """Workloads named in a comma list (a name like ``cubic-2048`` or a family like ``cubic``).

    ``None`` or an empty string selects all; an unknown name raises ``KeyError``.
    """
    if not spec:
        return list(WORKLOADS)
    chosen: list[Workload] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        found = [w for w in WORKLOADS if token in (w.name, w.family)]
        if not found:
            raise KeyError(token)
        chosen += [w for w in found if w not in chosen]
    return [w for w in WORKLOADS if w in chosen]
