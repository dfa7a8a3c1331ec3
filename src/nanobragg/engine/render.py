"""The rendering engine: a pure function from :class:`RenderInputs` to pixel values.

For each pixel, the C program loops over sensor layers (T), sub-pixels (O),
sources (S), spindle steps and mosaic domains (C), and accumulates
I = I_bg + sum F_cell^2 F_latt^2. Here those loops are tensor axes, with
the pixel axis P last so that every element-wise operation (eager or
compiled) runs over long contiguous rows: geometry on (K, P) with K = T*O,
scattering vectors on (K, S, P), Miller indices and structure factors on
(K, S, C, P). Vectors are kept as separate x, y, z tensors for the same
reason. Pixels, and when needed layers/sources, are processed in chunks
sized from a memory budget (:mod:`nanobragg.engine.chunks`).

Precision: the C program computes in double. In a float32 run the
quantities that fix the Miller indices (sub-pixel positions, diffracted
directions, scattering vectors and h, k, l themselves) are computed in
float64 from the inputs' float64 copies (``RenderInputs.exact``), and
only the fractional offsets h - h0, each in (-1/2, 1/2], go on in float32:
a float32 h of a few hundred is off by 1e-5, and a crystal of 100 cells
turns that into a visible change of its narrow peaks (and of the image
total, 1% at 0.3 A). Eager code forms h in float64 once per sub-pixel,
orientation and pixel, not per source (``split_indices``): each source adds
a float32 correction to its float32 rest. Solid angle, absorption,
polarization, lattice and structure factors stay in the run's dtype.

The per-pixel factors follow C's "last value" semantics: without the
``-oversample_*`` flags, the solid angle is the first sub-pixel's, the
polarization the first computed (first sub-pixel, first source not cut by
``-dmin``), and the capture fraction the last layer's first sub-pixel's.
With a flag, C multiplies the *running sum* by that factor after every
term; that recurrence is reproduced exactly (see ``_recurrent_sum``).

C's spindle steps at phi == 0 keep the rotated cell of the step before,
which for the first step is the previous pass's last one, except in the
very first pass C makes (see ``geometry.crystal.first_pass_cells``): that
pass, in the pixel, layer-subpixel and source ``RenderInputs.first_pass``
names, is rendered again with ``phi0_cells`` (one pixel, every chunk of
compiled code; only the chunk holding it in eager code) and replaces its
pixel's value. This is the single-threaded C program's image (each of
C's OpenMP threads starts such a pass at its own first pixel).
"""
from __future__ import annotations

import torch

from ..physics.lattice import lattice_factor
from ..physics.polarization import kahn_factor, polarization_axes
from ..physics.structure_factors import structure_factor
from .inputs import RenderInputs
from .pixels import Plane, dot, eager_geometry, pixel_factors, plane_factors, subpixel_positions


def scattering_terms(inp: RenderInputs, d, src: slice, stacked: bool = False):
    """Scattering vector components on (K, S, P) from diffracted components ``d`` (float64: see
    pixel_factors), and the -dmin cut mask (or None); ``stacked``: q as one (K, S, 3, P) tensor
    instead of three (eager code: fewer passes).

    q = (diffracted - incident)/lambda, incident = -source direction;
    a source is cut when dmin > 0 and 1/(2 stol) < dmin, stol = |q|/2.
    """
    incident = -inp.exact("source_dirs")[src]
    inv_lam = 1.0 / inp.exact("source_lambdas")[src]
    if stacked:
        d = d if isinstance(d, torch.Tensor) else torch.stack(d, 1)  # (K, 3, P)
    if inp.dmin <= 0:  # q stays implicit: h = (a/lambda) . d - (a . incident)/lambda
        return _Implicit(d, incident, inv_lam), None
    if stacked:
        q = (d[:, None] - incident[None, :, :, None]) * inv_lam[None, :, None, None]
        comps = q.unbind(2)
    else:
        q = comps = tuple((d[i][:, None, :] - incident[:, i, None]) * inv_lam[:, None] for i in range(3))
    cut = None
    if inp.dmin > 0:
        stol = 0.5 * torch.sqrt(dot(comps, comps))
        cut = (stol > 0) & (inp.dmin > 0.5 / stol)
    return q, cut


