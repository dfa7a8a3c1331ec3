"""Lattice transforms: the shape factor F_latt of a finite crystal.

Mirrors C ``sincg``, ``sinc3`` and the four crystal shapes of the pixel loop.
Only F_latt^2 enters the image, so the sign of the parallelepiped transform
is not tracked.
"""
from __future__ import annotations

import math

import torch

from .constants import ROUND_SCALE


def _differentiated(*tensors) -> bool:
    """True when autograd records operations on any of ``tensors``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


#: sin(pi r) = r P(r^2) for |r| <= 1/2: P's coefficients, lowest first, a least-squares fit of
#: relative weight on Chebyshev nodes (relative error 5e-9; evaluated in float32 1.8e-7, against
#: 1.4e-7 for a float32 torch.sin(pi * r), whose argument is rounded first).
SIN_PI_COEFFS = (3.1415926368290137, -5.1677096770794355, 2.550069580533828, -0.5982412284707218,
                 0.07755864012183043)


def sin_pi_half(r: torch.Tensor) -> torch.Tensor:
    """sin(pi r) for |r| <= 1/2 as the polynomial r P(r^2) (SIN_PI_COEFFS): a few fused multiply-adds
    in compiled code, where a float32 sine with its range reduction costs several times as many."""
    s = r * r
    acc = torch.full_like(s, SIN_PI_COEFFS[-1])
    for c in SIN_PI_COEFFS[-2::-1]:
        acc = acc * s + c
    return r * acc


def sincg_frac_parts(frac: torch.Tensor, n, polynomial: bool = False) -> tuple:
    """(numerator, denominator) of sincg_frac: (sin(N x), sin(x)), x = pi f, or (N, 1) at f = 0.

    With gradients, near f = 0 (|N pi f| < 0.1) the Taylor series
    N (1 - (N^2-1) x^2/6 + (N^2-1)(3N^2-7) x^4/360) replaces the ratio,
    whose derivative loses all its digits there. Without, the ratio itself
    is accurate to a few roundings everywhere (sin x ~ x keeps its relative
    precision), and only f = 0 needs its limit. ``polynomial`` (without gradients):
    the sines from sin_pi_half, the numerator's as +-sin(pi (N f - k)), k = round(N f),
    its sign dropped (only F_latt^2 enters the image).
    """
    x = math.pi * frac
    n = torch.as_tensor(n, dtype=x.dtype, device=x.device)
    if not _differentiated(x, n):
        zero = x == 0
        if polynomial:
            t = n * frac
            return torch.where(zero, n, sin_pi_half(t - torch.round(t))), torch.where(zero, 1.0, sin_pi_half(frac))
        return torch.where(zero, n, torch.sin(n * x)), torch.where(zero, 1.0, torch.sin(x))
    small = (n * x).abs() < 0.1
    safe = torch.where(small, torch.full_like(x, 0.5), x)
    x2, n2 = x * x, n * n
    series = n * (1 - (n2 - 1) * x2 / 6 + (n2 - 1) * (3 * n2 - 7) * x2 * x2 / 360)
    return torch.where(small, series, torch.sin(n * safe)), torch.where(small, torch.ones_like(x), torch.sin(safe))


def sincg_frac(frac: torch.Tensor, n) -> torch.Tensor:
    """|sin(N pi h) / sin(pi h)| from the fractional part f = h - round(h).

    Equal to C's ``sincg(pi*h, N)`` up to sign for integer N, but computed
    from f in (-1/2, 1/2] so it stays accurate in float32 far from the
    origin; near f = 0 a series when differentiated (see sincg_frac_parts).
    """
    x = math.pi * frac
    n = torch.as_tensor(n, dtype=x.dtype, device=x.device)
    if not _differentiated(x, n):  # one pass fewer than the parts' quotient
        return torch.where(x == 0, n, torch.sin(n * x) / torch.sin(x))
    num, den = sincg_frac_parts(frac, n)
    return num / den


def sincg(x: torch.Tensor, n) -> torch.Tensor:
    """C ``sincg``: sin(N x)/sin(x), N at x = 0 (for reference and tests)."""
    zero = x == 0
    safe = torch.where(zero, torch.ones_like(x), x)
    return torch.where(zero, torch.as_tensor(n, dtype=x.dtype).expand_as(x), torch.sin(n * safe) / torch.sin(safe))


def sinc3_sq(u: torch.Tensor) -> torch.Tensor:
    """C ``sinc3`` as a function of u = x^2: 3 (sin x / x - cos x) / x^2.

    Below u = 0.1 the Taylor series 1 - u/10 + u^2/280 - u^3/15120 replaces
    the cancelling closed form, whose float32 derivative is garbage there;
    this keeps the value and gradient finite and accurate at 0.
    """
    small = u < 0.1
    safe = torch.where(small, torch.ones_like(u), u)
    x = torch.sqrt(safe)
    closed = 3.0 * (torch.sin(x) / x - torch.cos(x)) / safe
    series = 1.0 - u / 10.0 + u * u / 280.0 - u * u * u / 15120.0
    return torch.where(small, series, closed)


def sinc3(x: torch.Tensor) -> torch.Tensor:
    """C ``sinc3``: 3 (sin x/x - cos x)/x^2, 1 at x = 0."""
    return sinc3_sq(x * x)


def _square(frac, N, axes, compiled: bool) -> torch.Tensor:
    """prod_i sincg(pi h_i, N_i) over the axes with N_i > 1 (1 if none)."""
    axes = axes if axes is not None else tuple(float(n) > 1 for n in N)
    if not compiled:
        factors = [sincg_frac(frac[i], N[i]) for i in range(3) if axes[i]]
        return math.prod(factors[1:], start=factors[0]) if factors else torch.ones_like(frac[0])
    polynomial = frac[0].dtype == torch.float32
    parts = [sincg_frac_parts(frac[i], N[i], polynomial) for i in range(3) if axes[i]]
    if not parts:
        return torch.ones_like(frac[0])
    num, den = parts[0]
    for a, b in parts[1:]:
        num, den = num * a, den * b
    return num / den


def lattice_factor(shape: str, frac: torch.Tensor, N: torch.Tensor, dstar_sq, fudge, axes=None,
                   compiled: bool = False) -> torch.Tensor:
    """F_latt for one crystal shape.

    frac: the three fractional Miller offsets h - h0 (tensors of one shape);
    N: (3,) cells per axis;
    dstar_sq: callable giving |dh a* + dk b* + dl c*|^2 (1/A^2) for the
    Gaussian and top-hat shapes; axes: which axes have N > 1 (C skips the
    others in the parallelepiped transform), decided once outside the engine;
    compiled: the forms for compiled code, where a division or a sine costs
    many vector operations (eager, each extra product is one more pass over
    memory): the square shape as one quotient of products instead of a
    product of three quotients, in float32 its sines as polynomials
    (sincg_frac_parts).

    square: prod_i sincg(pi h_i, N_i) over axes with N_i > 1
    round:  Na Nb Nc 0.7236 sinc3(pi sqrt(sum (dh_i N_i)^2 fudge))
    gauss:  Na Nb Nc exp(-|dq|^2 (Na Nb Nc)^2 / 0.63 fudge)
    tophat: Na Nb Nc [|dq|^2 (Na Nb Nc)^2 fudge < 0.3969]
    """
    ncells = N[0] * N[1] * N[2]
    if shape == "square":
        return _square(frac, N, axes, compiled)
    if shape == "round":
        hrad_sq = sum((frac[i] * N[i]) ** 2 for i in range(3))
        return ncells * ROUND_SCALE * sinc3_sq(math.pi ** 2 * hrad_sq * fudge)
    rad_star_sq = dstar_sq(frac) * ncells * ncells
    if shape == "gauss":
        return ncells * torch.exp(-(rad_star_sq / 0.63 * fudge))
    if shape == "tophat":
        return ncells * (rad_star_sq * fudge < 0.3969).to(frac[0].dtype)
    raise ValueError(f"unknown crystal shape {shape!r}")
