"""Reading the command line's input files into the configuration (C's order).

The ``-mask`` header is applied first, then the ``-img`` header, and the
flags afterwards override both, as in C. The structure factors come from
``-hkl`` (and are cached to the dump file), else from an existing dump file.
"""
from __future__ import annotations

import os

import numpy as np

from ..io import InputError, hkl_grid, read_fdump, read_hkl, read_mosflm_matrix, read_smv, read_source_file, write_fdump
from ..io.sources import read_text_columns
from ..units import ANGSTROM, DEG, MM
from .settings import Settings


def _header_number(header: dict, key: str):
    text = header.get(key)
    if text is None:
        return None
    try:
        return float(text.split(",")[0])
    except ValueError:
        return None


#: SMV header keys C reads for -img/-mask: key -> (field, factor to SI).
HEADER_KEYS = (("DISTANCE", "detector.distance", MM), ("CLOSE_DISTANCE", "detector.close_distance", MM),
               ("WAVELENGTH", "beam.wavelength", ANGSTROM), ("BEAM_CENTER_X", "detector.beam_x", MM),
               ("ORGX", "detector.orgx", 1.0), ("ORGY", "detector.orgy", 1.0),
               ("PHI", "crystal.phi0", DEG), ("OSC_RANGE", "crystal.osc", DEG))


def apply_smv_header(settings: Settings, path: str, is_mask: bool) -> np.ndarray:
    """Initialise the detector from an SMV header (C's -img/-mask); returns the pixel data.

    Keys are matched exactly. The mask's BEAM_CENTER_Y is flipped
    (detsize_s - value) as C does. C stores TWOTHETA in a scratch variable
    that is never used, so it has no effect here either. Each value is
    recorded as coming from "-img FILE, header KEY", so that the checks of
    :mod:`nanobragg.config.checks` (run once every flag is applied) name the
    file and key of a bad value.
    """
    header, data = read_smv(path)
    flag = f"{'-mask' if is_mask else '-img'} {path}"
    det = settings.experiment.detector
    if is_mask:
        settings.origins["detector.mask"] = flag

    def put(key, target, value):
        settings.source = f"{flag}, header {key}"
        settings.assign(target, value)
        settings.source = None

    put("SIZE1/SIZE2", "detector.spixels", data.shape[0])
    put("SIZE1/SIZE2", "detector.fpixels", data.shape[1])
    pix = _header_number(header, "PIXEL_SIZE")
    if pix is not None:
        put("PIXEL_SIZE", "detector.pixel_size", pix / 1000.0)
    size_key = "PIXEL_SIZE" if pix is not None else "SIZE1/SIZE2"
    put(size_key, "detector.detsize_f", det.pixel_size * det.fpixels)
    put(size_key, "detector.detsize_s", det.pixel_size * det.spixels)
    for key, target, factor in HEADER_KEYS:
        value = _header_number(header, key)
        if value is not None:
            put(key, target, value * factor)
    ybeam = _header_number(header, "BEAM_CENTER_Y")
    if ybeam is not None:
        put("BEAM_CENTER_Y", "detector.beam_y", det.detsize_s - ybeam / 1000.0 if is_mask else ybeam / 1000.0)
    return data


def load_structure_factors(settings: Settings, log) -> bool:
    """Fill crystal.fgrid from -hkl or from an existing dump file; True when the dump is to be written.

    A grid that does not fit the memory budget is refused before it is built.
    """
    xtal, files, out = settings.experiment.crystal, settings.files, settings.output
    budget = settings.budget_bytes()
    from .structure_input import load_structure_file, structure_flag

    if structure_flag(settings) is not None:
        return load_structure_file(settings, log, budget)
    if files.hkl is not None:
        table = read_hkl(files.hkl)
        for line in table.warnings:
            log(line)
        xtal.fgrid = hkl_grid(table, float(xtal.default_F), files.hkl, budget=budget)
        settings.origins["crystal.fgrid"] = f"-hkl {files.hkl}"
        return True
    if os.path.exists(out.dumpfile):
        log(f"reading Fs from {out.dumpfile}")
        xtal.fgrid = read_fdump(out.dumpfile, budget=budget)
        settings.origins["crystal.fgrid"] = f"dump file {out.dumpfile}"
    return False


def write_dump(settings: Settings, log) -> None:
    """Cache the structure factors read from -hkl in the dump file; a failure is only a warning (as in C)."""
    path = settings.output.dumpfile
    try:
        write_fdump(path, settings.experiment.crystal.fgrid)
        log(f"writing dump file for next time: {path}")
    except InputError:
        log(f"WARNING: unable to open dump file: {path}")


def load_inputs(settings: Settings, log) -> bool:
    """Read matrix, structure factors, sources and stol files named on the command line.

    Returns True when the structure factors came from -hkl and are to be
    cached with :func:`write_dump`; the caller does that once the whole
    configuration has been accepted, so that bad input leaves no file behind.
    What was read is checked by :func:`nanobragg.resolve.resolve` (the rules of
    :mod:`nanobragg.config.checks`; an error names the file), before any file is written.
    """
    files, exp = settings.files, settings.experiment
    if files.mat is not None:
        log(f"reading {files.mat}")
        exp.crystal.matrix = read_mosflm_matrix(files.mat)
        settings.origins["crystal.matrix"] = f"-mat {files.mat}"
    dump = load_structure_factors(settings, log)
    if files.sourcefile is not None:
        exp.beam.sources = read_source_file(files.sourcefile)
        settings.origins["beam.sources"] = f"-sourcefile {files.sourcefile}"
    if files.stol is not None:
        log(f"reading {files.stol}")
        read_text_columns(files.stol, 2)
    return dump
