"""NeXus/NXmx HDF5 images (h5py, hdf5plugin's bitshuffle-LZ4), readable by the ``nxmx`` package and DIALS.

Layout (every length in mm, angles in degrees, the wavelength in Angstrom)::

    /entry                      NXentry   definition = "NXmx", start_time
    /entry/data                 NXdata    data (frames, slow, fast) [or (frames, panel, slow, fast)],
                                          float_image alike when asked (the float image, photons)
    /entry/instrument/beam      NXbeam    incident_wavelength
    /entry/instrument/detector  NXdetector  depends_on -> transformations/detector_z, distance,
                                          beam_center_x/y (pixels), sensor, saturation_value
        module[_NN]             NXdetector_module  data_origin, data_size, module_offset,
                                          fast_pixel_direction, slow_pixel_direction
    /entry/sample               NXsample  depends_on -> transformations/omega (one angle per frame)
    /entry/source               NXsource

Frame: NeXus's McStas frame, the beam along +z. nanoBragg's lab vectors
are turned by the smallest rotation that takes the run's beam direction to
+z (for the MOSFLM family, beam along +x: (x, y, z) -> (-z, y, x), the same
frame as DIALS's reading of the SMV header's DIALS_ORIGIN up to its
beam-along--z flip). Each module's origin (detector_z, then module_offset)
is the outer corner of its first pixel (nanoBragg's pix0, dxtbx's panel
origin); fast_pixel_direction and slow_pixel_direction step one pixel.

The data are chunked one frame and one band of rows at a time (chunks of
(1, rows, fast) pixels, rows the command line's band height), so the file
is written band by band within the memory budget. HDF5 needs a seekable
file: a target written in place (a FIFO, a device) gets the file built in
an unnamed scratch file first and copied at the end. Datasets are written
without HDF5 timestamps (``track_times=False``).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..units import RTD
from .atomic import OutputFile
from .errors import InputError

#: Bytes copied at a time from a scratch file to an in-place target.
COPY_BLOCK = 1 << 24


def require_h5(flag: str = "-h5file"):
    """(h5py, hdf5plugin), or InputError saying what to install."""
    try:
        import h5py
        import hdf5plugin
    except ImportError:
        raise InputError(f"{flag} needs h5py and hdf5plugin: pip install 'nanobragg[formats]'") from None
    return h5py, hdf5plugin


def to_mcstas(beam) -> np.ndarray:
    """3x3 rotation taking lab vectors to NeXus's McStas frame: the smallest turn of ``beam`` onto +z."""
    b = np.asarray(beam, dtype=np.float64)
    b = b / np.linalg.norm(b)
    z = np.array([0.0, 0.0, 1.0])
    c = float(b @ z)
    if c < -1 + 1e-12:  # beam along -z: half a turn about y
        return np.diag([-1.0, 1.0, -1.0])
    v = np.cross(b, z)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


@dataclass
class Module:
    """One detector panel in lab coordinates (metres): where its pixels are and where its data lie."""

    pix0: np.ndarray  #: (3,) outer corner of the first pixel
    fdet: np.ndarray  #: (3,) unit fast axis
    sdet: np.ndarray  #: (3,) unit slow axis
    pixel_size: float
    shape: tuple  #: (slow, fast) pixels
    name: str = "module"
    index: Optional[int] = None  #: panel index in a (panel, slow, fast) stack; None for a 2-D frame
    origin: tuple = (0, 0)  #: (slow, fast) of the module's first pixel in a 2-D frame


@dataclass
class NXmxInfo:
    """The run's values for an NXmx file, SI units (metres, seconds, radians)."""

    wavelength: float
    beam: np.ndarray  #: (3,) lab beam direction
    spindle: np.ndarray  #: (3,) lab rotation axis
    phi0: float  #: first frame's start angle
    osc: float  #: oscillation per frame
    distance: float  #: sample to the beam spot (the first module), m
    beam_f: float  #: beam spot along the first module's fast axis from its corner, m
    beam_s: float
    thickness: float  #: sensor, m
    exposure: float  #: s
    modules: list = field(default_factory=list)
    frames: int = 1
    saturation: int = 65535
    angles: Optional[np.ndarray] = None  #: (frames,) start angles (rad); None: phi0 + i osc

    def start_angles(self) -> np.ndarray:
        """Every frame's start angle (rad)."""
        if self.angles is not None:
            return np.asarray(self.angles, dtype=np.float64).reshape(self.frames)
        return self.phi0 + self.osc * np.arange(self.frames)


