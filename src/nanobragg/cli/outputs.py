"""The command line's output files: float, SMV, PGM, noise, PNG, CBF and NXmx images, written band by band.

Every output is opened (checked, and given its temporary file) before the
render starts, see :func:`open_outputs`; the float file is filled while the
bands are rendered (:class:`nanobragg.cli.bands.FloatStore`), the others in
one second pass over the float image, :func:`write_second_pass`.

The CBF (``-cbffile``) and NXmx (``-h5file``) files hold the int image's
pixels, or the noise image's when noise is on (``-nonoise`` off): the same
values as ``-intfile`` or ``-noisefile``, made once per band for both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..io import InputError, OutputFile, OutputSet, QueuedWrites, auto_int_scale, auto_pgm_scale, int_image_from_float
from ..io.cbf import PADDING, CbfWriter, PilatusHeader, cif_text, require_fabio
from ..io.nexus import Module, NXmxInfo, NXmxWriter, require_h5
from ..io.pgm import pgm_header, pgm_pixels
from ..io.smv import smv_header, smv_header_values
from ..resolve import Resolved


def header_values(res: Resolved, noise: bool) -> dict:
    """SMV header values from the resolved geometry (C's variables after set-up)."""
    g = res.detector
    f = float
    return smv_header_values(
        fpixels=g.fpixels, spixels=g.spixels, pixel_size=f(g.pixel_size), distance=f(g.distance),
        wavelength=res.wavelength, xbeam=f(g.beam_x), ybeam=f(g.beam_y), fbeam=f(g.Fbeam), sbeam=f(g.Sbeam),
        detsize_s=g.detsize_s, dials_origin=[f(v) for v in g.dials_origin], orgx=f(g.orgx), orgy=f(g.orgy),
        close_distance=f(g.close_distance), phi0=res.phi0, osc=res.osc, twotheta=f(g.twotheta), noise=noise)


@dataclass
class RunOutputs:
    """The output files of one run (None where not asked for), opened before rendering."""
    float: Optional[OutputFile]
    int: Optional[OutputFile]
    pgm: Optional[OutputFile]
    noise: Optional[OutputFile]
    png: Optional[OutputFile]
    int_header: bytes = b""
    noise_header: bytes = b""
    cbf: Optional[OutputFile] = None
    h5: Optional[OutputFile] = None
    cbf_header: Optional[PilatusHeader] = None
    nxmx: Optional[NXmxInfo] = None
    #: an NXmx file shared by several images (the panels of a -geom run), written here but finished by its owner
    h5_shared: Optional[NXmxWriter] = None
    #: where this image goes in h5_shared: (panel index or None, first row, first column)
    h5_place: tuple = (None, 0, 0)


def _exposure_and_spindle(res: Resolved, experiment):
    """Exposure time (s) and lab spindle axis of the run (C's defaults without an experiment)."""
    from ..geometry.detector import convention_vectors

    if experiment is None:
        from ..config.experiment import Experiment
        experiment = Experiment()
    det, beam = experiment.detector, experiment.beam
    vecs = convention_vectors(det, beam.beam_vector, beam.polar_vector, experiment.crystal.spindle_axis)
    return float(beam.exposure), vecs.spindle.detach().cpu().numpy().astype(np.float64)


def pilatus_header(res: Resolved, experiment=None) -> PilatusHeader:
    """The run's mini-CBF header values: pixel, sensor, exposure, wavelength, distance, beam centre, phi."""
    g, f = res.detector, float
    exposure, _ = _exposure_and_spindle(res, experiment)
    return PilatusHeader(pixel_size=f(g.pixel_size), thickness=f(res.thickness), exposure=exposure,
                         wavelength=f(res.wavelength), distance=f(g.distance), beam_f=f(g.Fbeam), beam_s=f(g.Sbeam),
                         start_angle=f(res.phi0), increment=f(res.osc), twotheta=f(g.twotheta))


def _lab(v) -> np.ndarray:
    return v.detach().cpu().numpy().astype(np.float64)


def nxmx_info(res: Resolved, experiment=None) -> NXmxInfo:
    """The run's NXmx values: beam, wavelength, rotation axis and angle, and the detector as one module."""
    g, f = res.detector, float
    exposure, spindle = _exposure_and_spindle(res, experiment)
    module = Module(pix0=_lab(g.pix0), fdet=_lab(g.fdet), sdet=_lab(g.sdet), pixel_size=f(g.pixel_size),
                    shape=(g.spixels, g.fpixels))
    return NXmxInfo(wavelength=f(res.wavelength), beam=_lab(g.beam), spindle=spindle, phi0=f(res.phi0),
                    osc=f(res.osc), distance=f(g.distance), beam_f=f(g.Fbeam), beam_s=f(g.Sbeam),
                    thickness=f(res.thickness), exposure=exposure, modules=[module])


def open_outputs(out, res: Resolved, outputs: OutputSet, experiment=None) -> RunOutputs:
    """Check and open every output ``out`` (OutputConfig) asks for, with the size each will have.

    Raises InputError (nothing written) for a missing or unwritable folder, a
    directory, two outputs naming one file, too little free space, or a
    missing library (fabio for ``-cbffile``, h5py and hdf5plugin for
    ``-h5file``). ``experiment`` gives the exposure time and spindle axis
    of the CBF and NXmx headers. The CBF's size is reserved as its lower
    bound (a byte a pixel); the NXmx file's is not known beforehand.
    """
    shape = (res.detector.spixels, res.detector.fpixels)
    cbf_header = nxmx = None
    if out.cbffile:
        require_fabio("-cbffile")
        cbf_header = pilatus_header(res, experiment)
    if out.h5file:
        require_h5("-h5file")
        nxmx = nxmx_info(res, experiment)
    pixels = shape[0] * shape[1]
    int_header = smv_header(header_values(res, noise=False), shape)[0]
    noise_header = smv_header(header_values(res, noise=True), shape)[0]
    wanted = (
        ("float", out.floatfile, 4 * pixels),
        ("int", out.intfile, len(int_header) + 2 * pixels),
        ("pgm", out.pgmfile if out.write_pgm else None, len(pgm_header(shape[1], shape[0], 0.0)) + pixels),
        ("noise", out.noisefile if out.calculate_noise else None, len(noise_header) + 2 * pixels),
        ("png", out.pngfile, None),
        ("cbf", out.cbffile, len(cif_text(cbf_header)) + pixels + PADDING if cbf_header else None),
        ("h5", out.h5file, None),
    )
    files = {name: outputs.add(path, size) if path else None for name, path, size in wanted}
    return RunOutputs(**files, int_header=int_header, noise_header=noise_header, cbf_header=cbf_header, nxmx=nxmx)


def band_roi(roi, first_row: int):
    """C's inclusive ROI in the coordinates of a band of rows starting at detector row ``first_row``."""
    xmin, xmax, ymin, ymax = roi
    return xmin, xmax, ymin - first_row, ymax - first_row


class _Noise:
    """The noise image's generator: C's (bit-identical, sequential) or torch's (fast, not identical)."""

    def __init__(self, out, roi, statics=None):
        if out.noise_rng == "torch":
            import torch
            self._gen = torch.Generator().manual_seed(abs(int(out.seed)))
            self.photons, self.overloads = 0.0, 0
        else:
            from ..rng.noise import CNoise  # numba loads only when noise is made
            self._c = CNoise(out.seed, roi, out.adc, statics)  # statics: C's table after the set-up's draws
        self._out, self._roi = out, roi

    def band(self, band32: np.ndarray, first_row: int) -> np.ndarray:
        if self._out.noise_rng != "torch":
            pixels = self._c.band(band32, first_row)
            self.photons, self.overloads = self._c.photons, self._c.overloads
            return pixels
        import torch

        from ..rng.noise import poisson_noise_torch
        noise, photons, overloads = poisson_noise_torch(torch.from_numpy(np.ascontiguousarray(band32)), self._gen,
                                                        self._roi, self._out.adc, first_row)
        self.photons, self.overloads = self.photons + photons, self.overloads + overloads
        return noise.numpy()


def write_second_pass(out, res: Resolved, store, stats, files: RunOutputs, writes: QueuedWrites, log,
                      int_kernel=None) -> None:
    """Write the SMV, PGM and noise files from the float image ``store`` (FloatStore), printing C's lines.

    One pass over the bands: each band's int, PGM and noise pixels are made
    and written at their offsets, and the CBF and NXmx files are given the
    int (or, with noise on, the noise) pixels. ``int_kernel``: the compiled
    int conversion, or None (see int_image_from_float).
    """
    roi, F = res.roi, res.detector.fpixels
    scale = auto_int_scale(stats.max_I, out.intfile_scale)
    log(f"intfile_scale = {scale:g}")
    pgm_scale = auto_pgm_scale(scale, stats.rmsd, out.pgm_scale)
    if files.int is not None:
        log(f"writing {out.intfile} as 2-byte integers")
        writes.write(files.int, files.int_header, 0)
    if files.pgm is not None:
        log(f"pgm_scale = {pgm_scale:g}")
        log(f"writing {out.pgmfile} as 1-byte integers")
        pgm_head = pgm_header(F, res.detector.spixels, pgm_scale)
        writes.write(files.pgm, pgm_head, 0)
    counts_are_noise = bool(out.calculate_noise)
    pipeline = files.cbf is not None or files.h5 is not None or files.h5_shared is not None
    make_ints = files.int is not None or (pipeline and not counts_are_noise)
    noise = _Noise(out, roi, res.rng_statics) if files.noise is not None or (pipeline and counts_are_noise) else None
    if files.noise is not None:
        writes.write(files.noise, files.noise_header, 0)
    shape = store.shape
    cbf = CbfWriter(files.cbf, shape, files.cbf_header) if files.cbf is not None else None
    try:
        h5 = (NXmxWriter(files.h5, files.nxmx, shape, store.rows, bool(out.h5_float))
              if files.h5 is not None else files.h5_shared)
    except BaseException:
        if cbf is not None:
            cbf.close()
        raise
    try:
        for first, band32 in store.bands():
            here = band_roi(roi, first)
            ints = int_image_from_float(band32, scale, out.adc, here, int_kernel) if make_ints else None
            if files.int is not None:
                writes.write(files.int, ints, len(files.int_header) + 2 * first * F)
            if files.pgm is not None:
                writes.write(files.pgm, pgm_pixels(band32, pgm_scale, here), len(pgm_head) + first * F)
            noisy = noise.band(band32, first) if noise is not None else None
            if files.noise is not None:
                writes.write(files.noise, noisy, len(files.noise_header) + 2 * first * F)
            counts = noisy if counts_are_noise else ints
            if cbf is not None:
                cbf.band(counts)
            if h5 is not None:
                panel, row0, col0 = files.h5_place
                h5.band(row0 + first, counts, band32 if out.h5_float else None, panel=panel, first_col=col0)
        if noise is not None:
            log(f"{noise.photons:.0f} photons on noise image ({noise.overloads} overloads)")
        if files.noise is not None:
            log(f"writing {out.noisefile} as 2-byte integers")
        which = "noise" if counts_are_noise else "int"
        if cbf is not None:
            log(f"writing {out.cbffile} as a mini-CBF of the {which} image")
            cbf.finish()
        if files.h5 is not None:
            log(f"writing {out.h5file} as NXmx HDF5 of the {which} image")
            h5.finish()
    finally:
        if cbf is not None:
            cbf.close()
        if files.h5 is not None and h5 is not None:
            h5.close()


def _kth_values(store, ks: list) -> list:
    """The values of ascending ranks ``ks`` among the non-negative float32 pixels of ``store``, exactly.

    A radix selection on the floats' bit patterns (for non-negative floats
    their order as unsigned integers): one pass over the bands counts the
    high 16 bits, a second the low 16 bits within the chosen bucket.
    """
    values = []
    for k in ks:
        high = np.zeros(1 << 16, np.int64)
        for _, band in store.bands():
            high += np.bincount((np.clip(band, 0, None).view(np.uint32) >> 16).ravel(), minlength=1 << 16)
        bucket = int(np.searchsorted(np.cumsum(high), k, side="right"))
        below = int(high[:bucket].sum())
        low = np.zeros(1 << 16, np.int64)
        for _, band in store.bands():
            bits = np.clip(band, 0, None).view(np.uint32).ravel()
            low += np.bincount(bits[(bits >> 16) == bucket] & 0xFFFF, minlength=1 << 16)
        rest = int(np.searchsorted(np.cumsum(low), k - below, side="right"))
        values.append(float(np.uint32((bucket << 16) | rest).view(np.float32)))
    return values


def png_top(store) -> float:
    """The top of the PNG scale: the 99.9th percentile of the clipped image (numpy's linear
    interpolation between ranks), or its maximum, or 1."""
    S, F = store.shape
    n = S * F
    if store.whole:
        v = np.clip(store.band(0).astype(np.float64), 0, None)
        top = np.percentile(v, 99.9) if n else 0.0
        top_max = v.max() if n else 0.0
    else:
        index = (n - 1) * 0.999
        lo, hi = _kth_values(store, [int(np.floor(index)), min(int(np.floor(index)) + 1, n - 1)])
        top = lo + (index - np.floor(index)) * (hi - lo)
        top_max = max(float(np.clip(band, 0, None).max()) for _, band in store.bands())
    return top if top > 0 else (top_max if top_max > 0 else 1.0)


def png_pixels(band32: np.ndarray, top: float, linear: bool) -> np.ndarray:
    """uint8 preview pixels of float rows: v/top clipped to [0, 1], linear or log1p(1000 x)/log1p(1000)."""
    v = np.clip(band32.astype(np.float64), 0, None)
    scaled = np.clip(v / top, 0, 1) if linear else np.log1p(np.clip(v / top, 0, 1) * 1000.0) / np.log1p(1000.0)
    return (scaled * 255 + 0.5).astype(np.uint8)


def write_png(png: OutputFile, store, linear: bool) -> None:
    """A viewable 8-bit PNG of the float image, via Pillow; it holds the 8-bit image (a byte a pixel)."""
    from PIL import Image

    top = png_top(store)
    image = np.empty(store.shape, np.uint8)
    for first, band in store.bands():
        image[first:first + band.shape[0]] = png_pixels(band, top, linear)
    try:
        with os.fdopen(os.dup(png.fd), "wb") as handle:
            Image.fromarray(image, mode="L").save(handle, format="PNG")
    except OSError as exc:
        raise InputError(png.path, f"cannot write file ({exc.strerror})") from None
