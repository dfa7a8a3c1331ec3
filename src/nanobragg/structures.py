"""Real structures as the crystal's structure factors: an MTZ, a structure-factor mmCIF or a model.

The file handling (gemmi) is in :mod:`nanobragg.io.structures`; this module ties a file to an
experiment: the resolution the detector reaches, the unit cell taken from the file or checked
against the one given, and the F grid the engine looks up.

>>> from nanobragg import api, structures
>>> src = structures.structure_from_file("1yjp.pdb", dmin=1.5)       # or experiment=exp
>>> xtal = api.crystal(src.cell, N=10, structure_factors=src.fgrid)

``structure_from_file(path, experiment=exp)`` computes a model to the detector's reach (the
corner at the shortest wavelength, see :func:`detector_dmin`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from .io.errors import InputError
from .io.hkl import FGrid, HKLTable, hkl_grid
from .io.structures import P1Structure, load_p1, p1_sphere, reciprocal_basis

__all__ = ["FileStructure", "structure_from_file", "detector_dmin", "reach_dmin", "interpolation_on", "check_cell",
           "cell_from_matrix", "cell_si", "count_outside"]

#: a cell given on the command line or to the API may differ from the file's by this much (relative)
CELL_TOLERANCE = 0.01


@dataclass
class FileStructure:
    """What a structure file gives a simulation."""

    fgrid: FGrid  #: the P1 list on nanoBragg's grid (default_F elsewhere)
    cell: tuple  #: the file's cell, SI (metres, radians), the form :func:`nanobragg.api.unit_cell` returns
    p1: P1Structure  #: the list itself (hkl, F), space group, limits
    dmin: float  #: Angstrom: the limit a model was computed to, or the data's
    outside: Optional[int] = None  #: measured data: reflections on the detector missing from the list


def cell_si(cell) -> tuple:
    """(a, b, c, alpha, beta, gamma) Angstrom/degrees -> metres/radians."""
    return tuple(float(x) * 1e-10 for x in cell[:3]) + tuple(math.radians(float(x)) for x in cell[3:])


def cell_from_matrix(matrix, wavelength_m) -> tuple:
    """The cell (Angstrom, degrees) of a MOSFLM A matrix (columns a*, b*, c* times the wavelength)."""
    lam = float(wavelength_m) * 1e10
    recip = np.asarray(matrix, dtype=np.float64).reshape(3, 3) / lam
    real = np.linalg.inv(recip)  # rows a, b, c
    a, b, c = (np.linalg.norm(v) for v in real)

    def ang(u, v):
        return math.degrees(math.acos(max(-1.0, min(1.0, float(u @ v) / np.linalg.norm(u) / np.linalg.norm(v)))))

    return (a, b, c, ang(real[1], real[2]), ang(real[0], real[2]), ang(real[0], real[1]))


def _fmt(cell) -> str:
    return " ".join(f"{x:.5g}" for x in cell)


def check_cell(path: str, file_cell, given_cell, given_label: str) -> None:
    """InputError naming both cells when ``given_cell`` (Angstrom, degrees) differs from the file's by > 1%."""
    worst, which = 0.0, ""
    for name, f, g in zip(("a", "b", "c", "alpha", "beta", "gamma"), file_cell, given_cell):
        rel = abs(float(g) - float(f)) / abs(float(f))
        if rel > worst:
            worst, which = rel, name
    if worst > CELL_TOLERANCE:
        raise InputError(path, f"the cell of {given_label} ({_fmt(given_cell)}) differs from the file's "
                               f"({_fmt(file_cell)}) by {100 * worst:.3g}% in {which} (more than 1%)")


def _num(x) -> float:
    return float(x.detach()) if hasattr(x, "detach") else float(x)


