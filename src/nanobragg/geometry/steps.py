"""Auto-selection of step counts, exactly as the C program decides them.

Each sampled range (spindle, divergence, dispersion, sensor thickness,
mosaic domains) is described by a range, a step and a count, any of which
may be unset (negative). The C program fills in the missing ones with rules
that differ slightly per quantity; they are reproduced here one function
each, followed by C's sanity pass that collapses degenerate ranges.
"""
from __future__ import annotations

import math

from ..units import DEG


def phi_steps(phisteps: int, osc: float, phistep: float) -> tuple[int, float, float]:
    """(phisteps, osc, phistep) for the spindle, C's rules. Angles in radians."""
    if phisteps < 0:
        if osc < 0.0:
            if phistep <= 0.0:
                return 1, 0.0, 0.0
            return 2, phistep, phistep
        if phistep <= 0.0:
            return 2, osc, osc / 2.0
        return math.ceil(osc / phistep), osc, phistep
    phisteps = 1 if phisteps == 0 else phisteps
    if osc < 0.0:
        if phistep <= 0.0:
            return phisteps, DEG, DEG / phisteps
        return 2, phistep, phistep
    if phistep < 0.0:
        return phisteps, osc, osc / phisteps
    return phisteps, osc, phistep


def range_steps(steps: int, rng: float, step: float, default_range: float = 1.0) -> tuple[int, float, float]:
    """(steps, range, step) for divergence and dispersion, C's rules, then its sanity pass."""
    if steps <= 0:
        if rng < 0.0:
            if step <= 0.0:
                steps, rng, step = 1, 0.0, 0.0
            else:
                steps, rng = 2, step
        elif step <= 0.0:
            steps, step = 2, rng
        else:
            steps = math.ceil(rng / step)
    elif rng < 0.0:
        if step <= 0.0:
            rng = default_range
            step = rng / steps
        else:
            steps, rng = 2, step
    elif step <= 0.0:
        steps = max(steps, 2)
        step = rng / (steps - 1)
    if rng <= 0.0 or step <= 0.0 or steps <= 0:
        return 1, 0.0, 0.0
    return steps, rng, step


def thick_steps(steps: int, thick: float, step: float) -> tuple[int, float, float]:
    """(steps, thickness, step) for the sensor layers, C's rules and sanity pass."""
    if steps <= 0:
        if thick < 0.0:
            if step <= 0.0:
                steps, thick, step = 1, 0.0, 0.0
            else:
                steps, thick = 2, step
        elif step <= 0.0:
            steps = 2
            step = thick / steps
        else:
            steps = math.ceil(thick / step)
    elif thick < 0.0:
        if step <= 0.0:
            thick = 0.5e-6
            step = thick / steps
        else:
            steps, thick = 2, step
    elif step <= 0.0:
        steps = max(steps, 2)
        step = thick / (steps - 1)
    if thick <= 0.0 or step <= 0.0 or steps <= 0:
        return 1, 0.0, 0.0
    return steps, thick, step


def mosaic_steps(domains: int, spread: float) -> tuple[int, float, list[str]]:
    """(domains, spread, warnings) for mosaicity, C's rules."""
    warnings = []
    if domains <= 0:
        if spread < 0.0:
            return 1, 0.0, warnings
        if spread == 0.0:
            return 1, spread, warnings
        warnings.append("WARNING: finite mosaicity with only one domain! upping to 10 mosaic domains")
        return 10, spread, warnings
    if spread < 0.0:
        warnings.append("WARNING: no mosaic spread specified.  setting mosaic_domains = 1")
        return 1, 0.0, warnings
    if spread == 0.0:
        warnings.append("WARNING: zero mosaic spread specified.  setting mosaic_domains = 1")
        return 1, spread, warnings
    return domains, spread, warnings
