"""The ``nonBragg`` command: amorphous scattering from a ``.stol`` table, as the C program renders it.

Flags (:mod:`nanobragg.cli.nonbragg_flags`) -> the C program's set-up, in its
order of decisions (detector size, beam centre, sample, sources, detector
placement with the shared :mod:`nanobragg.geometry` code) -> the background
(:mod:`nanobragg.physics.background`) in bands of rows -> the float, int, PGM
and noise files (and ``output.stol`` with ``-img``), every output checked and
opened before the work and published together (:class:`nanobragg.io.OutputSet`).
Bad input ends with one line on stderr naming the problem and exit status 2,
before any file is touched.
"""
from __future__ import annotations

from . import entry  # noqa: F401  (first: the OpenMP thread policy before torch loads)

# isort: split
import math
import os
import sys
import time
from types import SimpleNamespace

import numpy as np

from ..errors import UsageError
from ..io import InputError, OutputSet
from ..io.floatimage import float_bytes
from ..io.pgm import auto_pgm_scale, pgm_header, pgm_pixels
from ..io.smv import auto_int_scale, format_smv_header, int_image_from_float, read_smv
from ..io.sources import read_source_file, read_text_columns
from .nonbragg_flags import BY_NAME, RTD, NonBraggSettings, usage_text
from .parser import apply_flag, split_flags

PROG = "nonBragg"
#: Samples (sub-pixels x sources) rendered per band.
BAND_SAMPLES = 1 << 17


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"Try '{PROG} -h' for the list of flags.", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------------------------
# command line


def _apply_img_header(s: NonBraggSettings, path: str):
    """C reads the -img header before every other flag: its values become the defaults."""
    header, data = read_smv(path)

    def value(key):
        if key not in header:
            return None
        try:
            return float(header[key])
        except ValueError:
            raise InputError(path, f"SMV header {key}={header[key]!r} is not a number") from None

    s.spixels, s.fpixels = data.shape
    if (v := value("PIXEL_SIZE")) is not None:
        s.pixel_size = v / 1000.0
    s.detsize_x = s.pixel_size * s.fpixels
    s.detsize_y = s.pixel_size * s.spixels
    if (v := value("DISTANCE")) is not None:
        s.distance = v / 1000.0
    if (v := value("CLOSE_DISTANCE")) is not None:
        s.close_distance = v / 1000.0
    if (v := value("WAVELENGTH")) is not None:
        s.lambda0 = v / 1e10
    if (v := value("BEAM_CENTER_X")) is not None:
        s.xbeam = v / 1000.0
    if (v := value("BEAM_CENTER_Y")) is not None:
        s.ybeam = s.detsize_y - v / 1000.0
    if (v := value("ORGX")) is not None:
        s.orgx = v
    if (v := value("ORGY")) is not None:
        s.orgy = v
    if (v := value("PHI")) is not None:
        s.phi0 = v / RTD
    if (v := value("OSC_RANGE")) is not None:
        s.osc = v / RTD
    return data


def build_settings(argv: list[str]):
    """(settings, -img pixels or None): the -img header first, then the flags in order (last wins)."""
    groups = split_flags(argv, BY_NAME)
    s = NonBraggSettings()
    img = None
    for flag, name, values in groups:
        if name == "-img":
            img = (values[0], None)
    if img is not None:
        img = _apply_img_header(s, img[0])
    for flag, name, values in groups:
        apply_flag(s, flag, name, values)
    return s, img