class _Implicit:
    """q = (d - incident) / lambda, not formed (no (K, S, P) temporaries: compiled code would keep
    them in memory): diffracted (K, 3, P) or three (K, P), incident (S, 3), 1/lambda (S,)."""

    def __init__(self, d, incident, inv_lam):
        self.d, self.incident, self.inv_lam = d, incident, inv_lam


def miller_indices(q, cells: torch.Tensor):
    """Fractional h, k, l: (a, b, c) . q.

    q as three (K, S, P) components: three (K, S, C, P) tensors, as plain
    products so that compiled code fuses them (from directions held in
    memory where there are several terms: see _held); q as one (K, S, 3, P)
    tensor: one (K, S, 3, C, P) tensor from a single matrix product (eager
    code: one pass instead of fifteen).
    """
    if isinstance(q, _Implicit):  # the cells over 1/lambda times d, less a (S, 3C) offset
        c = cells.shape[0]
        a = cells.transpose(0, 1).reshape(3 * c, 3)
        scaled = a[None] * q.inv_lam[:, None, None]  # (S, 3C, 3)
        offset = (scaled * q.incident[:, None, :]).sum(-1)  # (S, 3C)
        if isinstance(q.d, torch.Tensor):  # one matrix product (eager)
            k, _, p = q.d.shape
            h = torch.matmul(scaled[None], q.d[:, None]) - offset[None, :, :, None]  # (K, S, 3C, P)
            return h.view(k, -1, 3, c, p)
        m, off = scaled.view(-1, 3, c, 3), offset.view(-1, 3, c)  # plain products (compiled code fuses them)
        if isinstance(q.d, Plane):
            return _plane_indices(q.d, m, off, _one_term(q.inv_lam.shape[0], c))
        dx, dy, dz = (x[:, None, None, :] for x in (q.d if _one_term(q.inv_lam.shape[0], c) else _held(q.d)))
        return tuple(dx * m[None, :, i, :, 0, None] + dy * m[None, :, i, :, 1, None] + dz * m[None, :, i, :, 2, None]
                     - off[None, :, i, :, None] for i in range(3))
    if isinstance(q, torch.Tensor):
        k, s, _, p = q.shape
        c = cells.shape[0]
        return torch.matmul(cells.transpose(0, 1).reshape(3 * c, 3), q).view(k, s, 3, c, p)
    qx, qy, qz = (c[:, :, None, :] for c in q)
    return tuple(qx * cells[:, i, 0, None] + qy * cells[:, i, 1, None] + qz * cells[:, i, 2, None]
                 for i in range(3))


def _plane_indices(g: Plane, m, off, one_term: bool):
    """h, k, l, three (K, S, C, P), from a Plane: h = (m . base + u m . f + v m . s) / R - o,
    m = a / lambda (S, 3, C, 3), o = m . incident (S, 3, C); u, v and 1/R held in memory where
    there are several terms (see _held: else each term would redo the pixel's index arithmetic).
    Each index its own expression: compiled code would store one tensor of all three in memory."""
    parts = (g.u, g.v, g.inv) if one_term else _held((g.u, g.v, g.inv))
    return tuple(_plane_dot(g, m[:, i], parts, off[:, i]) for i in range(3))


def _plane_dot(g: Plane, m, parts, off=None):
    """(m . base + u m . f + v m . s) / R - off, (K, *M, P), for coefficient vectors m (*M, 3) and
    ``off`` (*M) or None; ``parts``: g's (u, v, 1/R), or those held in memory (see _held).

    The coefficients sit in one buffer: compiled code keeps a value inline only while it reads few
    buffers (sources-1024 stored h and k of every term in memory, with four)."""
    rows, lead = m.unbind(-1), (1,) * (m.dim() - 1)
    at_base = dot(tuple(r[None] for r in rows), tuple(x.view(-1, *lead) for x in g.base.unbind(-1)))  # (K, *M)
    coefs = [at_base, dot(rows, g.fdet)[None], dot(rows, g.sdet)[None]] + ([] if off is None else [off[None]])
    c = torch.stack(torch.broadcast_tensors(*coefs), -1)[..., None, :]  # (K, *M, 1, 3 or 4)
    u, v, inv = (x.view(x.shape[0], *lead, x.shape[-1]) for x in parts)
    value = (c[..., 0] + u * c[..., 1] + v * c[..., 2]) * inv
    return value if off is None else value - c[..., 3]


