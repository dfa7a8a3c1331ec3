"""Whole-image rendering: active pixels in memory-bounded chunks.

The C program skips pixels outside the ROI (inclusive bounds) and pixels
whose mask value is zero; they stay 0 in the image.

A stack of panels (:func:`nanobragg.engine.inputs.stack_panels`) is one
render too: one job (one chunk plan, one compiled kernel), whose rows are
the panels' rows one after another, panel 0's first; a band of those rows
may span panels, each chunk lies within one panel and renders with that
panel's geometry (``RenderInputs.panel``), so each panel is exactly its
single-detector render, totals included, and one detector pays nothing.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import torch

from .chunks import Plan, plan
from .inputs import RenderInputs
from .policy import choose_kernel
from .render import render_pixels
from .totals import ImageTotals, chunk_totals, merge_totals


@dataclass
class RenderedImage:
    image: torch.Tensor  #: (rows, fpixels), or (B, rows, fpixels) for a batch; zero outside rendered pixels
    totals: ImageTotals  #: pixel count, solid-angle sum and value totals for C's statistics
    roi: tuple  #: C's inclusive (xmin, xmax, ymin, ymax)
    mask: Optional[np.ndarray] = None  #: (spixels, fpixels), zero where a pixel is skipped
    compiled: bool = False  #: whether the ahead-of-time compiled kernel rendered it
    first_row: int = 0  #: detector row of the image's first row (a band of rows; 0 for the whole image)
    panel: Optional[int] = None  #: the panel of a stack the image is a band of (None: one detector)
    engine: str = "eager"  #: the engine that rendered it: "compiled", "numba" or "eager" (see engine_name)

    @property
    def omega_sum(self) -> torch.Tensor:
        """() sum of C's omega_pixel over all rendered sub-pixels and layers."""
        return self.totals.omega

    @property
    def active(self) -> torch.Tensor:
        """(rows, fpixels) bool: the pixels C renders."""
        rows, fpixels = self.image.shape[-2:]
        return active_pixels(fpixels, (self.first_row, self.first_row + rows), self.roi, self.mask, self.image.device)


def active_pixels(fpixels: int, rows, roi, mask: Optional[np.ndarray], device=None) -> torch.Tensor:
    """Boolean (r1 - r0, fpixels) of the pixels C renders in detector rows ``rows`` = (r0, r1)
    (an int: rows 0 to rows): inside the inclusive ROI and not masked."""
    r0, r1 = (0, rows) if isinstance(rows, int) else rows
    xmin, xmax, ymin, ymax = roi
    s = torch.arange(r0, r1, device=device)[:, None]
    f = torch.arange(fpixels, device=device)[None, :]
    active = (f >= xmin) & (f <= xmax) & (s >= ymin) & (s <= ymax)
    if mask is not None:
        active = active & torch.as_tensor(np.asarray(mask[r0:r1]) != 0, device=device)
    return active


def active_count(fpixels: int, spixels: int, roi, mask: Optional[np.ndarray]) -> int:
    """Number of pixels C renders: those of the inclusive ROI on the detector that are not masked."""
    xmin, xmax, ymin, ymax = roi
    cols = slice(max(xmin, 0), max(min(xmax, fpixels - 1) + 1, 0))
    rows = slice(max(ymin, 0), max(min(ymax, spixels - 1) + 1, 0))
    if mask is None:
        return len(range(spixels)[rows]) * len(range(fpixels)[cols])
    return int(np.count_nonzero(np.asarray(mask)[rows, cols]))


#: Pixels per call of the compiled kernel (fewer, larger calls; its memory per pixel is small).
COMPILED_CHUNK = 1 << 18


@dataclass
class RenderJob:
    """What run_render needs once set up: the pixels to render, the kernel and the chunk plan."""
    inp: RenderInputs
    roi: tuple
    mask: Optional[np.ndarray]
    count: int  #: pixels to render on the whole detector
    kernel: Optional[Callable]  #: the compiled kernel, or None for eager mode
    pixels: int  #: pixels per chunk
    blocks: list  #: (layer slice, source slice) blocks of each chunk, in C loop order
    #: a stack of panels: each panel's single-detector job (its inputs, ROI, mask and the kernel bound to
    #: them); ``roi`` and ``mask`` then hold one per panel. None for one detector
    panels: Optional[list] = None


@dataclass
class _Band:
    """The pixels of one band of rows: a contiguous flat range, or a list of flat indices."""
    base: int  #: flat index of the band's first pixel
    span: Optional[tuple]  #: (first, end) flat indices when whole rows are rendered, else None
    flat: Optional[torch.Tensor]  #: (count,) flat indices of the active pixels when span is None
    count: int  #: pixels to render in the band


