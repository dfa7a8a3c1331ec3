"""Bit-exact reproductions of nanoBragg's C random-number routines.

nanoBragg draws its noise, mosaic domains and random missetting from a
Numerical-Recipes style generator (``ran1``) and a few deviates built on it.
To reproduce C output bit for bit we must mirror not only the algorithms but
also C's mixed float/double arithmetic on x86-64 (SSE, no x87 excess
precision, no FMA contraction): every C ``float`` variable is an
``np.float32`` here, and every libm call is made in double precision (glibc's
``exp``/``log``/``tan``/...) before being stored back to float where C does.

Generator state lives in two small arrays so that one set of ``numba.njit``
kernels serves both the scalar :class:`CRandom` API and the per-pixel noise
loop in :mod:`nanobragg.rng.noise`:

``ist`` (int64[ISTATE_SIZE])
    ``[IDUM]`` the caller's ``long *idum``; ``[IY]`` and ``[IV:IV+32]`` ran1's
    static shuffle table; ``[ISET]`` gaussdev's "spare deviate" flag.
``fst`` (float32[FSTATE_SIZE])
    gaussdev's spare deviate and poidev's cached ``oldm, sq, alxm, g``.

In C all of these statics are process globals shared by every seed variable.
Keeping them per generator is equivalent for nanoBragg because each seed
variable starts negative, which makes ran1 rebuild its table on first use,
and poidev's statics are only a cache keyed on the mean.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numba
import numpy as np

__all__ = [
    "CRandom",
    "mosaic_rotation_umat",
    "umat2misset",
    "mosaic_umats",
    "random_misset",
    "uniform3d_dev",
    "new_state",
]

# ran1 constants (Park-Miller minimal standard with Bays-Durham shuffle).
_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NTAB = 32
_NDIV = 1 + (_IM - 1) // _NTAB
_RNMX = 1.0 - 1.2e-7

# Lanczos coefficients used by gammln.
_GAMMLN_COF = (
    76.18009172947146,
    -86.50532032941677,
    24.01409824083091,
    -1.231739572450155,
    0.1208650973866179e-2,
    -0.5395239384953e-5,
)

# Layout of the state arrays (see module docstring).
IDUM = 0
IY = 1
IV = 2
ISET = IV + _NTAB
ISTATE_SIZE = ISET + 1
GSET = 0
OLDM = 1
SQ = 2
ALXM = 3
G = 4
FSTATE_SIZE = 5

_F32_ONE = np.float32(1.0)


def new_state(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh ``(ist, fst)`` state arrays for C ``long`` seed value ``seed``.

    Mirrors the C statics' initial values: ``iy = 0``, ``iset = 0`` and
    poidev's ``oldm = -1``.
    """
    ist = np.zeros(ISTATE_SIZE, dtype=np.int64)
    ist[IDUM] = int(seed)
    fst = np.zeros(FSTATE_SIZE, dtype=np.float32)
    fst[OLDM] = -1.0
    return ist, fst


@numba.njit(cache=True)
def _park_miller(idum):
    """One step of Schrage's multiplicative congruential update in ran1.

    idum is always positive here, so Python's floor division matches C's
    truncating ``long`` division.
    """
    k = idum // _IQ
    idum = _IA * (idum - k * _IQ) - _IR * k
    if idum < 0:
        idum += _IM
    return idum


@numba.njit(cache=True)
def ran1_nb(ist):
    """C ``ran1``: uniform float32 deviate in (0, 1), updating ``ist``."""
    idum = ist[IDUM]
    if idum <= 0 or ist[IY] == 0:
        # C quirk kept on purpose: a positive seed seen before the table is
        # built collapses to 1.
        idum = 1 if -idum < 1 else -idum
        for j in range(_NTAB + 7, -1, -1):
            idum = _park_miller(idum)
            if j < _NTAB:
                ist[IV + j] = idum
        ist[IY] = ist[IV]
    idum = _park_miller(idum)
    ist[IDUM] = idum
    j = ist[IY] // _NDIV
    ist[IY] = ist[IV + j]
    ist[IV + j] = idum
    # C stores AM*iy (double) into a float before comparing with RNMX.
    temp = np.float32(_AM * np.float64(ist[IY]))
    if temp > _RNMX:
        return np.float32(_RNMX)
    return temp


@numba.njit(cache=True)
def gaussdev_nb(ist, fst):
    """C ``gaussdev``: polar Box-Muller normal deviate (float32)."""
    if ist[ISET] != 0:
        ist[ISET] = 0
        return fst[GSET]
    while True:
        v1 = np.float32(2.0 * np.float64(ran1_nb(ist)) - 1.0)
        v2 = np.float32(2.0 * np.float64(ran1_nb(ist)) - 1.0)
        rsq = np.float32(v1 * v1) + np.float32(v2 * v2)
        if not (rsq >= 1.0 or rsq == 0.0):
            break
    r = np.float64(rsq)
    fac = np.float32(math.sqrt(-2.0 * math.log(r) / r))
    fst[GSET] = np.float32(v1 * fac)
    ist[ISET] = 1
    return np.float32(v2 * fac)


@numba.njit(cache=True)
def gammln_nb(xx):
    """C ``gammln``: ln Gamma(xx) for float ``xx``, evaluated in double, returned as float32."""
    x = np.float64(np.float32(xx))
    y = x
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for c in _GAMMLN_COF:
        y += 1.0
        ser += c / y
    return np.float32(-tmp + math.log(2.5066282746310005 * ser / x))


