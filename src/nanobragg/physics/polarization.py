"""Polarization factor (C ``polarization_factor``, Kahn et al. 1982).

P = 1/2 (1 + cos^2 2theta - K cos(2 psi) sin^2 2theta), where psi is the
azimuth of the diffracted ray about the incident beam, measured from the
E-vector closest to ``polar_vector``.
"""
from __future__ import annotations

import torch

from ..geometry.vectors import cross, dot, unitize


def polarization_axes(incident: torch.Tensor, polar_vector: torch.Tensor):
    """E and B unit vectors (..., 3) of an incident beam: B = unit(polar x incident), E = unit(incident x B)."""
    b_in = unitize(cross(polar_vector, incident))[0]
    e_in = unitize(cross(incident, b_in))[0]
    return e_in, b_in


def kahn_factor(kahn, cos2t: torch.Tensor, e_out: torch.Tensor, b_out: torch.Tensor) -> torch.Tensor:
    """The factor from cos(2theta) and the diffracted ray's components on the E and B axes.

    cos(2 psi) is taken as (E^2 - B^2)/(E^2 + B^2), which equals C's
    cos(2 atan2(B, E)) and has a finite gradient; along the beam
    (E = B = 0) it is 1, as in C.
    """
    cos2t_sq = cos2t * cos2t
    den = e_out * e_out + b_out * b_out
    safe = torch.where(den > 0, den, torch.ones_like(den))
    cos2psi = torch.where(den > 0, (e_out * e_out - b_out * b_out) / safe, torch.ones_like(den))
    return 0.5 * (1.0 + cos2t_sq - kahn * cos2psi * (1.0 - cos2t_sq))


def polarization_factor(kahn, incident: torch.Tensor, diffracted: torch.Tensor,
                        polar_vector: torch.Tensor) -> torch.Tensor:
    """Kahn polarization factor for unit vectors ``incident`` and ``diffracted`` (..., 3)."""
    e_in, b_in = polarization_axes(incident, polar_vector)
    return kahn_factor(kahn, dot(incident, diffracted), dot(diffracted, e_in), dot(diffracted, b_in))
