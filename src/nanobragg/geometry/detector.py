"""Detector geometry: conventions, beam centre, pivots, rotations and pix0.

Mirrors the C program's set-up (nanoBragg.c, the convention blocks and the
"initialize detector origin" section): the detector is three unit vectors
(fast, slow, normal) and the position ``pix0`` of the corner of the first
pixel, all in metres in the lab frame. The pixel at fast/slow offsets
(F, S) from pix0 lies at ``pix0 + F*fdet + S*sdet``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config.experiment import DetectorConfig
from .vectors import dot, rotate_axis, rotate_xyz, unitize

# Basis vectors of each convention, as the C program sets them:
# beam, fdet, sdet, odet, twotheta axis, polarization, spindle.
_CONVENTIONS = {
    "adxv": ((0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "mosflm": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "denzo": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "xds": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "dials": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0)),
    # the C program's initial values, used when any vector is given by hand
    "custom": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1)),
}
@dataclass
class ConventionVectors:
    """Unit vectors of one convention (after any custom overrides)."""

    beam: torch.Tensor
    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    twotheta_axis: torch.Tensor
    polar: torch.Tensor
    spindle: torch.Tensor


@dataclass
class DetectorGeometry:
    """Resolved detector, SI units. Tensors are 0-d or shape (3,)."""

    fpixels: int
    spixels: int
    pixel_size: torch.Tensor
    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    pix0: torch.Tensor
    beam: torch.Tensor
    distance: torch.Tensor
    close_distance: torch.Tensor
    convention: str
    pivot: str
    beam_x: torch.Tensor  #: Xbeam for headers (m)
    beam_y: torch.Tensor
    close_x: float
    close_y: float
    Fbeam: torch.Tensor
    Sbeam: torch.Tensor
    Fclose: torch.Tensor
    Sclose: torch.Tensor
    orgx: torch.Tensor
    orgy: torch.Tensor
    dials_origin: torch.Tensor  #: mm
    detsize_f: float
    detsize_s: float
    twotheta: torch.Tensor
    curved: bool
    point_pixel: bool


def pixel_counts(det: DetectorConfig) -> tuple[int, int, float, float]:
    """Pixel counts and detector sizes as C derives them (counts win over sizes)."""
    pix = float(det.pixel_size)
    detsize_f = pix * det.fpixels if det.fpixels else det.detsize_f
    detsize_s = pix * det.spixels if det.spixels else det.detsize_s
    fpixels = math.ceil(detsize_f / pix - 0.5)
    spixels = math.ceil(detsize_s / pix - 0.5)
    return fpixels, spixels, detsize_f, detsize_s


def _vec(values, dtype, device) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(dtype=dtype, device=device)
    return torch.tensor([float(v) for v in values], dtype=dtype, device=device)


def convention_vectors(det: DetectorConfig, beam_vector, polar_vector, spindle_axis,
                       dtype=torch.float64, device=None) -> ConventionVectors:
    """The convention's unit vectors; with ``custom``, user vectors replace defaults.

    As in C, vectors are unitized, and a zero ``odet`` is replaced by fdet x sdet.
    """
    conv = det.convention
    defaults = _CONVENTIONS[conv]
    given = (beam_vector, det.fdet_vector, det.sdet_vector, det.odet_vector,
             det.twotheta_axis, polar_vector, spindle_axis)
    vecs = [_vec(g if (conv == "custom" and g is not None) else d, dtype, device)
            for g, d in zip(given, defaults)]
    beam, fdet, sdet, odet, tt_axis, polar, spindle = vecs
    fdet, sdet = unitize(fdet)[0], unitize(sdet)[0]
    odet, olen = unitize(odet)
    if float(olen) != 1.0:
        odet = unitize(torch.linalg.cross(fdet, sdet))[0]
    return ConventionVectors(unitize(beam)[0], fdet, sdet, odet, tt_axis,
                             unitize(polar)[0], unitize(spindle)[0])


def _t(x, dtype, device):
    return torch.as_tensor(x, dtype=dtype, device=device)


def beam_center(det: DetectorConfig, detsize_f: float, detsize_s: float, dtype, device):
    """Xbeam/Ybeam, Fbeam/Sbeam, Fclose/Sclose, Xclose/Yclose and the pivot, as in C.

    Returns a dict of tensors/floats. The MOSFLM half-pixel shift and the
    ADXV flip of the slow axis are applied here; conventions other than
    custom impose their own pivot (MOSFLM, DENZO, ADXV: beam; XDS, DIALS: sample).
    """
    pix = _t(det.pixel_size, dtype, device)
    fclose = (_t(det.orgx, dtype, device) - 0.5) * pix if det.orgx is not None else _t(detsize_f / 2.0, dtype, device)
    sclose = (_t(det.orgy, dtype, device) - 0.5) * pix if det.orgy is not None else _t(detsize_s / 2.0, dtype, device)
    xclose = det.close_x if det.close_x is not None else fclose
    yclose = det.close_y if det.close_y is not None else sclose
    xbeam = None if det.beam_x is None else _t(det.beam_x, dtype, device)
    ybeam = None if det.beam_y is None else _t(det.beam_y, dtype, device)
    conv, pivot = det.convention, det.pivot
    if conv == "adxv":
        xbeam = xbeam if xbeam is not None else (detsize_f + pix) / 2.0
        ybeam = ybeam if ybeam is not None else (detsize_s - pix) / 2.0
        fbeam, sbeam, pivot = xbeam, detsize_s - ybeam, "beam"
    elif conv in ("mosflm", "denzo"):
        xbeam = xbeam if xbeam is not None else (detsize_s + pix) / 2.0
        ybeam = ybeam if ybeam is not None else (detsize_f + pix) / 2.0
        shift = 0.5 * pix if conv == "mosflm" else 0.0 * pix
        fbeam, sbeam, pivot = ybeam + shift, xbeam + shift, "beam"
    else:
        xbeam = xbeam if xbeam is not None else _t(xclose, dtype, device)
        ybeam = ybeam if ybeam is not None else _t(yclose, dtype, device)
        fbeam, sbeam = xbeam, ybeam
        if conv == "custom":
            fclose, sclose = xbeam, ybeam
        else:
            pivot = "sample"
    return dict(beam_x=xbeam, beam_y=ybeam, Fbeam=fbeam, Sbeam=sbeam, Fclose=fclose,
                Sclose=sclose, close_x=float(torch.as_tensor(xclose).detach()),
                close_y=float(torch.as_tensor(yclose).detach()), pivot=pivot)


def place_detector(det: DetectorConfig, vecs: ConventionVectors, centre: dict, dtype, device):
    """Rotate the detector and place pix0 about the chosen pivot (C detector origin code).

    ratio = beam . odet(rotated); close_distance defaults to |ratio * distance|
    and distance becomes close_distance / ratio. SAMPLE pivot places pix0 from
    (Fclose, Sclose) before rotating it with the detector; BEAM pivot places it
    after rotation so that the direct beam stays at (Fbeam, Sbeam).
    """
    rot = [_t(getattr(det, k), dtype, device) for k in ("rotx", "roty", "rotz")]
    twotheta = _t(det.twotheta, dtype, device)
    ratio = dot(vecs.beam, rotate_xyz(vecs.odet, *rot))
    ratio = torch.where(ratio == 0, torch.full_like(ratio, 2.2250738585072014e-308), ratio)
    distance = _t(det.distance, dtype, device)
    if det.close_distance is None:
        close_distance = torch.abs(ratio * distance)
    else:
        close_distance = _t(det.close_distance, dtype, device)
    distance = close_distance / ratio

    def orient(v):
        return rotate_axis(rotate_xyz(v, *rot), vecs.twotheta_axis, twotheta)

    if centre["pivot"] == "sample":
        pix0 = -centre["Fclose"] * vecs.fdet - centre["Sclose"] * vecs.sdet + close_distance * vecs.odet
        pix0 = orient(pix0)
    fdet, sdet, odet = orient(vecs.fdet), orient(vecs.sdet), orient(vecs.odet)
    if centre["pivot"] == "beam":
        pix0 = -centre["Fbeam"] * fdet - centre["Sbeam"] * sdet + distance * vecs.beam
    return fdet, sdet, odet, pix0, ratio, twotheta


def resolve_detector(det: DetectorConfig, vecs: ConventionVectors, dtype=torch.float64,
                     device=None) -> DetectorGeometry:
    """Full detector set-up: counts, centre, pivot, rotations, derived origins."""
    fpixels, spixels, detsize_f, detsize_s = pixel_counts(det)
    centre = beam_center(det, detsize_f, detsize_s, dtype, device)
    fdet, sdet, odet, pix0, ratio, twotheta = place_detector(det, vecs, centre, dtype, device)
    pix = _t(det.pixel_size, dtype, device)
    fclose, sclose = -dot(pix0, fdet), -dot(pix0, sdet)
    close_distance = dot(pix0, odet)
    direct = close_distance / ratio * vecs.beam - pix0
    lab = torch.tensor([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=dtype, device=device)
    return DetectorGeometry(
        fpixels=fpixels, spixels=spixels, pixel_size=pix, fdet=fdet, sdet=sdet, odet=odet,
        pix0=pix0, beam=vecs.beam, distance=close_distance / ratio, close_distance=close_distance,
        convention=det.convention, pivot=centre["pivot"], beam_x=centre["beam_x"],
        beam_y=centre["beam_y"], close_x=centre["close_x"], close_y=centre["close_y"],
        Fbeam=dot(fdet, direct), Sbeam=dot(sdet, direct), Fclose=fclose, Sclose=sclose,
        orgx=fclose / pix + 0.5, orgy=sclose / pix + 0.5, dials_origin=1000.0 * (lab @ pix0),
        detsize_f=detsize_f, detsize_s=detsize_s, twotheta=twotheta,
        curved=det.curved, point_pixel=det.point_pixel)
