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
from .compiled import compiled_kernel, worth_compiling
from .render import render_pixels


@dataclass
class RenderedImage:
    image: torch.Tensor  #: (spixels, fpixels), or (B, spixels, fpixels) for a batch; zero outside rendered pixels
    active: torch.Tensor  #: (spixels, fpixels) bool, pixels C renders
    last_sub_f: torch.Tensor  #: (spixels, fpixels) m, fast position of each pixel's last sub-pixel
    last_sub_s: torch.Tensor
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
    extra = (-len(flat)) % chunk if len(flat) > chunk else 0
    return torch.cat([flat, flat[-1:].expand(extra)]) if extra else flat


def render_image(inp: RenderInputs, roi, mask=None, budget: int | None = None,
                 progress: Optional[Callable[[int], None]] = None, compile: bool | None = None) -> RenderedImage:
    """Render every active pixel; ``progress(n)`` is called after each chunk of n pixels.

    ``compile``: True/False forces torch.compile on or off; None compiles
    only large renders (see :mod:`nanobragg.engine.compiled`).
    """
    device = inp.pix0.device
    active = active_pixels(inp.fpixels, inp.spixels, roi, mask, device)
    flat = torch.nonzero(active.reshape(-1))[:, 0]
    K = len(inp.thick_offsets) * inp.oversample ** 2
    C = len(inp.orientations)
    if inp.cells.dim() == 4 and inp.interpolate:
        raise ValueError("a batch of orientations cannot use tricubic interpolation (C's fallback is per image)")
    p = plan(K, len(inp.source_dirs), C, inp.pix0.element_size(), inp.interpolate, budget)
    terms = float(len(flat)) * K * len(inp.source_dirs) * C
    kernel, real = render_pixels, len(flat)
    if not torch.is_grad_enabled() and worth_compiling(terms, device, compile):
        kernel = compiled_kernel()
        flat = _pad(flat, p.pixels)
    n = inp.fpixels * inp.spixels
    out = torch.zeros(n, inp.batch, dtype=inp.pix0.dtype, device=device)
    lf = torch.zeros(n, dtype=inp.pix0.dtype, device=device)
    ls = torch.zeros_like(lf)
    pieces = []
    omega_sum = torch.zeros((), dtype=lf.dtype, device=device)
    interp_on = inp.interpolate
    for start in range(0, len(flat), p.pixels):
        idx = flat[start:start + p.pixels]
        value, f_last, s_last, omega, interp_on = kernel(
            inp, idx % inp.fpixels, idx // inp.fpixels, p.blocks, interp_on)
        keep = min(len(idx), real - start)  # drop the padding of the last compiled chunk
        pieces.append((idx[:keep], value[:keep], f_last[:keep], s_last[:keep]))
        omega_sum = omega_sum + omega[:keep].sum()
        if progress is not None:
            progress(keep)
    if pieces:
        idx = torch.cat([q[0] for q in pieces])
        out = out.index_put((idx,), torch.cat([q[1] for q in pieces]))
        lf = lf.index_put((idx,), torch.cat([q[2] for q in pieces]))
        ls = ls.index_put((idx,), torch.cat([q[3] for q in pieces]))
    shape = (inp.spixels, inp.fpixels)
    image = out.T.reshape(inp.batch, *shape) if inp.cells.dim() == 4 else out[:, 0].reshape(shape)
    return RenderedImage(image, active, lf.reshape(shape), ls.reshape(shape), omega_sum,
                         kernel is not render_pixels)
