"""Trace one pixel: every intermediate quantity of its calculation, for debugging.

:func:`trace_pixel` re-derives the quantities of the *first* iteration of
the pixel loop (first sensor layer, first sub-pixel, first source, first
spindle step, first mosaic domain) from the geometry and physics functions,
and takes the pixel's final value from the engine itself
(:func:`nanobragg.engine.render.render_pixels` on that one pixel), so the
trace always ends with the number the eager engine's image holds (the numba
loop and the compiled kernel agree with it to rounding, not bit for bit).

Precision follows the engine: in a float32 run the position, diffracted
direction, q and h, k, l come from the inputs' float64 copies
(``RenderInputs.exact``), and h - h0 onwards is in the run's dtype.

Units: metres for positions and real-space cell vectors, 1/metre for q,
1/Angstrom for the reciprocal vectors, steradian for omega. The per-pixel
factors follow the engine's C semantics: omega of the first sub-pixel,
polarization of the first (layer, sub-pixel, source) not cut by ``-dmin``,
capture fraction of the last layer's first sub-pixel.
"""
from __future__ import annotations

import torch

from ..geometry.vectors import cross, dot, rotate_axis, unitize
from ..physics.lattice import lattice_factor, sincg_frac
from ..physics.polarization import polarization_factor
from ..physics.structure_factors import structure_factor
from ..units import ANGSTROM
from .chunks import plan
from .inputs import RenderInputs
from .render import render_pixels

#: Every quantity name a trace holds, in printing order.
NAMES = ("fdet", "sdet", "odet", "pix0", "pixel_pos", "airpath", "diffracted", "incident", "lambda",
         "q", "stol", "a", "b", "c", "a_star", "b_star", "c_star", "hkl_frac", "hkl_nearest",
         "F_latt_a", "F_latt_b", "F_latt_c", "F_latt", "F_cell", "polar", "omega",
         "capture_fraction", "I", "steps", "scale", "final_pixel_value")


def subpixel_position(inp: RenderInputs, slow: int, fast: int, layer: int = 0, sub_s: int = 0, sub_f: int = 0):
    """Lab position (3,) of one sub-pixel of one sensor layer (curved detector included), from the
    exact (float64) geometry as the engine computes it."""
    pix0, fdet, sdet, odet, beam = (inp.exact(k) for k in ("pix0", "fdet", "sdet", "odet", "beam"))
    distance = inp.exact("distance")
    n = inp.oversample
    sub = inp.exact("pixel_size") / n
    f = sub * (fast * n + sub_f) + sub / 2.0
    s = sub * (slow * n + sub_s) + sub / 2.0
    pos = pix0 + f * fdet + s * sdet + inp.exact("thick_offsets")[layer] * odet
    if inp.curved:
        pos = rotate_axis(rotate_axis(distance * beam, sdet, pos[1] / distance), fdet, pos[2] / distance)
    return pos


def solid_angle(inp: RenderInputs, airpath: torch.Tensor) -> torch.Tensor:
    """omega = pixel^2/R^2 * close_distance/R, or 1/R^2 for a point pixel."""
    if inp.point_pixel:
        return 1.0 / (airpath * airpath)
    return inp.pixel_size * inp.pixel_size / (airpath * airpath) * inp.close_distance / airpath


def capture_fraction(inp: RenderInputs, slow: int, fast: int) -> torch.Tensor:
    """Fraction absorbed in the last sensor layer at its first sub-pixel (1 without a thick sensor)."""
    if not inp.absorb:
        return torch.ones((), dtype=inp.pix0.dtype, device=inp.pix0.device)
    layer = len(inp.thick_offsets) - 1
    diffracted = unitize(subpixel_position(inp, slow, fast, layer))[0].to(inp.pix0.dtype)
    depth = inp.thickstep * inp.mu / dot(diffracted, inp.odet)
    return torch.exp(-layer * depth) - torch.exp(-(layer + 1) * depth)


def _is_cut(inp: RenderInputs, q: torch.Tensor) -> bool:
    """C's -dmin test: resolution 1/(2 stol) finer than dmin."""
    stol = 0.5 * float(torch.sqrt(dot(q, q)))
    return inp.dmin > 0 and stol > 0 and inp.dmin > 0.5 / stol


