"""Amorphous (non-Bragg) scattering from a table of F against sin(theta)/lambda: nonBragg.c's physics.

The C program ``nonBragg`` renders water, air, ice or any amorphous sample
from a ``.stol`` table (two columns: stol = sin(theta)/lambda in 1/Angstrom,
F = structure factor of one molecule in electrons). For every sub-pixel and
source it forms the scattering vector s = (d - i)/lambda, looks F up at
stol = |s|/2 by 4-point Lagrange ("cubic spline") interpolation, and sums

    I = sum over sub-pixels and sources of  sign(F) F^2 * P * Omega * w_source

then scales the pixel to photons:

    photons = I * r_e^2 * fluence * molecules / steps

with P the Kahn polarization factor, Omega = pixel^2 / R^2 * close_distance / R
the solid angle (1/R^2 with ``point_pixel``), w the source weight, steps =
sources * oversample^2 and molecules = volume * density * N_A / MW.

Everything here is a pure function of tensors (any dtype/device; gradients
flow through geometry, wavelengths, weights, fluence and the F column of the
table). Units are SI: metres, 1/m for stol (a table in 1/Angstrom is
multiplied by 1e10 by :func:`stol_table`), photons/m^2 for the fluence.
"""
from __future__ import annotations

import numpy as np
import torch

from ..geometry.vectors import rotate_axis
from .polarization import polarization_factor

__all__ = [
    "AVOGADRO", "R_E_SQR", "STOL_PER_ANGSTROM", "StolTable", "stol_table", "table_is_increasing",
    "nearest_sequential", "nearest_sorted", "polint4", "interpolate_F", "sample_molecules",
    "detector_positions", "background_samples", "background_image", "render_background",
]

#: C's constants.
AVOGADRO = 6.02214179e23
R_E_SQR = 7.94079248018965e-30  #: Thomson cross section r_e^2 (m^2)
#: ``-stol`` tables are in 1/Angstrom; C multiplies them by 1e10 (``-4stol``: 1e10/4, ``-Q``: 1e10/pi/4).
STOL_PER_ANGSTROM = 1.0e10


class StolTable:
    """A padded stol table as C builds it: ``x`` (T,) in 1/m, ``F`` (T,), both float64 tensors.

    Two points are added at each end (x = -1e99, -1e98 with the F of the
    lowest-angle row; x = 1e98, 1e99 with the F of the highest), so the
    4-point interpolation never leaves the table. ``increasing`` records
    whether the rows' x values strictly increase (then the C search equals a
    binary search; otherwise the C search's order-dependent result is followed).
    """

    def __init__(self, x: torch.Tensor, F: torch.Tensor):
        self.x, self.F = x, F
        self.increasing = table_is_increasing(x)
        xs = x.detach().cpu().double()
        n = len(xs)
        # denominators of the four Lagrange terms of the interval starting at node i-1, for every i
        idx = torch.arange(1, n - 2)
        a = [xs[idx - 1 + k] for k in range(4)]
        dens = []
        for k in range(4):
            others = [a[m] for m in range(4) if m != k]
            dens.append((a[k] - others[0]) * (a[k] - others[1]) * (a[k] - others[2]))
        self._den = torch.zeros(n, 4, dtype=torch.float64)
        self._den[1:n - 2] = torch.stack(dens, -1)

    def __len__(self):
        return int(self.x.shape[0])

    def nodes(self, idx: torch.Tensor, device=None):
        """x (..., 4), F (..., 4) and Lagrange denominators (..., 4) of the intervals ``idx``."""
        n = len(self)
        window = idx.unsqueeze(-1) - 1 + torch.arange(4, device=idx.device)
        x = self.x.to(device=idx.device)[window.clamp(0, n - 1)]
        F = self.F.to(device=idx.device)[window.clamp(0, n - 1)]
        den = self._den.to(device=idx.device)[idx]
        return x, F, den


