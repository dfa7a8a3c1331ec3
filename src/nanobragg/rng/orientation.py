"""Random orientations as the C program draws them: ``mosaic_rotation_umat``, ``umat2misset``.

``rng`` arguments are any object with a ``ran1()`` method (:class:`PyRandom`
or :class:`nanobragg.rng.cran.CRandom`); the set-up uses PyRandom, so no
JIT compiler is loaded for mosaic domains or a random misset.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math

import numpy as np

from .ran1 import CStatics, PyRandom


@functools.lru_cache(maxsize=1)
def _load_powf():
    """glibc's ``powf`` via ctypes, so float rounding matches C exactly."""
    name = ctypes.util.find_library("m")
    try:
        fn = ctypes.CDLL(name).powf
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = (ctypes.c_float, ctypes.c_float)
    fn.restype = ctypes.c_float
    return fn


def _powf(x: np.float32, y: np.float32) -> np.float32:
    """C ``powf``; falls back to a double pow rounded to float without libm."""
    libm_powf = _load_powf()
    if libm_powf is not None:
        return np.float32(libm_powf(float(x), float(y)))
    return np.float32(math.pow(float(x), float(y)))


def uniform3d_dev(rng) -> tuple[float, float, float, float]:
    """C ``uniform3Ddev``: random unit vector ``(dx, dy, dz)`` and its pre-normalisation length."""
    dr = np.float32(0.0)
    while dr > 1.0 or dr < 1e-2:
        dx = np.float32(2.1 * (rng.ran1() - 0.5))
        dy = np.float32(2.1 * (rng.ran1() - 0.5))
        dz = np.float32(2.1 * (rng.ran1() - 0.5))
        r2 = np.float32(np.float32(dx * dx) + np.float32(dy * dy)) + np.float32(dz * dz)
        dr = np.float32(math.sqrt(float(np.float32(r2))))
    return float(dx / dr), float(dy / dr), float(dz / dr), float(dr)


def mosaic_rotation_umat(mosaicity_rad: float, rng) -> np.ndarray:
    """C ``mosaic_rotation_umat``: random rotation within a spherical cap.

    ``mosaicity_rad`` is rounded to float32 as C's ``float`` parameter does.
    Returns the 9 matrix elements, row-major, float64.
    """
    mosaicity = np.float32(mosaicity_rad)
    r1 = 2.0 * rng.ran1() - 1.0
    r2 = 2.0 * rng.ran1() - 1.0
    r3 = 2.0 * rng.ran1() - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    rot = float(np.float32(mosaicity * _powf(np.float32(1.0 - r3 * r3), np.float32(1.0 / 3.0))))
    v1 = xyrad * math.sin(math.pi * r1)
    v2 = xyrad * math.cos(math.pi * r1)
    v3 = r2
    return _axis_angle_umat(v1, v2, v3, rot)


def _axis_angle_umat(v1: float, v2: float, v3: float, rot: float) -> np.ndarray:
    """Rotation by ``rot`` about unit axis (v1, v2, v3), with C's operation order."""
    c = math.cos(rot)
    s = math.sin(rot)
    t2 = 1.0 - c
    t6 = t2 * v1
    t7 = t6 * v2
    t11 = t6 * v3
    t19 = t2 * v2 * v3
    return np.array(
        [
            c + t2 * (v1 * v1), t7 - s * v3, t11 + s * v2,
            t7 + s * v3, c + t2 * (v2 * v2), t19 - s * v1,
            t11 - s * v2, t19 + s * v1, c + t2 * (v3 * v3),
        ],
        dtype=np.float64,
    )


def _unit_rows(rows: list[list[float]]) -> tuple[float, float, float]:
    """Normalise each non-zero row in place; return the original lengths."""
    norms = []
    for r in rows:
        m = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
        if m > 0:
            r[0] /= m
            r[1] /= m
            r[2] /= m
        norms.append(m)
    return norms[0], norms[1], norms[2]


