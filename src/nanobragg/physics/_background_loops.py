"""Compiled sequential loops of nonBragg.c that carry state from one sample to the next."""
import numba
import numpy as np


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


@numba.njit(cache=True, fastmath=False)
def _background_row(s, x0, x1, os_, pixel_size, fdet, sdet, pix0, curved, distance, beam, inc, lam, wts, Ein, Bin,
                    tx, tF, tden, kahn, nopolar, point_pixel, close_distance, scale3, steps, n,
                    out, last_F, last_polar, last_omega, last_stol, last_n):
    """One detector row of nonBragg.c's pixel loop (columns x0..x1 inclusive), C's order and arithmetic;
    ``n`` is the running stol-table index (C's ``nearest``); returns it."""
    sub = pixel_size / os_
    top = tx.shape[0]
    nsrc = lam.shape[0]
    pos = np.empty(3)
    for f in range(x0, x1 + 1):
        Ibg = 0.0
        F = 0.0
        polar = 1.0
        omega = 0.0
        stol = 0.0
        for subS in range(os_):
            for subF in range(os_):
                Fdet = sub * (f * os_ + subF) + sub / 2.0
                Sdet = sub * (s * os_ + subS) + sub / 2.0
                for k in range(3):
                    pos[k] = Fdet * fdet[k] + Sdet * sdet[k] + pix0[k]
                if curved:
                    v0 = distance * beam[0]
                    v1 = distance * beam[1]
                    v2 = distance * beam[2]
                    a0, a1, a2 = _rotate_axis(v0, v1, v2, sdet, pos[1] / distance)
                    b0, b1, b2 = _rotate_axis(a0, a1, a2, fdet, pos[2] / distance)
                    pos[0], pos[1], pos[2] = b0, b1, b2
                airpath = np.sqrt(pos[0] * pos[0] + pos[1] * pos[1] + pos[2] * pos[2])
                d0 = pos[0] / airpath
                d1 = pos[1] / airpath
                d2 = pos[2] / airpath
                if point_pixel:
                    omega = 1.0 / airpath / airpath
                else:
                    omega = pixel_size * pixel_size / airpath / airpath * close_distance / airpath
                for src in range(nsrc):
                    i0 = inc[src, 0]
                    i1 = inc[src, 1]
                    i2 = inc[src, 2]
                    lmb = lam[src]
                    q0 = (d0 - i0) / lmb
                    q1 = (d1 - i1) / lmb
                    q2 = (d2 - i2) / lmb
                    stol = 0.5 * np.sqrt(q0 * q0 + q1 * q1 + q2 * q2)
                    while n < top and stol > tx[n]:
                        n += 1
                    while stol < tx[n] and n >= 2:
                        n -= 1
                    xa0 = tx[n - 1]
                    xa1 = tx[n]
                    xa2 = tx[n + 1]
                    xa3 = tx[n + 2]
                    e0 = stol - xa0
                    e1 = stol - xa1
                    e2 = stol - xa2
                    e3 = stol - xa3
                    F = (e1 * e2 * e3 * tF[n - 1] / tden[n, 0] + e0 * e2 * e3 * tF[n] / tden[n, 1]
                         + e0 * e1 * e3 * tF[n + 1] / tden[n, 2] + e0 * e1 * e2 * tF[n + 2] / tden[n, 3])
                    sign = -1.0 if F < 0.0 else 1.0
                    if nopolar:
                        polar = 1.0
                    else:
                        c2 = i0 * d0 + i1 * d1 + i2 * d2
                        c2sq = c2 * c2
                        if kahn != 0.0:
                            eo = d0 * Ein[src, 0] + d1 * Ein[src, 1] + d2 * Ein[src, 2]
                            bo = d0 * Bin[src, 0] + d1 * Bin[src, 1] + d2 * Bin[src, 2]
                            den = eo * eo + bo * bo
                            cos2psi = (eo * eo - bo * bo) / den if den > 0.0 else 1.0
                            polar = 0.5 * (1.0 + c2sq - kahn * cos2psi * (1.0 - c2sq))
                        else:
                            polar = 0.5 * (1.0 + c2sq - 0.0 * (1.0 - c2sq))
                    Ibg += sign * F * F * polar * omega * wts[src]
        out[f - x0] = np.float32(Ibg * scale3[0] * scale3[1] * scale3[2] / steps)
        last_F[f - x0] = F
        last_polar[f - x0] = polar
        last_omega[f - x0] = omega
        last_stol[f - x0] = stol
        last_n[f - x0] = n
    return n


@numba.njit(cache=True)
def _rotate_axis(v0, v1, v2, axis, phi):
    """C ``rotate_axis`` of (v0, v1, v2) about the unit ``axis``."""
    sinphi = np.sin(phi)
    cosphi = np.cos(phi)
    dot = (axis[0] * v0 + axis[1] * v1 + axis[2] * v2) * (1.0 - cosphi)
    t0 = axis[0] * dot + v0 * cosphi + (-axis[2] * v1 + axis[1] * v2) * sinphi
    t1 = axis[1] * dot + v1 * cosphi + (+axis[2] * v0 - axis[0] * v2) * sinphi
    t2 = axis[2] * dot + v2 * cosphi + (-axis[1] * v0 + axis[0] * v1) * sinphi
    return t0, t1, t2


@numba.njit(cache=True, parallel=True)
def background_rows_parallel(y0, y1, x0, x1, os_, pixel_size, fdet, sdet, pix0, curved, distance, beam, inc, lam,
                             wts, Ein, Bin, tx, tF, tden, kahn, nopolar, point_pixel, close_distance, scale3, steps,
                             out, last_F, last_polar, last_omega, last_stol, last_n):
    """Rows y0..y1 in parallel (a strictly increasing table: C's search result does not depend on its start)."""
    for r in numba.prange(y1 - y0 + 1):
        _background_row(y0 + r, x0, x1, os_, pixel_size, fdet, sdet, pix0, curved, distance, beam, inc, lam, wts,
                        Ein, Bin, tx, tF, tden, kahn, nopolar, point_pixel, close_distance, scale3, steps, 1,
                        out[r], last_F[r], last_polar[r], last_omega[r], last_stol[r], last_n[r])


@numba.njit(cache=True)
def background_rows_serial(y0, y1, x0, x1, os_, pixel_size, fdet, sdet, pix0, curved, distance, beam, inc, lam,
                           wts, Ein, Bin, tx, tF, tden, kahn, nopolar, point_pixel, close_distance, scale3, steps,
                           out, last_F, last_polar, last_omega, last_stol, last_n, n):
    """Rows y0..y1 in C's order with one running search index (any table); returns the last index."""
    for r in range(y1 - y0 + 1):
        n = _background_row(y0 + r, x0, x1, os_, pixel_size, fdet, sdet, pix0, curved, distance, beam, inc, lam,
                            wts, Ein, Bin, tx, tF, tden, kahn, nopolar, point_pixel, close_distance, scale3, steps, n,
                            out[r], last_F[r], last_polar[r], last_omega[r], last_stol[r], last_n[r])
    return n
