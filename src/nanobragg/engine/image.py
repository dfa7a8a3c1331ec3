"""Whole-image rendering: active pixels in memory-bounded chunks.

The C program skips pixels outside the ROI (inclusive bounds) and pixels
whose mask value is zero; they stay 0 in the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .chunks import plan
from .compiled import compiled_kernel
from .inputs import RenderInputs
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
                   compile: bool | None = None) -> RenderJob:
    """Set up a render: active pixel count, the chunk plan, and the compiled kernel (loaded or built).

    ``compile``: True builds the compiled kernel if it is not cached, False
    never uses it, None uses a cached one and builds only for very large
    renders (see :mod:`nanobragg.engine.compiled`).
    """
    if inp.cells.dim() == 4 and inp.interpolate:
        raise ValueError("a batch of orientations cannot use tricubic interpolation (C's fallback is per image)")
    count = active_count(inp.fpixels, inp.spixels, roi, mask)
    K = len(inp.thick_offsets) * inp.oversample ** 2
    S, C = len(inp.source_dirs), len(inp.orientations)
    size = inp.pix0.element_size()
    fast = plan(K, S, C, size, inp.interpolate, budget, max_pixels=COMPILED_CHUNK)
    kernel = compiled_kernel(inp, fast.blocks, fast.pixels, float(count) * K * S * C, compile, inp.pix0.device)
    p = fast if kernel is not None else plan(K, S, C, size, inp.interpolate, budget)
    return RenderJob(inp, roi, mask, count, kernel, p.pixels, p.blocks)


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
               rows: Optional[tuple] = None) -> RenderedImage:
    """Render every active pixel of a prepared job, or of the detector rows ``rows`` = (r0, r1) only.

    ``progress(n)`` is called after each chunk of n pixels. The image is
    (r1 - r0, fpixels) (with a batch, (B, r1 - r0, fpixels)); its totals'
    argmax are flat indices on the whole detector. A band of rows keeps
    memory bounded for a detector of any size (see :mod:`nanobragg.cli.simulate`).
    """
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
    return RenderedImage(image, merge_totals(band.count, parts), job.roi, job.mask, job.kernel is not None, r0)


def render_image(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                 progress: Optional[Callable[[int], None]] = None, compile: bool | None = None) -> RenderedImage:
    """Render every active pixel: prepare_render then run_render (the engine's own entry; the API's is
    :func:`nanobragg.api.simulate`, which resolves an experiment and says which path rendered it)."""
    return run_render(prepare_render(inp, roi, mask, budget, compile), progress)