@numba.njit(cache=True)
def _poidev_direct(xm, ist, fst):
    """Small-mean branch of C ``poidev``: multiply uniforms until below exp(-xm)."""
    if xm != fst[OLDM]:
        fst[OLDM] = xm
        fst[G] = np.float32(math.exp(-np.float64(xm)))
    g = fst[G]
    em = np.float32(-1.0)
    t = _F32_ONE
    while True:
        em = np.float32(em + _F32_ONE)
        t = np.float32(t * ran1_nb(ist))
        if not (t > g):
            return em


@numba.njit(cache=True)
def _poidev_reject(xm, ist, fst):
    """Large-mean branch of C ``poidev``: Lorentzian rejection sampling."""
    if xm != fst[OLDM]:
        fst[OLDM] = xm
        fst[SQ] = np.float32(math.sqrt(2.0 * np.float64(xm)))
        fst[ALXM] = np.float32(math.log(np.float64(xm)))
        fst[G] = np.float32(
            np.float32(xm * fst[ALXM]) - gammln_nb(np.float32(np.float64(xm) + 1.0))
        )
    sq = fst[SQ]
    alxm = fst[ALXM]
    g = fst[G]
    while True:
        while True:
            y = np.float32(math.tan(math.pi * np.float64(ran1_nb(ist))))
            em = np.float32(np.float32(sq * y) + xm)
            if not (em < 0.0):
                break
        em = np.float32(np.floor(np.float64(em)))
        # Float parts (y*y, the exponent) round to float32 before C widens them.
        expo = np.float32(
            np.float32(np.float32(em * alxm) - gammln_nb(np.float32(np.float64(em) + 1.0))) - g
        )
        t = np.float32(
            0.9 * (1.0 + np.float64(np.float32(y * y))) * math.exp(np.float64(expo))
        )
        if not (ran1_nb(ist) > t):
            return em


@numba.njit(cache=True)
def poidev_nb(xm, ist, fst):
    """C ``poidev``: Poisson deviate (float32) with float32 mean ``xm``."""
    xm = np.float32(xm)
    if xm > 1.0e6:
        # C widens to double here and only rounds on return.
        x = np.float64(xm)
        return np.float32(x + math.sqrt(x) * np.float64(gaussdev_nb(ist, fst)))
    if xm < 12.0:
        return _poidev_direct(xm, ist, fst)
    return _poidev_reject(xm, ist, fst)


class CRandom:
    """One C seed variable plus the generator statics it drives.

    ``seed`` is the value C keeps in its ``long`` (nanoBragg's ``-seed N``
    stores ``-N``; a non-positive value requests table initialisation, as in
    C's ``ran1``).
    """

    def __init__(self, seed: int):
        self.ist, self.fst = new_state(seed)

    @property
    def idum(self) -> int:
        """Current value of the C ``long`` seed variable."""
        return int(self.ist[IDUM])

    def ran1(self) -> float:
        """C ``ran1``: next uniform deviate (a float32 value)."""
        return float(ran1_nb(self.ist))

    def gaussdev(self) -> float:
        """C ``gaussdev``: next unit normal deviate (a float32 value)."""
        return float(gaussdev_nb(self.ist, self.fst))

    def poidev(self, xm: float) -> float:
        """C ``poidev``: Poisson deviate of mean ``xm`` (rounded to float32 first)."""
        return float(poidev_nb(np.float32(xm), self.ist, self.fst))


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


_LIBM_POWF = _load_powf()


def _powf(x: np.float32, y: np.float32) -> np.float32:
    """C ``powf``; falls back to a double pow rounded to float without libm."""
    if _LIBM_POWF is not None:
        return np.float32(_LIBM_POWF(float(x), float(y)))
    return np.float32(math.pow(float(x), float(y)))


def uniform3d_dev(rng: CRandom) -> tuple[float, float, float, float]:
    """C ``uniform3Ddev``: random unit vector ``(dx, dy, dz)`` and its pre-normalisation length."""
    dr = np.float32(0.0)
    while dr > 1.0 or dr < 1e-2:
        dx = np.float32(2.1 * (rng.ran1() - 0.5))
        dy = np.float32(2.1 * (rng.ran1() - 0.5))
        dz = np.float32(2.1 * (rng.ran1() - 0.5))
        r2 = np.float32(np.float32(dx * dx) + np.float32(dy * dy)) + np.float32(dz * dz)
        dr = np.float32(math.sqrt(float(np.float32(r2))))
    return float(dx / dr), float(dy / dr), float(dz / dr), float(dr)


def mosaic_rotation_umat(mosaicity_rad: float, rng: CRandom) -> np.ndarray:
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


def mosaic_umats(spread_rad: float, domains: int, seed: int) -> np.ndarray:
    """nanoBragg's mosaic-domain setup loop: ``(domains, 3, 3)`` rotation matrices.

    One ``mosaic_rotation_umat`` draw per domain from C seed value ``seed``
    (``-mosaic_seed N`` stores ``-N``; C's default is -12345678); domain 0 is
    then forced to the identity, after its draw has consumed its deviates.
    """
    rng = CRandom(seed)
    out = np.empty((int(domains), 3, 3), dtype=np.float64)
    for i in range(int(domains)):
        out[i] = mosaic_rotation_umat(spread_rad, rng).reshape(3, 3)
    if domains > 0:
        out[0] = np.eye(3)
    return out


def random_misset(seed: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """nanoBragg's ``-misset random``: umat from a 90-"radian" cap, and its angles.

    ``seed`` is C's ``misset_seed`` value.  C passes 90.0 (intended as a full
    sphere) straight through as the cap size, so we do too.
    """
    umat = mosaic_rotation_umat(90.0, CRandom(seed))
    return umat, umat2misset(umat)
