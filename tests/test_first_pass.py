"""C's first spindle pass: the true phi = 0 cell, once, where every later pass has the previous step's.

C sets its rotated cell to the phi = 0 cell before the pixel loop and skips
the rotation at phi == 0; single-threaded, only the first pass it makes (the
first rendered pixel's first layer, sub-pixel and uncut source) sees that
cell. The images are checked against C in test_golden.py (phi0 cases); these
tests pin down where the pass is and that nothing else changes.
"""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from golden import load_case
from nanobragg.cli.main import build_settings
from nanobragg.engine.image import render_image
from nanobragg.geometry.crystal import CellVectors, first_pass_cells, rotated_cells
from nanobragg.resolve import resolve


def _resolved(args, dtype=torch.float64):
    settings = build_settings(list(args) + ["-nonoise", "-nopgm"])
    return resolve(settings.experiment, seed=1, dtype=dtype)


def _image(res, inputs=None):
    with torch.no_grad():
        return render_image(inputs or res.inputs, res.roi, res.mask, compile=False).image.numpy()


@pytest.mark.parametrize("name, where", [("phi0-osc", (0, 0, 0)), ("phi0-roi", (5, 10, 0)),
                                         ("phi0-sources", (0, 0, 0))])
def test_first_pass_is_the_first_rendered_pixel(name, where):
    res = _resolved(load_case(name)["args"])
    assert res.inputs.first_pass.tolist() == list(where)


def test_dmin_moves_the_first_pass_past_the_cut_pixels():
    res = _resolved(load_case("phi0-dmin")["args"])
    slow, fast, ks = res.inputs.first_pass.tolist()
    assert (slow, fast) != (0, 0)
    image = _image(res)
    assert image.reshape(-1)[:slow * image.shape[1] + fast].max() == 0  # everything before it is cut


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_only_the_first_pass_pixel_changes(dtype):
    res = _resolved(load_case("phi0-osc")["args"], dtype)
    with_pass = _image(res)
    without = _image(res, replace(res.inputs, first_pass=None))
    changed = np.argwhere(with_pass != without)
    assert changed.tolist() == [[0, 0]]


def _cell():
    eye = torch.eye(3, dtype=torch.float64) * 1e-8
    return CellVectors(eye[0], eye[1], eye[2], eye[0], eye[1], eye[2], torch.tensor(1e6, dtype=torch.float64))


def test_first_pass_cells_only_where_a_zero_step_leads():
    spindle = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    umats = torch.eye(3, dtype=torch.float64)[None]
    cell = _cell()
    deg = math.pi / 180
    assert first_pass_cells(cell, spindle, [0.0], umats) is None  # nothing rotates
    assert first_pass_cells(cell, spindle, [10 * deg, 20 * deg], umats) is None  # no zero step
    assert first_pass_cells(cell, spindle, [-10 * deg, 0.0, 10 * deg], umats) is None  # zero after a rotation
    phis = [0.0, 10 * deg, 20 * deg]
    first, later = first_pass_cells(cell, spindle, phis, umats), rotated_cells(cell, spindle, phis, umats)
    abc = torch.stack([cell.a, cell.b, cell.c])
    assert torch.equal(first[0], abc) and torch.equal(later[0], later[2])  # later passes: the previous step's
    assert torch.equal(first[1:], later[1:])
