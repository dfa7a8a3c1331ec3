"""Polarization factor (C ``polarization_factor``, Kahn et al. 1982).

P = 1/2 (1 + cos^2 2theta - K cos(2 psi) sin^2 2theta), where psi is the
azimuth of the diffracted ray about the incident beam, measured from the
E-vector closest to ``polar_vector``.
"""
from __future__ import annotations

import torch

from ..geometry.vectors import cross, dot, unitize


def polarization_factor(kahn, incident: torch.Tensor, diffracted: torch.Tensor, polar_vector: torch.Tensor) -> torch.Tensor:
    """Kahn polarization factor for unit vectors ``incident`` and ``diffracted`` (..., 3).

    cos(2 psi) is taken as (E^2 - B^2)/(E^2 + B^2) from the components of the
    diffracted ray on the E and B axes, which equals C's cos(2 atan2(B, E))
    and has a finite gradient; along the beam (E = B = 0) it is 1, as in C.
    """
    cos2t = dot(incident, diffracted)
    cos2t_sq = cos2t * cos2t
    sin2t_sq = 1.0 - cos2t_sq
    b_in = unitize(cross(polar_vector, incident))[0]
    e_in = unitize(cross(incident, b_in))[0]
    e_out, b_out = dot(diffracted, e_in), dot(diffracted, b_in)
    den = e_out * e_out + b_out * b_out
    safe = torch.where(den > 0, den, torch.ones_like(den))
    cos2psi = torch.where(den > 0, (e_out * e_out - b_out * b_out) / safe, torch.ones_like(den))
    return 0.5 * (1.0 + cos2t_sq - kahn * cos2psi * sin2t_sq)
