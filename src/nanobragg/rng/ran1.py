"""The C program's ``ran1`` generator state and its uniform deviates, without numba.

The state of one C seed variable plus ran1's statics lives in an int64
array ``ist`` (idum, iy, iv[32], gaussdev's iset) and a float32 array
``fst`` (gaussdev's gset, poidev's oldm, sq, alxm, g). :func:`ran1` is plain
Python so that the set-up's few draws (mosaic domains, random misset) do not
load the JIT compiler; :mod:`nanobragg.rng.cran` compiles the same function
for the noise loop.

In C, ``iy`` and ``iv`` (and the deviates' statics) belong to the process,
not to a seed: ``-misset random`` draws from ``misset_seed``, then the
mosaic domains from ``mosaic_seed`` (at least one domain, three draws, even
without mosaicity), then the noise from ``seed``, all through one shuffle
table. A non-positive seed value (``-seed N`` with N >= 0 stores -N)
rebuilds the table on its first draw, so the usual seeds are independent;
a positive one (``-seed -7`` stores 7) keeps drawing from the table the
earlier draws left. :class:`CStatics` is that process state, shared by the
seed variables (:class:`PyRandom`, ``CRandom``, ``CNoise``) given it.
"""
from __future__ import annotations

import numpy as np

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


def new_state(seed: int, statics: "CStatics | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """``(ist, fst)`` state arrays for C ``long`` seed value ``seed``.

    Without ``statics``, C's initial statics: ``iy = 0``, ``iset = 0`` and
    poidev's ``oldm = -1``; with, copies of the statics that ``statics``
    holds (the shuffle table and the deviates' caches).
    """
    if statics is not None:
        ist, fst = statics.ist.copy(), statics.fst.copy()
        ist[IDUM] = int(seed)
        return ist, fst
    ist = np.zeros(ISTATE_SIZE, dtype=np.int64)
    ist[IDUM] = int(seed)
    fst = np.zeros(FSTATE_SIZE, dtype=np.float32)
    fst[OLDM] = -1.0
    return ist, fst


class CStatics:
    """The statics of C's generators as one process holds them: ran1's ``iy`` and shuffle table
    ``iv``, gaussdev's spare deviate, poidev's cache; shared by every seed variable given it.

    ``ist``/``fst`` are laid out as :func:`new_state`'s; their ``IDUM`` slot
    is scratch (each seed variable keeps its own value).
    """

    def __init__(self):
        self.ist, self.fst = new_state(0)

    def copy(self) -> "CStatics":
        """An independent snapshot of this state."""
        other = CStatics()
        other.ist[:], other.fst[:] = self.ist, self.fst
        return other

    @property
    def table(self) -> np.ndarray:
        """(33,) int64: ``iy`` then ``iv[0..31]`` (all zero before the first draw)."""
        return self.ist[IY:IV + _NTAB].copy()

    def draw(self, seed: int, ist_fn) -> tuple[int, object]:
        """Run ``ist_fn(ist)`` on these statics for the seed variable holding ``seed``;
        returns the variable's new value and ``ist_fn``'s result."""
        self.ist[IDUM] = int(seed)
        result = ist_fn(self.ist)
        return int(self.ist[IDUM]), result


class PyRandom:
    """A C seed variable for set-up draws: ``ran1`` only, in plain Python.

    ``seed``: the C ``long``'s value (``-mosaic_seed N`` stores -N);
    ``statics``: the process state it shares with other seed variables
    (see :class:`CStatics`), a fresh one by default.
    """

    def __init__(self, seed: int, statics: CStatics | None = None):
        self.statics = CStatics() if statics is None else statics
        self.idum = int(seed)

    def ran1(self) -> float:
        """C ``ran1``: next uniform deviate (a float32 value)."""
        self.idum, value = self.statics.draw(self.idum, ran1)
        return float(value)


def ran1(ist):
    """C ``ran1``: uniform float32 deviate in (0, 1), updating the state array ``ist``.

    Plain Python (no compilation needed for the few draws of the set-up);
    :mod:`nanobragg.rng.cran` compiles this same function with numba for the
    noise loop. Schrage's update is written out in place (idum stays positive,
    so Python's floor division matches C's truncating division).
    """
    idum = ist[IDUM]
    if idum <= 0 or ist[IY] == 0:
        # C quirk kept on purpose: a positive seed seen before the table is
        # built collapses to 1.
        idum = 1 if -idum < 1 else -idum
        for j in range(_NTAB + 7, -1, -1):
            k = idum // _IQ
            idum = _IA * (idum - k * _IQ) - _IR * k
            if idum < 0:
                idum += _IM
            if j < _NTAB:
                ist[IV + j] = idum
        ist[IY] = ist[IV]
    k = idum // _IQ
    idum = _IA * (idum - k * _IQ) - _IR * k
    if idum < 0:
        idum += _IM
    ist[IDUM] = idum
    j = ist[IY] // _NDIV
    ist[IY] = ist[IV + j]
    ist[IV + j] = idum
    # C stores AM*iy (double) into a float before comparing with RNMX.
    temp = np.float32(_AM * np.float64(ist[IY]))
    if temp > _RNMX:
        return np.float32(_RNMX)
    return temp
