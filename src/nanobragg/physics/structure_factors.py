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


def _flat_index(idx: torch.Tensor, shape) -> torch.Tensor:
    return (idx[..., 0] * shape[1] + idx[..., 1]) * shape[2] + idx[..., 2]


def nearest_F(h0: torch.Tensor, table: FTable) -> torch.Tensor:
    """F at integer indices h0 (..., 3); default_F outside [lo, hi] (C's nearest-neighbour branch)."""
    if not table.populated:
        return table.default_F.to(h0.device).expand(h0.shape[:-1]).to(table.grid.dtype)
    lo = torch.tensor(table.lo, device=h0.device, dtype=h0.dtype)
    hi = torch.tensor(table.hi, device=h0.device, dtype=h0.dtype)
    inside = ((h0 >= lo) & (h0 <= hi)).all(-1)
    idx = torch.where(inside.unsqueeze(-1), h0 - lo, torch.zeros_like(h0))
    values = table.grid.reshape(-1)[_flat_index(idx, table.grid.shape)]
    return torch.where(inside, values, table.default_F.to(values.dtype))


def _lagrange_weights(x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Cubic Lagrange weights (..., 4) at x for nodes base-1 .. base+2 (C ``polint``)."""
    d = x - base  # offset from the second node
    d0, d1, d2, d3 = d + 1, d, d - 1, d - 2
    return torch.stack([d1 * d2 * d3 / -6.0, d0 * d2 * d3 / 2.0, d0 * d1 * d3 / -2.0, d0 * d1 * d2 / 6.0], -1)


def interpolation_inside(hkl: torch.Tensor, table: FTable) -> torch.Tensor:
    """C's safety test for tricubic interpolation: the 4-point stencil stays in the grid."""
    lo = torch.tensor(table.lo, dtype=hkl.dtype, device=hkl.device)
    rng = torch.tensor([h - l + 1 for h, l in zip(table.hi, table.lo)], dtype=hkl.dtype, device=hkl.device)
    return ((hkl - lo + 3 <= rng) & (hkl - 2 >= lo)).all(-1)


def tricubic_F(hkl: torch.Tensor, table: FTable) -> torch.Tensor:
    """Tricubic (4x4x4 Lagrange) interpolation of F at fractional hkl (..., 3).

    Points whose stencil leaves the grid are evaluated on a clamped stencil;
    callers replace them with the nearest lookup (see ``structure_factor``).
    """
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


def structure_factor(hkl: torch.Tensor, h0: torch.Tensor, table: FTable, interpolate: bool,
                     counted: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
    """F_cell at fractional hkl with nearest indices h0 (both (..., 3)), and whether interpolation stays on.

    C switches interpolation off for good (a shared flag) at the first point,
    in loop order, whose stencil leaves the grid; that point and all later
    ones take the nearest lookup. The leading axes of ``hkl`` must be in C's
    loop order; ``counted`` (same leading shape) marks the points C reaches
    (it skips the lookup after a -dmin cut or a zero lattice factor).
    """
    near = nearest_F(h0, table)
    if not (interpolate and table.populated):
        return near, False
    leaving = ~interpolation_inside(hkl, table)
    if counted is not None:
        leaving = leaving & counted
    flat = leaving.reshape(-1)
    if not bool(flat.any()):
        return tricubic_F(hkl, table), True
    first = int(torch.argmax(flat.to(torch.int8)))
    before = (torch.arange(flat.numel(), device=flat.device) < first).reshape(leaving.shape)
    return torch.where(before, tricubic_F(hkl, table), near), False