def _one_term(sources, cells) -> bool:
    """True when compiled code has one source and one cell baked in (a run of one term per pixel)."""
    return all(isinstance(n, int) and n == 1 for n in (sources, cells))


def _held(parts):
    """``parts`` (tensors of one shape (K, ...)) as computed, through a product with the identity: compiled
    code keeps the result of a matrix product (an extern kernel) in memory, where Inductor would otherwise
    fuse the per-pixel work that made them into the term loop and redo it for every source and cell
    (the float64 directions, sources-1024: engine 0.54 s against 0.75 s without it, on a loaded 2-core
    machine). Cost: one buffer of them all."""
    stacked = torch.stack(parts, 1)
    flat = stacked.reshape(stacked.shape[0], len(parts), -1)
    eye = torch.eye(len(parts), dtype=stacked.dtype, device=stacked.device)
    return torch.matmul(eye, flat).view(stacked.shape).unbind(1)


def intensity_terms(inp: RenderInputs, q, cut, interp_on: bool, fused: bool = False, first=None):
    """F_cell^2 F_latt^2 on (K, S, C, P), F_latt (for C's zero-lattice skip), and the interpolation state.

    h = a . q (a in metres, q in 1/m), h0 = ceil(h - 1/2), as in C: in the
    precision of q and the exact cells (float64), then h - h0 and h in the
    inputs' dtype. ``first``: a (K, S) mask of the (layer-subpixel, source)
    pairs whose terms take the first pass's cells (``inp.phi0_cells``).
    """
    dtype = inp.pix0.dtype
    need_h = inp.ftable.populated and interp_on
    if _split_wanted(q, dtype, fused):
        hkl, h0, frac = split_indices(q, inp.exact_orientations, dtype, need_h)
        if first is not None:
            alt = split_indices(q, inp.first_pass_cells, dtype, need_h)
            pick = lambda a, b: torch.where(first[:, :, None, None], a, b)  # noqa: E731
            hkl = tuple(map(pick, alt[0], hkl)) if need_h else None
            h0, frac = tuple(map(pick, alt[1], h0)), tuple(map(pick, alt[2], frac))
    else:
        hkl, h0, frac = _exact_indices(q, inp, dtype, fused, first)

    def dstar_sq(f):
        r = inp.recip
        d = tuple(f[0] * r[0, i] + f[1] * r[1, i] + f[2] * r[2, i] for i in range(3))
        return dot(d, d)

    f_latt = lattice_factor(inp.shape, frac, inp.N, dstar_sq, inp.fudge, inp.N_axes, compiled=fused)
    if not inp.ftable.populated:
        return (inp.ftable.default_F * f_latt) ** 2, f_latt, False
    counted = None
    if interp_on:
        counted = (f_latt != 0) | inp.water
        counted = counted if cut is None else counted & ~cut[:, :, None, :]
    hkl = tuple(h.to(dtype) for h in hkl) if need_h else h0
    f_cell, interp_on = structure_factor(hkl, h0, inp.ftable, interp_on, counted)
    return (f_cell * f_latt) ** 2, f_latt, interp_on


def _split_wanted(q, dtype, fused: bool) -> bool:
    """True where float32 indices come from split_indices: eager code, and compiled code with several
    sources (which share each pixel's split; compiled code with one source keeps its float64 h, fused
    into one loop: holding the split in memory made cubic-4096 0.82 s against 0.31 s)."""
    if not isinstance(q, _Implicit) or dtype == torch.float64 or q.inv_lam.dtype != torch.float64:
        return False
    sources = q.inv_lam.shape[0]
    return not fused or not isinstance(sources, int) or sources > 1