def detector_qmax(exp) -> float:
    """The largest |q| = |d - i| / lambda (1/Angstrom) of any sub-pixel of the detector, any source.

    The detector as the engine sees it (:func:`nanobragg.resolve.resolve`: conventions, pivots,
    rotations, curvature, sources with divergence and dispersion); every pixel of the four edges and
    a grid inside (the farthest point of a flat detector is on its edge unless it faces backwards).
    The ROI and mask are ignored (the whole detector counts).
    """
    import torch

    from .engine.pixels import subpixel_positions
    from .resolve import resolve

    xtal = replace(exp.crystal, fgrid=None, default_F=1.0, misset=None, mosaic_umats=None, mosaic_domains=-1,
                   mosaic_spread=-1.0)
    if xtal.cell is None and xtal.matrix is None:
        xtal.cell = cell_si((100.0, 100.0, 100.0, 90.0, 90.0, 90.0))
    probe = replace(exp, crystal=xtal, detector=replace(exp.detector, roi=None, mask=None),
                    origins=dict(exp.origins))
    res = resolve(probe, seed=-1)
    inp = res.inputs
    F, S = res.detector.fpixels, res.detector.spixels
    step_f, step_s = max(1, F // 64), max(1, S // 64)
    f_edge = np.arange(F)
    s_edge = np.arange(S)
    gf, gs = np.meshgrid(np.arange(0, F, step_f), np.arange(0, S, step_s), indexing="ij")
    fpix = np.concatenate([f_edge, f_edge, np.zeros(S, int), np.full(S, F - 1), gf.reshape(-1)])
    spix = np.concatenate([np.zeros(F, int), np.full(F, S - 1), s_edge, s_edge, gs.reshape(-1)])
    qmax = 0.0
    with torch.no_grad():
        pos = subpixel_positions(inp, torch.as_tensor(fpix), torch.as_tensor(spix))
        pos = torch.stack([p.reshape(-1) for p in pos], -1).to(torch.float64)
        d = pos / pos.norm(dim=-1, keepdim=True)
        incident = -inp.exact("source_dirs").to(torch.float64)
        lams = inp.exact("source_lambdas").to(torch.float64)
        for i in range(len(lams)):
            q = (d - incident[i]).norm(dim=-1).max() / lams[i]
            qmax = max(qmax, float(q))
    return qmax * 1e-10


def detector_dmin(exp) -> float:
    """The resolution (Angstrom) of the detector's farthest point at the run's shortest wavelength;
    a ``-dmin`` cut-off (``sampling.dmin``) coarser than that wins."""
    q = detector_qmax(exp)
    cut = _num(exp.sampling.dmin)
    if cut > 0:
        q = min(q, 1.0 / (cut * 1e10))
    return 1.0 / q


def reach_dmin(detector_d: float, cell, interpolate: bool = False, given_cell: bool = False) -> float:
    """The limit to compute a model to so that every index the engine looks up is in the list.

    The engine looks up the nearest whole index to a fractional h, which lies up to half a
    reciprocal-cell diagonal beyond |q|: the sphere grows by the longest such half diagonal. With
    tricubic ``interpolate`` the stencil reaches 2 indices beyond h along each axis (4 half
    diagonals). With a ``given_cell`` (-cell or -mat, within 1% of the file's, which the sphere is
    built in) |q| grows by 2% more.
    """
    basis = reciprocal_basis(cell)
    half = max(np.linalg.norm(0.5 * (np.array(signs) @ basis))
               for signs in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)))
    q = (1.0 / detector_d + half * (4.0 if interpolate else 1.0)) * (1.0 + 2 * CELL_TOLERANCE if given_cell else 1.0)
    return 1.0 / q


def interpolation_on(exp) -> bool:
    """Whether the run interpolates F (C's rule, as :mod:`nanobragg.resolve`: -interpolate, else any N <= 2)."""
    xtal = exp.crystal
    if xtal.interpolate is not None:
        return bool(xtal.interpolate)
    return any(_num(n) <= 2 for n in (xtal.Na, xtal.Nb, xtal.Nc))


def count_outside(p1: P1Structure, dmin: float, budget: Optional[int] = None) -> int:
    """How many P1 reflections with d >= dmin (F000 aside) are not in the list."""
    sphere = p1_sphere(p1.cell, dmin, budget, p1.path)
    sphere = sphere[np.any(sphere != 0, axis=1)]
    if len(p1.hkl) == 0:
        return len(sphere)
    lo = np.minimum(sphere.min(0), p1.hkl.min(0))
    span = np.maximum(sphere.max(0), p1.hkl.max(0)) - lo + 1

    def key(h):
        return ((h[:, 0] - lo[0]) * span[1] + (h[:, 1] - lo[1])) * span[2] + (h[:, 2] - lo[2])

    return int((~np.isin(key(sphere), key(p1.hkl))).sum())