def stol_table(stol, F, stol_mult: float = STOL_PER_ANGSTROM) -> StolTable:
    """C's table from the file's columns: stol (1/Angstrom) times ``stol_mult``, padded at both ends.

    ``stol``, ``F``: sequences or 1-d tensors of equal length (F may carry a
    gradient). A NaN F (a missing value) becomes 0, as in C; the end points take
    the F of the first and last rows whose F is not missing (C's F_lowangle,
    F_highangle).
    """
    F = torch.as_tensor(F, dtype=torch.float64)
    xs = torch.as_tensor(np.asarray(stol, dtype=np.float64) if not isinstance(stol, torch.Tensor) else stol,
                         dtype=torch.float64) * stol_mult
    if xs.ndim != 1 or xs.shape != F.shape or len(xs) == 0:
        raise ValueError("stol and F must be 1-d and of the same, non-zero length")
    valid = ~torch.isnan(F.detach())
    if bool(valid.any()):
        where = torch.nonzero(valid).flatten()
        low, high = F[where[0]], F[where[-1]]
    else:
        low = high = torch.tensor(float("nan"), dtype=torch.float64)
    F = torch.where(valid, F, torch.zeros_like(F))
    pad = torch.tensor([-1e99, -1e98], dtype=torch.float64)
    x = torch.cat([pad, xs, -pad.flip(0)])
    F = torch.cat([low.reshape(1), low.reshape(1), F, high.reshape(1), high.reshape(1)])
    return StolTable(x, F)


def table_is_increasing(x: torch.Tensor) -> bool:
    """Whether the x values strictly increase (no NaN)."""
    xs = x.detach()
    return bool(torch.all(xs[1:] > xs[:-1]))


def nearest_sorted(stol: torch.Tensor, table: StolTable) -> torch.Tensor:
    """Interval index for each stol (any shape) in a strictly increasing table: C's search result.

    The largest i with x[i] <= stol, clamped to [1, T-3] (C's ``nearest``).
    """
    x = table.x.to(device=stol.device, dtype=torch.float64)
    idx = torch.searchsorted(x, stol.detach().to(torch.float64).contiguous(), right=True) - 1
    return idx.clamp(1, len(table) - 3)


def nearest_sequential(stol: np.ndarray, x: np.ndarray, start: int = 0) -> tuple[np.ndarray, int]:
    """C's running search for every stol in C's order (flat float64 array): ``(indices, last index)``.

    C keeps ``nearest`` from one sub-pixel and source to the next:
    ``while(stol > x[n] && n <= T) ++n; while(stol < x[n] && n >= 2) --n;``.
    For a table whose x values do not increase the result depends on where
    the search starts, so it is run in order (``start``: the previous last index).
    """
    from ._background_loops import nearest_loop
    out = np.empty(stol.shape, dtype=np.int64)
    last = nearest_loop(np.ascontiguousarray(stol, dtype=np.float64), np.ascontiguousarray(x, dtype=np.float64),
                        int(start), out)
    return out, int(last)