def _unit(v) -> tuple:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return (v / n if n > 0 else np.array([1.0, 0.0, 0.0])), float(n)


def _axis(group, name, value, kind, vector, units, depends_on, offset=None):
    """An NXtransformations axis ``name`` in ``group``."""
    ds = group.create_dataset(name, data=np.asarray(value, dtype=np.float64), track_times=False)
    ds.attrs["transformation_type"] = kind
    ds.attrs["vector"] = np.asarray(vector, dtype=np.float64)
    ds.attrs["units"] = units
    ds.attrs["depends_on"] = depends_on
    if offset is not None:
        ds.attrs["offset"] = np.asarray(offset, dtype=np.float64)
        ds.attrs["offset_units"] = units
    return ds


def _group(parent, name, nx_class):
    g = parent.create_group(name)
    g.attrs["NX_class"] = nx_class
    return g


def _scalar(group, name, value, units=None):
    ds = group.create_dataset(name, data=value, track_times=False)
    if units is not None:
        ds.attrs["units"] = units
    return ds


def write_metadata(f, info: NXmxInfo, data_shape: tuple) -> None:
    """Every NXmx group and field but the image datasets, in the open h5py File ``f``."""
    from .cbf import timestamp

    R = to_mcstas(info.beam)
    mm = 1000.0
    entry = _group(f, "entry", "NXentry")
    f.attrs["default"] = "entry"
    entry.attrs["default"] = "data"
    _scalar(entry, "definition", "NXmx")
    _scalar(entry, "start_time", timestamp() + "Z")
    data = _group(entry, "data", "NXdata")
    data.attrs["signal"] = "data"
    source = _group(entry, "source", "NXsource")
    _scalar(source, "name", "nanoBragg simulation")
    inst = _group(entry, "instrument", "NXinstrument")
    _scalar(inst, "name", "nanoBragg simulation")
    beam = _group(inst, "beam", "NXbeam")
    _scalar(beam, "incident_wavelength", info.wavelength * 1e10, "angstrom")
    det = _group(inst, "detector", "NXdetector")
    _scalar(det, "description", "nanoBragg simulated detector")
    _scalar(det, "type", "PAD")
    _scalar(det, "distance", info.distance * mm, "mm")
    first = info.modules[0]
    _scalar(det, "beam_center_x", info.beam_f / first.pixel_size, "pixel")
    _scalar(det, "beam_center_y", info.beam_s / first.pixel_size, "pixel")
    _scalar(det, "sensor_material", "Si")
    _scalar(det, "sensor_thickness", info.thickness * mm, "mm")
    _scalar(det, "saturation_value", np.int64(info.saturation))
    _scalar(det, "underload_value", np.int64(-1))
    _scalar(det, "bit_depth_readout", np.int64(16))
    _scalar(det, "count_time", info.exposure, "s")
    _scalar(det, "frame_time", info.exposure, "s")
    trans = _group(det, "transformations", "NXtransformations")
    beam_mc = R @ _unit(info.beam)[0]
    _axis(trans, "detector_z", [info.distance * mm], "translation", beam_mc, "mm", ".")
    det_z = "/entry/instrument/detector/transformations/detector_z"
    _scalar(det, "depends_on", det_z)
    base = info.distance * _unit(info.beam)[0]
    for m in info.modules:
        mod = _group(det, m.name, "NXdetector_module")
        origin = list(m.origin) if m.index is None else [m.index, 0, 0]
        size = list(m.shape) if m.index is None else [1, *m.shape]
        _scalar(mod, "data_origin", np.asarray(origin, dtype=np.int64))
        _scalar(mod, "data_size", np.asarray(size, dtype=np.int64))
        direction, length = _unit(R @ (np.asarray(m.pix0, dtype=np.float64) - base))
        _axis(mod, "module_offset", length * mm, "translation", direction, "mm", det_z)
        offset_path = f"/entry/instrument/detector/{m.name}/module_offset"
        for name, vec in (("fast_pixel_direction", m.fdet), ("slow_pixel_direction", m.sdet)):
            _axis(mod, name, m.pixel_size * mm, "translation", R @ _unit(vec)[0], "mm", offset_path,
                  offset=[0.0, 0.0, 0.0])
    sample = _group(entry, "sample", "NXsample")
    _scalar(sample, "name", "nanoBragg crystal")
    sample["beam"] = f["/entry/instrument/beam"]  # a hard link: the beam where DIALS also looks
    strans = _group(sample, "transformations", "NXtransformations")
    deg = RTD
    starts = info.start_angles() * deg
    _axis(strans, "omega", starts, "rotation", R @ _unit(info.spindle)[0], "deg", ".")
    _scalar(strans, "omega_end", starts + info.osc * deg, "deg")
    _scalar(strans, "omega_increment_set", np.full(info.frames, info.osc * deg), "deg")
    _scalar(sample, "depends_on", "/entry/sample/transformations/omega")