def structure_from_file(path: str, experiment=None, kind: Optional[str] = None, column: Optional[str] = None,
                        dmin: Optional[float] = None, anomalous: bool = False, solvent: Optional[tuple] = None,
                        wavelength: Optional[float] = None, default_F: float = 0.0,
                        budget: Optional[int] = None) -> FileStructure:
    """Structure factors of an MTZ (kind ``mtz``), structure-factor mmCIF (``sfcif``) or model (``model``:
    PDB or mmCIF) as nanoBragg's F grid, with the file's cell.

    kind: None reads it from the content. column: the MTZ/mmCIF label (default: the first
    amplitude column). dmin (Angstrom): a model's resolution limit; without it, ``experiment``
    gives the detector's reach (:func:`detector_dmin`, grown by :func:`reach_dmin`). Measured data
    keep their own limit (``dmin`` trims them). anomalous: f', f'' at ``wavelength`` (Angstrom;
    default the experiment's). solvent: (k_sol e/A^3, B_sol A^2). default_F: F of the grid cells
    not listed. budget: bytes the F grid may take. With an ``experiment`` whose crystal has a cell
    or matrix, that cell must agree with the file's within 1%. InputError (one line naming the
    file) for bad input; ValueError for bad arguments.
    """
    from .io.structures import detect_kind

    kind = kind or detect_kind(path)
    if kind == "model" and dmin is None and experiment is None:
        raise ValueError("a model needs dmin (Angstrom) or an experiment to take the detector's reach from")
    if anomalous and wavelength is None:
        if experiment is None:
            raise ValueError("anomalous needs the wavelength (Angstrom) or an experiment")
        wavelength = _num(experiment.beam.wavelength) * 1e10
    p1 = None
    det_d = None
    if kind == "model" and dmin is None:
        from .io.structures import read_model
        cell = read_model(path).cell
        _check_experiment_cell(path, cell, experiment)
        exp = _with_cell(experiment, cell)
        det_d = detector_dmin(exp)
        given = experiment.crystal.cell is not None or experiment.crystal.matrix is not None
        dmin = reach_dmin(det_d, cell, interpolation_on(experiment), given)
    p1 = load_p1(path, kind, column=column, dmin=dmin if kind == "model" else None, wavelength=wavelength,
                 anomalous=anomalous, solvent=solvent, budget=budget)
    if kind != "model" and dmin is not None:
        keep = _d(p1) >= dmin * (1 - 1e-12)
        p1.hkl, p1.F = p1.hkl[keep], p1.F[keep]
    if experiment is not None:
        _check_experiment_cell(path, p1.cell, experiment)
    outside = None
    if kind != "model" and experiment is not None:
        outside = count_outside(p1, detector_dmin(_with_cell(experiment, p1.cell)), budget)
    if len(p1.hkl) == 0:
        raise InputError(path, "no reflections within the resolution limit")
    fgrid = hkl_grid(HKLTable(p1.hkl, p1.F), float(default_F), path, budget=budget)
    return FileStructure(fgrid, cell_si(p1.cell), p1, p1.dmin, outside)


def _d(p1: P1Structure) -> np.ndarray:
    from .io.structures import d_spacings
    return d_spacings(p1.cell, p1.hkl)


def _with_cell(exp, cell):
    """The experiment with the file's cell where it has neither cell nor matrix."""
    if exp.crystal.cell is not None or exp.crystal.matrix is not None:
        return exp
    return replace(exp, crystal=replace(exp.crystal, cell=cell_si(cell)), origins=dict(exp.origins))


def _check_experiment_cell(path, file_cell, exp) -> None:
    if exp is None:
        return
    xtal = exp.crystal

    def label(key, default):
        return exp.origins.get(key, default) if exp.origins else default

    if xtal.matrix is not None:
        check_cell(path, file_cell, cell_from_matrix(xtal.matrix, _num(exp.beam.wavelength)),
                   label("crystal.matrix", "the matrix"))
    elif xtal.cell is not None:
        given = tuple(_num(x) * 1e10 for x in xtal.cell[:3]) + tuple(math.degrees(_num(x)) for x in xtal.cell[3:])
        check_cell(path, file_cell, given, label("crystal.cell", "the cell"))
