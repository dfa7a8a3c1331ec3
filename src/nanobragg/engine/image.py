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


@dataclass
class RenderedImage:
    image: torch.Tensor  #: (spixels, fpixels), or (B, spixels, fpixels) for a batch; zero outside rendered pixels
    active: torch.Tensor  #: (spixels, fpixels) bool, pixels C renders
    omega_sum: torch.Tensor  #: () sum of C's omega_pixel over all sub-pixels and layers
    compiled: bool = False  #: whether the ahead-of-time compiled kernel rendered it


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


def _chunks(flat, span, chunk: int, pad: bool, device):
    """(indices, count kept) per chunk; padded to a full chunk for the fixed-shape compiled kernel."""
    total = span[1] - span[0] if span is not None else len(flat)
    for start in range(0, total, chunk):
        keep = min(chunk, total - start)
        if span is not None:
            first = span[0] + start
            idx = torch.arange(first, first + (chunk if pad else keep), device=device)
        else:
            idx = flat[start:start + keep]
            if pad and keep < chunk:
                idx = torch.cat([idx, idx[-1:].expand(chunk - keep)])
        yield idx, keep


def _contiguous_span(inp: RenderInputs, roi, mask):
    """(first, end) flat indices when the rendered pixels are whole rows without a mask, else None."""
    xmin, xmax, ymin, ymax = roi
    if mask is not None or xmin > 0 or xmax < inp.fpixels - 1:
        return None
    return max(ymin, 0) * inp.fpixels, (min(ymax, inp.spixels - 1) + 1) * inp.fpixels


def _kernel_and_plan(inp: RenderInputs, pixels: int, device, budget, compile: bool | None):
    """The cached compiled kernel and its plan when one is used, else (None, the eager plan)."""
    K = len(inp.thick_offsets) * inp.oversample ** 2
    S, C = len(inp.source_dirs), len(inp.orientations)
    eager = plan(K, S, C, inp.pix0.element_size(), inp.interpolate, budget)
    fast = plan(K, S, C, inp.pix0.element_size(), inp.interpolate, budget, max_pixels=COMPILED_CHUNK)
    kernel = compiled_kernel(inp, fast.blocks, fast.pixels, float(pixels) * K * S * C, compile, device)
    return (kernel, fast) if kernel is not None else (None, eager)


def render_image(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                 progress: Optional[Callable[[int], None]] = None, compile: bool | None = None) -> RenderedImage:
    """Render every active pixel; ``progress(n)`` is called after each chunk of n pixels.

    ``compile``: True builds the compiled kernel if it is not cached, False
    never uses it, None uses a cached one and builds only for very large
    renders (see :mod:`nanobragg.engine.compiled`). Without gradients,
    chunks are written into the image in place (bounded memory); with
    gradients they are concatenated, so the graph stays intact.
    """
    if inp.cells.dim() == 4 and inp.interpolate:
        raise ValueError("a batch of orientations cannot use tricubic interpolation (C's fallback is per image)")
    device = inp.pix0.device
    active = active_pixels(inp.fpixels, inp.spixels, roi, mask, device)
    span = _contiguous_span(inp, roi, mask)
    flat = None if span is not None else torch.nonzero(active.reshape(-1))[:, 0]
    count = span[1] - span[0] if span is not None else len(flat)
    kernel, p = _kernel_and_plan(inp, count, device, budget, compile)
    grad = torch.is_grad_enabled()
    out = torch.zeros(inp.fpixels * inp.spixels, inp.batch, dtype=inp.pix0.dtype, device=device)
    pieces, omega_sum, interp_on = [], torch.zeros((), dtype=out.dtype, device=device), inp.interpolate
    for idx, keep in _chunks(flat, span, p.pixels, kernel is not None, device):
        if kernel is not None:
            value, omega = kernel(inp, idx)
        else:
            value, omega, interp_on = render_pixels(inp, idx % inp.fpixels, idx // inp.fpixels, p.blocks,
                                                          interp_on)
        if grad:
            pieces.append((idx[:keep], value[:keep]))
        elif span is not None:
            out[int(idx[0]):int(idx[0]) + keep] = value[:keep]
        else:
            out[idx[:keep]] = value[:keep]
        omega_sum = omega_sum + omega[:keep].sum()
        if progress is not None:
            progress(keep)
    if pieces:
        out = out.index_put((torch.cat([q[0] for q in pieces]),), torch.cat([q[1] for q in pieces]))
    shape = (inp.spixels, inp.fpixels)
    image = out.T.reshape(inp.batch, *shape) if inp.cells.dim() == 4 else out[:, 0].reshape(shape)
    return RenderedImage(image, active, omega_sum, kernel is not None)
