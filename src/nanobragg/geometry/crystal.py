"""Unit cell and crystal orientation (C: the "unit cell stuff" set-up).

The cell comes from lengths and angles (``-cell``) or from a MOSFLM matrix
(reciprocal vectors scaled by the wavelength). An optional misset rotation
(x, then y, then z) is applied to the reciprocal vectors, after which the
real-space vectors are rebuilt from cross products exactly as C does, so
that a user-supplied cell keeps its lengths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..units import ANGSTROM
from .vectors import cross, dot, norm, rotate_axis, rotate_umat, rotate_xyz


@dataclass
class CellVectors:
    """Real-space vectors (m) and reciprocal vectors (1/Angstrom), shape (3,) each."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    a_star: torch.Tensor
    b_star: torch.Tensor
    c_star: torch.Tensor
    volume: torch.Tensor  #: cubic Angstrom


def reciprocal_from_cell(a, b, c, alpha, beta, gamma):
    """Default-orientation reciprocal vectors (1/A) from lengths (A) and angles (rad).

    V = 2abc sqrt(|sin(s) sin(s-alpha) sin(s-beta) sin(s-gamma)|), s = (alpha+beta+gamma)/2;
    a* lies along x, b* in the xy plane (C's default orientation).
    """
    s = (alpha + beta + gamma) / 2
    skew = torch.abs(torch.sin(s) * torch.sin(s - alpha) * torch.sin(s - beta) * torch.sin(s - gamma))
    volume = 2.0 * a * b * c * torch.sqrt(skew)
    astar_len = b * c * torch.sin(alpha) / volume
    bstar_len = c * a * torch.sin(beta) / volume
    cstar_len = a * b * torch.sin(gamma) / volume
    cos_as = (torch.cos(beta) * torch.cos(gamma) - torch.cos(alpha)) / (torch.sin(beta) * torch.sin(gamma))
    cos_bs = (torch.cos(gamma) * torch.cos(alpha) - torch.cos(beta)) / (torch.sin(gamma) * torch.sin(alpha))
    cos_gs = (torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma)) / (torch.sin(alpha) * torch.sin(beta))
    sin_gs = c / volume / astar_len / bstar_len
    zero = torch.zeros_like(a)
    a_star = torch.stack([astar_len, zero, zero])
    b_star = torch.stack([bstar_len * cos_gs, bstar_len * sin_gs, zero])
    c_star = torch.stack([cstar_len * cos_bs,
                          cstar_len * (cos_as - cos_bs * cos_gs) / sin_gs,
                          cstar_len * volume / (a * b * c * sin_gs)])
    return a_star, b_star, c_star, volume


def _rescale(v, length):
    return v * (length / norm(v)).unsqueeze(-1)


def cell_vectors(a_star, b_star, c_star, user_cell=None) -> CellVectors:
    """Real and re-derived reciprocal vectors from reciprocal ones (C's cross-product round trip).

    Vectors are (..., 3): a leading batch axis (several orientations) is carried through.

    a = (b* x c*) V, with V = 1/(a* . b* x c*); when the user gave the cell,
    |b* x c*| is forced to a/V_cell so that the lengths are exactly the
    user's (C does the same).
    """
    bxc, cxa, axb = cross(b_star, c_star), cross(c_star, a_star), cross(a_star, b_star)
    v_star = dot(a_star, bxc)
    if user_cell is not None:
        la, lb, lc, volume = user_cell
        bxc, cxa, axb = _rescale(bxc, la / volume), _rescale(cxa, lb / volume), _rescale(axb, lc / volume)
        v_star = 1.0 / volume
    v_star = torch.as_tensor(v_star, dtype=bxc.dtype).expand(bxc.shape[:-1])
    v_cell = 1.0 / v_star
    vc, vs = v_cell.unsqueeze(-1), v_star.unsqueeze(-1)
    a, b, c = bxc * vc, cxa * vc, axb * vc
    a_star, b_star, c_star = cross(b, c) * vs, cross(c, a) * vs, cross(a, b) * vs
    return CellVectors(a * ANGSTROM, b * ANGSTROM, c * ANGSTROM, a_star, b_star, c_star, v_cell)


