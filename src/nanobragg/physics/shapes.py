"""The crystal shapes: one table that every layer reads.

Each :class:`Shape` row names a shape (the API's ``shape=`` value and
``crystal.shape``), its lattice transform, the word nanoBragg.c prints for it
(``parallelpiped xtal: ...``), the command-line flags that choose it, and
whether F_latt is differentiable with respect to N (the ``N`` parameter of
:mod:`nanobragg.simulator`). The shared checks
(:mod:`nanobragg.config.checks`), the flag table (:mod:`nanobragg.cli.flags`),
the set-up report (:mod:`nanobragg.cli.report`), the API and the
``Simulator`` take the list of shapes from :data:`SHAPES`.

The transforms themselves live in :mod:`nanobragg.physics.lattice`
(``lattice_factor``), which the engine calls by name; a new shape is a branch
there and a row here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .lattice import lattice_factor


@dataclass(frozen=True)
class Shape:
    name: str  #: the value of ``crystal.shape`` and of the API's ``shape=``
    function: Callable  #: F_latt(frac, N, dstar_sq, fudge, axes=None, compiled=False)
    c_word: str  #: the word of C's set-up report: ``<c_word> xtal: NaxNbxNc cells``
    flags: tuple  #: command-line flags choosing it
    n_differentiable: bool  #: F_latt has a useful gradient with respect to N
    help: str  #: one line for ``nanoBragg -h`` and the docs


def _transform(name: str) -> Callable:
    def f_latt(frac: torch.Tensor, N: torch.Tensor, dstar_sq, fudge, axes=None, compiled: bool = False):
        return lattice_factor(name, frac, N, dstar_sq, fudge, axes, compiled)
    f_latt.__name__ = f"f_latt_{name}"
    f_latt.__doc__ = f"F_latt of the {name} shape (see nanobragg.physics.lattice.lattice_factor)."
    return f_latt


#: The shapes, the default first. N is a whole number of cells in C's parallelepiped transform
#: (sincg), and the top-hat is piecewise constant: neither has a gradient with respect to N.
SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("square", _transform("square"), "parallelpiped", ("-square_xtal",), False,
          "parallelepiped crystal (default)"),
    Shape("round", _transform("round"), "ellipsoidal", ("-round_xtal",), True, "ellipsoidal crystal"),
    Shape("gauss", _transform("gauss"), "gaussian", ("-gauss_xtal",), True, "Gaussian spots"),
    Shape("tophat", _transform("tophat"), "tophat-spot", ("-tophat_spots", "-binary_spots"), False,
          "flat-top spots"),
)}
DEFAULT = "square"


def shape(name: str) -> Shape:
    """The row of ``name``; ValueError naming the known shapes otherwise."""
    try:
        return SHAPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown crystal shape {name!r}; known: {', '.join(SHAPES)}") from None
