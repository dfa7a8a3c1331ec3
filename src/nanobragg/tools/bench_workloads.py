"""The fixed workloads timed by ``nanobragg-bench``.

Each workload is a nanoBragg command line without its detector size; the
size is added by :meth:`Workload.argv`, so that the same case can be run
full size, shrunk (``--quick``) or tiny (the C program's fixed start-up).
Every run also gets :data:`COMMON_ARGS` (no noise, no PGM, a float file).
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Workload:
    """One benchmark case: a family name, its flags and its detector size in pixels."""

    family: str
    args: tuple[str, ...]
    detpixels: int
    note: str = ""

    @property
    def name(self) -> str:
        """``family-detpixels``, e.g. ``cubic-2048``."""
        return f"{self.family}-{self.detpixels}"

    def size(self, quick: bool) -> int:
        """Detector size of this run: full, or divided by :data:`QUICK_DIVISOR` with ``quick``."""
        return max(TINY_DETPIXELS, self.detpixels // QUICK_DIVISOR) if quick else self.detpixels

    def argv(self, detpixels: int) -> list[str]:
        """The full nanoBragg argument list at the given detector size."""
        return [*self.args, "-detpixels", str(detpixels), *COMMON_ARGS]


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
