"""Vector helpers on torch tensors, mirroring the C vector routines.

Every function works on tensors whose last dimension is 3 (x, y, z) and
broadcasts over any leading dimensions, so the same code rotates one vector
or a batch of them and carries gradients.
"""
from __future__ import annotations

import torch


def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inner product over the last axis (C ``dot_product``)."""
    return (u * v).sum(-1)


def cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Cross product u x v over the last axis (C ``cross_product``)."""
    u, v = torch.broadcast_tensors(u, v)
    return torch.linalg.cross(u, v, dim=-1)


def norm(u: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the last axis (C ``magnitude``); zero length has a zero, not infinite, gradient."""
    sq = dot(u, u)
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def unitize(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vector and length (C ``unitize``); a zero vector stays zero.

    The zero case is guarded so that its gradient is finite.
    """
    length = norm(u)
    safe = torch.where(length > 0, length, torch.ones_like(length))
    unit = torch.where((length > 0).unsqueeze(-1), u / safe.unsqueeze(-1), torch.zeros_like(u))
    return unit, length


def rotate_xyz(v: torch.Tensor, phix, phiy, phiz) -> torch.Tensor:
    """Rotate about x, then y, then z by the given angles in radians (C ``rotate``).

    A zero angle is an exact identity, as in C, which skips it.
    """
    phix, phiy, phiz = (torch.as_tensor(p, dtype=v.dtype, device=v.device) for p in (phix, phiy, phiz))
    x, y, z = v.unbind(-1)
    cx, sx = torch.cos(phix), torch.sin(phix)
    y, z = y * cx - z * sx, y * sx + z * cx
    cy, sy = torch.cos(phiy), torch.sin(phiy)
    x, z = x * cy + z * sy, -x * sy + z * cy
    cz, sz = torch.cos(phiz), torch.sin(phiz)
    x, y = x * cz - y * sz, x * sz + y * cz
    return torch.stack(torch.broadcast_tensors(x, y, z), -1)


def rotate_axis(v: torch.Tensor, axis: torch.Tensor, phi) -> torch.Tensor:
    """Rodrigues rotation of v about a unit axis by phi radians (C ``rotate_axis``).

    v' = axis (axis.v)(1 - cos phi) + v cos phi + (axis x v) sin phi
    """
    phi = torch.as_tensor(phi, dtype=v.dtype, device=v.device)
    cosphi, sinphi = torch.cos(phi).unsqueeze(-1), torch.sin(phi).unsqueeze(-1)
    along = dot(axis, v).unsqueeze(-1) * (1.0 - cosphi)
    return axis * along + v * cosphi + cross(axis, v) * sinphi


def rotate_umat(v: torch.Tensor, umat: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 rotation matrix (row-major as C stores it) to v (C ``rotate_umat``)."""
    return torch.einsum("...ij,...j->...i", umat, v)
