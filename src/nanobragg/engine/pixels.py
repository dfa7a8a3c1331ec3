"""Pixel geometry of the engine: sub-pixel positions, diffracted directions, solid angles and
capture fractions, on (K, P) = (layers x sub-pixels, pixels), vectors as separate x, y, z tensors.

Positions and directions are formed in float64 from the inputs' float64 copies
(``RenderInputs.exact``), since they fix the Miller indices; solid angle and
capture are in the run's dtype. Three forms of one computation: eager code
stacks the components (``eager_geometry``: fewer passes); compiled code on a
flat detector keeps positions implicit (``plane_factors``: only R^2 and, later,
h, k, l in float64); the curved detector and the rest go through
``subpixel_positions`` and ``pixel_factors``.
"""
from __future__ import annotations

import torch

from ..geometry.vectors import rotate_axis
from .inputs import RenderInputs


def dot(u, v):
    """Dot product of two component triples."""
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def subpixel_positions(inp: RenderInputs, fpix: torch.Tensor, spix: torch.Tensor):
    """Lab position components (x, y, z), each (T, O, P), of every sub-pixel in every layer, in float64
    (from the inputs' exact geometry; in the inputs' dtype when they have none).

    F = sub*(fpixel*n + subF) + sub/2, S likewise, sub = pixel/n (C's Fdet, Sdet);
    pos = pix0 + F fdet + S sdet + depth odet. O enumerates (subS, subF), subS-major.
    """
    n = inp.oversample
    pix0, fdet, sdet = (inp.exact(k) for k in ("pix0", "fdet", "sdet"))
    dtype = pix0.dtype
    sub = inp.exact("pixel_size") / n
    steps = torch.arange(n, device=fpix.device, dtype=dtype)[:, None]
    fd = sub * (fpix.to(dtype) * n + steps) + sub / 2.0  # (n, P)
    sd = sub * (spix.to(dtype) * n + steps) + sub / 2.0
    fd = fd[None, :, :].expand(n, -1, -1).reshape(1, n * n, -1)  # subF varies fastest
    sd = sd[:, None, :].expand(-1, n, -1).reshape(1, n * n, -1)
    base = _layer_bases(inp).T[:, :, None, None]  # (3, T, 1, 1)
    pos = tuple(base[i] + fd * fdet[i] + sd * sdet[i] for i in range(3))
    if inp.curved:
        pos = _curve(inp, pos)
    return pos


def _layer_bases(inp: RenderInputs) -> torch.Tensor:
    """Each sensor layer's origin, pix0 + depth odet, (T, 3) in float64 (metres)."""
    return inp.exact("pix0")[None, :] + inp.exact("thick_offsets")[:, None] * inp.exact("odet")[None, :]


def _curve(inp: RenderInputs, pos):
    """C's curved detector: every pixel at ``distance`` from the sample.

    C rotates distance*beam about sdet by y/distance, then about fdet by
    z/distance, using the lab y and z components of the flat position.
    """
    distance = inp.exact("distance")
    base = distance * inp.exact("beam")
    step1 = rotate_axis(base, inp.exact("sdet"), pos[1] / distance)
    return rotate_axis(step1, inp.exact("fdet"), pos[2] / distance).unbind(-1)


def eager_geometry(inp: RenderInputs, fpix: torch.Tensor, spix: torch.Tensor):
    """subpixel_positions then pixel_factors, for eager code on a flat detector: the components
    stacked, (K, 3, P), so that each step is one pass over all three (float64 passes are the
    eager engine's cost). Same returns as pixel_factors, the float64 directions stacked.

    F = sub (fpixel n + subF + 1/2) (C's Fdet), S likewise: pos = pix0 + depth odet + F fdet + S sdet.
    """
    n = inp.oversample
    pix0, fdet, sdet = (inp.exact(k) for k in ("pix0", "fdet", "sdet"))
    dtype = pix0.dtype
    sub = inp.exact("pixel_size") / n
    half = torch.arange(n, device=fpix.device, dtype=dtype)[:, None] + 0.5
    mf = fpix.to(dtype) * n + half if n > 1 else fpix.to(dtype) + half  # (n, P), in sub-pixels
    ms = spix.to(dtype) * n + half if n > 1 else spix.to(dtype) + half
    along_f = mf[:, None, :] * (sub * fdet)[None, :, None]  # (n, 3, P)
    along_s = ms[:, None, :] * (sub * sdet)[None, :, None]
    base = _layer_bases(inp)  # (T, 3)
    t = base.shape[0]
    plane = (along_s[:, None] + along_f[None]).reshape(n * n, 3, -1)  # subS-major, subF fastest
    pos = (base[:, None, :, None] + plane[None]).reshape(t * n * n, 3, -1)  # (K, 3, P)
    airpath = torch.sqrt((pos * pos).sum(1))
    exact = pos / airpath[:, None]
    work = inp.pix0.dtype
    diffracted = exact.to(work).unbind(1)
    omega, capture = _omega_capture(inp, diffracted, t, airpath=airpath.to(work))
    return diffracted, omega, capture, exact


