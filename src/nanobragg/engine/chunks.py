"""Chunking: how many pixels, layers and sources to process at once.

The engine's largest tensors have shape (P, K, S, C): pixels x (layers x
sub-pixels) x sources x orientations. ``plan`` picks P, and splits K and S
when one pixel alone would exceed the memory budget, keeping C's loop order
(K outer, S inner) so that the order-dependent recurrence stays exact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

#: Rough bytes per (P, K, S, C) element, per byte of dtype, at the engine's peak.
ELEMENT_FACTOR = 40
#: Extra factor when tricubic interpolation gathers 64 neighbours per point.
INTERP_FACTOR = 6


def default_budget_bytes() -> int:
    """An eighth of physical memory, at most 1 GiB (peak resident memory stays well under 2 GB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(min(total // 8, 1 << 30))


@dataclass
class Plan:
    pixels: int  #: pixels per chunk
    blocks: list  #: (slice of K, slice of S) in C loop order


def plan(K: int, S: int, C: int, itemsize: int, interpolate: bool, budget: int | None = None,
         max_pixels: int = 1 << 16) -> Plan:
    """Chunk sizes so that P*Kc*Sc*C*itemsize*factor stays within ``budget`` bytes."""
    budget = budget or default_budget_bytes()
    per = itemsize * ELEMENT_FACTOR * (INTERP_FACTOR if interpolate else 1)
    cap = max(1, budget // per)  # elements per chunk
    if K * S * C <= cap:
        pixels = max(1, min(max_pixels, cap // (K * S * C)))
        return Plan(pixels, [(slice(0, K), slice(0, S))])
    if S * C <= cap:
        kc = max(1, cap // (S * C))
        return Plan(1, [(slice(k, min(K, k + kc)), slice(0, S)) for k in range(0, K, kc)])
    sc = max(1, cap // C)
    return Plan(1, [(slice(k, k + 1), slice(s, min(S, s + sc))) for k in range(K) for s in range(0, S, sc)])
