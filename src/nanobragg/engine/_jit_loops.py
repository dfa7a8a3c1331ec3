"""The pixel loop compiled by numba: the no-C++-compiler backend of the engine (see engine.jit).

Blocks of ``BLOCK`` pixels, with C's loops inside (sensor layers,
sub-pixels, sources, orientations) and the pixels of the block innermost,
so that LLVM turns each term's arithmetic into vector code. Everything is
computed in float64, as C does, with numpy's error model (a division by
zero gives inf or nan as in C instead of raising, which also keeps the
loops free of branches). The formulas are those of engine.render (the torch
engine), written per element:

- sub-pixel position pos = pix0 + depth odet + F fdet + S sdet with
  F = sub (fpixel n + subF) + sub/2, S likewise (C's Fdet, Sdet);
- diffracted d = pos/|pos|; omega = pixel^2/R^2 close_distance/R (1/R^2
  for a point pixel) of the first sub-pixel; capture = exp(-t dt mu/p) -
  exp(-(t+1) dt mu/p), p = d . odet, of the last layer's first sub-pixel;
- h = (a/lambda) . d - (a/lambda) . incident (q = (d - incident)/lambda
  never formed), h0 = ceil(h - 1/2), f = h - h0;
- F_latt of the crystal shape from f (sincg^2 as sin(pi r)^2/sin(pi f)^2 with
  r = N f - round(N f), equal to sin(N pi h)^2/sin(pi h)^2), F_cell the
  nearest grid value (default_F outside the grid or without one);
- value = scale (I_bg + sum (F_cell F_latt)^2) capture polar omega, with
  the Kahn polarization of the first (layer, sub-pixel, source) not cut by
  -dmin (1/(2 stol) < dmin, stol = |q|/2).

Functions release the GIL (``nogil``): engine.jit runs one call per thread
on its share of a chunk. Arguments are packed by engine.jit.pack: ``geo``
float64 (pix0, fdet, sdet, odet, then the GEO_* scalars), ``flags`` int64
(the FLAG_* entries) and the per-source and per-(source, orientation) tables.
"""
import math

import numba
import numpy as np

from ..physics.constants import ROUND_SCALE

#: Pixels per block: the innermost loops' length (a multiple of every vector width).
BLOCK = 128

#: geo[12:]: the scalars after the four vectors pix0, fdet, sdet, odet; then N (3), the square shape's N (3).
(GEO_PIXEL, GEO_CLOSE, GEO_THICKSTEP, GEO_MU, GEO_KAHN, GEO_DMIN, GEO_BG, GEO_SCALE, GEO_FUDGE,
 GEO_DEFAULT_F) = range(12, 22)
GEO_N, GEO_N_SQUARE, GEO_SIZE = 22, 25, 28
(FLAG_N, FLAG_T, FLAG_S, FLAG_C, FLAG_B, FLAG_SHAPE, FLAG_POPULATED, FLAG_POINT, FLAG_ABSORB,
 FLAG_NOPOLAR) = range(10)
#: the grid's first indices (3), its last offsets hi - lo (3; -1 without reflections) and its strides (2)
FLAG_LO, FLAG_LAST, FLAG_STRIDES, FLAG_SIZE = 10, 13, 16, 18
#: Crystal shapes (FLAG_SHAPE).
SQUARE, ROUND, GAUSS, TOPHAT = range(4)
#: Taylor coefficients of sin(pi r)/r in r^2, to r^20: the first omitted term is below 3e-16 at |r| = 1/2.
_SINPI = tuple((-1) ** k * math.pi ** (2 * k + 1) / math.factorial(2 * k + 1) for k in range(11))

_JIT = dict(cache=True, nogil=True, error_model="numpy")
#: _terms, called from render_chunk only: compiled on its own (inlining it into render_chunk took longer),
#: without the wrappers that would let Python call it.
_HELPER = dict(_JIT, no_cpython_wrapper=True, no_cfunc_wrapper=True)
#: The other helpers: inlined where they are called (numba's inline="always"), which compiles the loop in
#: less time than a function of its own each (6.7 s against 8.0 s, medians of three first compiles).
_INLINE = dict(inline="always", error_model="numpy")


@numba.njit(**_INLINE)
def _sinpi(r):
    """sin(pi r) for |r| <= 1/2 (Horner in r^2): plain arithmetic, so the pixel loop stays vectorised."""
    r2 = r * r
    p = _SINPI[10]
    p = p * r2 + _SINPI[9]
    p = p * r2 + _SINPI[8]
    p = p * r2 + _SINPI[7]
    p = p * r2 + _SINPI[6]
    p = p * r2 + _SINPI[5]
    p = p * r2 + _SINPI[4]
    p = p * r2 + _SINPI[3]
    p = p * r2 + _SINPI[2]
    p = p * r2 + _SINPI[1]
    p = p * r2 + _SINPI[0]
    return r * p