def _band(job: RenderJob, r0: int, r1: int) -> _Band:
    """The active pixels of detector rows r0 <= s < r1."""
    inp, (xmin, xmax, ymin, ymax) = job.inp, job.roi
    base, F = r0 * inp.fpixels, inp.fpixels
    if job.mask is None and xmin <= 0 and xmax >= F - 1:
        first, end = max(ymin, r0) * F, (min(ymax, r1 - 1) + 1) * F
        return _Band(base, (first, max(first, end)), None, max(end - first, 0))
    active = active_pixels(F, (r0, r1), job.roi, job.mask, inp.pix0.device).reshape(-1)
    flat = torch.nonzero(active)[:, 0] + base
    return _Band(base, None, flat, len(flat))


def prepare_render(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                   compile: bool | str | None = None) -> RenderJob:
    """Set up a render: active pixel count, the chunk plan, and the compiled kernel (loaded or built).

    ``compile``: True builds the compiled kernel if it is not cached, False
    never uses it, "numba" takes the numba loop (eager where it cannot
    render), None uses a cached one, else the numba loop, and builds one
    only where that pays back (see :mod:`nanobragg.engine.policy`). A stack of panels takes
    a sequence of ROIs and one of masks (or None), one per panel; its compiled
    chunk holds at most the largest panel's pixels (a chunk never straddles
    two panels, so a larger one would be padding).
    """
    if inp.cells.dim() == 4 and inp.interpolate:
        raise ValueError("a batch of orientations cannot use tricubic interpolation (C's fallback is per image)")
    if inp.panel_shapes is None:
        count = active_count(inp.fpixels, inp.spixels, roi, mask)
        kernel, p = _plan_and_kernel(inp, count, COMPILED_CHUNK, budget, compile)
        return RenderJob(inp, roi, mask, count, kernel, p.pixels, p.blocks)
    views = [inp.panel(i) for i in range(inp.panels)]
    masks = list(mask) if mask is not None else [None] * len(views)
    rois = tuple(roi)
    if len(rois) != len(views) or len(masks) != len(views):
        raise ValueError(f"a stack of {len(views)} panels needs one ROI and one mask (or None) per panel")
    counts = [active_count(v.fpixels, v.spixels, r, m) for v, r, m in zip(views, rois, masks)]
    largest = max(v.fpixels * v.spixels for v in views)
    kernel, p = _plan_and_kernel(views[0], sum(counts), min(COMPILED_CHUNK, largest), budget, compile)
    jobs = [RenderJob(v, r, m, n, None if kernel is None else functools.partial(kernel, inputs=v), p.pixels,
                      p.blocks) for v, r, m, n in zip(views, rois, masks, counts)]
    return RenderJob(inp, rois, masks, sum(counts), kernel, p.pixels, p.blocks, jobs)


def _plan_and_kernel(inp: RenderInputs, count: int, max_pixels: int, budget, compile):
    """The compiled kernel for ``count`` pixels of ``inp``'s structure (or None) and the chunk plan it
    takes (chunks of at most ``max_pixels``), else the eager plan."""
    K = len(inp.thick_offsets) * inp.oversample ** 2
    S, C = len(inp.source_dirs), len(inp.orientations)
    size = inp.pix0.element_size()
    fast = plan(K, S, C, size, inp.interpolate, budget, max_pixels=max_pixels)
    kernel = choose_kernel(inp, fast.blocks, fast.pixels, float(count) * K * S * C, compile, inp.pix0.device)
    if kernel is None:
        return None, plan(K, S, C, size, inp.interpolate, budget)
    if engine_name(kernel) == "numba":  # whole chunks whatever the step counts: its memory is per block of pixels
        return kernel, Plan(max_pixels, [(slice(0, K), slice(0, S))])
    return kernel, fast


def _chunk_indices(job: RenderJob, band: _Band, start: int, keep: int, pad: bool):
    """(first, offsets): the chunk's flat pixel indices are first + offsets; listed ones padded to a
    full chunk if ``pad`` (the compiled kernel's fixed shape)."""
    if band.span is not None:
        return band.span[0] + start, torch.arange(keep, device=job.inp.pix0.device)
    idx = band.flat[start:start + keep]
    if pad and keep < job.pixels:
        idx = torch.cat([idx, idx[-1:].expand(job.pixels - keep)])
    return 0, idx


def _render_compiled(job: RenderJob, band: _Band, out: torch.Tensor, progress) -> list:
    """Run the compiled kernel chunk by chunk, writing straight into ``out``; returns the chunk totals."""
    parts = []
    offsets = torch.arange(job.pixels, device=out.device)  # whole rows: one set of offsets for every chunk
    scratch = out.new_empty(job.pixels, out.shape[1]) if band.span is None else None
    for start in range(0, band.count, job.pixels):
        keep = min(job.pixels, band.count - start)
        if band.span is not None:
            first, idx = band.span[0] + start, offsets
            target = out[first - band.base:first - band.base + job.pixels]
        else:
            (first, idx), target = _chunk_indices(job, band, start, keep, True), scratch
        parts.append(job.kernel(torch.tensor(first), idx, torch.tensor(keep), target))
        if band.span is None:
            out[idx[:keep] - band.base] = scratch[:keep]
        if progress is not None:
            progress(keep)
    return parts


