"""Compiled sequential loops of nonBragg.c that carry state from one sample to the next."""
import numba


@numba.njit(cache=True)
def nearest_loop(stol, x, start, out):
    """C's running ``nearest`` search over ``stol`` in order; fills ``out``, returns the last index."""
    n = start
    top = x.shape[0]
    for k in range(stol.shape[0]):
        s = stol[k]
        while n < top and s > x[n] and n <= top:
            n += 1
        while s < x[n] and n >= 2:
            n -= 1
        out[k] = n
    return n