@numba.njit(**_INLINE)
def _sincg_sq(f, n):
    """(sin(N pi f)^2, sin(pi f)^2) from f in (-1/2, 1/2]; (N^2, 1) at f = 0 (C's sincg limit). Branch free
    (selects), so that the pixel loop vectorises; N = 1 gives exactly 1 (an axis C skips)."""
    x = n * f
    num = _sinpi(x - math.floor(x + 0.5))
    den = _sinpi(f)
    zero = f == 0.0
    return (n * n if zero else num * num), (1.0 if zero else den * den)


@numba.njit(**_INLINE)
def _sinc3_sq(u):
    """C's sinc3 as a function of u = x^2 (physics.lattice.sinc3_sq): its series below u = 0.1."""
    if u < 0.1:
        return 1.0 - u / 10.0 + u * u / 280.0 - u * u * u / 15120.0
    x = math.sqrt(u)
    return 3.0 * (math.sin(x) / x - math.cos(x)) / u


@numba.njit(**_INLINE)
def _other_lattice(f0, f1, f2, shape, geo, recip):
    """F_latt of physics.lattice.lattice_factor for the round, gauss and tophat shapes."""
    na, nb, nc = geo[GEO_N], geo[GEO_N + 1], geo[GEO_N + 2]
    fudge, ncells = geo[GEO_FUDGE], na * nb * nc
    if shape == ROUND:
        hrad_sq = (f0 * na) ** 2 + (f1 * nb) ** 2 + (f2 * nc) ** 2
        return ncells * ROUND_SCALE * _sinc3_sq(math.pi ** 2 * hrad_sq * fudge)
    d0 = f0 * recip[0, 0] + f1 * recip[1, 0] + f2 * recip[2, 0]
    d1 = f0 * recip[0, 1] + f1 * recip[1, 1] + f2 * recip[2, 1]
    d2 = f0 * recip[0, 2] + f1 * recip[1, 2] + f2 * recip[2, 2]
    rad_star_sq = (d0 * d0 + d1 * d1 + d2 * d2) * ncells * ncells
    if shape == GAUSS:
        return ncells * math.exp(-(rad_star_sq / 0.63 * fudge))
    return ncells if rad_star_sq * fudge < 0.3969 else 0.0


@numba.njit(**_HELPER)
def _terms(m, d0, d1, d2, mat, off, geo, flags, recip, grid, s1, s2, uncut, f0, f1, f2, where, acc):
    """acc[j] += (F_cell F_latt)^2 uncut[j] over a block's m pixels for one source and orientation:
    ``mat`` (3, 3) the cell rows over lambda, ``off`` (3,) their products with the incident direction,
    ``grid`` the flat F grid with strides s1, s2 of its last two axes; f0, f1, f2 and where: scratch.

    Three loops, so that the first two vectorise: the fractional offsets h - h0 and the flat grid index
    of (h0, k0, l0) (-1 outside the grid); F_latt^2 (branch free for the square shape, into f0); F looked
    up (a gather, which LLVM's cost model leaves scalar and which would keep the others scalar too).
    """
    m00, m01, m02, m10, m11, m12 = mat[0, 0], mat[0, 1], mat[0, 2], mat[1, 0], mat[1, 1], mat[1, 2]
    m20, m21, m22, o0, o1, o2 = mat[2, 0], mat[2, 1], mat[2, 2], off[0], off[1], off[2]
    lo0, lo1, lo2 = flags[FLAG_LO], flags[FLAG_LO + 1], flags[FLAG_LO + 2]
    e0, e1, e2 = flags[FLAG_LAST], flags[FLAG_LAST + 1], flags[FLAG_LAST + 2]
    for j in range(m):
        h = d0[j] * m00 + d1[j] * m01 + d2[j] * m02 - o0
        k = d0[j] * m10 + d1[j] * m11 + d2[j] * m12 - o1
        l_ = d0[j] * m20 + d1[j] * m21 + d2[j] * m22 - o2
        h0, k0, l0 = math.ceil(h - 0.5), math.ceil(k - 0.5), math.ceil(l_ - 0.5)
        f0[j], f1[j], f2[j] = h - h0, k - k0, l_ - l0
        i0, i1, i2 = np.int64(h0) - lo0, np.int64(k0) - lo1, np.int64(l0) - lo2
        inside = (i0 >= 0) & (i0 <= e0) & (i1 >= 0) & (i1 <= e1) & (i2 >= 0) & (i2 <= e2)
        where[j] = ((i0 * s1 + i1) * s2 + i2) if inside else -1
    shape = flags[FLAG_SHAPE]
    if shape == SQUARE:
        n0, n1, n2 = geo[GEO_N_SQUARE], geo[GEO_N_SQUARE + 1], geo[GEO_N_SQUARE + 2]
        for j in range(m):
            a_num, a_den = _sincg_sq(f0[j], n0)
            b_num, b_den = _sincg_sq(f1[j], n1)
            c_num, c_den = _sincg_sq(f2[j], n2)
            f0[j] = (a_num * b_num * c_num) / (a_den * b_den * c_den) * uncut[j]
    else:
        for j in range(m):
            f_latt = _other_lattice(f0[j], f1[j], f2[j], shape, geo, recip)
            f0[j] = f_latt * f_latt * uncut[j]
    default_F = geo[GEO_DEFAULT_F]
    if flags[FLAG_POPULATED] == 0:  # default_F everywhere: no lookup, a vector loop
        f_sq = default_F * default_F
        for j in range(m):
            acc[j] += f_sq * f0[j]
        return
    for j in range(m):
        f_cell = grid[where[j]] if where[j] >= 0 else default_F
        acc[j] += f_cell * f_cell * f0[j]


