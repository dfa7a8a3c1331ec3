"""``-mtz``, ``-sfcif`` and ``-pdb``: a real structure as the run's structure factors (gemmi).

The file is expanded to P1 (:mod:`nanobragg.io.structures`); a model is computed to the
resolution the detector reaches (:func:`nanobragg.structures.detector_dmin`, grown so that every
index the engine rounds to is listed). The unit cell comes from the file unless ``-cell`` or
``-mat`` gives one, which must agree with the file's within 1%. One line reports what was read;
for measured data a second one says how many reflections on the detector are not in the list
(they take ``-default_F``, as does F000, which measured data lack).
"""
from __future__ import annotations

import os
from typing import Optional

from ..errors import UsageError
from ..io import InputError
from ..io.structures import detect_kind
from .settings import Settings

#: flag -> (InputFiles field, kind)
STRUCTURE_FLAGS = (("-mtz", "mtz", "mtz"), ("-sfcif", "sfcif", "sfcif"), ("-pdb", "pdb", "model"))

_NAMES = {"mtz": "an MTZ file (use -mtz)", "sfcif": "a structure-factor mmCIF (use -sfcif)",
          "model": "a coordinate model (use -pdb)"}
_WANTED = {"mtz": "a merged MTZ file", "sfcif": "a structure-factor mmCIF (_refln data)",
           "model": "a coordinate model (PDB or mmCIF)"}


def structure_flag(settings: Settings) -> Optional[tuple]:
    """(flag, path, kind) of the structure file given, or None; UsageError for conflicting flags."""
    files = settings.files
    given = [(flag, getattr(files, field), kind) for flag, field, kind in STRUCTURE_FLAGS
             if getattr(files, field) is not None]
    if len(given) > 1 or (given and files.hkl is not None):
        names = ["-hkl"] * (files.hkl is not None) + [g[0] for g in given]
        raise UsageError(f"{' and '.join(names)}: give only one source of structure factors")
    if files.mtz_column is not None and not any(g[2] in ("mtz", "sfcif") for g in given):
        raise UsageError("-mtz_column: needs -mtz or -sfcif")
    if (files.solvent is not None or files.anomalous) and not any(g[2] == "model" for g in given):
        raise UsageError(f"{'-solvent' if files.solvent is not None else '-anomalous'}: needs -pdb (a model)")
    if files.solvent is not None and not (files.solvent[0] >= 0 and files.solvent[1] >= 0):
        raise UsageError("-solvent: k_sol and B_sol must not be negative")
    return given[0] if given else None


def load_structure_file(settings: Settings, log, budget: int) -> bool:
    """Fill crystal.fgrid (and the cell, unless -cell/-mat gave one) from the structure file; True:
    the grid is cached to the dump file, as for -hkl."""
    from ..structures import structure_from_file

    flag, path, kind = structure_flag(settings)
    found = detect_kind(path)
    if found != kind:
        raise InputError(path, f"{flag} needs {_WANTED[kind]}; this is {_NAMES[found]}")
    files, exp = settings.files, settings.experiment
    xtal = exp.crystal
    src = structure_from_file(path, experiment=exp, kind=kind, column=files.mtz_column,
                              anomalous=files.anomalous, solvent=files.solvent, default_F=float(xtal.default_F),
                              budget=budget)
    p1 = src.p1
    for note in p1.notes:
        log(note)
    if xtal.cell is None and xtal.matrix is None:
        xtal.cell = src.cell
        settings.origins["crystal.cell"] = f"{flag} {path}"
    xtal.fgrid = src.fgrid
    settings.origins["crystal.fgrid"] = f"{flag} {path}"
    name = os.path.basename(path)
    if kind == "model":
        extras = "".join([", anomalous f' f''" if files.anomalous else "",
                          f", bulk solvent {files.solvent[0]:g} {files.solvent[1]:g}" if files.solvent else ""])
        log(f"{flag} {name}: {p1.spacegroup}, F computed ({p1.method}) for {len(p1.hkl)} P1 reflections "
            f"to {src.dmin:.4g} A "
            f"(F000 = {float(p1.F[(p1.hkl == 0).all(1)][0]):.6g}{extras})")
    else:
        log(f"{flag} {name}: column {p1.column}, {p1.spacegroup} expanded to {len(p1.hkl)} P1 reflections to "
            f"{src.dmin:.4g} A ({'anomalous pair' if p1.anomalous else 'with Friedel mates'}; no F000)")
        log(f"{flag} {name}: {src.outside} reflections on the detector are not in the list "
            f"(they take -default_F {float(xtal.default_F):g})")
    return True