def _render_eager(job: RenderJob, band: _Band, out: torch.Tensor, progress):
    """Render chunk by chunk with the eager engine; returns the image buffer and the chunk totals.

    Without gradients chunks are written into ``out`` in place (bounded
    memory); with gradients they are gathered with index_put, so the graph
    stays intact.
    """
    grad = torch.is_grad_enabled()
    parts, pieces, interp_on = [], [], job.inp.interpolate
    for start in range(0, band.count, job.pixels):
        keep = min(job.pixels, band.count - start)
        first, idx = _chunk_indices(job, band, start, keep, False)
        pixels = first + idx
        value, omega, interp_on = render_pixels(job.inp, pixels % job.inp.fpixels, pixels // job.inp.fpixels,
                                                job.blocks, interp_on)
        parts.append(chunk_totals(value, omega, pixels, keep))
        if grad:
            pieces.append((pixels - band.base, value))
        elif band.span is not None:
            out[first - band.base:first - band.base + keep] = value
        else:
            out[pixels - band.base] = value
        if progress is not None:
            progress(keep)
    if pieces:
        out = out.index_put((torch.cat([q[0] for q in pieces]),), torch.cat([q[1] for q in pieces]))
    return out, parts


def run_render(job: RenderJob, progress: Optional[Callable[[int], None]] = None,
               rows: Optional[tuple] = None):
    """Render every active pixel of a prepared job, or of the detector rows ``rows`` = (r0, r1) only.

    ``progress(n)`` is called after each chunk of n pixels. The image is
    (r1 - r0, fpixels) (with a batch, (B, r1 - r0, fpixels)); its totals'
    argmax are flat indices on the whole detector. A band of rows keeps
    memory bounded for a detector of any size (see :mod:`nanobragg.cli.simulate`).

    A stack of panels: ``rows`` number the panels' rows one after another
    (panel 0's first); the result is a list with a RenderedImage for each
    panel that has rows in the range, in panel order, as that panel's own
    render of its rows (``first_row`` a row of the panel, totals of its
    pixels alone) with ``panel`` its index.
    """
    if job.panels is None:
        return _run_rows(job, progress, rows)
    r0, r1 = rows if rows is not None else (0, job.inp.spixels)
    images, top = [], 0
    for index, one in enumerate(job.panels):
        lo, hi = max(r0, top), min(r1, top + one.inp.spixels)
        if lo < hi:
            images.append(replace(_run_rows(one, progress, (lo - top, hi - top)), panel=index))
        top += one.inp.spixels
    return images


def _run_rows(job: RenderJob, progress, rows: Optional[tuple]) -> RenderedImage:
    """run_render of one detector."""
    inp = job.inp
    r0, r1 = rows if rows is not None else (0, inp.spixels)
    band = _band(job, r0, r1)
    n = (r1 - r0) * inp.fpixels
    pad = job.pixels if job.kernel is not None else 0
    out = torch.empty(n + pad, inp.batch, dtype=inp.pix0.dtype, device=inp.pix0.device)
    if band.span is not None:  # only the pixels outside the rendered rows need zeroing
        out[:band.span[0] - band.base] = 0
        out[band.span[1] - band.base:] = 0
    else:
        out.zero_()
    if job.kernel is not None:
        parts = _render_compiled(job, band, out, progress)
    else:
        out, parts = _render_eager(job, band, out, progress)
    out = out[:n]
    shape = (r1 - r0, inp.fpixels)
    image = out.T.reshape(inp.batch, *shape) if inp.cells.dim() == 4 else out[:, 0].reshape(shape)
    engine = engine_name(job.kernel)
    return RenderedImage(image, merge_totals(band.count, parts), job.roi, job.mask, engine == "compiled", r0,
                         engine=engine)


def engine_name(kernel) -> str:
    """The engine a job's kernel is: "compiled" (AOTInductor), "numba" (engine.jit) or "eager" (None)."""
    if kernel is None:
        return "eager"
    return getattr(getattr(kernel, "func", kernel), "engine", "compiled")  # a panel's functools.partial too


def render_image(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                 progress: Optional[Callable[[int], None]] = None, compile: bool | None = None):
    """Render every active pixel: prepare_render then run_render (the engine's own entry; the API's is
    :func:`nanobragg.api.simulate`, which resolves an experiment and says which path rendered it).
    A RenderedImage; for a stack of panels, one per panel."""
    return run_render(prepare_render(inp, roi, mask, budget, compile), progress)