@numba.njit(**_INLINE)
def _directions(m, fpix, spix, n, sub, sub_s, sub_f, b, geo, d0, d1, d2, r):
    """Unit vectors d and distances r of sub-pixel (sub_s, sub_f) of a block's pixels in the layer whose
    origin is b (3,) = pix0 + depth odet: pos = b + F fdet + S sdet, F = sub (fpixel n + sub_f) + sub/2."""
    bx, by, bz = b[0], b[1], b[2]
    fx, fy, fz, sx, sy, sz = geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    for j in range(m):
        fd = sub * (fpix[j] * n + sub_f) + sub / 2.0
        sd = sub * (spix[j] * n + sub_s) + sub / 2.0
        x, y, z = bx + fd * fx + sd * sx, by + fd * fy + sd * sy, bz + fd * fz + sd * sz
        r[j] = math.sqrt(x * x + y * y + z * z)
        inv = 1.0 / r[j]  # one division instead of three (a vector division costs many multiplications)
        d0[j], d1[j], d2[j] = x * inv, y * inv, z * inv


@numba.njit(**_INLINE)
def _solid_angle(m, r, geo, point, omega):
    """omega = pixel^2/R^2 close_distance/R, or 1/R^2 for a point pixel."""
    pixel, close = geo[GEO_PIXEL], geo[GEO_CLOSE]
    for j in range(m):
        omega[j] = 1.0 / (r[j] * r[j]) if point else pixel * pixel * close / (r[j] * r[j] * r[j])


@numba.njit(**_INLINE)
def _capture(m, d0, d1, d2, geo, t, capture):
    """Capture fraction of layer t: exp(-t dt mu/p) - exp(-(t+1) dt mu/p), p = d . odet."""
    ox, oy, oz, step_mu = geo[9], geo[10], geo[11], geo[GEO_THICKSTEP] * geo[GEO_MU]
    for j in range(m):
        depth = step_mu / (d0[j] * ox + d1[j] * oy + d2[j] * oz)
        capture[j] = math.exp(-t * depth) - math.exp(-(t + 1) * depth)


@numba.njit(**_INLINE)
def _uncut(m, d0, d1, d2, inc, inv_lam, dmin, uncut):
    """0 where -dmin cuts the source (stol = |q|/2 > 0 and 1/(2 stol) < dmin, q = (d - incident)/lambda), else 1."""
    i0, i1, i2 = inc[0], inc[1], inc[2]
    for j in range(m):
        qx, qy, qz = (d0[j] - i0) * inv_lam, (d1[j] - i1) * inv_lam, (d2[j] - i2) * inv_lam
        stol = 0.5 * math.sqrt(qx * qx + qy * qy + qz * qz)
        uncut[j] = 0.0 if (stol > 0) & (dmin > 0.5 / stol) else 1.0