def _exact_indices(q, inp: RenderInputs, dtype, fused: bool, first=None):
    """(h, h0, frac), three tensors each: h = a . q and h0 = ceil(h - 1/2) in the precision of q
    (float64 runs, -dmin), frac = h - h0 in ``dtype``; ``first`` as in intensity_terms."""
    hkl = miller_indices(q, inp.exact_orientations)
    if first is not None:
        alt = miller_indices(q, inp.first_pass_cells)
        if isinstance(hkl, torch.Tensor):
            hkl = torch.where(first[:, :, None, None, None], alt, hkl)
        else:
            hkl = tuple(torch.where(first[:, :, None, None], a, h) for a, h in zip(alt, hkl))
    if isinstance(hkl, torch.Tensor):  # (K, S, 3, C, P): the three indices at once
        h0 = torch.ceil(hkl - 0.5)
        frac = (hkl - h0).to(dtype).unbind(2)
        return hkl.unbind(2), h0.unbind(2), frac
    if fused and hkl[0].dtype == torch.float64:
        h0, frac = zip(*(_nearest_fused(h, dtype) for h in hkl))
        return hkl, h0, frac
    h0 = tuple(torch.ceil(h - 0.5) for h in hkl)
    return hkl, h0, tuple((h - n).to(dtype) for h, n in zip(hkl, h0))


def split_indices(q: "_Implicit", cells: torch.Tensor, dtype, need_h: bool = True):
    """(h, h0, frac), three (K, S, C, P) tensors each, in ``dtype`` (float32 runs: eager code, and
    compiled code with several sources): C's h = a . q, h0 = ceil(h - 1/2), frac = h - h0, without
    a float64 tensor of every term.

    With u = lambda_0 / lambda_s - 1 and a_0 = a / lambda_0, h_s = b + u_s b - o_s where
    b = a_0 . d (K, 3C, P) is formed once in float64, split into a whole number n and a
    float32 rest r, and o_s = (a / lambda_s) . incident_s (S, 3C) into m_s and rho_s:
    x = r + u_s float32(b) - rho_s (|x| < 1 + |u_s b|), h0 = (n - m_s) + ceil(x - 1/2),
    frac = x - ceil(x - 1/2). The float32 error of frac is about 1.2e-7 (1 + |u_s b|): 6e-8 for
    one wavelength, 7e-7 for a 2% band at h = 300, where a float32 h alone is off by 2e-5.
    Compiled code holds r, n and float32(b) in memory (see _held), each source's terms reading them.
    ``need_h``: also h = h0 + frac (tricubic interpolation), else None.
    """
    c = cells.shape[0]
    a = cells.transpose(0, 1).reshape(3 * c, 3)
    lam0 = q.inv_lam[0]
    ratio = (q.inv_lam / lam0 - 1.0).to(dtype)  # (S,)
    off = ((a[None] * q.inv_lam[:, None, None]) * q.incident[:, None, :]).sum(-1)  # (S, 3C)
    off_whole = torch.round(off)
    rho, m = ((off - off_whole).to(dtype).view(-1, 3, c), off_whole.to(dtype).view(-1, 3, c))
    base = _scaled_directions(q.d, a * lam0)  # (K, 3C, P), float64
    k, p = base.shape[0], base.shape[-1]
    fused = not isinstance(q.d, torch.Tensor)  # compiled code's form (no stacked directions)
    # no gradient through the whole part: r carries all of it
    whole = (base + _ROUNDER) - _ROUNDER if fused else torch.round(base.detach())
    mono = not fused and not bool((ratio != 0).any())  # one wavelength: no u_s b term
    parts = [(base - whole).to(dtype), whole.to(dtype)] + ([] if mono else [base.to(dtype)])
    parts = _held(parts) if fused else parts
    r, n, *b = (t.view(k, 3, c, p).unbind(1) for t in parts)  # each three (K, C, P)
    h0, frac = [], []
    for i in range(3):
        x = r[i][:, None] - rho[None, :, i, :, None]  # (K, S, C, P)
        if not mono:
            x = x + ratio[None, :, None, None] * b[0][i][:, None]
        up = torch.ceil(x - 0.5)
        h0.append((n[i][:, None] - m[None, :, i, :, None]) + up)
        frac.append(x - up)
    hkl = tuple(w + f for w, f in zip(h0, frac)) if need_h else None
    return hkl, tuple(h0), tuple(frac)