def first_polarization(inp: RenderInputs, slow: int, fast: int) -> torch.Tensor:
    """Polarization at the first (layer, sub-pixel, source) not cut by -dmin; 0 if all are cut."""
    one = torch.ones((), dtype=inp.pix0.dtype, device=inp.pix0.device)
    if inp.nopolar:
        return one
    n = inp.oversample
    for layer in range(len(inp.thick_offsets)):
        for k in range(n * n):
            diffracted, _ = unitize(subpixel_position(inp, slow, fast, layer, k // n, k % n))
            for s in range(len(inp.source_dirs)):
                incident = -inp.exact("source_dirs")[s]
                if not _is_cut(inp, (diffracted - incident) / inp.exact("source_lambdas")[s]):
                    return polarization_factor(inp.kahn, -inp.source_dirs[s], diffracted.to(inp.pix0.dtype),
                                               inp.polar_vector)
    return 0.0 * one


def reciprocal_vectors(abc: torch.Tensor) -> torch.Tensor:
    """Rows a*, b*, c* (1/Angstrom) of the real-space rows a, b, c (metres): a* = b x c / V."""
    a, b, c = abc / ANGSTROM
    volume = dot(a, cross(b, c))
    return torch.stack([cross(b, c), cross(c, a), cross(a, b)]) / volume


def lattice_terms(inp: RenderInputs, frac: torch.Tensor):
    """Per-axis sincg factors (1 on axes with N <= 1) and the crystal shape's total F_latt."""
    axes = inp.N_axes
    per_axis = [sincg_frac(frac[i], inp.N[i]) if axes[i] else torch.ones_like(frac[i]) for i in range(3)]

    def dstar_sq(f):
        d = f @ inp.recip
        return dot(d, d)

    # a (3,) tensor indexes the same whether the factor takes components first or last
    return per_axis, lattice_factor(inp.shape, frac, inp.N, dstar_sq, inp.fudge, axes)


def orientations(inp: RenderInputs, batch: int = 0) -> torch.Tensor:
    """The (C, 3, 3) cells of one crystal in a batch of orientations (the only one without a batch)."""
    return inp.cells[batch] if inp.cells.dim() == 4 else inp.cells


def exact_orientations(inp: RenderInputs, batch: int = 0) -> torch.Tensor:
    """``orientations`` from the float64 cells when the inputs keep a copy."""
    cells = inp.exact("cells")
    return cells[batch] if cells.dim() == 4 else cells


#: Copies of a traced pixel rendered together (a multiple of every SIMD loop's step).
VECTOR_BLOCK = 64


def engine_value(inp: RenderInputs, slow: int, fast: int, interp_on=None, batch: int = 0) -> torch.Tensor:
    """The pixel's value from the engine itself, bit for bit as in a whole image.

    The pixel is rendered as a block of VECTOR_BLOCK copies: element-wise
    kernels compute a lone element with scalar code (libm's sin, say) but a
    whole image with vector code, which can differ in the last bit.
    """
    K = len(inp.thick_offsets) * inp.oversample ** 2
    every = inp.cells.reshape(-1, 3, 3).shape[0]  # orientations of all crystals in a batch
    p = plan(K, len(inp.source_dirs), every, inp.pix0.element_size(), inp.interpolate)
    fpix, spix = (torch.full((VECTOR_BLOCK,), i, device=inp.pix0.device) for i in (fast, slow))
    with torch.no_grad():
        value = render_pixels(inp, fpix, spix, p.blocks, interp_on)[0]
    return value[0].reshape(-1)[batch]


def accumulated_I(inp: RenderInputs, value, capture, polar, omega) -> float:
    """C's I: the value divided by scale and by each factor applied after the sum (nan if one is 0)."""
    divisor = inp.scale
    if not inp.oversample_thick:
        divisor = divisor * capture
    if not inp.oversample_polar:
        divisor = divisor * polar
    if not inp.oversample_omega:
        divisor = divisor * omega
    return float(value / divisor) if float(divisor) != 0 else float("nan")


def _values(x) -> tuple:
    """A quantity as a tuple of Python numbers (floats stay floats, whole-number indices become ints)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().reshape(-1)
        return tuple(float(v) for v in x) if x.is_floating_point() else tuple(int(v) for v in x)
    if isinstance(x, (tuple, list)):
        return tuple(x)
    return (x,)


def trace_pixel(inputs: RenderInputs, slow: int, fast: int, interp_on=None, batch: int = 0) -> list[tuple[str, tuple]]:
    """(name, values) for every quantity of pixel (slow, fast), in the order of :data:`NAMES`.

    ``interp_on`` is the interpolation state on entry to the pixel (default
    ``inputs.interpolate``; C switches it off for good once a stencil leaves
    the grid, so a pixel rendered later in the image may see it off).
    ``batch`` picks the crystal when ``inputs`` holds a batch of orientations.
    """
    inp = inputs
    interp_on = inp.interpolate if interp_on is None else interp_on
    with torch.no_grad():
        dtype = inp.pix0.dtype
        pos = subpixel_position(inp, slow, fast)  # float64 from here to h, k, l (as the engine)
        diffracted, airpath = unitize(pos)
        incident, lam = -inp.exact("source_dirs")[0], inp.exact("source_lambdas")[0]
        q = (diffracted - incident) / lam
        abc = exact_orientations(inp, batch)[0]
        hkl = abc @ q
        h0 = torch.ceil(hkl - 0.5)
        per_axis, f_latt = lattice_terms(inp, (hkl - h0).to(dtype))
        f_cell, _ = structure_factor(tuple(hkl[i, None].to(dtype) for i in range(3)),
                                     tuple(h0[i, None] for i in range(3)), inp.ftable, interp_on)
        polar, omega = first_polarization(inp, slow, fast), solid_angle(inp, airpath.to(dtype))
        capture = capture_fraction(inp, slow, fast)
        value = engine_value(inp, slow, fast, interp_on, batch)
    steps = len(inp.source_dirs) * orientations(inp).shape[0] * inp.oversample ** 2
    quantities = [inp.fdet, inp.sdet, inp.odet, inp.pix0, pos, airpath, diffracted, incident, lam,
                  q, 0.5 * torch.sqrt(dot(q, q)), *abc, *reciprocal_vectors(abc), hkl, h0.long(),
                  *per_axis, f_latt, f_cell[0], polar, omega, capture,
                  accumulated_I(inp, value, capture, polar, omega), steps, inp.scale, value]
    return [(name, _values(x)) for name, x in zip(NAMES, quantities)]


def format_trace(lines: list[tuple[str, tuple]]) -> list[str]:
    """``TRACE name v1 v2 ...`` lines, floats at full precision (repr)."""
    return ["TRACE " + " ".join([name, *(repr(v) for v in values)]) for name, values in lines]