def _cross_unit(a: list[float], b: list[float]) -> list[float]:
    """``a x b`` normalised (left as is when zero), as umat2misset computes it."""
    c = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    m = math.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2])
    if m > 0:
        c = [c[0] / m, c[1] / m, c[2] / m]
    return c


def _fill_empty_rows(x, y, z, mx, my, mz):
    """Replace rows whose input length was zero by the cross product of the others."""
    xcy, ycz, zcx = _cross_unit(x, y), _cross_unit(y, z), _cross_unit(z, x)
    if mx <= 0:
        x[:] = ycz
    if my <= 0:
        y[:] = zcx
    if mz <= 0:
        z[:] = xcy


def umat2misset(umat) -> tuple[float, float, float]:
    """C ``umat2misset``: XYZ missetting angles (radians) of rotation matrix ``umat``.

    Accepts 9 row-major elements or a 3x3 array.  Degenerate (zero) rows are
    rebuilt from the others exactly as C does before the angles are taken.
    """
    u = [float(v) for v in np.asarray(umat, dtype=np.float64).reshape(9)]
    x, y, z = u[0:3], u[3:6], u[6:9]
    mx, my, mz = _unit_rows([x, y, z])
    # A lone non-zero row gets identity partners (C's three special cases).
    if mx >= 0 and my <= 0 and mz <= 0:
        y[:], z[:] = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my >= 0 and mz <= 0:
        x[:], z[:] = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my <= 0 and mz >= 0:
        x[:], y[:] = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    # C runs the substitution twice so a second empty row can use the first fix.
    _fill_empty_rows(x, y, z, mx, my, mz)
    _fill_empty_rows(x, y, z, mx, my, mz)
    _unit_rows([x, y, z])
    if z[0] * z[0] < 1.0:
        rotx = math.atan2(z[1], z[2])
        roty = math.atan2(-z[0], math.sqrt(z[1] * z[1] + z[2] * z[2]))
        rotz = math.atan2(y[0], x[0])
    else:
        rotx = math.atan2(1, 1) * 4
        roty = math.atan2(1, 1) * 2
        rotz = math.atan2(x[1], -y[1])
    return rotx, roty, rotz


def mosaic_umats(spread_rad: float, domains: int, seed: int, statics: CStatics | None = None) -> np.ndarray:
    """nanoBragg's mosaic-domain setup loop: ``(domains, 3, 3)`` rotation matrices.

    One ``mosaic_rotation_umat`` draw per domain from C seed value ``seed``
    (``-mosaic_seed N`` stores ``-N``; C's default is -12345678); domain 0 is
    then forced to the identity, after its draw has consumed its deviates.
    ``statics``: the generators' process state, drawn through and left as C
    leaves it (a fresh one by default).
    """
    rng = PyRandom(seed, statics)
    out = np.empty((int(domains), 3, 3), dtype=np.float64)
    for i in range(int(domains)):
        out[i] = mosaic_rotation_umat(spread_rad, rng).reshape(3, 3)
    if domains > 0:
        out[0] = np.eye(3)
    return out


def random_misset(seed: int, statics: CStatics | None = None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """nanoBragg's ``-misset random``: umat from a 90-"radian" cap, and its angles.

    ``seed`` is C's ``misset_seed`` value.  C passes 90.0 (intended as a full
    sphere) straight through as the cap size, so we do too. ``statics``: as
    for mosaic_umats.
    """
    umat = mosaic_rotation_umat(90.0, PyRandom(seed, statics))
    return umat, umat2misset(umat)


def mosaic_draws(statics: CStatics, mosaic_seed: int, domains: int, spread_rad: float = 0.0) -> np.ndarray:
    """C's mosaic-domain loop drawn through ``statics``: ``(domains, 3, 3)`` rotations.

    C draws every domain, the first (then forced to the identity) included,
    even with one domain and no mosaicity; a single domain's three deviates
    are drawn here without building its matrix (nor loading libm's powf).
    """
    if domains == 1:
        rng = PyRandom(mosaic_seed, statics)
        for _ in range(3):
            rng.ran1()
        return np.eye(3)[None]
    return mosaic_umats(spread_rad, domains, mosaic_seed, statics)
