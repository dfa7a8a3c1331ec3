"""Structure factors of the unit cell: nearest-grid lookup and tricubic interpolation.

Mirrors the C pixel loop's F_cell: the nearest whole Miller index looked up
in a dense grid (``default_F`` outside it, or everywhere when no reflections
were read), or C's 4x4x4 Lagrange interpolation (``polin3``) around
floor(h), which falls back to the nearest lookup where the 4-point
neighbourhood leaves the grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FTable:
    """A dense structure-factor grid as tensors.

    grid: (h_range+1, k_range+1, l_range+1), C's layout with a padding plane;
    lo, hi: (3,) inclusive index bounds; populated: False when no
    reflections were read (C's ``hkls == 0``), so ``default_F`` is used everywhere.
    """

    grid: torch.Tensor
    lo: tuple
    hi: tuple
    default_F: torch.Tensor
    populated: bool

    @classmethod
    def empty(cls, default_F, dtype=torch.float64, device=None) -> "FTable":
        zero = torch.zeros((1, 1, 1), dtype=dtype, device=device)
        return cls(zero, (0, 0, 0), (0, 0, 0), torch.as_tensor(default_F, dtype=dtype, device=device), False)


def nearest_F(h0: tuple, table: FTable) -> torch.Tensor:
    """F at whole indices h0 (three tensors, float or int); default_F outside [lo, hi] (C's nearest branch)."""
    if not table.populated:
        return table.default_F.expand(h0[0].shape)
    shape = table.grid.shape
    idx = [h.long() - lo for h, lo in zip(h0, table.lo)]
    inside = (idx[0] >= 0) & (idx[1] >= 0) & (idx[2] >= 0)
    for i, (lo, hi) in enumerate(zip(table.lo, table.hi)):
        inside = inside & (idx[i] <= hi - lo)
    flat = (idx[0] * shape[1] + idx[1]) * shape[2] + idx[2]
    values = table.grid.reshape(-1)[torch.where(inside, flat, torch.zeros_like(flat))]
    return torch.where(inside, values, table.default_F.to(values.dtype))


def _lagrange_weights(x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Cubic Lagrange weights (..., 4) at x for nodes base-1 .. base+2 (C ``polint``)."""
    d = x - base  # offset from the second node
    d0, d1, d2, d3 = d + 1, d, d - 1, d - 2
    return torch.stack([d1 * d2 * d3 / -6.0, d0 * d2 * d3 / 2.0, d0 * d1 * d3 / -2.0, d0 * d1 * d2 / 6.0], -1)


def interpolation_inside(hkl: tuple, table: FTable) -> torch.Tensor:
    """C's safety test for tricubic interpolation: the 4-point stencil stays in the grid."""
    inside = None
    for h, lo, hi in zip(hkl, table.lo, table.hi):
        ok = (h - lo + 3 <= hi - lo + 1) & (h - 2 >= lo)
        inside = ok if inside is None else inside & ok
    return inside


def tricubic_F(hkl: tuple, table: FTable) -> torch.Tensor:
    """Tricubic (4x4x4 Lagrange) interpolation of F at fractional (h, k, l) (C ``polin3``).

    Points whose stencil leaves the grid are evaluated on a clamped stencil;
    callers replace them with the nearest lookup (see ``structure_factor``).
    """
    hkl = torch.stack(hkl, -1)
    base = torch.floor(hkl)
    w = _lagrange_weights(hkl, base)  # (..., 3, 4)
    lo = torch.tensor(table.lo, dtype=torch.long, device=hkl.device)
    start = base.long() - 1 - lo
    offs = torch.arange(4, device=hkl.device)
    shape = table.grid.shape
    hi_idx = torch.tensor(shape, device=hkl.device) - 1
    idx = (start.unsqueeze(-1) + offs).clamp(min=0)  # (..., 3, 4)
    idx = torch.minimum(idx, hi_idx.unsqueeze(-1))
    flat = (idx[..., 0, :, None, None] * shape[1] + idx[..., 1, None, :, None]) * shape[2] + idx[..., 2, None, None, :]
    values = table.grid.reshape(-1)[flat]  # (..., 4, 4, 4)
    weights = w[..., 0, :, None, None] * w[..., 1, None, :, None] * w[..., 2, None, None, :]
    return (values * weights).sum((-1, -2, -3))


def structure_factor(hkl: tuple, h0: tuple, table: FTable, interpolate: bool,
                     counted: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
    """F_cell at fractional (h, k, l) with nearest indices h0 (three tensors each), and whether interpolation stays on.

    C switches interpolation off for good (a shared flag) at the first point,
    in loop order, whose stencil leaves the grid; that point and all later
    ones take the nearest lookup. ``order`` of the points is C's loop order
    along the leading axes (K, S, C) for each pixel, pixels last; ``counted``
    marks the points C reaches (it skips the lookup after a -dmin cut or a
    zero lattice factor).
    """
    near = nearest_F(h0, table)
    if not (interpolate and table.populated):
        return near, False
    leaving = ~interpolation_inside(hkl, table)
    if counted is not None:
        leaving = leaving & counted
    if not bool(leaving.any()):
        return tricubic_F(hkl, table), True
    # C's loop order is pixel-major: move the pixel axis (last) to the front before flattening.
    order = leaving.movedim(-1, 0).reshape(-1)
    first = int(torch.argmax(order.to(torch.int8)))
    rank = torch.arange(order.numel(), device=order.device).reshape(leaving.movedim(-1, 0).shape).movedim(0, -1)
    return torch.where(rank < first, tricubic_F(hkl, table), near), False