def _scaled_directions(d, a0: torch.Tensor) -> torch.Tensor:
    """a0 . d, (K, 3C, P) in float64, for a0 (3C, 3) and diffracted directions d: stacked (K, 3, P)
    (eager code: one matrix product), a Plane (a0 . base + u a0 . f + v a0 . s) / R, or three (K, P)."""
    if isinstance(d, torch.Tensor):
        return torch.matmul(a0, d)
    if isinstance(d, Plane):
        return _plane_dot(d, a0, _held((d.u, d.v, d.inv)))
    return dot(tuple(x[:, None, :] for x in _held(d)), tuple(r[:, None] for r in a0.unbind(1)))


#: 1.5 * 2**52: adding and subtracting it rounds a float64 of magnitude below 2**51 to a whole number.
_ROUNDER = 6755399441055744.0


def _nearest_fused(h: torch.Tensor, dtype):
    """C's h0 = ceil(h - 1/2) and h - h0 (in ``dtype``) for compiled code, where a float64 ceil is
    not vectorised: round to nearest (ties to even) by adding and subtracting 1.5 * 2**52, then
    send ties down as C's ceil does (h - h0 = -1/2 becomes +1/2)."""
    nearest = (h + _ROUNDER) - _ROUNDER
    frac = h - nearest
    tie = frac == -0.5
    return torch.where(tie, nearest - 1.0, nearest), torch.where(tie, 0.5, frac).to(dtype)


def _polar(inp, d, incident):
    """Kahn factor for diffracted components d (each (K, 1, P)) and incident vectors (S, 3): (K, S, P)."""
    e_in, b_in = polarization_axes(incident, inp.polar_vector)
    comps = lambda v: tuple(v[:, i, None] for i in range(3))  # noqa: E731
    return kahn_factor(inp.kahn, dot(d, comps(incident)), dot(d, comps(e_in)), dot(d, comps(b_in)))


def _first_polar(inp, d, cut):
    """C's cached polarization (P,): computed at the first (layer, sub-pixel, source) not cut."""
    if inp.nopolar:
        return torch.ones_like(d[0][0])
    incident = -inp.source_dirs
    if cut is None:
        return _polar(inp, tuple(c[:1, None, :] for c in d), incident[:1])[0, 0]
    pol = _polar(inp, tuple(c[:, None, :] for c in d), incident)  # (K, S, P)
    ok = ~cut.reshape(-1, cut.shape[-1])
    first = torch.argmax(ok.to(torch.int8), dim=0)
    chosen = pol.reshape(-1, pol.shape[-1]).gather(0, first[None, :])[0]
    return torch.where(ok.any(0), chosen, torch.zeros_like(chosen))


