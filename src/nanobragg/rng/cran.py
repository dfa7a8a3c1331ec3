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

In C all of these statics are process globals shared by every seed
variable: :class:`nanobragg.rng.ran1.CStatics` holds them, and generators
given the same one share them as C's seed variables do (a positive seed
value keeps drawing from the table earlier draws left; see
:mod:`nanobragg.rng.ran1`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "CRandom",
    "CStatics",
    "mosaic_rotation_umat",
    "umat2misset",
    "mosaic_umats",
    "random_misset",
    "uniform3d_dev",
    "new_state",
]

from .orientation import mosaic_rotation_umat, mosaic_umats, random_misset, umat2misset, uniform3d_dev  # noqa: F401 (re-exported)
from .ran1 import (  # noqa: F401
    _F32_ONE,
    _GAMMLN_COF,
    ALXM,
    FSTATE_SIZE,
    GSET,
    IDUM,
    ISET,
    ISTATE_SIZE,
    IV,
    IY,
    OLDM,
    SQ,
    CStatics,
    G,
    new_state,
    ran1,
)

#: C ``ran1`` compiled (same source as :func:`nanobragg.rng.ran1.ran1`) for use inside compiled loops.
ran1_nb = numba.njit(cache=True)(ran1)


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
    """One C seed variable and the generator statics it draws through.

    ``seed`` is the value C keeps in its ``long`` (nanoBragg's ``-seed N``
    stores ``-N``; a non-positive value requests table initialisation, as in
    C's ``ran1``). ``statics``: the process state shared with other seed
    variables (:class:`nanobragg.rng.ran1.CStatics`), a fresh one by default.
    """

    def __init__(self, seed: int, statics: CStatics | None = None):
        self.statics = CStatics() if statics is None else statics
        self._idum = int(seed)

    @property
    def idum(self) -> int:
        """Current value of the C ``long`` seed variable."""
        return self._idum

    def _draw(self, fn):
        self._idum, value = self.statics.draw(self._idum, fn)
        return float(value)

    def ran1(self) -> float:
        """C ``ran1``: next uniform deviate (a float32 value)."""
        return self._draw(ran1_nb)

    def gaussdev(self) -> float:
        """C ``gaussdev``: next unit normal deviate (a float32 value)."""
        return self._draw(lambda ist: gaussdev_nb(ist, self.statics.fst))

    def poidev(self, xm: float) -> float:
        """C ``poidev``: Poisson deviate of mean ``xm`` (rounded to float32 first)."""
        return self._draw(lambda ist: poidev_nb(np.float32(xm), ist, self.statics.fst))