@numba.njit(**_INLINE)
def _first_polar(m, d0, d1, d2, inc, e_in, b_in, kahn, uncut, found, polar):
    """physics.polarization.kahn_factor for one source (incident, E and B axes (3,)) where no earlier
    (layer, sub-pixel, source) was kept (``found`` 0) and this one is (``uncut`` 1): C's cached factor."""
    i0, i1, i2, e0, e1, e2, b0, b1, b2 = inc[0], inc[1], inc[2], e_in[0], e_in[1], e_in[2], b_in[0], b_in[1], b_in[2]
    for j in range(m):
        cos2t = d0[j] * i0 + d1[j] * i1 + d2[j] * i2
        e = d0[j] * e0 + d1[j] * e1 + d2[j] * e2
        b = d0[j] * b0 + d1[j] * b1 + d2[j] * b2
        c2 = cos2t * cos2t
        den = e * e + b * b
        cos2psi = (e * e - b * b) / den if den > 0 else 1.0
        take = (found[j] == 0) & (uncut[j] > 0)
        polar[j] = 0.5 * (1.0 + c2 - kahn * cos2psi * (1.0 - c2)) if take else polar[j]
        found[j] = 1.0 if take else found[j]


@numba.njit(**_INLINE)
def _tally(j, row, v32, lane_sum, lane_sq, lane_max, lane_row):
    """Lane j of a column's running totals takes the float32 value v32 of chunk row ``row``: sum and sum of
    squares in float64, the largest value and its first row (C's strictly-greater test). Lanes, not one
    running total: each lane is independent of the others, so the store loop stays vector code."""
    w = np.float64(v32)
    lane_sum[j] += w
    lane_sq[j] += w * w
    better = v32 > lane_max[j]
    lane_max[j] = v32 if better else lane_max[j]
    lane_row[j] = row if better else lane_row[j]


@numba.njit(**_INLINE)
def _lane_totals(start, lane_sum, lane_sq, lane_max, lane_row, sums, rows):
    """engine.totals.chunk_totals of one column from its lanes (see _tally) into sums (3,) (sum, sum of
    squares, largest) and rows (1,): the first row of the largest value is the smallest row among the lanes
    holding it (``start`` when no value beats -inf)."""
    add, add_sq, largest, where = 0.0, 0.0, np.float32(-np.inf), start
    for j in range(BLOCK):
        add += lane_sum[j]
        add_sq += lane_sq[j]
        if lane_max[j] > largest or (lane_max[j] == largest and lane_row[j] < where):
            largest, where = lane_max[j], lane_row[j]
    sums[0], sums[1], sums[2], rows[0] = add, add_sq, largest, where


