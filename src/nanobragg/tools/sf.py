"""``nb-sf``: the P1 ``h k l F`` list nanoBragg simulates, from an MTZ, mmCIF or PDB file (gemmi).

Usage::

    nb-sf INPUT -o OUT.hkl [--dmin D] [--column LABEL] [--lambda A] [--anomalous] [--solvent K B]
          [--method auto|direct|fft]
    nb-sf --info INPUT
    nb-sf --matrix OUT.mat --cell a b c alpha beta gamma --lambda A [--seed S]

INPUT is recognised by its content: a merged MTZ, a structure-factor mmCIF, or a coordinate model
(PDB or mmCIF). The list is the one ``nanoBragg -mtz/-sfcif/-pdb`` builds (see
:mod:`nanobragg.io.structures`): one reflection per line, sorted by h, k, l, F with 17 significant
digits (the doubles round-trip), readable by the C program's ``-hkl``. A model goes to ``--dmin``
(Angstrom; default: the resolution the file states, REMARK 2 or ``_refine.ls_d_res_high``), as the
full P1 sphere with F000 and F = 0 for absent reflections; measured data go to
their own limit (``--dmin`` trims them) and have no F000. ``--anomalous`` (models) adds f' and f''
at ``--lambda``; ``--solvent K B`` a flat bulk solvent. ``--method``: a model's F by direct
summation (exact) or gemmi's FFT of its density (relative error ~3e-4, much faster for large
models); ``auto`` (default) sums directly unless that is more than 5e7 terms (about 10 s).

``--matrix`` writes a MOSFLM orientation matrix of the cell in a random orientation (uniform over
rotations; ``--seed`` makes it repeatable), as the upstream ``UBtoA.awk`` does, for ``-mat``.

Errors (a missing or corrupt file, a missing column, unmerged data, a model without a cell) are
one line on stderr and exit status 2; no output file is touched.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

PROG = "nb-sf"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


class _Usage(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="P1 structure-factor lists (h k l F) for nanoBragg from MTZ, "
                                       "mmCIF and PDB files; random orientation matrices.")
    p.add_argument("input", nargs="?", help="MTZ, structure-factor mmCIF, or PDB/mmCIF model")
    p.add_argument("-o", "--output", help="the h k l F list to write")
    p.add_argument("--info", action="store_true", help="describe INPUT: cell, space group, columns, resolution")
    p.add_argument("--dmin", type=float, help="resolution limit (A); required for models")
    p.add_argument("--column", help="MTZ/mmCIF column label (default: the first amplitude column)")
    p.add_argument("--lambda", dest="wavelength", type=float, help="wavelength (A): --anomalous, --matrix")
    p.add_argument("--anomalous", action="store_true", help="models: f' and f'' at --lambda (Cromer-Liberman)")
    p.add_argument("--solvent", nargs=2, type=float, metavar=("K", "B"), help="models: flat bulk solvent k_sol B_sol")
    p.add_argument("--method", choices=("auto", "direct", "fft"), default="auto",
                   help="models: direct summation, gemmi's FFT, or auto (direct unless the sum is large)")
    p.add_argument("--matrix", metavar="OUT.mat", help="write a random MOSFLM orientation matrix of --cell")
    p.add_argument("--cell", nargs=6, type=float, metavar=("a", "b", "c", "al", "be", "ga"), help="cell (A, deg)")
    p.add_argument("--seed", type=int, help="random seed of --matrix")
    return p


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix uniform over SO(3) (a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def b_matrix(cell) -> np.ndarray:
    """UBtoA.awk's B matrix of a cell (A, deg): columns a*, b*, c* (1/A), a* along x, b* in the xy plane.

    Its last entry is 1/c: UBtoA.awk's c* V / (a b c sin gamma*) equals it only when gamma* = gamma,
    so that its triclinic matrices do not have the cell they were made for (fixed here)."""
    a, b, c = cell[:3]
    al, be, ga = (math.radians(x) for x in cell[3:])
    s = (al + be + ga) / 2
    volume = 2 * a * b * c * math.sqrt(abs(math.sin(s) * math.sin(s - al) * math.sin(s - be) * math.sin(s - ga)))
    a_s, b_s, c_s = b * c * math.sin(al) / volume, c * a * math.sin(be) / volume, a * b * math.sin(ga) / volume
    cos_as = (math.cos(be) * math.cos(ga) - math.cos(al)) / (math.sin(be) * math.sin(ga))
    cos_bs = (math.cos(ga) * math.cos(al) - math.cos(be)) / (math.sin(ga) * math.sin(al))
    cos_gs = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    sin_gs = math.sqrt(1 - cos_gs ** 2)
    return np.array([[a_s, b_s * cos_gs, c_s * cos_bs],
                     [0.0, b_s * sin_gs, c_s * (cos_as - cos_bs * cos_gs) / sin_gs],
                     [0.0, 0.0, 1.0 / c]])


def mosflm_matrix_text(cell, wavelength: float, rotation: np.ndarray) -> str:
    """A MOSFLM matrix file as UBtoA.awk prints it: A = lambda U B (columns a*, b*, c*), the missets
    (zero), U, the cell, zeros; its fixed-width formats."""
    A = wavelength * rotation @ b_matrix(cell)
    lines = ["".join(f"{v:12.8f}" for v in row) for row in A]
    lines.append("".join(f"{0:12.3f}" for _ in range(3)))
    lines += ["".join(f"{v:12.7f}" for v in row) for row in rotation]
    lines.append("".join(f"{x:12.4f}" for x in cell))
    lines.append("".join(f"{0:12.3f}" for _ in range(3)))
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    from ..io import atomic_write
    atomic_write(path, text.encode())


def run(argv) -> int:
    from ..io import InputError

    try:
        opts = _parser().parse_args(argv)
        if opts.matrix:
            if opts.cell is None or opts.wavelength is None:
                raise _Usage("--matrix needs --cell a b c alpha beta gamma and --lambda")
            if min(opts.cell[:3]) <= 0 or not all(0 < x < 180 for x in opts.cell[3:]) or opts.wavelength <= 0:
                raise _Usage("--cell needs positive edges and angles between 0 and 180 degrees; --lambda > 0")
            rot = random_rotation(np.random.default_rng(opts.seed))
            _write(opts.matrix, mosflm_matrix_text(opts.cell, opts.wavelength, rot))
            return 0
        if opts.input is None:
            raise _Usage("give an INPUT file (or --matrix)")
        from ..io.structures import describe, detect_kind, format_hkl, load_p1
        if opts.info:
            print("\n".join(describe(opts.input)))
            return 0
        if not opts.output:
            raise _Usage("give -o OUT.hkl (or --info)")
        if opts.dmin is not None and not (opts.dmin > 0 and math.isfinite(opts.dmin)):
            raise _Usage("--dmin must be a positive number of Angstrom")
        kind = detect_kind(opts.input)
        if kind == "model" and opts.dmin is None:
            from ..io.structures import read_model
            resolution = read_model(opts.input).gemmi_structure.resolution
            if not resolution > 0:
                raise _Usage("a model needs --dmin (the resolution limit, A): the file states none")
            opts.dmin = float(resolution)
            print(f"{PROG}: --dmin {opts.dmin:g} A, the resolution the file states", file=sys.stderr)
        if opts.anomalous and opts.wavelength is None:
            raise _Usage("--anomalous needs --lambda")
        p1 = load_p1(opts.input, kind, column=opts.column, dmin=opts.dmin, wavelength=opts.wavelength,
                     anomalous=opts.anomalous, solvent=tuple(opts.solvent) if opts.solvent else None,
                     method=opts.method)
        if len(p1.hkl) == 0:
            raise InputError(opts.input, "no reflections within the resolution limit")
        _write(opts.output, format_hkl(p1.hkl, p1.F))
        what = f"column {p1.column}" if p1.column else f"model to {p1.dmin:g} A, {p1.method} sum"
        print(f"{PROG}: wrote {len(p1.hkl)} P1 reflections ({what}, {p1.spacegroup}"
              f"{', F000 included' if p1.has_F000 else ', no F000'}) to {opts.output}", file=sys.stderr)
        return 0
    except _Usage as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    """Entry point of ``nb-sf``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        _parser().print_help()
        return 0
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
