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
from .inputs import RenderInputs
from .compiled import compiled_kernel
from .render import render_pixels
from .totals import ImageTotals, chunk_totals, merge_totals


@dataclass
class RenderedImage:
    image: torch.Tensor  #: (spixels, fpixels), or (B, spixels, fpixels) for a batch; zero outside rendered pixels
    totals: ImageTotals  #: pixel count, solid-angle sum and value totals for C's statistics
    roi: tuple  #: C's inclusive (xmin, xmax, ymin, ymax)
    mask: Optional[np.ndarray] = None  #: (spixels, fpixels), zero where a pixel is skipped
    compiled: bool = False  #: whether the ahead-of-time compiled kernel rendered it

    @property
    def omega_sum(self) -> torch.Tensor:
        """() sum of C's omega_pixel over all rendered sub-pixels and layers."""
        return self.totals.omega

    @property
    def active(self) -> torch.Tensor:
        """(spixels, fpixels) bool: the pixels C renders."""
        shape = self.image.shape[-2:]
        return active_pixels(shape[1], shape[0], self.roi, self.mask, self.image.device)


def active_pixels(fpixels: int, spixels: int, roi, mask: Optional[np.ndarray], device=None) -> torch.Tensor:
    """Boolean (spixels, fpixels) of the pixels C renders: inside the inclusive ROI and not masked."""
    xmin, xmax, ymin, ymax = roi
    s = torch.arange(spixels, device=device)[:, None]
    f = torch.arange(fpixels, device=device)[None, :]
    active = (f >= xmin) & (f <= xmax) & (s >= ymin) & (s <= ymax)
    if mask is not None:
        active = active & torch.as_tensor(np.asarray(mask) != 0, device=device)
    return active


#: Pixels per call of the compiled kernel (fewer, larger calls; its memory per pixel is small).
COMPILED_CHUNK = 1 << 18


@dataclass
class RenderJob:
    """What render_image needs once set up: the pixels to render, the kernel and the chunk plan."""
    inp: RenderInputs
    roi: tuple
    mask: Optional[np.ndarray]
    span: Optional[tuple]  #: (first, end) flat indices when whole rows are rendered, else None
    flat: Optional[torch.Tensor]  #: (count,) flat indices of the active pixels when span is None
    count: int  #: pixels to render
    kernel: Optional[Callable]  #: the compiled kernel, or None for eager mode
    pixels: int  #: pixels per chunk
    blocks: list  #: (layer slice, source slice) blocks of each chunk, in C loop order


def _contiguous_span(inp: RenderInputs, roi, mask):
    """(first, end) flat indices when the rendered pixels are whole rows without a mask, else None."""
    xmin, xmax, ymin, ymax = roi
    if mask is not None or xmin > 0 or xmax < inp.fpixels - 1:
        return None
    return max(ymin, 0) * inp.fpixels, (min(ymax, inp.spixels - 1) + 1) * inp.fpixels


def prepare_render(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                   compile: bool | None = None) -> RenderJob:
    """Set up a render: active pixels, the chunk plan, and the compiled kernel (loaded or built).

    ``compile``: True builds the compiled kernel if it is not cached, False
    never uses it, None uses a cached one and builds only for very large
    renders (see :mod:`nanobragg.engine.compiled`).
    """
    if inp.cells.dim() == 4 and inp.interpolate:
        raise ValueError("a batch of orientations cannot use tricubic interpolation (C's fallback is per image)")
    device = inp.pix0.device
    span = _contiguous_span(inp, roi, mask)
    flat = None
    if span is None:
        flat = torch.nonzero(active_pixels(inp.fpixels, inp.spixels, roi, mask, device).reshape(-1))[:, 0]
    count = max(span[1] - span[0], 0) if span is not None else len(flat)
    K = len(inp.thick_offsets) * inp.oversample ** 2
    S, C = len(inp.source_dirs), len(inp.orientations)
    size = inp.pix0.element_size()
    fast = plan(K, S, C, size, inp.interpolate, budget, max_pixels=COMPILED_CHUNK)
    kernel = compiled_kernel(inp, fast.blocks, fast.pixels, float(count) * K * S * C, compile, device)
    p = fast if kernel is not None else plan(K, S, C, size, inp.interpolate, budget)
    return RenderJob(inp, roi, mask, span, flat, count, kernel, p.pixels, p.blocks)


