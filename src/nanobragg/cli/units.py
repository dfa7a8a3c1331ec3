"""Value converters for command-line flags: text in C's units -> SI numbers.

Each converter takes the token and returns the converted value or raises
ValueError with a short reason; the parser turns that into a one-line error
naming the flag.
"""
from __future__ import annotations

import math

from ..units import ANGSTROM, DEG, EV_ANGSTROM, MM, MRAD, PERCENT, UM


def number(text: str) -> float:
    """A finite decimal number (C's atof, but strict: garbage and NaN/inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"'{text}' is not a finite number")
    return value


def integer(text: str) -> int:
    """A whole number (C's atoi, but strict)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an integer") from None


def scaled(factor: float):
    """Converter multiplying a number by ``factor`` (e.g. mm -> m is 1e-3)."""
    def convert(text: str) -> float:
        return number(text) * factor
    convert.__name__ = f"scaled({factor:g})"
    return convert


mm = scaled(MM)
um = scaled(UM)
deg = scaled(DEG)
mrad = scaled(MRAD)
angstrom = scaled(ANGSTROM)
percent = scaled(PERCENT)


def positive(convert):
    """Wrap a converter so that zero and negative values are refused."""
    def check(text: str):
        value = convert(text)
        if value <= 0:
            raise ValueError(f"'{text}' must be positive")
        return value
    return check


def text(value: str) -> str:
    return value


def energy_ev(text_value: str) -> float:
    """Photon energy in eV -> wavelength in m (C: 12398.42 / E Angstrom)."""
    e = positive(number)(text_value)
    return EV_ANGSTROM / e * ANGSTROM


def choice(*options: str):
    def convert(value: str) -> str:
        if value not in options:
            raise ValueError(f"'{value}' is not one of {', '.join(options)}")
        return value
    return convert