def _omega_capture(inp: RenderInputs, diffracted, t: int, airpath=None, inv=None):
    """Solid angles and capture fractions (K, P) from path lengths R (``airpath``) or their
    reciprocals (``inv``: compiled code, products instead of divisions) and diffracted components (K, P).

    omega = pixel^2 / R^2 * close_distance / R (1/R^2 with -point_pixel);
    capture = exp(-t*dt*mu/p) - exp(-(t+1)*dt*mu/p), p = diffracted . odet.
    """
    if inv is not None:
        omega = inv * inv if inp.point_pixel else (inp.pixel_size * inp.pixel_size * inp.close_distance) * inv ** 3
    elif inp.point_pixel:
        omega = 1.0 / (airpath * airpath)
    else:
        omega = inp.pixel_size * inp.pixel_size / (airpath * airpath) * inp.close_distance / airpath
    k, p = omega.shape
    if inp.absorb:
        parallax = dot(tuple(c.reshape(t, k // t, p) for c in diffracted), inp.odet)
        layer = torch.arange(t, device=omega.device, dtype=omega.dtype)[:, None, None]
        depth = inp.thickstep * inp.mu / parallax
        capture = (torch.exp(-layer * depth) - torch.exp(-(layer + 1) * depth)).reshape(k, p)
    else:
        capture = torch.ones_like(omega)
    return omega, capture


def pixel_factors(inp: RenderInputs, pos, fused: bool = False):
    """Diffracted unit vector components, solid angles and capture fractions, each (K, P), in the
    inputs' dtype, and the diffracted components in the positions' (float64) precision
    (see _omega_capture for omega and capture).
    """
    t, o, p = pos[0].shape
    r2 = dot(pos, pos)
    dtype = inp.pix0.dtype
    if fused and r2.dtype == torch.float64 and not (torch.is_grad_enabled() and r2.requires_grad):
        inv = _inverse_root(r2.reshape(t * o, p))
        exact = tuple(c.reshape(t * o, p) * inv for c in pos)
        diffracted = tuple(c.to(dtype) for c in exact)
        return (diffracted, *_omega_capture(inp, diffracted, t, inv=inv.to(dtype)), exact)
    airpath = torch.sqrt(r2)  # eager code: fewer passes
    exact = tuple((c / airpath).reshape(t * o, p) for c in pos)
    diffracted = tuple(c.to(dtype) for c in exact)
    return (diffracted, *_omega_capture(inp, diffracted, t, airpath=airpath.to(dtype).reshape(t * o, p)), exact)


def _inverse_root(r2: torch.Tensor) -> torch.Tensor:
    """1/sqrt(r2) of float64 ``r2`` for compiled code: a float32 reciprocal square root and one
    Newton step, y (3/2 - r2 y^2 / 2) (float64 to 1e-14), cheaper there than a float64 square root
    and divisions."""
    inv = torch.rsqrt(r2.to(torch.float32)).to(r2.dtype)
    return inv * (1.5 - 0.5 * r2 * inv * inv)


class Plane:
    """A flat detector's sub-pixels for compiled code, positions kept implicit (float64):
    pos = base + u fdet + v sdet, base (K, 3) the layer's pix0 + depth odet, u and v (K, P) the
    distances along fdet and sdet (metres), inv (K, P) = 1/|pos|. Indexing takes layer-subpixels."""

    def __init__(self, base, fdet, sdet, u, v, inv):
        self.base, self.fdet, self.sdet, self.u, self.v, self.inv = base, fdet, sdet, u, v, inv

    def __getitem__(self, ks):
        return Plane(self.base[ks], self.fdet, self.sdet, self.u[ks], self.v[ks], self.inv[ks])


def plane_factors(inp: RenderInputs, fpix: torch.Tensor, spix: torch.Tensor):
    """pixel_factors(subpixel_positions(...)) for compiled code on a flat detector, with the float64
    directions kept as a Plane: only R^2 and h, k, l are formed in float64, from the sub-pixel
    coordinates, and the directions in the inputs' dtype.

    u = fpixel (n sub) + sub (subF + 1/2), v likewise (C's Fdet, Sdet, up to rounding: one
    multiply-add per pixel), pos = base + u f + v s:
    R^2 = b.b + u (2 b.f + u f.f + 2 v f.s) + v (2 b.s + v s.s).
    """
    n, t = inp.oversample, inp.thick_offsets.shape[0]
    pix0, fdet, sdet = (inp.exact(k) for k in ("pix0", "fdet", "sdet"))
    size = inp.exact("pixel_size")
    offsets = (torch.arange(n, device=fpix.device, dtype=pix0.dtype)[:, None] + 0.5) * (size / n)  # (n, 1)
    fd = fpix.to(pix0.dtype) * size + offsets  # (n, P)
    sd = spix.to(pix0.dtype) * size + offsets
    k, p = t * n * n, fd.shape[-1]
    u = fd[None, None].expand(t, n, n, p).reshape(k, p)  # layer, subS, subF (fastest)
    v = sd[None, :, None].expand(t, n, n, p).reshape(k, p)
    base = _layer_bases(inp)[:, None].expand(t, n * n, 3).reshape(k, 3)
    b = base[:, :, None].unbind(1)  # three (K, 1): products, not sums over an axis (see render._plane_indices)
    bb, bf, bs = dot(b, b), 2.0 * dot(b, fdet), 2.0 * dot(b, sdet)
    r2 = bb + u * (bf + u * dot(fdet, fdet) + v * (2.0 * dot(fdet, sdet))) + v * (bs + v * dot(sdet, sdet))
    inv = _inverse_root(r2)
    work = inp.pix0.dtype
    u_w, v_w, inv_w = u.to(work), v.to(work), inv.to(work)
    diffracted = tuple((base[:, i, None].to(work) + u_w * fdet[i].to(work) + v_w * sdet[i].to(work)) * inv_w
                       for i in range(3))
    omega, capture = _omega_capture(inp, diffracted, t, inv=inv_w)
    return diffracted, omega, capture, Plane(base, fdet, sdet, u, v, inv)
