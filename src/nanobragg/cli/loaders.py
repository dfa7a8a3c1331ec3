"""Reading the command line's input files into the configuration (C's order).

The ``-mask`` header is applied first, then the ``-img`` header, and the
flags afterwards override both, as in C. The structure factors come from
``-hkl`` (and are cached to the dump file), else from an existing dump file.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..io import InputError, hkl_grid, read_fdump, read_hkl, read_mosflm_matrix, read_smv, read_source_file, write_fdump
from ..io.sources import read_text_columns
from .settings import Settings

DEG = math.pi / 180.0


def _header_number(header: dict, key: str):
    text = header.get(key)
    if text is None:
        return None
    try:
        return float(text.split(",")[0])
    except ValueError:
        return None


def apply_smv_header(settings: Settings, path: str, is_mask: bool) -> np.ndarray:
    """Initialise the detector from an SMV header (C's -img/-mask); returns the pixel data.

    Keys are matched exactly. The mask's BEAM_CENTER_Y is flipped
    (detsize_s - value) as C does. C stores TWOTHETA in a scratch variable
    that is never used, so it has no effect here either.
    """
    header, data = read_smv(path)
    det, beam, xtal = settings.experiment.detector, settings.experiment.beam, settings.experiment.crystal
    det.spixels, det.fpixels = data.shape
    pix = _header_number(header, "PIXEL_SIZE")
    if pix is not None:
        det.pixel_size = pix / 1000.0
    det.detsize_f, det.detsize_s = det.pixel_size * det.fpixels, det.pixel_size * det.spixels
    assign = [("DISTANCE", det, "distance", 1e-3), ("CLOSE_DISTANCE", det, "close_distance", 1e-3),
              ("WAVELENGTH", beam, "wavelength", 1e-10), ("BEAM_CENTER_X", det, "beam_x", 1e-3),
              ("ORGX", det, "orgx", 1.0), ("ORGY", det, "orgy", 1.0),
              ("PHI", xtal, "phi0", DEG), ("OSC_RANGE", xtal, "osc", DEG)]
    for key, obj, name, factor in assign:
        value = _header_number(header, key)
        if value is not None:
            setattr(obj, name, value * factor)
    ybeam = _header_number(header, "BEAM_CENTER_Y")
    if ybeam is not None:
        det.beam_y = det.detsize_s - ybeam / 1000.0 if is_mask else ybeam / 1000.0
    return data


def load_structure_factors(settings: Settings, log) -> bool:
    """Fill crystal.fgrid from -hkl or from an existing dump file; True when the dump is to be written."""
    xtal, files, out = settings.experiment.crystal, settings.files, settings.output
    if files.hkl is not None:
        table = read_hkl(files.hkl)
        for line in table.warnings:
            log(line)
        xtal.fgrid = hkl_grid(table, float(xtal.default_F), files.hkl)
        return True
    if os.path.exists(out.dumpfile):
        log(f"reading Fs from {out.dumpfile}")
        xtal.fgrid = read_fdump(out.dumpfile)
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
    """
    files, exp = settings.files, settings.experiment
    if files.mat is not None:
        log(f"reading {files.mat}")
        exp.crystal.matrix = read_mosflm_matrix(files.mat)
    dump = load_structure_factors(settings, log)
    if files.sourcefile is not None:
        exp.beam.sources = read_source_file(files.sourcefile)
    if files.stol is not None:
        log(f"reading {files.stol}")
        read_text_columns(files.stol, 2)
    return dump