class NXmxWriter:
    """An NXmx file written band by band into an OutputFile (see the module docstring).

    ``shape``: the data's shape without frames, (slow, fast) or (panel, slow,
    fast). ``rows``: rows per chunk (the band height). ``band(first_row,
    counts, floats=None, frame=0, panel=None)`` stores rows; ``finish()``
    closes the file (and copies a scratch to an in-place target);
    ``close()`` releases everything (always call it).
    """

    def __init__(self, out: OutputFile, info: NXmxInfo, shape: tuple, rows: int, with_float: bool = False,
                 dtype=np.uint16):
        h5py, hdf5plugin = require_h5()
        self.out, self.shape = out, tuple(shape)
        self._scratch = (OutputFile(os.path.join(tempfile.gettempdir(), "nanobragg-h5-scratch.h5"))
                         if out.in_place else None)
        fd = (self._scratch or out).fd
        self._handle = os.fdopen(os.dup(fd), "w+b")
        self._file = h5py.File(self._handle, "w")
        try:
            write_metadata(self._file, info, self.shape)
            rows = max(1, min(int(rows), self.shape[-2]))
            chunks = (1,) * (len(self.shape) - 1) + (rows, self.shape[-1])
            full = (info.frames, *self.shape)
            comp = dict(chunks=chunks, track_times=False, **hdf5plugin.Bitshuffle(cname="lz4"))
            data = self._file["/entry/data"]
            self.data = data.create_dataset("data", full, dtype=dtype, **comp)
            self.floats = data.create_dataset("float_image", full, dtype="<f4", **comp) if with_float else None
            self._file["/entry/instrument/detector/data"] = self.data
        except BaseException:
            self.close()
            raise

    def band(self, first_row: int, counts, floats=None, frame: int = 0, panel: Optional[int] = None,
             first_col: int = 0) -> None:
        """Store rows ``counts`` (and ``floats``) at ``first_row`` (and ``first_col``) of a frame (and panel)."""
        where = (frame,) + (() if panel is None else (panel,)) + (
            slice(first_row, first_row + counts.shape[0]), slice(first_col, first_col + counts.shape[1]))
        self.data[where] = counts
        if self.floats is not None and floats is not None:
            self.floats[where] = floats

    def finish(self) -> None:
        try:
            self._file.close()
            self._handle.close()
        except OSError as exc:
            raise InputError(self.out.path, f"cannot write file ({exc.strerror or exc})") from None
        if self._scratch is not None:
            size = os.fstat(self._scratch.fd).st_size
            buffer, done = bytearray(min(COPY_BLOCK, max(size, 1))), 0
            while done < size:
                view = memoryview(buffer)[:min(len(buffer), size - done)]
                self._scratch.read_into(view, done)
                self.out.write_at(view, done)
                done += len(view)

    def close(self) -> None:
        try:
            if self._file:
                self._file.close()
        except Exception:  # noqa: BLE001 - already failing; the file is discarded
            pass
        if not self._handle.closed:
            self._handle.close()
        if self._scratch is not None:
            self._scratch.abort()


