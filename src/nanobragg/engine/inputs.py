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

from dataclasses import dataclass, fields, replace
from typing import Optional

import torch

from ..physics.structure_factors import FTable

#: Fields kept in float64 (as ``exact_<name>``) when the inputs are converted to a lower precision.
EXACT = ("pix0", "fdet", "sdet", "odet", "beam", "pixel_size", "distance", "thick_offsets",
         "source_dirs", "source_lambdas", "cells", "phi0_cells")
#: Fields with a leading panel axis in a stack of panels (see stack_panels); every other field is shared.
PANEL_FIELDS = ("pix0", "fdet", "sdet", "odet", "pixel_size", "distance", "close_distance", "first_pass")
#: ``first_pass`` of a panel of a stack where C makes no first pass (no pixel of it is rendered): no pixel hits it.
NO_FIRST_PASS = (-1, -1, 0)


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
    #: a stack of panels: ((spixels, fpixels) of each panel), PANEL_FIELDS with a leading panel axis,
    #: ``spixels`` the rows of all panels (panel 0's first) and ``fpixels`` the widest; None: one detector
    panel_shapes: Optional[tuple] = None

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
    def panels(self) -> int:
        """Number of panels: N in a stack, 1 for one detector."""
        return 1 if self.panel_shapes is None else len(self.panel_shapes)

    def panel(self, index: int) -> "RenderInputs":
        """The single-detector inputs of panel ``index`` of a stack: its PANEL_FIELDS (and their float64
        copies) taken at ``index``, its pixel counts; every other field shared. One detector: itself."""
        if self.panel_shapes is None:
            return self
        names = PANEL_FIELDS + tuple(f"exact_{k}" for k in PANEL_FIELDS if k in EXACT)
        taken = {k: getattr(self, k)[index] for k in names if getattr(self, k) is not None}
        spixels, fpixels = self.panel_shapes[index]
        return replace(self, **taken, spixels=spixels, fpixels=fpixels, panel_shapes=None)

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


def _differs(a, b) -> bool:
    """True when two values of a shared field are not the same (tensors: values, dtype and shape)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                    and a.shape == b.shape and (a is b or torch.equal(a, b)))
    if isinstance(a, FTable) and isinstance(b, FTable):
        return ((a.lo, a.hi, a.populated) != (b.lo, b.hi, b.populated) or _differs(a.grid, b.grid)
                or _differs(a.default_F, b.default_F))
    return a != b


#: Fields that differ between the panels of a stack without being stacked: the pixel counts.
_PER_PANEL = set(PANEL_FIELDS) | {f"exact_{k}" for k in PANEL_FIELDS} | {"fpixels", "spixels", "panel_shapes"}


def shared_difference(a: RenderInputs, b: RenderInputs) -> Optional[str]:
    """The first field other than the panels' own geometry in which two single-detector inputs differ,
    or None when they can be panels of one stack (same crystal, beam, sensor, sampling and dtype)."""
    for f in fields(RenderInputs):
        if f.name not in _PER_PANEL and _differs(getattr(a, f.name), getattr(b, f.name)):
            return f.name
    return None


def group_panels(panels: list) -> list:
    """Indices of single-detector inputs grouped into stacks, in order: each group's members share every
    field but their geometry (see shared_difference). A multi-panel detector is one group unless its
    panels' inputs differ elsewhere (C's automatic oversampling, from each panel's pixel size and distance)."""
    groups = []
    for index, inp in enumerate(panels):
        for group in groups:
            if shared_difference(panels[group[0]], inp) is None:
                group.append(index)
                break
        else:
            groups.append([index])
    return groups


def stack_panels(panels: list) -> RenderInputs:
    """One RenderInputs of single-detector inputs ``panels`` (resolved alone, by the same detector code):
    PANEL_FIELDS stacked on a leading panel axis (a panel without a first pass gets NO_FIRST_PASS), the
    rest taken from the first panel, which every other one must equal (ValueError naming the field)."""
    for inp in panels[1:]:
        name = shared_difference(panels[0], inp)
        if name is not None:
            raise ValueError(f"panels differ in {name}: they cannot be rendered as one stack")
    stacked = {}
    for name in PANEL_FIELDS + tuple(f"exact_{k}" for k in PANEL_FIELDS if k in EXACT):
        values = [getattr(p, name) for p in panels]
        if all(v is None for v in values):
            continue
        if name == "first_pass":
            values = [torch.tensor(NO_FIRST_PASS, device=panels[0].pix0.device) if v is None else v for v in values]
        stacked[name] = torch.stack(values)
    shapes = tuple((p.spixels, p.fpixels) for p in panels)
    return replace(panels[0], **stacked, panel_shapes=shapes, spixels=sum(s for s, _ in shapes),
                   fpixels=max(f for _, f in shapes))
