"""PNG previews written by ``nb-compare``.

Two kinds of file are written for each image:

* ``<name>_image.png``: an 8-bit grayscale image with exactly one PNG pixel
  per detector pixel (width = fast, height = slow, slow index 0 at the top);
* ``<name>.png``: a matplotlib (Agg) figure of the same image with a colour
  bar; the image is drawn pixel-aligned, each detector pixel an integer
  number of PNG pixels wide, so the pixel grid stays readable.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

FIGURE_DPI = 100
MIN_IMAGE_PX = 256
MAX_ZOOM = 8
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 10, 110, 30, 10
COLORBAR_GAP, COLORBAR_WIDTH = 10, 15
INTENSITY_CMAP = "viridis"
DIFF_CMAP = "RdBu_r"


def shared_scale(ref: np.ndarray, other: np.ndarray, percentile: float):
    """Linear ``(vmin, vmax)`` shared by both images: min to the percentile of both."""
    values = np.concatenate([np.ravel(ref), np.ravel(other)]).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    vmin = float(values.min())
    vmax = float(np.percentile(values, percentile))
    if vmax <= vmin:
        vmax = float(values.max()) if values.max() > vmin else vmin + 1.0
    return vmin, vmax


def symmetric_scale(diff: np.ndarray) -> float:
    """Half-range of a symmetric scale for ``diff``: its largest finite magnitude."""
    finite = np.abs(diff[np.isfinite(diff)])
    limit = float(finite.max()) if finite.size else 0.0
    return limit if limit > 0.0 else 1.0


def write_gray(path: Path, img: np.ndarray, vmin: float, vmax: float) -> None:
    """Write ``img`` as 8-bit grayscale, ``vmin`` black and ``vmax`` white."""
    scaled = (np.asarray(img, dtype=np.float64) - vmin) / (vmax - vmin)
    scaled = np.nan_to_num(np.clip(scaled, 0.0, 1.0), nan=0.0)
    Image.fromarray(np.round(scaled * 255.0).astype(np.uint8)).save(path)


def _zoom(shape) -> int:
    """Integer magnification so that small images are drawn at least ~256 px."""
    return max(1, min(MAX_ZOOM, math.ceil(MIN_IMAGE_PX / max(shape))))


def write_figure(path: Path, img: np.ndarray, vmin: float, vmax: float,
                 cmap: str, title: str) -> None:
    """Write ``img`` with a colour bar, pixel-aligned, using matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    zoom = _zoom(img.shape)
    img_h, img_w = img.shape[0] * zoom, img.shape[1] * zoom
    fig_w = MARGIN_LEFT + img_w + MARGIN_RIGHT
    fig_h = MARGIN_TOP + img_h + MARGIN_BOTTOM
    fig = Figure(figsize=(fig_w / FIGURE_DPI, fig_h / FIGURE_DPI), dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    bottom = MARGIN_BOTTOM / fig_h
    ax = fig.add_axes((MARGIN_LEFT / fig_w, bottom, img_w / fig_w, img_h / fig_h))
    shown = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper",
                      interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    cax_left = (MARGIN_LEFT + img_w + COLORBAR_GAP) / fig_w
    cax = fig.add_axes((cax_left, bottom, COLORBAR_WIDTH / fig_w, img_h / fig_h))
    fig.colorbar(shown, cax=cax)
    cax.tick_params(labelsize=7)
    fig.savefig(path, dpi=FIGURE_DPI)


def _have_matplotlib() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_previews(outdir: Path, ref: np.ndarray, other: np.ndarray,
                   percentile: float, save_diff: bool, titles=("c", "py")) -> dict:
    """Write all previews of ``ref`` (c) and ``other`` (py) into ``outdir``.

    Returns a description of the scales and the files written.
    """
    vmin, vmax = shared_scale(ref, other, percentile)
    figures = _have_matplotlib()
    files = []
    for name, img, title in (("c", ref, titles[0]), ("py", other, titles[1])):
        write_gray(outdir / f"{name}_image.png", img, vmin, vmax)
        files.append(f"{name}_image.png")
        if figures:
            write_figure(outdir / f"{name}.png", img, vmin, vmax, INTENSITY_CMAP, title)
            files.append(f"{name}.png")
    info = {"png_vmin": vmin, "png_vmax": vmax, "png_figures": figures}
    if save_diff:
        limit = _write_diff(outdir, other.astype(np.float64) - ref, figures)
        info["diff_limit"] = limit
        files += ["diff_image.png"] + (["diff.png"] if figures else [])
    info["png_files"] = files
    return info


def _write_diff(outdir: Path, diff: np.ndarray, figures: bool) -> float:
    """Write the signed difference previews; return the symmetric half-range."""
    limit = symmetric_scale(diff)
    write_gray(outdir / "diff_image.png", diff, -limit, limit)
    if figures:
        write_figure(outdir / "diff.png", diff, -limit, limit, DIFF_CMAP, "py - c")
    return limit