def write_nxmx(path, info: NXmxInfo, counts: np.ndarray, floats: Optional[np.ndarray] = None) -> None:
    """Write one NXmx file of ``counts`` ((slow, fast), or (panel, slow, fast)) atomically."""
    from .atomic import OutputSet

    counts = np.asarray(counts)
    with OutputSet() as outputs:
        out = outputs.add(path)
        writer = NXmxWriter(out, info, counts.shape, counts.shape[-2], floats is not None, counts.dtype)
        try:
            if counts.ndim == 2:
                writer.band(0, counts, floats)
            else:
                for p in range(counts.shape[0]):
                    writer.band(0, counts[p], None if floats is None else floats[p], panel=p)
            writer.finish()
        finally:
            writer.close()


def write_nxmx_master(path, info: NXmxInfo, sources: list, shape: tuple, dtype=np.uint16) -> None:
    """An NXmx master file whose ``/entry/data/data`` is a virtual dataset of other files' frames, atomically.

    ``sources``: ``(file name, dataset path, frames)`` in series order, e.g.
    ``("series_000.h5", "/entry/data/data", 10)``; a relative name is found
    next to the master file (HDF5's rule for virtual datasets), so the
    folder can be moved whole. ``info.frames`` must be their total (and
    ``info.angles``, when given, one start angle per frame); ``shape`` the
    frames' (slow, fast) or (panel, slow, fast). The master holds no pixels.
    """
    h5py, _ = require_h5()
    from .atomic import OutputSet

    total = sum(int(n) for _, _, n in sources)
    if total != info.frames:
        raise ValueError(f"the sources hold {total} frames, info.frames is {info.frames}")
    layout = h5py.VirtualLayout(shape=(total, *shape), dtype=dtype)
    first = 0
    for name, dataset, frames in sources:
        layout[first:first + frames] = h5py.VirtualSource(str(name), dataset, shape=(frames, *shape))
        first += frames
    layout.dcpl.set_obj_track_times(False)  # as every other dataset: no HDF5 timestamp, a re-run's bytes
    with OutputSet() as outputs:
        out = outputs.add(path)
        with os.fdopen(os.dup(out.fd), "w+b") as handle:
            with h5py.File(handle, "w") as f:
                write_metadata(f, info, tuple(shape))
                data = f["/entry/data"].create_virtual_dataset("data", layout, fillvalue=0)
                f["/entry/instrument/detector/data"] = data


def write_nxmx_frames(path, frames: np.ndarray, dataset: str = "/entry/data/data") -> None:
    """A data file of an NXmx series, atomically: ``frames`` (frames, slow, fast) as ``dataset`` alone.

    The frames are chunked one a time, bitshuffle-LZ4 compressed, written
    without HDF5 timestamps and without a start time, so the same frames give
    the same bytes whenever and wherever they are written; the metadata are
    the master file's (:func:`write_nxmx_master`, whose virtual dataset reads
    ``dataset`` here).
    """
    h5py, hdf5plugin = require_h5()
    from .atomic import OutputSet

    frames = np.asarray(frames)
    head, _, name = dataset.rpartition("/")
    with OutputSet() as outputs:
        out = outputs.add(path)
        with os.fdopen(os.dup(out.fd), "w+b") as handle:
            with h5py.File(handle, "w") as f:
                group = f
                for part in (p for p in head.split("/") if p):
                    group = group.require_group(part)
                    group.attrs["NX_class"] = {"entry": "NXentry", "data": "NXdata"}.get(part, "NXcollection")
                chunks = (1, *frames.shape[1:])
                group.create_dataset(name, data=frames, chunks=chunks, track_times=False,
                                     **hdf5plugin.Bitshuffle(cname="lz4"))
