"""Random numbers: bit-exact ports of nanoBragg's C generators, and noise images."""

from .cran import (
    CRandom,
    mosaic_rotation_umat,
    mosaic_umats,
    random_misset,
    uniform3d_dev,
    umat2misset,
)
from .noise import poisson_noise_c, poisson_noise_torch
from .ran1 import CStatics

__all__ = [
    "CRandom",
    "CStatics",
    "mosaic_rotation_umat",
    "mosaic_umats",
    "random_misset",
    "uniform3d_dev",
    "umat2misset",
    "poisson_noise_c",
    "poisson_noise_torch",
]
