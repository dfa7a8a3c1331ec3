"""The flag table is the only source of truth for parsing, and every row of it works.

A typo in a target (``detector.distnace``) or an action raises at the first run that uses the
flag; here every flag is applied once, so such a typo fails a test instead. The crystal shapes
come from one registry (physics.shapes) that the flags, the checks, the report and the API read.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nanobragg import api
from nanobragg.cli import flags as flag_table
from nanobragg.cli.parser import apply_flag, in_stages, parse, split_flags
from nanobragg.cli.report import report_setup
from nanobragg.cli.settings import Settings
from nanobragg.config import checks
from nanobragg.errors import UsageError
from nanobragg.io import smv_bytes
from nanobragg.physics.lattice import lattice_factor
from nanobragg.physics.shapes import SHAPES
from nanobragg.resolve import resolve
from nanobragg.simulator import Simulator

#: A value each flag below accepts (the others take the number 2 for each value).
_TEXT = {"-pivot": "sample", "-dtype": "float64", "-device": "cpu", "-noise_rng": "torch", "-detector_abs": "inf",
         "-misset_seed": "3", "-mosaic_seed": "3", "-seed": "3", "-misset": "1"}


def _values(flag, name, smv):
    if name in ("-mask", "-img"):
        return [smv]
    if name in _TEXT:
        return [_TEXT[name]] * len(flag.values)
    return ["2"] * len(flag.values)


@pytest.fixture()
def smv(tmp_path):
    path = tmp_path / "header.img"
    path.write_bytes(smv_bytes({"PIXEL_SIZE": 0.1, "DISTANCE": 90.0}, np.ones((8, 8), dtype=np.uint16)))
    return str(path)


def _record(settings, head):
    return getattr(settings, head) if head in ("output", "files", "run") else getattr(settings.experiment, head)


def _targets(flag):
    if flag.target is None:
        return ()
    return flag.target if isinstance(flag.target, tuple) else (flag.target,)


@pytest.mark.parametrize("flag", flag_table.FLAGS, ids=lambda f: f.names[0])
def test_every_flag_applies(flag, smv):
    """Each flag's converters, target fields, implications and action run on a fresh Settings."""
    for name in flag.names:
        settings = Settings()
        apply_flag(settings, flag, name, _values(flag, name, smv))
        for target in _targets(flag) + tuple(t for t, _ in flag.implies):
            head, _, field = target.partition(".")
            record = _record(settings, head)
            assert hasattr(record, field), target
            if flag.values or flag.implies:
                assert settings.origins.get(target) in (None, name) or target.startswith(("files.", "run."))


def test_every_target_is_a_field():
    """Targets and implications name real fields (checked without applying, for flags with actions too)."""
    settings = Settings()
    for flag in flag_table.FLAGS:
        for target in _targets(flag) + tuple(t for t, _ in flag.implies):
            head, _, field = target.partition(".")
            record = _record(settings, head)
            assert field in type(record).__dataclass_fields__, (flag.names, target)


def test_a_typo_in_the_table_is_caught():
    bad = flag_table.Flag(("-bogus",), (lambda s: float(s),), "detector.distnace")
    with pytest.raises(AttributeError, match="distnace"):
        apply_flag(Settings(), bad, "-bogus", ["1"])


def test_names_are_unique():
    names = [n for f in flag_table.FLAGS for n in f.names]
    assert len(names) == len(set(names))


def test_misset_takes_a_word_or_three_angles():
    assert parse(["-misset", "random"]).experiment.crystal.misset == "random"
    assert parse(["-misset", "1", "2", "3"]).experiment.crystal.misset == pytest.approx(
        tuple(math.radians(a) for a in (1, 2, 3)))
    with pytest.raises(UsageError, match="-misset needs 3 values"):
        parse(["-misset", "1", "2"])


def test_mask_then_img_headers_come_before_every_flag(tmp_path, smv):
    """C's precedence from the table's stages: the flags override the headers wherever they stand."""
    other = tmp_path / "other.img"
    other.write_bytes(smv_bytes({"DISTANCE": 70.0, "PIXEL_SIZE": 0.1}, np.ones((8, 8), dtype=np.uint16)))
    groups = split_flags(["-distance", "50", "-img", str(other), "-mask", smv])
    assert [name for _, name, _ in in_stages(groups)] == ["-mask", "-img", "-distance"]
    s = parse(["-distance", "50", "-img", str(other), "-mask", smv])
    assert s.experiment.detector.distance == pytest.approx(0.05)
    assert s.experiment.detector.mask.shape == (8, 8) and s.files.mask == smv and s.files.img == str(other)
    assert parse(["-mask", smv, "-img", str(other)]).experiment.detector.distance == pytest.approx(0.07)


# --- the shape registry ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SHAPES))
def test_each_shape_reaches_every_layer(name):
    shape = SHAPES[name]
    for flag in shape.flags:
        assert parse([flag]).experiment.crystal.shape == name
    assert name in checks.RULES["crystal.shape"].options
    frac = torch.rand(3, 7, dtype=torch.float64) - 0.5
    N = torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64)

    def dstar_sq(f):
        return (f ** 2).sum(0) * 1e-4
    assert torch.equal(shape.function(frac, N, dstar_sq, 1.0), lattice_factor(name, frac, N, dstar_sq, 1.0))
    lines = []
    settings = parse(f"-default_F 10 -cell 50 50 50 90 90 90 -N 3 -detpixels 4 {shape.flags[0]}".split())
    report_setup(resolve(settings.experiment, seed=-1), settings, lines.append)
    assert any(line.strip().startswith(f"{shape.c_word} xtal: 3x3x3 cells") for line in lines), lines
    xtal = api.crystal(api.unit_cell(50, 50, 50), N=3, shape=name, default_F=10)
    exp = api.experiment(api.detector(pixels=4), api.beam(), xtal)
    if shape.n_differentiable:
        assert Simulator(exp, ["N"]).N.shape == (3,)
    else:
        with pytest.raises(ValueError, match="no gradient with respect to N"):
            Simulator(exp, ["N"])


def test_unknown_shape_names_the_known_ones():
    with pytest.raises(ValueError, match="shape"):
        api.crystal(api.unit_cell(50, 50, 50), shape="cube")


def test_help_says_what_compile_does():
    from nanobragg.cli.usage import usage_text

    line = next(s for s in usage_text().splitlines() if s.strip().startswith("-compile "))
    assert "AOTInductor" in line and "torch.compile" not in line
    for shape in SHAPES.values():
        assert any(s.strip().startswith(" ".join(shape.flags)) and shape.help in s for s in usage_text().splitlines())