def orient_cell(cell=None, matrix=None, wavelength=None, misset=None, dtype=torch.float64, device=None):
    """Build the oriented cell.

    cell: (a, b, c, alpha, beta, gamma) in metres/radians (floats or tensors);
    matrix: MOSFLM A matrix rows (3x3), divided by the wavelength in Angstrom;
    misset: (rotx, roty, rotz) radians or None; a (B, 3) tensor gives a batch
    of B orientations (vectors of shape (B, 3)). The matrix, when given, wins
    over the cell's orientation (C reads it after building the cell), but
    the cell lengths, when given, are still enforced.
    """
    def t(x):
        return torch.as_tensor(x, dtype=dtype, device=device)

    user = None
    if cell is not None:
        la, lb, lc = (t(x) / ANGSTROM for x in cell[:3])
        al, be, ga = (t(x) for x in cell[3:])
        a_star, b_star, c_star, volume = reciprocal_from_cell(la, lb, lc, al, be, ga)
        user = (la, lb, lc, volume)
    if matrix is not None:
        m = t(matrix) * (ANGSTROM / t(wavelength))
        a_star, b_star, c_star = m[:, 0], m[:, 1], m[:, 2]
    if misset is not None:
        angles = misset.unbind(-1) if isinstance(misset, torch.Tensor) else misset
        a_star, b_star, c_star = (rotate_xyz(v, *angles) for v in (a_star, b_star, c_star))
    return cell_vectors(a_star, b_star, c_star, user)


def cells_in_crystal(sample_size: float, length_m: float, n_given):
    """Number of cells along one axis: ceil(size/length) when a size is given, at least 1."""
    n = math.ceil(sample_size / length_m) if sample_size > 0 else n_given
    return n if float(n.detach() if isinstance(n, torch.Tensor) else n) > 1.0 else 1.0


def rotated_cells(cell: CellVectors, spindle, phis, umats) -> torch.Tensor:
    """Real-space cells for every spindle step and mosaic domain.

    Returns (phisteps * domains, 3, 3): rows a, b, c in metres, ordered phi-major;
    (B, phisteps * domains, 3, 3) for a batch of B orientations.
    A step at phi == 0 does not rotate: C keeps the previous step's vectors
    there (for phi0 = 0 that is the last step of the previous pass), which
    this reproduces by taking the cyclically previous step.
    """
    abc = torch.stack([cell.a, cell.b, cell.c], -2)  # (..., 3, 3)
    steps = [rotate_axis(abc, spindle, phi) for phi in phis]
    zero = [float(phi.detach() if isinstance(phi, torch.Tensor) else phi) == 0.0 for phi in phis]
    if not all(zero):  # all zero: every step is the (exact) identity rotation, kept for its gradient
        for i in range(len(steps)):
            if zero[i]:
                j = i - 1
                while zero[j % len(steps)]:
                    j -= 1
                steps[i] = steps[j % len(steps)]
    return _domains(torch.stack(steps, -3), umats)


def _domains(per_phi, umats) -> torch.Tensor:
    """(..., F, 3, 3) cells per spindle step -> (..., F * M, 3, 3) with each mosaic domain's rotation."""
    out = rotate_umat(per_phi[..., :, None, :, :], umats[:, None, :, :])  # (..., F, M, 3, 3)
    return out.reshape(*out.shape[:-4], -1, 3, 3)


def first_pass_cells(cell: CellVectors, spindle, phis, umats):
    """The cells of C's very first spindle pass, or None where they equal ``rotated_cells``'.

    C sets its rotated cell ``ap`` to the phi = 0 cell once, before the pixel
    loop, and a step at phi == 0 leaves it as it is: so in the first pass over
    the spindle steps that C makes (each OpenMP thread's first pixel, first
    layer, sub-pixel and source), steps at phi == 0 before any rotated one use
    the true phi = 0 cell, where every later pass has the previous step's.
    Same layout as rotated_cells; None when no step at phi == 0 comes before
    a rotated one (phi0 != 0, or no rotation at all).
    """
    zero = [float(phi.detach() if isinstance(phi, torch.Tensor) else phi) == 0.0 for phi in phis]
    if all(zero) or not zero[0]:
        return None
    abc = torch.stack([cell.a, cell.b, cell.c], -2)
    steps = [rotate_axis(abc, spindle, phi) for phi in phis]
    for i in range(len(steps)):
        if zero[i]:
            j = i - 1
            while j >= 0 and zero[j]:
                j -= 1
            steps[i] = abc if j < 0 else steps[j]
    return _domains(torch.stack(steps, -3), umats)