@numba.njit(**_JIT)
def render_chunk(first, offsets, start, end, fpixels, geo, flags, layers, incident, inv_lam, e_in, b_in, scaled,
                 offset, recip, grid, wide, narrow, sums, rows):
    """Values of pixels first + offsets[start:end] into rows start:end of ``wide`` (float64 (P, B)) or, when
    ``wide`` has no rows, of ``narrow`` (float32 (P, B)), with their totals: sums (B, 3) the sum, sum of
    squares (both in float64 of the values rounded to float32, as C sums its float image) and largest
    float32 value of each column, rows (B,) the chunk row of its first occurrence. Returns the sum of the
    pixels' solid angles over their sub-pixels and layers (C's omega_pixel, summed).

    layers (T, 3) the origin pix0 + depth odet of each sensor layer (m); incident, e_in, b_in (S, 3);
    inv_lam (S,) 1/m; scaled (S, B*C, 3, 3) the cell rows (m) over lambda (m), dimensionless; offset
    (S, B*C, 3) their products with the incident direction; recip (3, 3) 1/A; grid the F grid, flat.
    The totals are summed while each block is in cache: no second pass over the chunk.
    """
    n, T, S, BC, B = flags[FLAG_N], flags[FLAG_T], flags[FLAG_S], flags[FLAG_C], flags[FLAG_B]
    C = BC // B
    point, absorb, nopolar = flags[FLAG_POINT] != 0, flags[FLAG_ABSORB] != 0, flags[FLAG_NOPOLAR] != 0
    sub = geo[GEO_PIXEL] / n
    dmin, kahn, bg, per_pixel = geo[GEO_DMIN], geo[GEO_KAHN], geo[GEO_BG], np.float64(T * n * n)
    in_double = wide.shape[0] > 0
    inv_fpixels = 1.0 / fpixels
    fpix, spix = np.empty(BLOCK), np.empty(BLOCK)
    acc = np.empty((B, BLOCK))
    omega0, capture, polar, found = np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK)
    factor = np.empty(BLOCK)  # scale capture polar omega of each pixel of the block
    d0, d1, d2, r = np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK)
    uncut, f0, f1, f2 = np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK)
    where = np.empty(BLOCK, dtype=np.int64)
    lane_omega, lane_sum, lane_sq = np.zeros(BLOCK), np.zeros((B, BLOCK)), np.zeros((B, BLOCK))
    lane_max, lane_row = np.full((B, BLOCK), -np.inf, dtype=np.float32), np.full((B, BLOCK), start)
    s1, s2 = flags[FLAG_STRIDES], flags[FLAG_STRIDES + 1]
    for j0 in range(start, end, BLOCK):
        m = min(BLOCK, end - j0)
        for j in range(m):
            # row = floor((flat + 1/2) / fpixels) by a multiplication, exact: the quotient stays at least
            # 1/(2 fpixels) from a whole number, far more than its rounding (an integer division is not
            # vectorised and costs tens of cycles)
            flat = np.float64(first + offsets[j0 + j])
            row = math.floor((flat + 0.5) * inv_fpixels)
            spix[j], fpix[j] = row, flat - row * fpixels
            capture[j], polar[j], found[j], uncut[j] = 1.0, 1.0 if nopolar else 0.0, 0.0, 1.0
        for b in range(B):
            for j in range(m):
                acc[b, j] = 0.0
        for t in range(T):
            for o in range(n * n):
                _directions(m, fpix, spix, n, sub, o // n, o % n, layers[t], geo, d0, d1, d2, r)
                if t == 0 and o == 0:
                    _solid_angle(m, r, geo, point, omega0)
                if absorb and t == T - 1 and o == 0:
                    _capture(m, d0, d1, d2, geo, t, capture)
                for s in range(S):
                    if dmin > 0:
                        _uncut(m, d0, d1, d2, incident[s], inv_lam[s], dmin, uncut)
                    if (dmin > 0 or (t == 0 and o == 0 and s == 0)) and not nopolar:
                        _first_polar(m, d0, d1, d2, incident[s], e_in[s], b_in[s], kahn, uncut, found, polar)
                    for c in range(BC):
                        _terms(m, d0, d1, d2, scaled[s, c], offset[s, c], geo, flags, recip, grid, s1, s2, uncut,
                               f0, f1, f2, where, acc[c // C])
        for j in range(m):
            lane_omega[j] += omega0[j] * per_pixel
            factor[j] = geo[GEO_SCALE] * capture[j] * polar[j] * omega0[j]
        for b in range(B):
            if in_double:
                for j in range(m):
                    v = (bg + acc[b, j]) * factor[j]
                    wide[j0 + j, b] = v
                    _tally(j, j0 + j, np.float32(v), lane_sum[b], lane_sq[b], lane_max[b], lane_row[b])
            else:
                for j in range(m):
                    v32 = np.float32((bg + acc[b, j]) * factor[j])
                    narrow[j0 + j, b] = v32
                    _tally(j, j0 + j, v32, lane_sum[b], lane_sq[b], lane_max[b], lane_row[b])
    for b in range(B):
        _lane_totals(start, lane_sum[b], lane_sq[b], lane_max[b], lane_row[b], sums[b], rows[b:b + 1])
    return lane_omega.sum()


@numba.njit(**_JIT)
def int_values(values, scale, adc, out, start, end):
    """engine.int_values.c_int_values of float32 values[start:end] into uint16 out[start:end], the same bits:
    test = value scale + adc in double, clipped to [0, 65535], plus 1/2, rounded to float32, truncated;
    NaN gives 0 (both of C's tests fail). Selects, not branches: vector code."""
    for i in range(start, end):
        t = np.float64(values[i]) * scale + adc
        ok = t == t
        t = 0.0 if t < 0.0 else t
        t = 65535.0 if t > 65535.0 else t
        rounded = np.float32(t + 0.5) if ok else np.float32(0.0)
        out[i] = np.uint16(rounded)


def compile_all() -> None:
    """Compile (or load from numba's cache) every loop (:func:`compile_pixels`, :func:`compile_int`)."""
    compile_pixels()
    compile_int()


def compile_pixels() -> None:
    """render_chunk on no pixels, with arguments of the types engine.jit passes (C-contiguous arrays of
    engine.jit.pack's dtypes and dimensions), so that no render compiles anything after it."""
    table = np.zeros((1, 3))
    args = (np.zeros(GEO_SIZE), np.ones(FLAG_SIZE, dtype=np.int64), table, table, np.zeros(1), table, table,
            np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3)), np.zeros((3, 3)), np.zeros(1))
    render_chunk(0, np.zeros(1, dtype=np.int64), 0, 0, 1, *args, np.zeros((1, 1)), np.zeros((0, 1), np.float32),
                 np.zeros((1, 3)), np.zeros(1, dtype=np.int64))


def compile_int() -> None:
    """int_values on no values."""
    int_values(np.zeros(1, dtype=np.float32), 1.0, 0.0, np.zeros(1, dtype=np.uint16), 0, 0)