def polint4(stol: torch.Tensor, x: torch.Tensor, F: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """C ``polint``: the Lagrange polynomial through 4 nodes x (..., 4), F (..., 4) at ``stol`` (...).

    Written in C's order of operations; ``den`` holds each term's product
    of node differences (see StolTable.nodes).
    """
    s = stol.unsqueeze(-1) - x  # (..., 4): x - xa[k]
    d0, d1, d2, d3 = s.unbind(-1)
    t0 = d1 * d2 * d3 * F[..., 0] / den[..., 0]
    t1 = d0 * d2 * d3 * F[..., 1] / den[..., 1]
    t2 = d0 * d1 * d3 * F[..., 2] / den[..., 2]
    t3 = d0 * d1 * d2 * F[..., 3] / den[..., 3]
    return t0 + t1 + t2 + t3


def interpolate_F(stol: torch.Tensor, table: StolTable, nearest: torch.Tensor | None = None) -> torch.Tensor:
    """F at ``stol`` (1/m, any shape) from ``table``: C's search and 4-point interpolation, in float64.

    ``nearest`` (same shape, int64) gives the intervals when they are known
    (from :func:`nearest_sequential`); otherwise the table must increase and
    a binary search is used.
    """
    if nearest is None:
        if not table.increasing:
            raise ValueError("stol table does not increase: give the C search's indices (nearest_sequential)")
        nearest = nearest_sorted(stol, table)
    x, F, den = table.nodes(nearest.to(stol.device))
    return polint4(stol.to(torch.float64), x, F.to(torch.float64) if not F.requires_grad else F, den)


def sample_molecules(sample_x, sample_y, sample_z, density, molecular_weight, molecules=0.0, beamsize=1e-4):
    """(molecules, density, (x, y, z)) of the illuminated sample, as nonBragg.c derives them.

    Sizes in m (x along the beam: the thickness), density in g/m^3, MW in g/mol.
    A beam of ``beamsize`` m (>= 0) clips the height y and width z to it.
    ``molecules`` != 0 overrides the density: density = molecules / volume / N_A * MW.
    """
    if beamsize >= 0:
        sample_y = min(sample_y, beamsize)
        sample_z = min(sample_z, beamsize)
    volume = sample_x * sample_y * sample_z
    if molecules != 0:
        density = molecules / volume / AVOGADRO * molecular_weight
    molecules = volume * density * AVOGADRO / molecular_weight
    return molecules, density, (sample_x, sample_y, sample_z)


def detector_positions(rows, cols, oversample: int, pixel_size, fdet, sdet, pix0,
                       curved: bool = False, distance=None, beam=None) -> torch.Tensor:
    """Sub-pixel centres (R, C, oversample, oversample, 3) in m, C order (slow, fast, subS, subF).

    ``rows``, ``cols``: 1-d tensors of slow and fast pixel indices. Position =
    Fdet*fdet + Sdet*sdet + pix0 with Fdet = sub*(f*oversample + subF) + sub/2,
    sub = pixel_size/oversample (Sdet likewise). ``curved``: C's curved detector
    (every pixel at ``distance`` along ``beam``, rotated about sdet and fdet by the
    flat position's y/distance and z/distance).
    """
    dtype, device = fdet.dtype, fdet.device
    sub = pixel_size / oversample
    k = torch.arange(oversample, dtype=dtype, device=device)
    Fd = sub * (cols.to(dtype)[:, None] * oversample + k[None, :]) + sub / 2.0  # (C, subF)
    Sd = sub * (rows.to(dtype)[:, None] * oversample + k[None, :]) + sub / 2.0  # (R, subS)
    Fd = Fd[None, :, None, :, None]
    Sd = Sd[:, None, :, None, None]
    pos = Fd * fdet + Sd * sdet + pix0
    if curved:
        start = (distance * beam).expand(pos.shape)
        turned = rotate_axis(start, sdet.expand(pos.shape), pos[..., 1] / distance)
        pos = rotate_axis(turned, fdet.expand(pos.shape), pos[..., 2] / distance)
    return pos


def background_samples(pos: torch.Tensor, incident: torch.Tensor, lambdas: torch.Tensor, table: StolTable,
                       nearest: torch.Tensor | None = None):
    """stol (..., S) in 1/m and the interval indices C's search picks for sub-pixel positions ``pos`` (..., 3).

    ``incident``: unit incident directions (S, 3) (from the source towards the sample),
    ``lambdas`` (S,) in m. Returns ``(stol, diffracted (..., 3), airpath (...))``.
    """
    airpath = torch.sqrt(pos[..., 0] * pos[..., 0] + pos[..., 1] * pos[..., 1] + pos[..., 2] * pos[..., 2])
    diffracted = pos / airpath.unsqueeze(-1)
    scat = (diffracted.unsqueeze(-2) - incident) / lambdas.unsqueeze(-1)  # (..., S, 3)
    stol = 0.5 * torch.sqrt(scat[..., 0] * scat[..., 0] + scat[..., 1] * scat[..., 1] + scat[..., 2] * scat[..., 2])
    return stol, diffracted, airpath


def background_image(pos: torch.Tensor, incident: torch.Tensor, lambdas: torch.Tensor, weights: torch.Tensor,
                     table: StolTable, *, pixel_size, close_distance, kahn=0.0, polar_vector=None,
                     nopolar: bool = False, point_pixel: bool = False, fluence=1.2593201528622709e29,
                     molecules=1.0, nearest: torch.Tensor | None = None, return_F: bool = False):
    """Photons per pixel (R, F) of amorphous scattering at sub-pixel positions ``pos`` (R, F, n, n, 3).

    C's pixel loop (nonBragg.c): for each sub-pixel, R = |pos|, d = pos/R,
    Omega = pixel^2/R/R*close_distance/R (1/R^2 when ``point_pixel``); for each source
    (unit ``incident`` (S, 3), ``lambdas`` (S,) m, ``weights`` (S,)) stol = |d - i|/(2 lambda),
    F from ``table``, P the Kahn factor (``kahn``, ``polar_vector``; 1 when ``nopolar``);
    I += sign(F) F^2 P Omega w. photons = I r_e^2 fluence molecules / steps,
    steps = S n^2. ``nearest`` (R, F, n, n, S): C's search indices (for tables that
    do not increase). Returns the image in ``pos``'s dtype, and with ``return_F`` also
    the F of each pixel's last sample (C's ``-Fmap`` image) and the last sample's polarization
    and solid angle (used by ``-img``).
    """
    stol, diffracted, airpath = background_samples(pos, incident, lambdas, table)
    F = interpolate_F(stol, table, nearest).to(pos.dtype)
    if point_pixel:
        omega = 1.0 / airpath / airpath
    else:
        omega = pixel_size * pixel_size / airpath / airpath * close_distance / airpath
    if nopolar:
        polar = torch.ones_like(stol)
    else:
        polar = polarization_factor(kahn, incident, diffracted.unsqueeze(-2), polar_vector)
    sign = torch.where(F < 0, -torch.ones_like(F), torch.ones_like(F))
    terms = sign * F * F * polar * omega.unsqueeze(-1) * weights
    steps = terms.shape[-1] * terms.shape[-2] * terms.shape[-3]
    intensity = terms.flatten(-3).sum(-1)
    image = intensity * R_E_SQR * fluence * molecules / steps
    if return_F:
        return image, F[..., -1, -1, -1], polar[..., -1, -1, -1], omega[..., -1, -1], stol[..., -1, -1, -1]
    return image



def render_background(det, incident: torch.Tensor, lambdas: torch.Tensor, table: StolTable, *,
                      weights: torch.Tensor | None = None, oversample: int = 1, kahn=0.0, polar_vector=None,
                      nopolar: bool = False, fluence=1.2593201528622709e29, molecules=1.0,
                      max_samples: int = 1 << 18) -> torch.Tensor:
    """The amorphous background (S, F) on a resolved detector, in bands of rows (differentiable).

    ``det``: a :class:`nanobragg.geometry.detector.DetectorGeometry` (or anything with its fields
    ``fpixels, spixels, pixel_size, fdet, sdet, pix0, close_distance, distance, beam, curved,
    point_pixel``), so the API can add water to a nanoBragg image on the same detector;
    ``incident`` (S, 3) unit vectors from source to sample, ``lambdas`` (S,) m, ``weights`` (S,)
    (default 1), ``fluence`` photons/m^2, ``molecules`` from :func:`sample_molecules`. The dtype and
    device are those of ``det.fdet``. For a table whose stol values do not increase the C search
    is run in C's order on the CPU. Returns photons per pixel.
    """
    fdet = det.fdet
    dtype, device = fdet.dtype, fdet.device
    incident = incident.to(dtype=dtype, device=device)
    lambdas = lambdas.to(dtype=dtype, device=device)
    weights = (torch.ones_like(lambdas) if weights is None else weights.to(dtype=dtype, device=device))
    if polar_vector is None:
        polar_vector = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=device)
    cols = torch.arange(int(det.fpixels), device=device)
    per_row = max(1, int(det.fpixels) * oversample * oversample * len(lambdas))
    band = max(1, max_samples // per_row)
    rows_out, last = [], 0
    for start in range(0, int(det.spixels), band):
        rows = torch.arange(start, min(start + band, int(det.spixels)), device=device)
        pos = detector_positions(rows, cols, oversample, det.pixel_size, fdet, det.sdet, det.pix0,
                                 bool(det.curved), det.distance, det.beam)
        nearest = None
        if not table.increasing:
            stol, _, _ = background_samples(pos, incident, lambdas, table)
            found, last = nearest_sequential(stol.detach().double().cpu().numpy().reshape(-1), table.x.numpy(), last)
            nearest = torch.from_numpy(found.reshape(stol.shape)).to(device)
        rows_out.append(background_image(pos, incident, lambdas, weights, table, pixel_size=det.pixel_size,
                                         close_distance=det.close_distance, kahn=kahn, polar_vector=polar_vector,
                                         nopolar=nopolar, point_pixel=bool(det.point_pixel), fluence=fluence,
                                         molecules=molecules, nearest=nearest))
    return torch.cat(rows_out, 0)