def _chunk_indices(job: RenderJob, start: int, keep: int, pad: bool):
    """(first, offsets): the chunk's flat pixel indices are first + offsets; listed ones padded to a
    full chunk if ``pad`` (the compiled kernel's fixed shape)."""
    if job.span is not None:
        return job.span[0] + start, torch.arange(keep, device=job.inp.pix0.device)
    idx = job.flat[start:start + keep]
    if pad and keep < job.pixels:
        idx = torch.cat([idx, idx[-1:].expand(job.pixels - keep)])
    return 0, idx


def _render_compiled(job: RenderJob, out: torch.Tensor, progress) -> list:
    """Run the compiled kernel chunk by chunk, writing straight into ``out``; returns the chunk totals."""
    parts = []
    offsets = torch.arange(job.pixels, device=out.device)  # whole rows: one set of offsets for every chunk
    scratch = out.new_empty(job.pixels, out.shape[1]) if job.span is None else None
    for start in range(0, job.count, job.pixels):
        keep = min(job.pixels, job.count - start)
        if job.span is not None:
            first, idx = job.span[0] + start, offsets
            target = out[first:first + job.pixels]
        else:
            (first, idx), target = _chunk_indices(job, start, keep, True), scratch
        parts.append(job.kernel(torch.tensor(first), idx, torch.tensor(keep), target))
        if job.span is None:
            out[idx[:keep]] = scratch[:keep]
        if progress is not None:
            progress(keep)
    return parts


def _render_eager(job: RenderJob, out: torch.Tensor, progress):
    """Render chunk by chunk with the eager engine; returns the image buffer and the chunk totals.

    Without gradients chunks are written into ``out`` in place (bounded
    memory); with gradients they are gathered with index_put, so the graph
    stays intact.
    """
    grad = torch.is_grad_enabled()
    parts, pieces, interp_on = [], [], job.inp.interpolate
    for start in range(0, job.count, job.pixels):
        keep = min(job.pixels, job.count - start)
        first, idx = _chunk_indices(job, start, keep, False)
        pixels = first + idx
        value, omega, interp_on = render_pixels(job.inp, pixels % job.inp.fpixels, pixels // job.inp.fpixels,
                                                job.blocks, interp_on)
        parts.append(chunk_totals(value, omega, pixels, keep))
        if grad:
            pieces.append((pixels, value))
        elif job.span is not None:
            out[first:first + keep] = value
        else:
            out[pixels] = value
        if progress is not None:
            progress(keep)
    if pieces:
        out = out.index_put((torch.cat([q[0] for q in pieces]),), torch.cat([q[1] for q in pieces]))
    return out, parts


def run_render(job: RenderJob, progress: Optional[Callable[[int], None]] = None) -> RenderedImage:
    """Render every active pixel of a prepared job; ``progress(n)`` is called after each chunk of n pixels."""
    inp = job.inp
    n = inp.fpixels * inp.spixels
    pad = job.pixels if job.kernel is not None else 0
    out = torch.empty(n + pad, inp.batch, dtype=inp.pix0.dtype, device=inp.pix0.device)
    if job.span is not None:  # only the pixels outside the rendered rows need zeroing
        out[:job.span[0]] = 0
        out[job.span[0] + job.count:] = 0
    else:
        out.zero_()
    if job.kernel is not None:
        parts = _render_compiled(job, out, progress)
    else:
        out, parts = _render_eager(job, out, progress)
    out = out[:n]
    shape = (inp.spixels, inp.fpixels)
    image = out.T.reshape(inp.batch, *shape) if inp.cells.dim() == 4 else out[:, 0].reshape(shape)
    return RenderedImage(image, merge_totals(job.count, parts), job.roi, job.mask, job.kernel is not None)


def render_image(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                 progress: Optional[Callable[[int], None]] = None, compile: bool | None = None) -> RenderedImage:
    """Render every active pixel: prepare_render then run_render."""
    return run_render(prepare_render(inp, roi, mask, budget, compile), progress)
