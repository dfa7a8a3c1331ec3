"""C's printed statistics from the engine's running totals, against sums taken over the image."""
import math

import numpy as np
import pytest
import torch

from nanobragg.engine.totals import ImageTotals, chunk_totals, merge_totals
from nanobragg.stats import image_stats, whole_image


def _direct(image, active, roi):
    """C's statistics summed straight from the pixels (float64, in row-major order)."""
    vals = image[active].astype(np.float64)
    n = max(vals.size, 1)
    mean = vals.sum() / n
    rms = math.sqrt((vals * vals).sum() / (max(vals.size, 2) - 1))
    xmin, xmax, ymin, ymax = roi
    window = image[ymin:ymax + 1, xmin:xmax + 1].astype(np.float64) - mean
    rmsd = math.sqrt((window * window).sum() / (max(window.size, 2) - 1))
    return mean, rms, rmsd


def _totals(image, active, chunk):
    """Totals the way the engine gathers them: active pixels in row-major chunks, the last one padded."""
    flat = np.flatnonzero(active.reshape(-1))
    parts = []
    for start in range(0, len(flat), chunk):
        idx = flat[start:start + chunk]
        keep = len(idx)
        idx = np.concatenate([idx, np.repeat(idx[-1:], chunk - keep)])
        value = torch.from_numpy(image.reshape(-1)[idx].astype(np.float64))[:, None]
        parts.append(chunk_totals(value, torch.ones(chunk, dtype=torch.float64), torch.from_numpy(idx), keep))
    return merge_totals(len(flat), parts)


@pytest.fixture
def image():
    rng = np.random.default_rng(7)
    img = (rng.exponential(3.0, (40, 50)) ** 2).astype(np.float32)
    img[30, 7] = img[35, 2] = img.max() + 5.0  # a tie: the first in row-major order wins
    return img


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_stats_from_totals_match_the_pixels(image, chunk):
    roi = (3, 45, 2, 37)
    active = np.zeros(image.shape, bool)
    active[2:38, 3:46] = True
    active[10:12, :] = False  # masked rows inside the ROI count in rmsd (as 0), not in mean
    img = np.where(active, image, 0).astype(np.float32)
    totals = _totals(img, active, chunk)
    assert totals.count == active.sum()
    assert float(totals.omega) == active.sum()
    stats = image_stats(totals, img.shape, roi, 1e-4, 2, whole_image(img))
    mean, rms, rmsd = _direct(img, active, roi)
    assert (stats.mean, stats.rms, stats.rmsd) == pytest.approx((mean, rms, rmsd), rel=1e-12)
    assert stats.max_I == img.max()
    assert (stats.max_x, stats.max_y) == pytest.approx((1e-4 * (7 + 0.75), 1e-4 * (30 + 0.75)))


def test_rmsd_of_a_flat_image_is_summed_from_the_pixels():
    """sum v^2 - 2 mean sum v + m mean^2 cancels completely on a flat image: the exact pass gives 0."""
    img = np.full((30, 30), 1234.5678, np.float32)
    active = np.ones(img.shape, bool)
    stats = image_stats(_totals(img, active, 100), img.shape, (0, 29, 0, 29), 1e-4, 1, whole_image(img))
    assert stats.rmsd == 0.0
    assert stats.mean == pytest.approx(float(np.float32(1234.5678)), rel=1e-14)


def test_no_rendered_pixels():
    totals = merge_totals(0, [])
    assert isinstance(totals, ImageTotals) and totals.count == 0
    stats = image_stats(totals, (4, 4), (0, 3, 0, 3), 1e-4, 1, whole_image(np.zeros((4, 4), np.float32)))
    assert (stats.max_I, stats.mean, stats.rms, stats.rmsd) == (0.0, 0.0, 0.0, 0.0)
