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
    compiled: bool = False  #: whether the torch.compile'd kernel rendered it


def active_pixels(fpixels: int, spixels: int, roi, mask: Optional[np.ndarray], device=None) -> torch.Tensor:
    """Boolean (spixels, fpixels) of the pixels C renders: inside the inclusive ROI and not masked."""
    xmin, xmax, ymin, ymax = roi
    s = torch.arange(spixels, device=device)[:, None]
    f = torch.arange(fpixels, device=device)[None, :]
    active = (f >= xmin) & (f <= xmax) & (s >= ymin) & (s <= ymax)
    if mask is not None:
        active = active & torch.as_tensor(np.asarray(mask) != 0, device=device)
    return active


def _pad(flat: torch.Tensor, chunk: int) -> torch.Tensor:
    """Pad the pixel list to a whole number of chunks by repeating its last pixel (one compiled shape)."""
    extra = (-len(flat)) % chunk
    return torch.cat([flat, flat[-1:].expand(extra)]) if extra else flat


def _contiguous_span(inp: RenderInputs, roi, mask):
    """(first, end) flat indices when the rendered pixels are whole rows without a mask, else None."""
    xmin, xmax, ymin, ymax = roi
    if mask is not None or xmin > 0 or xmax < inp.fpixels - 1:
        return None
    return max(ymin, 0) * inp.fpixels, (min(ymax, inp.spixels - 1) + 1) * inp.fpixels


def _choose_kernel(inp: RenderInputs, pixels: int, plan_, device, compile: bool | None):
    """The cached compiled kernel when there is one (or one is worth building), else the eager one."""
    K = len(inp.thick_offsets) * inp.oversample ** 2
    terms = float(pixels) * K * len(inp.source_dirs) * len(inp.orientations)
    kernel = compiled_kernel(inp, plan_.blocks, plan_.pixels, terms, compile, device)
    return kernel or render_pixels


def render_image(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                 progress: Optional[Callable[[int], None]] = None, compile: bool | None = None) -> RenderedImage:
    """Render every active pixel; ``progress(n)`` is called after each chunk of n pixels.

    ``compile``: True builds the compiled kernel if it is not cached, False
    never uses it, None uses a cached one and builds only for very large
    renders (see :mod:`nanobragg.engine.compiled`). Without
    gradients, chunks are written into the image in place (bounded memory);
    with gradients they are concatenated, so the graph stays intact.
    """
    device = inp.pix0.device
    active = active_pixels(inp.fpixels, inp.spixels, roi, mask, device)
    span = _contiguous_span(inp, roi, mask)
    flat = torch.nonzero(active.reshape(-1))[:, 0] if span is None else torch.arange(*span, device=device)
    if inp.cells.dim() == 4 and inp.interpolate:
        raise ValueError("a batch of orientations cannot use tricubic interpolation (C's fallback is per image)")
    K = len(inp.thick_offsets) * inp.oversample ** 2
    p = plan(K, len(inp.source_dirs), len(inp.orientations), inp.pix0.element_size(), inp.interpolate, budget)
    kernel, real = _choose_kernel(inp, len(flat), p, device, compile), len(flat)
    if kernel is not render_pixels:
        flat = _pad(flat, p.pixels)
    grad = torch.is_grad_enabled()
    n = inp.fpixels * inp.spixels
    out = torch.zeros(n, inp.batch, dtype=inp.pix0.dtype, device=device)
    pieces, omega_sum, interp_on = [], torch.zeros((), dtype=out.dtype, device=device), inp.interpolate
    for start in range(0, len(flat), p.pixels):
        idx = flat[start:start + p.pixels]
        value, _, _, omega, interp_on = kernel(inp, idx % inp.fpixels, idx // inp.fpixels, p.blocks, interp_on)
        keep = min(len(idx), real - start)  # drop the padding of the last compiled chunk
        if grad:
            pieces.append((idx[:keep], value[:keep]))
        elif span is not None:
            out[span[0] + start:span[0] + start + keep] = value[:keep]
        else:
            out[idx[:keep]] = value[:keep]
        omega_sum = omega_sum + omega[:keep].sum()
        if progress is not None:
            progress(keep)
    if pieces:
        out = out.index_put((torch.cat([q[0] for q in pieces]),), torch.cat([q[1] for q in pieces]))
    shape = (inp.spixels, inp.fpixels)
    image = out.T.reshape(inp.batch, *shape) if inp.cells.dim() == 4 else out[:, 0].reshape(shape)
    return RenderedImage(image, active, omega_sum, kernel is not render_pixels)
