"""float32 gradients on golden-case configurations: finite and non-zero for every parameter.

Each case's command line is turned into settings by the CLI's own parser;
the quantity under test is then replaced by a float32 tensor with
``requires_grad`` (user units of :data:`nanobragg.simulator.PARAMETERS`)
and the image rendered in float32. The scalar is a fixed random weighting
of the image, so that symmetric images do not cancel a gradient by accident.
"""
from __future__ import annotations

import pytest
import torch

from golden import INPUTS, load_case
from nanobragg import api
from nanobragg.cli.main import build_settings
from nanobragg.io import hkl_grid, read_hkl
from nanobragg.simulator import read_parameters, with_parameters

#: (golden case, parameters checked on it)
CASES = [
    ("rot-beam", ["cell_lengths", "cell_angles", "distance", "beam_center", "detector_rotation", "twotheta",
                  "wavelength", "fluence", "polarization"]),
    ("rot-sample", ["distance", "beam_center", "detector_rotation", "twotheta"]),
    ("xds-rot", ["distance", "origin", "detector_rotation", "polarization"]),  # N = 1: no crystal dependence
    ("dials-rot-tt", ["distance", "detector_rotation", "twotheta"]),
    ("custom-pivot-sample", ["distance", "beam_center", "detector_rotation", "twotheta"]),
    ("polar", ["polarization", "wavelength", "distance"]),
    ("misset-random", ["misset", "cell_lengths"]),
    ("phi-osc-9", ["phi0", "misset"]),
    ("shape-gauss", ["N", "cell_lengths", "misset"]),
    ("shape-round", ["N", "cell_lengths", "misset"]),
    ("round-Nabc", ["N"]),
    ("gauss-fudge-misset", ["N", "misset"]),
    ("hkl-pattern", ["structure_factors", "cell_lengths"]),
]


def case_experiment(name: str) -> api.Experiment:
    """The case's experiment as the command line builds it (structure factors read from its -hkl)."""
    settings = build_settings(list(load_case(name)["args"]))
    exp = settings.experiment
    if settings.files.hkl:
        exp.crystal.fgrid = hkl_grid(read_hkl(INPUTS / settings.files.hkl), float(exp.crystal.default_F))
    if isinstance(exp.crystal.misset, str):  # -misset random: draw C's angles once, then use them
        exp.crystal.misset = tuple(api.deg(api.simulate(exp).resolved.misset_deg))  # its -misset_seed draws them
    return exp


@pytest.mark.parametrize("case,name", [(c, n) for c, names in CASES for n in names])
def test_float32_gradient(case, name):
    exp = case_experiment(case)
    x = read_parameters(exp, [name])[name].to(torch.float32).requires_grad_()
    image = api.simulate(with_parameters(exp, **{name: x}), dtype=torch.float32).image
    assert image.dtype == torch.float32 and torch.isfinite(image).all() and image.max() > 0
    weights = torch.rand(image.shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((image * weights).sum(), x)
    assert grad.dtype == torch.float32
    assert torch.isfinite(grad).all(), grad
    if name == "structure_factors":
        assert (grad != 0).sum() >= 3  # several of the file's reflections are on the detector
        assert (grad >= 0).all()  # a brighter reflection never darkens a pixel
    else:
        assert (grad != 0).all(), grad
