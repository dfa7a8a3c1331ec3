"""The C program's ``ran1`` generator state and its uniform deviates, without numba.

The state of one C seed variable plus ran1's statics lives in an int64
array ``ist`` (idum, iy, iv[32], gaussdev's iset) and a float32 array
``fst`` (gaussdev's gset, poidev's oldm, sq, alxm, g). :func:`ran1` is plain
Python so that the set-up's few draws (mosaic domains, random misset) do not
load the JIT compiler; :mod:`nanobragg.rng.cran` compiles the same function
for the noise loop.
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




class PyRandom:
    """A C seed variable for set-up draws: ``ran1`` only, in plain Python."""

    def __init__(self, seed: int):
        self.ist, self.fst = new_state(seed)

    def ran1(self) -> float:
        """C ``ran1``: next uniform deviate (a float32 value)."""
        return float(ran1(self.ist))


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
