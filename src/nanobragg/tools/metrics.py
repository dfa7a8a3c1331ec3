"""Image comparison metrics used by ``nb-compare``.

All functions take 2-D arrays indexed ``[slow, fast]`` and report pixel
positions as ``(x, y)`` = ``(fast, slow)``.  Values that are undefined (for
example the correlation of a flat image) are returned as ``None`` so that they
serialise to JSON ``null``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

PEAK_PERCENTILE = 99.5
PEAK_TOP_N = 50
PEAK_MATCH_RADIUS_PX = 1.0
_FORBIDDEN_COST = 1.0e12


def finite_or_none(value):
    """Return ``value`` as a Python float, or ``None`` when it is not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def correlation(ref: np.ndarray, other: np.ndarray):
    """Pearson correlation of two equally shaped images.

    Identical images give exactly 1.0 (even when flat); otherwise a flat or
    non-finite image gives ``None``.
    """
    x = np.asarray(ref, dtype=np.float64).ravel()
    y = np.asarray(other, dtype=np.float64).ravel()
    if np.array_equal(x, y) and np.isfinite(x).all():
        return 1.0
    x = x - x.mean()
    y = y - y.mean()
    denom = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    if denom == 0.0 or not math.isfinite(denom):
        return None
    return finite_or_none(np.dot(x, y) / denom)


def max_and_position(img: np.ndarray, origin=(0, 0)):
    """Return ``(max value, [x, y])`` of the finite pixels, offset by ``origin``."""
    finite = np.isfinite(img)
    if not finite.any():
        return None, None
    filled = np.where(finite, img, -np.inf)
    row, col = np.unravel_index(int(np.argmax(filled)), img.shape)
    return float(img[row, col]), [int(col) + origin[0], int(row) + origin[1]]


def find_peaks(img: np.ndarray, percentile=PEAK_PERCENTILE, top_n=PEAK_TOP_N):
    """Local maxima (3x3) strictly above ``percentile``, brightest first.

    A plateau of equal neighbouring maxima counts as one peak at its centroid.
    Returns an ``(n, 2)`` float array of ``(x, y)`` positions, ``n <= top_n``.
    """
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros((0, 2))
    threshold = np.percentile(img[finite], percentile)
    filled = np.where(finite, img, -np.inf).astype(np.float64)
    local = ndimage.maximum_filter(filled, size=3, mode="constant", cval=-np.inf)
    mask = (filled == local) & (filled > threshold)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros((0, 2))
    index = np.arange(1, count + 1)
    centres = np.asarray(ndimage.center_of_mass(mask, labels, index), dtype=np.float64)
    heights = np.asarray(ndimage.maximum(filled, labels, index), dtype=np.float64)
    order = np.argsort(-heights, kind="stable")[:top_n]
    return centres[order][:, ::-1].copy()


def match_peaks(ref_peaks, other_peaks, radius=PEAK_MATCH_RADIUS_PX) -> dict:
    """Match two peak lists one-to-one (Hungarian algorithm) within ``radius`` px.

    The matched fraction is ``matched / max(len(ref), len(other))`` so that
    missing and extra peaks both lower it; it is ``None`` when neither image
    has peaks.  Distances are Euclidean, in pixels, over matched pairs.
    """
    n_ref, n_other = len(ref_peaks), len(other_peaks)
    distances = np.zeros(0)
    if n_ref and n_other:
        delta = ref_peaks[:, None, :] - other_peaks[None, :, :]
        dist = np.hypot(delta[..., 0], delta[..., 1])
        cost = np.where(dist <= radius, dist, _FORBIDDEN_COST)
        rows, cols = linear_sum_assignment(cost)
        paired = dist[rows, cols]
        distances = paired[paired <= radius]
    matched = int(distances.size)
    total = max(n_ref, n_other)
    return {
        "peaks_c": n_ref,
        "peaks_py": n_other,
        "peaks_matched": matched,
        "peaks_matched_fraction": matched / total if total else None,
        "peaks_mean_distance_px": float(distances.mean()) if matched else None,
        "peaks_max_distance_px": float(distances.max()) if matched else None,
        "peaks_match_radius_px": radius,
    }


def sum_ratio(sum_ref, sum_other):
    """``sum_other / sum_ref``; 1.0 when both are zero, ``None`` if undefined."""
    if sum_ref is None or sum_other is None:
        return None
    if sum_ref == 0.0:
        return 1.0 if sum_other == 0.0 else None
    return finite_or_none(sum_other / sum_ref)


def compare_images(ref: np.ndarray, other: np.ndarray, origin=(0, 0)) -> dict:
    """All metrics of ``other`` (py) against ``ref`` (c); shapes must match.

    ``origin`` is the ``(x, y)`` of the first pixel, so that positions refer
    to the full image when the arrays are a region of interest.
    """
    ref64 = np.asarray(ref, dtype=np.float64)
    other64 = np.asarray(other, dtype=np.float64)
    diff = other64 - ref64
    sum_c = finite_or_none(ref64.sum())
    sum_py = finite_or_none(other64.sum())
    max_c, max_c_at = max_and_position(ref64, origin)
    max_py, max_py_at = max_and_position(other64, origin)
    mse = finite_or_none(np.mean(diff * diff))
    result = {
        "correlation": correlation(ref64, other64),
        "mse": mse,
        "rmse": math.sqrt(mse) if mse is not None else None,
        "max_abs_diff": finite_or_none(np.max(np.abs(diff))),
        "sum_c": sum_c,
        "sum_py": sum_py,
        "sum_ratio": sum_ratio(sum_c, sum_py),
        "max_c": max_c,
        "max_py": max_py,
        "max_c_at": max_c_at,
        "max_py_at": max_py_at,
        "nonfinite_c": int(ref64.size - np.isfinite(ref64).sum()),
        "nonfinite_py": int(other64.size - np.isfinite(other64).sum()),
    }
    peaks = match_peaks(_offset(find_peaks(ref64), origin),
                        _offset(find_peaks(other64), origin))
    result.update(peaks)
    return result


def _offset(peaks: np.ndarray, origin) -> np.ndarray:
    """Shift ``(x, y)`` peak positions by ``origin``."""
    return peaks + np.asarray(origin, dtype=np.float64)
