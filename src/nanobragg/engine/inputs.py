"""The tensors the engine consumes: a plain record, no behaviour.

Built by :func:`nanobragg.resolve.resolve` from the configuration objects;
the engine (:mod:`nanobragg.engine.render`) is a pure function of it.
Shapes: vectors (3,), T sensor layers, S sources, C = phisteps x domains
crystal orientations. Units: metres, 1/metre, radians; reciprocal vectors
``recip`` in 1/Angstrom as the C program keeps them.

A run in a lower precision than float64 keeps float64 copies of the
geometry that fixes the Miller indices (``exact_*``, see :data:`EXACT`):
the engine computes positions, scattering vectors and h, k, l from them,
as C does in double, and everything after the fractional indices in the
run's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch

from ..physics.structure_factors import FTable

#: Fields kept in float64 (as ``exact_<name>``) when the inputs are converted to a lower precision.
EXACT = ("pix0", "fdet", "sdet", "odet", "beam", "pixel_size", "distance", "thick_offsets",
         "source_dirs", "source_lambdas", "cells", "phi0_cells")


@dataclass
class RenderInputs:
    pix0: torch.Tensor  #: (3,) m, corner of the first pixel
    fdet: torch.Tensor  #: (3,) fast axis
    sdet: torch.Tensor  #: (3,) slow axis
    odet: torch.Tensor  #: (3,) detector normal
    beam: torch.Tensor  #: (3,) beam direction (curved detector only)
    pixel_size: torch.Tensor  #: () m
    distance: torch.Tensor  #: () m, along the beam
    close_distance: torch.Tensor  #: () m, along the normal
    fpixels: int
    spixels: int
    oversample: int
    thick_offsets: torch.Tensor  #: (T,) m, depth of each sensor layer
    thickstep: torch.Tensor  #: () m
    mu: torch.Tensor  #: () 1/m
    absorb: bool  #: sensor thickness > 0
    curved: bool
    point_pixel: bool
    source_dirs: torch.Tensor  #: (S, 3) unit vectors towards the sources
    source_lambdas: torch.Tensor  #: (S,) m
    cells: torch.Tensor  #: (C, 3, 3) or (B, C, 3, 3): rows a, b, c in m, phi-major then mosaic domain
    recip: torch.Tensor  #: (3, 3) rows a*, b*, c* in 1/Angstrom (unrotated)
    N: torch.Tensor  #: (3,) cells along a, b, c
    N_axes: tuple  #: (3,) bool, N > 1 on that axis (a static decision, so the engine has no data-dependent branch)
    shape: str
    fudge: torch.Tensor
    ftable: FTable
    interpolate: bool
    kahn: torch.Tensor  #: () Kahn polarization factor
    polar_vector: torch.Tensor  #: (3,)
    nopolar: bool
    dmin: float  #: m; 0 = off
    oversample_thick: bool
    oversample_polar: bool
    oversample_omega: bool
    water: bool  #: water background present (changes C's zero-F_latt skip)
    I_bg: torch.Tensor  #: () background added to every pixel before scaling
    scale: torch.Tensor  #: () r_e^2 * fluence / steps
    #: cells of C's first spindle pass (geometry.crystal.first_pass_cells), None where they equal ``cells``
    phi0_cells: Optional[torch.Tensor] = None
    #: (3,) int64 slow, fast pixel and layer-subpixel x source index (K*S) of that first pass
    #: (engine.render.with_first_pass); None: no first-pass cells
    first_pass: Optional[torch.Tensor] = None
    #: float64 copies of the EXACT fields in a lower-precision run, None otherwise (set by ``to``)
    exact_pix0: Optional[torch.Tensor] = None
    exact_fdet: Optional[torch.Tensor] = None
    exact_sdet: Optional[torch.Tensor] = None
    exact_odet: Optional[torch.Tensor] = None
    exact_beam: Optional[torch.Tensor] = None
    exact_pixel_size: Optional[torch.Tensor] = None
    exact_distance: Optional[torch.Tensor] = None
    exact_thick_offsets: Optional[torch.Tensor] = None
    exact_source_dirs: Optional[torch.Tensor] = None
    exact_source_lambdas: Optional[torch.Tensor] = None
    exact_cells: Optional[torch.Tensor] = None
    exact_phi0_cells: Optional[torch.Tensor] = None

    def to(self, dtype=None, device=None) -> "RenderInputs":
        """Copy with every floating tensor moved to ``dtype``/``device``.

        Converting float64 inputs to a lower precision keeps float64 copies
        of the EXACT fields; converting back to float64 drops them.
        """
        def conv(x):
            if isinstance(x, torch.Tensor):
                return x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
            if isinstance(x, FTable):
                return FTable(conv(x.grid), x.lo, x.hi, conv(x.default_F), x.populated)
            return x
        fields = {k: conv(v) for k, v in self.__dict__.items() if not k.startswith("exact_")}
        exact = {k: getattr(self, f"exact_{k}") for k in EXACT}
        if dtype == torch.float64:  # the copies become the fields
            fields.update({k: conv(v) for k, v in exact.items() if v is not None})
            exact = dict.fromkeys(EXACT)
        elif dtype is not None and self.exact_pix0 is None and self.pix0.dtype == torch.float64:
            exact = {k: getattr(self, k) for k in EXACT}
        fields.update({f"exact_{k}": None if v is None else v.to(device=device) for k, v in exact.items()})
        return replace(self, **fields)

    def exact(self, name: str) -> Optional[torch.Tensor]:
        """The float64 copy of EXACT field ``name`` when there is one, else the field itself.

        A copy whose shape no longer matches its field (the field was replaced,
        e.g. by a batch of cells) is ignored; replacing a field's values in the
        same shape needs its ``exact_<name>`` replaced too (or set to None).
        """
        value, field = getattr(self, f"exact_{name}"), getattr(self, name)
        return field if value is None or field is None or value.shape != field.shape else value

    @property
    def batch(self) -> int:
        """Number of orientations rendered at once (1 when ``cells`` has no batch axis)."""
        return self.cells.shape[0] if self.cells.dim() == 4 else 1

    @property
    def orientations(self) -> torch.Tensor:
        """All cells as (B*C, 3, 3), batch-major."""
        return self.cells.reshape(-1, 3, 3)

    @property
    def first_pass_cells(self) -> Optional[torch.Tensor]:
        """(B*C, 3, 3) cells of C's first spindle pass, float64 when there is a copy; None without them
        (or when ``cells`` was replaced by cells of another shape)."""
        if self.phi0_cells is None or self.first_pass is None or self.phi0_cells.shape != self.cells.shape:
            return None
        return self.exact("phi0_cells").reshape(-1, 3, 3)

    @property
    def exact_orientations(self) -> torch.Tensor:
        """``orientations`` from the float64 cells when there are any."""
        return self.exact("cells").reshape(-1, 3, 3)

    @property
    def recurrent(self) -> bool:
        """True when any -oversample_* flag makes C multiply the running sum."""
        return self.oversample_thick or self.oversample_polar or self.oversample_omega