def _batch_major(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(K, S, B*C, P) -> (B, K*S*C, P): each orientation's terms in C's loop order."""
    k, s, bc, p = x.shape
    return x.reshape(k, s, batch, bc // batch, p).permute(2, 0, 1, 3, 4).reshape(batch, -1, p)


def _recurrent_sum(carry, term, mult, batch: int):
    """C's running sum with a per-term multiplier: I <- (I + t_n) * m_n, over n in loop order.

    Closed form per orientation and pixel: I = carry * prod(m) + sum_n t_n prod_{j>=n} m_j;
    carry is (B, P), term and mult (K, S, B*C, P).
    """
    t, m = _batch_major(term, batch), _batch_major(mult, batch)
    suffix = torch.flip(torch.cumprod(torch.flip(m, [1]), 1), [1])
    return carry * suffix[:, 0] + (t * suffix).sum(1)


def _block_multiplier(inp, omega, capture, polar, shape):
    """Per-term factor m for the recurrent path, broadcast to (K, S, C, P)."""
    m = torch.ones(shape, dtype=omega.dtype, device=omega.device)
    if inp.oversample_thick:
        m = m * capture[:, None, None, :]
    if inp.oversample_polar:
        m = m * polar[:, :, None, :]
    if inp.oversample_omega:
        m = m * omega[:, None, None, :]
    return m


def _recurrent_block(inp, dks, src, omega, capture, term, f_latt, cut, carry):
    """One block of the -oversample_* recurrence (C multiplies the running sum after each term)."""
    polar = None
    if inp.oversample_polar:
        polar = (torch.ones_like(term[:, :, 0]) if inp.nopolar else
                 _polar(inp, tuple(c[:, None, :] for c in dks), -inp.source_dirs[src]))
    mult = _block_multiplier(inp, omega, capture, polar, term.shape)
    skip = (f_latt == 0) if not inp.water else torch.zeros_like(term, dtype=torch.bool)
    if cut is not None:
        skip = skip | cut[:, :, None, :]
    term = torch.where(skip, torch.zeros_like(term), term)
    mult = torch.where(skip, torch.ones_like(mult), mult)
    return _recurrent_sum(carry, term, mult, inp.batch)


def _accumulate(inp, d, exact, omega, capture, blocks, carry, interp_on, fused, first=None):
    """Sum the intensity terms of all (K, S) blocks into ``carry`` (B, P); returns it, the cuts and interp state.

    ``d``, ``exact``: the diffracted components in the inputs' dtype and in
    float64; ``first``: the K*S index of the pass that takes the first-pass
    cells (a 0-d tensor), or None."""
    cuts = []
    n_src = inp.source_dirs.shape[0]  # not len(): compiled code keeps it a runtime size
    for ks, src in blocks:
        dks = tuple(c[ks] for c in d)
        exact_ks = exact[ks] if isinstance(exact, (torch.Tensor, Plane)) else tuple(c[ks] for c in exact)
        q, cut = scattering_terms(inp, exact_ks, src, stacked=not fused)
        mask = None
        if first is not None:
            k_idx = torch.arange(ks.start, ks.stop, device=first.device)[:, None]
            s_idx = torch.arange(src.start, min(src.stop, n_src), device=first.device)[None, :]
            mask = k_idx * n_src + s_idx == first
        term, f_latt, interp_on = intensity_terms(inp, q, cut, interp_on, fused, mask)
        if cut is not None:
            cuts.append((ks, src, cut))
        if inp.recurrent:
            carry = _recurrent_block(inp, dks, src, omega[ks], capture[ks], term, f_latt, cut, carry)
            continue
        if cut is not None:
            term = term * (~cut)[:, :, None, :]
        k, s, bc, p = term.shape
        carry = carry + term.reshape(k, s, inp.batch, bc // inp.batch, p).sum((0, 1, 3))
    return carry, cuts, interp_on


def render_pixels(inp: RenderInputs, fpix: torch.Tensor, spix: torch.Tensor, blocks, interp_on: bool | None = None,
                  fused: bool = False):
    """Pixel values (P, B), each pixel's summed solid angle (P,), and the interpolation state.

    ``blocks`` lists (layer-subpixel slice, source slice) pairs in C loop
    order, from :func:`nanobragg.engine.chunks.plan`. ``interp_on`` is C's
    shared interpolation flag on entry (default ``inp.interpolate``); its
    value on exit is returned last, for the next chunk.
    value = scale * I * capture_last * polar_first * omega_first, each factor
    omitted when its ``-oversample_*`` flag applied it inside the sum.
    ``fused``: the form for compiled code (see lattice_factor's compiled).
    The pixel of C's first spindle pass, when the chunk holds it, is
    rendered again with that pass's cells (see the module notes).
    """
    start = inp.interpolate if interp_on is None else interp_on
    value, omega_total, interp_on = _render(inp, fpix, spix, blocks, start, fused)
    if inp.first_pass_cells is None:
        return value, omega_total, interp_on
    at = inp.first_pass.to(fpix.device)
    hit = (spix == at[0].to(spix.dtype)) & (fpix == at[1].to(fpix.dtype))
    if not fused and not bool(hit.any()):
        return value, omega_total, interp_on
    one = torch.ones(1, dtype=fpix.dtype, device=fpix.device)
    first, _, _ = _render(inp, one * at[1].to(fpix.dtype), one * at[0].to(spix.dtype), blocks, inp.interpolate,
                          fused, at[2])
    return torch.where(hit[:, None], first, value), omega_total, interp_on


def _render(inp: RenderInputs, fpix, spix, blocks, interp_on: bool, fused: bool, first=None):
    """render_pixels without the first pass; ``first``: the K*S index of the pass that takes
    the first-pass cells in these pixels, or None."""
    if fused and not inp.curved and inp.dmin <= 0 and inp.exact("pix0").dtype == torch.float64:
        d, omega, capture, exact = plane_factors(inp, fpix, spix)
    elif fused or inp.curved:
        d, omega, capture, exact = pixel_factors(inp, subpixel_positions(inp, fpix, spix), fused)
    else:
        d, omega, capture, exact = eager_geometry(inp, fpix, spix)
    k, p = omega.shape
    carry = inp.I_bg.expand(inp.batch, p).clone()
    carry, cuts, interp_on = _accumulate(inp, d, exact, omega, capture, blocks, carry, interp_on, fused, first)
    value = inp.scale * carry
    if not inp.oversample_thick:
        value = value * capture[k - inp.oversample ** 2]
    if not inp.oversample_polar:
        value = value * _first_polar_from(inp, d, cuts)
    if not inp.oversample_omega:
        value = value * omega[0]
    omega_total = omega.sum(0) if inp.oversample_omega else omega[0] * k
    return value.T, omega_total, interp_on


def _first_polar_from(inp, d, cuts):
    """Assemble the full (K, S, P) cut mask when -dmin is active, then pick C's cached polarization."""
    if not cuts:
        return _first_polar(inp, d, None)
    k, p = d[0].shape
    full = torch.zeros(k, inp.source_dirs.shape[0], p, dtype=torch.bool, device=d[0].device)
    for ks, src, cut in cuts:
        full[ks, src] = cut
    return _first_polar(inp, d, full)


def with_first_pass(inp: RenderInputs, roi, mask=None, block: int = 4096) -> RenderInputs:
    """``inp`` with ``first_pass`` set: where C makes its first spindle pass (single-threaded).

    That is the first rendered pixel (inside the inclusive ROI, not masked,
    row-major), its first layer-subpixel and source; with ``-dmin``, the
    first (pixel, layer-subpixel, source) in C's loop order that is not cut
    (C skips the spindle loop of a cut source). Unchanged without
    ``phi0_cells``, or when no pass is ever made.
    """
    if inp.phi0_cells is None:
        return inp
    from dataclasses import replace

    xmin, xmax, ymin, ymax = roi
    cols = torch.arange(max(xmin, 0), min(xmax, inp.fpixels - 1) + 1)
    device = inp.pix0.device
    with torch.no_grad():
        for row in range(max(ymin, 0), min(ymax, inp.spixels - 1) + 1):
            fast = cols if mask is None else cols[torch.as_tensor(mask[row, cols.numpy()] != 0)]
            for start in range(0, len(fast), block):
                f = fast[start:start + block].to(device)
                if inp.dmin <= 0:
                    if len(f):
                        return replace(inp, first_pass=torch.tensor([row, int(f[0]), 0], device=device))
                    continue
                s = torch.full_like(f, row)
                *_, exact = pixel_factors(inp, subpixel_positions(inp, f, s))
                _, cut = scattering_terms(inp, exact, slice(0, len(inp.source_dirs)))
                ok = ~cut.reshape(-1, len(f))  # (K*S, P), C's order
                hit = ok.any(0)
                if bool(hit.any()):
                    p = int(torch.argmax(hit.to(torch.int8)))
                    ks = int(torch.argmax(ok[:, p].to(torch.int8)))
                    return replace(inp, first_pass=torch.tensor([row, int(f[p]), ks], device=device))
    return inp
