"""File input/output of nanoBragg's formats.

Readers raise :class:`InputError` (one line naming the file, and the line
number where it applies); writers never leave a half-written file behind.
"""

from .atomic import OutputFile, OutputSet, QueuedWrites, atomic_open, atomic_write, output_target
from .errors import InputError
from .fdump import fdump_bytes, read_fdump, write_fdump
from .floatimage import read_float_image, write_float_image
from .hkl import FGrid, HKLTable, hkl_grid, read_hkl
from .matrix import read_mosflm_matrix
from .pgm import auto_pgm_scale, pgm_bytes, write_pgm
from .smv import (
    auto_int_scale,
    format_smv_header,
    int_image_from_float,
    read_smv,
    smv_bytes,
    smv_header_values,
    write_smv,
)
from .sources import read_source_file, read_text_columns

__all__ = [
    "InputError", "OutputFile", "OutputSet", "QueuedWrites", "atomic_open", "atomic_write", "output_target",
    "HKLTable", "FGrid", "read_hkl", "hkl_grid",
    "fdump_bytes", "read_fdump", "write_fdump",
    "smv_header_values", "format_smv_header", "smv_bytes", "write_smv", "read_smv",
    "int_image_from_float", "auto_int_scale",
    "pgm_bytes", "write_pgm", "auto_pgm_scale",
    "read_mosflm_matrix", "read_source_file", "read_text_columns",
    "read_float_image", "write_float_image",
]