def validate(s: NonBraggSettings) -> None:
    """Refuse values C would render garbage (or crash) with; one line naming the flag."""
    if s.stol is None:
        raise UsageError("no -stol table given (e.g. -stol water)")
    checks = [
        (s.pixel_size > 0, "-pixel must be positive"),
        (s.fpixels >= 0 and s.spixels >= 0, "-detpixels must not be negative"),
        (s.detsize_x > 0 and s.detsize_y > 0, "-detsize must be positive"),
        (s.molecular_weight > 0, "-MW must be positive"),
        (min(s.sample_x, s.sample_y, s.sample_z) > 0, "the sample size must be positive"),
        (s.oversample <= 64, "-oversample must be at most 64"),
        (s.dispsteps <= 10000 and s.hdivsteps <= 10000 and s.vdivsteps <= 10000, "too many source steps"),
        (s.gain != 0, "-gain must not be 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if s.roi is not None and (s.roi[0] > s.roi[1] or s.roi[2] > s.roi[3]):
        raise UsageError("-roi: xmin > xmax or ymin > ymax")
    for name in ("distance", "close_distance", "fluence", "lambda0"):
        value = getattr(s, name)
        if not math.isnan(value) and value == 0 and name != "close_distance":
            raise UsageError(f"-{name} must not be 0")


# ---------------------------------------------------------------------------------------------
# the C program's set-up


def _steps(steps, rng, step, auto_range):
    """C's auto-selection of (steps, range, step) for divergence and dispersion."""
    if steps <= 0:
        if rng < 0.0:
            if step <= 0.0:
                steps, rng, step = 1, 0.0, 0.0
            else:
                rng, steps = step, 2
        else:
            if step <= 0.0:
                step, steps = rng, 2
            else:
                steps = math.ceil(rng / step)
    else:
        if rng < 0.0:
            if step <= 0.0:
                rng = auto_range
                step = rng / steps
            else:
                rng, steps = step, 2
        else:
            if step <= 0.0:
                if steps <= 1:
                    steps = 2
                step = rng / (steps - 1)
    if rng <= 0.0 or step <= 0.0 or steps <= 0:
        steps, rng, step = 1, 0.0, 0.0
    return steps, rng, step


def _osc(s):
    """The oscillation range the header reports (C's phi-step logic)."""
    osc, phistep, phisteps = s.osc, s.phistep, s.phisteps
    if phisteps < 0:
        if osc < 0.0:
            osc = 0.0 if phistep <= 0.0 else phistep
    else:
        if osc < 0.0:
            osc = 1.0 / RTD if phistep <= 0.0 else phistep
    return osc


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    mag = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return v / mag if mag != 0.0 else np.zeros(3)


def read_stol(path: str, stol_mult: float):
    """The stol table (padded as C pads it) from ``path``, or the packaged table of that name."""
    from ..data import packaged_stol
    from ..physics.background import stol_table
    if not os.path.exists(path) and (packaged := packaged_stol(path)) is not None:
        path = str(packaged)
    rows = read_text_columns(path, 2)
    if np.isnan(rows[:, 0]).any():
        raise InputError(path, "a row has no stol value")
    return stol_table(rows[:, 0], rows[:, 1], stol_mult), len(rows), path


def resolve(s: NonBraggSettings, log=print):
    """Everything the pixel loop needs, decided in the C program's order. Returns a namespace."""
    import torch

    from ..geometry.beam import divergence_grid, grid_sources
    from ..geometry.detector import ConventionVectors, place_detector
    from ..geometry.vectors import dot, rotate_xyz
    from ..physics.background import sample_molecules

    r = SimpleNamespace()
    dtype = torch.float64 if s.dtype == "float64" else torch.float32
    r.dtype, r.dtype_name = dtype, s.dtype
    if s.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("-device cuda: no CUDA device is available")
    r.device = torch.device("cuda" if s.device == "cuda" or (s.device == "auto" and torch.cuda.is_available())
                            else "cpu")
    pix = s.pixel_size
    detsize_x = pix * s.fpixels if s.fpixels else s.detsize_x
    detsize_y = pix * s.spixels if s.spixels else s.detsize_y
    r.fpixels, r.spixels = math.ceil(detsize_x / pix), math.ceil(detsize_y / pix)
    if r.fpixels * r.spixels > 1 << 31:
        raise UsageError(f"detector of {r.fpixels}x{r.spixels} pixels is too large")
    r.detsize_x, r.detsize_y, r.pixel_size = detsize_x, detsize_y, pix
    xclose, yclose = s.xclose, s.yclose
    if not math.isnan(s.orgx):
        xclose = s.orgx * pix
    if not math.isnan(s.orgy):
        yclose = s.orgy * pix
    if math.isnan(xclose):
        xclose = (detsize_x - pix) / 2.0
    if math.isnan(yclose):
        yclose = (detsize_y + pix) / 2.0
    xbeam = xclose if math.isnan(s.xbeam) else s.xbeam
    ybeam = yclose if math.isnan(s.ybeam) else s.ybeam
    roi = list(s.roi) if s.roi is not None else [-1, -1, -1, -1]
    roi[0] = max(roi[0], 0) if roi[0] >= 0 else 0
    roi[1] = r.fpixels if roi[1] < 0 else roi[1]
    roi[2] = max(roi[2], 0) if roi[2] >= 0 else 0
    roi[3] = r.spixels if roi[3] < 0 else roi[3]
    r.roi = tuple(roi)

    fluence = s.fluence
    if s.flux != 0.0 and s.exposure > 0.0 and s.beamsize >= 0:
        fluence = s.flux * s.exposure / s.beamsize / s.beamsize
    r.fluence = fluence
    if s.beamsize >= 0:
        if s.beamsize < s.sample_y:
            log(f"WARNING: clipping sample ({s.sample_y:g} m high) with beam ({s.beamsize:g} m)")
        if s.beamsize < s.sample_z:
            log(f"WARNING: clipping sample ({s.sample_z:g} m wide) with beam ({s.beamsize:g} m)")
    r.molecules, r.density, r.sample = sample_molecules(s.sample_x, s.sample_y, s.sample_z, s.density,
                                                       s.molecular_weight, s.molecules, s.beamsize)
    if not (math.isfinite(r.molecules) and math.isfinite(r.fluence)):
        raise UsageError("the sample or beam gives a non-finite number of molecules or fluence")

    beam = _unit(s.beam_vector)
    fdet, sdet = _unit(s.fdet_vector), _unit(s.sdet_vector)
    odet = _unit(np.cross(fdet, sdet))
    polar = _unit(s.polar_vector)
    r.osc = _osc(s)
    hsteps, hrange, hstep = _steps(s.hdivsteps, s.hdivrange, s.hdivstep, 1.0)
    vsteps, vrange, vstep = _steps(s.vdivsteps, s.vdivrange, s.vdivstep, 1.0)
    dsteps, dispersion, dstep = _steps(s.dispsteps, s.dispersion, -1.0, 1.0)
    r.hdiv, r.vdiv, r.disp = (hsteps, hrange, hstep), (vsteps, vrange, vstep), (dsteps, dispersion, dstep)

    f64 = torch.float64

    def t(v):
        return torch.tensor(v, dtype=f64)
    vecs = ConventionVectors(t(beam), t(fdet), t(sdet), t(odet), t(s.twotheta_axis), t(polar),
                             t(_unit(s.spindle_vector)))
    ratio = float(dot(vecs.beam, rotate_xyz(vecs.odet, s.rotx, s.roty, s.rotz)))
    if ratio == 0.0:
        ratio = 2.2250738585072014e-308
    close = ratio * s.distance if math.isnan(s.close_distance) else s.close_distance
    det = SimpleNamespace(rotx=s.rotx, roty=s.roty, rotz=s.rotz, twotheta=s.twotheta, distance=s.distance,
                          close_distance=close)
    centre = dict(pivot=s.pivot, Fclose=t(xclose), Sclose=t(yclose), Fbeam=t(xbeam), Sbeam=t(ybeam))
    log("pivoting detector around sample" if s.pivot == "sample" else "pivoting detector around direct beam spot")
    fdet_t, sdet_t, odet_t, pix0, ratio_t, _ = place_detector(det, vecs, centre, f64, None)
    r.fdet, r.sdet, r.odet, r.pix0, r.beam = fdet_t, sdet_t, odet_t, pix0, vecs.beam
    r.xclose, r.yclose = float(-dot(pix0, fdet_t)), float(-dot(pix0, sdet_t))
    r.close_distance = float(dot(pix0, odet_t))
    ratio = float(ratio_t)
    direct = r.close_distance / ratio * vecs.beam - pix0
    r.xbeam, r.ybeam = float(dot(fdet_t, direct)), float(dot(sdet_t, direct))
    r.distance = r.close_distance / ratio
    r.polar_vector = vecs.polar

    # sources
    if s.sourcefile is not None:
        table = read_source_file(s.sourcefile)
        pos = np.where(np.isnan(table[:, :3]), -s.source_distance * beam, table[:, :3])
        weights = np.where(np.isnan(table[:, 3]), 1.0, table[:, 3])
        lambdas = np.where(np.isnan(table[:, 4]), s.lambda0, table[:, 4])
        mags = np.sqrt(pos[:, 0] * pos[:, 0] + pos[:, 1] * pos[:, 1] + pos[:, 2] * pos[:, 2])
        if (mags == 0).any() or (lambdas == 0).any():
            raise InputError(s.sourcefile, "a source at the sample or with zero wavelength")
        r.incident = torch.tensor(-pos / mags[:, None], dtype=f64)
        r.lambdas, r.weights = torch.tensor(lambdas, dtype=f64), torch.tensor(weights, dtype=f64)
        r.divsteps = 0
        r.source_positions = pos
    else:
        pairs = divergence_grid(hsteps, hrange, hstep, vsteps, vrange, vstep, s.round_div)
        for h, v in pairs:
            log(f"divergence deviation: {h:g} {v:g}")
        for k in range(dsteps):
            log("lambda%d = %.15g" % (k, s.lambda0 * (1.0 + dstep * k - dispersion / 2.0)))
        dirs, lambdas = grid_sources(vecs.beam, vecs.polar, pairs, s.lambda0, dispersion, dstep, dsteps)
        r.incident, r.lambdas = -dirs, lambdas
        r.weights = torch.ones(len(lambdas), dtype=f64)
        r.divsteps = len(pairs)
        r.source_positions = (dirs * s.source_distance).numpy()
    r.sources = len(r.lambdas)
    if r.sources == 0:
        raise UsageError("no sources (divergence grid is empty)")
    log(f"  created a total of {r.sources} sources:")
    for k in range(r.sources):
        x, y, z = r.source_positions[k]
        log(f"{x:g} {y:g} {z:g}   {float(r.weights[k]):g} {float(r.lambdas[k]):g}")
    r.oversample = s.oversample if s.oversample > 0 else 1
    r.steps = r.sources * r.oversample * r.oversample
    return r


# ---------------------------------------------------------------------------------------------
# rendering


def render(s: NonBraggSettings, r, table, want_img: bool, engine: str = "auto"):
    """The float image (S, F) float32 (0 outside the ROI), and with ``want_img`` the per-pixel
    last-sample values -img needs: polarization, solid angle, stol, interval index.

    ``engine``: ``loop`` (compiled loop over C's samples in C's order, float64 on the CPU,
    rows in parallel unless the table's stol values do not increase), ``torch`` (the tensor
    functions of physics.background, any dtype and device), ``auto`` (loop for float64 on the CPU).
    """
    if engine == "auto":
        engine = "loop" if (r.dtype_name == "float64" and r.device.type == "cpu") else "torch"
    if engine == "loop":
        return _render_loop(s, r, table, want_img)
    return _render_torch(s, r, table, want_img)


def _empty_extra(shape, want_img):
    if not want_img:
        return None
    extra = {k: np.zeros(shape, dtype=np.float64) for k in ("polar", "omega", "stol", "F")}
    extra["nearest"] = np.zeros(shape, dtype=np.int64)
    return extra


def _render_loop(s, r, table, want_img):
    import torch

    from ..geometry.vectors import cross, unitize
    from ..physics._background_loops import background_rows_parallel, background_rows_serial
    from ..physics.background import AVOGADRO, R_E_SQR  # noqa: F401

    S, Fp = r.spixels, r.fpixels
    image = np.zeros((S, Fp), dtype=np.float32)
    extra = _empty_extra((S, Fp), want_img or s.fmap)
    x0, x1 = r.roi[0], min(r.roi[1], Fp - 1)
    y0, y1 = r.roi[2], min(r.roi[3], S - 1)
    if x0 > x1 or y0 > y1:
        return image, extra
    inc = r.incident.double()
    b_in = unitize(cross(r.polar_vector.double().expand_as(inc), inc))[0]
    e_in = unitize(cross(inc, b_in))[0]

    def arr(t):
        return np.ascontiguousarray(t.detach().double().cpu().numpy())
    common = (x0, x1, r.oversample, float(r.pixel_size), arr(r.fdet), arr(r.sdet), arr(r.pix0), bool(s.curved),
              float(r.distance), arr(r.beam), arr(inc), arr(r.lambdas), arr(r.weights), arr(e_in), arr(b_in),
              table.x.numpy(), table.F.detach().numpy(), table._den.numpy(), float(s.polarization), bool(s.nopolar),
              bool(s.point_pixel), float(r.close_distance),
              np.array([R_E_SQR, r.fluence, r.molecules], dtype=np.float64), float(r.steps))
    width = x1 - x0 + 1
    band = max(1, min(y1 - y0 + 1, (1 << 20) // max(1, width)))
    n = 0
    with torch.no_grad():
        for start in range(y0, y1 + 1, band):
            stop = min(start + band, y1 + 1) - 1
            rows = stop - start + 1
            out = np.zeros((rows, width), dtype=np.float32)
            lasts = [np.zeros((rows, width)) for _ in range(4)] + [np.zeros((rows, width), dtype=np.int64)]
            if table.increasing:
                background_rows_parallel(start, stop, *common, out, *lasts)
            else:
                n = background_rows_serial(start, stop, *common, out, *lasts, n)
            image[start:stop + 1, x0:x1 + 1] = out
            if extra is not None:
                for key, value in zip(("F", "polar", "omega", "stol", "nearest"), lasts):
                    extra[key][start:stop + 1, x0:x1 + 1] = value
    if s.fmap:
        image[y0:y1 + 1, x0:x1 + 1] = extra["F"][y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    return image, extra


def _render_torch(s, r, table, want_img):
    import torch

    from ..physics.background import background_image, background_samples, detector_positions, nearest_sequential

    dtype, device = r.dtype, r.device
    S, Fp = r.spixels, r.fpixels
    image = np.zeros((S, Fp), dtype=np.float32)
    extra = _empty_extra((S, Fp), want_img)
    x0, x1 = r.roi[0], min(r.roi[1], Fp - 1)
    y0, y1 = r.roi[2], min(r.roi[3], S - 1)
    if x0 > x1 or y0 > y1:
        return image, extra
    cols = torch.arange(x0, x1 + 1, device=device)
    per_row = len(cols) * r.oversample ** 2 * r.sources
    band = max(1, BAND_SAMPLES // per_row)
    vec = {k: getattr(r, k).to(dtype=dtype, device=device) for k in ("fdet", "sdet", "pix0", "beam", "polar_vector")}
    incident = r.incident.to(dtype=dtype, device=device)
    lambdas = r.lambdas.to(dtype=dtype, device=device)
    weights = r.weights.to(dtype=dtype, device=device)
    sequential = not table.increasing or want_img
    last = 0
    with torch.no_grad():
        for start in range(y0, y1 + 1, band):
            rows = torch.arange(start, min(start + band, y1 + 1), device=device)
            pos = detector_positions(rows, cols, r.oversample, r.pixel_size, vec["fdet"], vec["sdet"], vec["pix0"],
                                     s.curved, r.distance, vec["beam"])
            nearest = None
            if sequential:
                stol, _, _ = background_samples(pos, incident, lambdas, table)
                flat = stol.detach().to(torch.float64).cpu().numpy().reshape(-1)
                found, last = nearest_sequential(flat, table.x.numpy(), last)
                nearest = torch.from_numpy(found.reshape(stol.shape)).to(device)
            out = background_image(pos, incident, lambdas, weights, table, pixel_size=r.pixel_size,
                                   close_distance=r.close_distance, kahn=s.polarization,
                                   polar_vector=vec["polar_vector"], nopolar=s.nopolar, point_pixel=s.point_pixel,
                                   fluence=r.fluence, molecules=r.molecules, nearest=nearest, return_F=True)
            values, lastF, polar, omega, stol_last = out
            if s.fmap:
                values = lastF
            rs = slice(int(rows[0]), int(rows[-1]) + 1)
            cs = slice(x0, x1 + 1)
            image[rs, cs] = values.to(torch.float32).cpu().numpy()
            if want_img:
                extra["polar"][rs, cs] = polar.double().cpu().numpy()
                extra["omega"][rs, cs] = omega.double().cpu().numpy()
                extra["stol"][rs, cs] = stol_last.double().cpu().numpy()
                extra["nearest"][rs, cs] = nearest[..., -1, -1, -1].cpu().numpy()
    return image, extra


# ---------------------------------------------------------------------------------------------
# statistics and files


def roi_mask(shape, roi):
    S, F = shape
    xmin, xmax, ymin, ymax = roi
    ys = np.arange(S)[:, None]
    xs = np.arange(F)[None, :]
    return (xs >= xmin) & (xs <= xmax) & (ys >= ymin) & (ys <= ymax)


def statistics(image: np.ndarray, roi, n_start: int | None = None):
    """C's max_I (first brightest pixel), mean, rms and rmsd over the ROI.

    C's quirks are kept, since the rmsd sets the PGM scale: the mean divides
    by C's running count ``n`` (the ROI's pixels; with -img, the last stol
    bin's count instead, ``n_start``), and the rmsd loop reads each pixel's
    successor (its index is incremented before use; 0 after the last pixel).
    """
    S, F = image.shape
    xmin, xmax, ymin, ymax = roi
    x0, x1, y0, y1 = max(xmin, 0), min(xmax, F - 1), max(ymin, 0), min(ymax, S - 1)
    if x0 > x1 or y0 > y1:
        sub = np.zeros((0, 0), dtype=np.float32)
    else:
        sub = image[y0:y1 + 1, x0:x1 + 1]
    count = sub.size
    inside = sub.astype(np.float64).reshape(-1)
    total, sumsqr = float(inside.sum()), float(np.dot(inside, inside))
    max_I, at = 0.0, None
    if count:
        k = int(np.argmax(sub))
        if float(sub.reshape(-1)[k]) > 0.0:
            max_I = float(sub.reshape(-1)[k])
            at = (y0 + k // sub.shape[1]) * F + x0 + k % sub.shape[1]
    n = count if n_start is None else n_start
    n = 1 if n <= 0 else n
    avg = total / n
    n = 2 if n <= 1 else n
    rms = math.sqrt(sumsqr / (n - 1))
    ssd = 0.0
    if count:
        ext = np.zeros(S * F + 1, dtype=np.float32)
        ext[:-1] = image.reshape(-1)
        following = ext[1:].reshape(S, F)[y0:y1 + 1, x0:x1 + 1].astype(np.float64).reshape(-1) - avg
        ssd = float(np.dot(following, following))
    m = count if count > 1 else 2
    rmsd = math.sqrt(ssd / (m - 1))
    return dict(max_I=max_I, max_at=at, mean=avg, rms=rms, rmsd=rmsd)


def smv_header(r, s) -> bytes:
    """The header nonBragg writes on its int and noise images."""
    values = {
        "DIM": 2, "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short",
        "SIZE1": int(r.fpixels), "SIZE2": int(r.spixels),
        "PIXEL_SIZE": r.pixel_size * 1000.0, "DISTANCE": r.distance * 1000.0,
        "WAVELENGTH": s.lambda0 * 1e10,
        "BEAM_CENTER_X": r.xbeam * 1000.0, "BEAM_CENTER_Y": (r.detsize_y - r.ybeam) * 1000,
        "ORGX": r.xclose / r.pixel_size, "ORGY": r.yclose / r.pixel_size,
        "CLOSE_DISTANCE": r.close_distance * 1000.0,
        "PHI": s.phi0 * RTD, "OSC_START": s.phi0 * RTD, "OSC_RANGE": r.osc * RTD,
        "TWOTHETA": s.twotheta * RTD, "DETECTOR_SN": "000", "BEAMLINE": "fake",
    }
    return format_smv_header(values)


def _f32(x):
    return np.float32(x)


def stol_profile(s, r, table, extra, img_pixels, log=print):
    """``output.stol`` lines from the -img image (C: the F each pixel's counts imply, averaged per stol bin),
    and C's running count after it (the last bin's)."""
    S, F = r.spixels, r.fpixels
    img = img_pixels.astype(np.float32)
    if img.shape != (S, F):
        padded = np.zeros(S * F, dtype=np.float32)
        flat = img.reshape(-1)[:S * F]
        padded[:len(flat)] = flat
        img = padded.reshape(S, F)
    invalid = ~roi_mask((S, F), r.roi)
    for value in s.ignore:
        invalid |= img == np.float32(np.uint16(int(value) & 0xFFFF))
    deviate = ((img.astype(np.float64) - s.adc) / s.gain).astype(np.float32)
    sign = np.where(deviate < 0, -1.0, 1.0)
    deviate = np.abs(deviate).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_F = (sign * np.sqrt(deviate / extra["polar"] / extra["omega"] / r.fluence / 7.94079248018965e-30
                                  / r.molecules * r.steps)).astype(np.float32)
    x = table.x.numpy()
    nearest = extra["nearest"]
    upper = np.minimum(nearest + 1, len(x) - 1)
    bins = np.where(extra["stol"] > (x[nearest] + x[upper]) / 2.0, nearest + 1, nearest)
    bins = np.where(invalid, 0, bins).reshape(-1)
    values = pixel_F.reshape(-1)
    order = np.argsort(bins, kind="stable")
    counts = np.bincount(bins, minlength=len(x))
    starts = np.concatenate([[0], np.cumsum(counts)])
    sorted_values = values[order]
    lines, n = [], 0
    for b in range(2, len(x) - 2):
        chunk = sorted_values[starts[b]:starts[b + 1]]
        n = int(counts[b])
        if n > 0:
            total = np.cumsum(chunk, dtype=np.float32)[-1]
            avg = _f32(total / _f32(n))
            dev = np.abs(chunk - avg).astype(np.float32)
            sumd = np.cumsum(dev * dev, dtype=np.float32)[-1]
            rmsd = _f32(math.sqrt(float(_f32(sumd / _f32(n)))))
        else:
            avg = rmsd = 0.0
        stol = x[b] / s.stol_mult
        if n > 100:
            lines.append("%s %s %s   %s %s  %d\n" % (_g(stol), _g(avg), _g(rmsd), _g(0.0), _g(0.0), n))
        else:
            log(f"WARNING: not enough pixels in bin= {b} n={n} stol= {_g(stol)} median= 0 avg_arej= {_g(avg)}")
    return "".join(lines).encode("ascii"), n, len(lines)


def _g(v):
    from ..io.cformat import c_g
    return c_g(float(v))


def simulate_and_write(s: NonBraggSettings, img_pixels, log=print) -> int:
    import torch  # noqa: F401

    from ..rng.noise import CNoise

    r = resolve(s, log)
    if s.seed is None:
        s.seed = -int(time.time())
    write_stol = img_pixels is not None and s.stolout is not None
    with OutputSet() as outputs:
        npix = r.fpixels * r.spixels
        float_out = outputs.add(s.floatfile, size=4 * npix)
        int_out = outputs.add(s.intfile, size=512 + 2 * npix)
        pgm_out = outputs.add(s.pgmfile, size=npix + 64) if s.write_pgm else None
        noise_out = outputs.add(s.noisefile, size=512 + 2 * npix) if s.calculate_noise else None
        stol_out = outputs.add(s.stolout) if write_stol else None

        log(f"reading {s.stol}")
        table, rows, _ = read_stol(s.stol, s.stol_mult)
        log(f"  {rows + 4} initialized F points (will cubic-spline interpolate between them)")
        _summary(s, r, log)
        image, extra = render(s, r, table, img_pixels is not None)
        log("")
        n_start = None
        if write_stol:
            text, n_start, nlines = stol_profile(s, r, table, extra, img_pixels, log)
            stol_out.write_at(text, 0)
            log(f"wrote {s.stolout} as {nlines} lines of text")
        st = statistics(image, r.roi, n_start)
        log(f"writing {s.floatfile} as {npix} 4-byte floats")
        float_out.write_at(float_bytes(image), 0)
        if st["max_at"] is not None:
            sl, fa = divmod(st["max_at"], r.fpixels)
            sub = r.pixel_size / r.oversample
            mx = sub * (fa * r.oversample + r.oversample - 1) + sub / 2.0
            my = sub * (sl * r.oversample + r.oversample - 1) + sub / 2.0
        else:
            mx = my = 0.0
        log(f"max_I = {_g(st['max_I'])}  at {_g(mx)} {_g(my)}")
        log(f"mean= {_g(st['mean'])} rms= {_g(st['rms'])} rmsd= {_g(st['rmsd'])}")
        scale = auto_int_scale(st["max_I"], s.intfile_scale)
        log(f"intfile_scale = {_g(scale)}")
        header = smv_header(r, s)
        ints = int_image_from_float(image, scale, s.adc, r.roi)
        log(f"writing {s.intfile} as 2-byte integers")
        int_out.write_at(header + ints.astype("<u2").tobytes(), 0)
        pgm_scale = auto_pgm_scale(scale, st["rmsd"], s.pgm_scale)
        log(f"pgm_scale = {_g(pgm_scale)}")
        if pgm_out is not None:
            log(f"writing {s.pgmfile} as 1-byte integers")
            pgm = pgm_header(r.fpixels, r.spixels, pgm_scale) + pgm_pixels(image, pgm_scale, r.roi).tobytes()
            pgm_out.write_at(pgm, 0)
        if noise_out is not None:
            noise = CNoise(s.seed, r.roi, s.adc)
            pixels = noise.band(image)
            log("%.0f photons on noise image (%d overloads)" % (noise.photons, noise.overloads))
            log(f"writing {s.noisefile} as 2-byte integers")
            noise_out.write_at(header + pixels.astype("<u2").tobytes(), 0)
    return 0


def _summary(s, r, log):
    hsteps, hrange, hstep = r.hdiv
    vsteps, vrange, vstep = r.vdiv
    dsteps, dispersion, _ = r.disp
    log(f"  wave={_g(s.lambda0)} meters +/- {_g(dispersion * 100)}% in {dsteps} steps")
    log("  polarization effect disabled" if s.nopolar else f"  Kahn polarization factor: {s.polarization:f}")
    if s.curved:
        log("  curved detector: all pixels same distance from origin")
    if s.point_pixel:
        log("  pixel obliquity effect disabled")
    if s.fmap:
        log("  Fmap mode: plotting structure factor at every pixel")
    log(f"  incident fluence: {_g(r.fluence)} photons/m^2")
    x, y, z = r.sample
    log(f"  sample is {_g(x)} m thick x {_g(y)} m high x {_g(z)} m wide, {_g(r.density / 1e6)} g/cm^3 and "
        f"{_g(s.molecular_weight)} g/mol ({_g(r.molecules)} molecules)")
    log(f"  distance={_g(r.distance)} detsize={_g(r.detsize_x)}x{_g(r.detsize_y)}  pixel={_g(r.pixel_size)} meters "
        f"({r.fpixels}x{r.spixels} pixels)")
    log(f"  Xbeam={_g(r.xbeam)} Ybeam={_g(r.ybeam)}")
    p = [float(v) for v in r.pix0]
    log(f"  detector origin: {_g(p[0])} {_g(p[1])} {_g(p[2])}")
    for name, v in (("DIRECTION_OF_DETECTOR_X-AXIS", r.fdet), ("DIRECTION_OF_DETECTOR_Y-AXIS", r.sdet),
                    ("INCIDENT_BEAM_DIRECTION", r.beam), ("POLARIZATION_PLANE_NORMAL", r.polar_vector)):
        log(f"  {name}= " + " ".join(_g(float(c)) for c in v))
    log("  roi: %d < x < %d && %d < y < %d" % r.roi)
    log(f"  hdivrange={_g(hrange)} hdivstep={_g(hstep)}  radians")
    log(f"  vdivrange={_g(vrange)} vdivstep={_g(vstep)}  radians")
    log(f"  {r.divsteps} divergence steps")
    log(f"  {r.sources} sources")
    log(f"  {r.oversample} pixel oversample steps")
    if s.calculate_noise:
        log("\n  noise image paramters:")
        log(f"  seed: {s.seed}")


def background(argv: list[str], log=None) -> np.ndarray:
    """The float image (S, F) float32, photons/pixel, that ``nonBragg`` with these flags would write.

    Nothing is written (output flags are accepted and ignored). Bad flags raise UsageError or
    InputError, as the command reports them. Example::

        water = background("-stol water -distance 100 -detpixels 1024 -pixel 0.1".split())
    """
    s, img = build_settings(argv)
    validate(s)
    quiet = log or (lambda *a: None)
    r = resolve(s, quiet)
    table, _, _ = read_stol(s.stol, s.stol_mult)
    image, _ = render(s, r, table, False)
    return image


def run(argv: list[str], log=print) -> int:
    """Run the command; returns the exit status."""
    try:
        s, img = build_settings(argv)
        if s.help:
            print(usage_text(PROG))
            return 0
        validate(s)
        log("nonBragg amorphous material diffraction simulator - James Holton and Ken Frankel 3-19-16")
        return simulate_and_write(s, img, log)
    except (UsageError, InputError) as exc:
        return _fail(str(exc))


def main(argv: list[str] | None = None) -> int:
    """Run the command and return its exit status; Ctrl-C, SIGTERM and SIGHUP leave no partial file."""
    from .interrupts import run_interruptible

    return run_interruptible(PROG, run, sys.argv[1:] if argv is None else argv)


def console() -> None:
    """The ``nonBragg`` console script."""
    from .entry import run_program
    run_program(main)
