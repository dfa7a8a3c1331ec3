"""The command line: flag parsing, precedence, and bad input ending cleanly."""
import subprocess
import sys

import pytest

from nanobragg.cli.flags import FLAGS
from nanobragg.cli.main import run
from nanobragg.cli.parser import UsageError, parse
from util import in_folder

BASE = "-default_F 100 -cell 100 100 100 90 90 90 -lambda 6.2 -N 2 -distance 100 -detpixels 16 -nonoise -nopgm".split()


def _run(args, tmp_path, capsys):
    with in_folder(tmp_path):
        status = run(args, log=lambda *_: None)
    return status, capsys.readouterr().err


def test_negative_numbers_are_values():
    s = parse("-detector_roty -4 -misset -89.97 -31.3 177.75 -pix0_vector 0.1 -0.006 0.007".split())
    assert s.experiment.detector.roty == pytest.approx(-4 * 3.141592653589793 / 180)
    assert s.experiment.crystal.misset[0] == pytest.approx(-89.97 * 3.141592653589793 / 180)
    assert s.experiment.detector.pix0_vector == (0.1, -0.006, 0.007)
    assert s.experiment.detector.convention == "custom"


def test_exact_matching_does_not_copy_substring_quirks():
    s = parse("-twotheta_axis 0 1 0 -misset_seed 5".split())
    assert s.experiment.detector.twotheta == 0.0
    assert s.experiment.crystal.misset is None
    assert s.experiment.crystal.misset_seed == -5


def test_synonyms_and_units():
    s = parse("-mosaic_domains 3 -mosaic_dom 4 -detector_absorb 500 -pix0_vector_mm 100 5 -5 -energy 12398.42".split())
    assert s.experiment.crystal.mosaic_domains == 4
    assert s.experiment.detector.attenuation_length == pytest.approx(500e-6)
    assert s.experiment.detector.pix0_vector == pytest.approx((0.1, 0.005, -0.005))
    assert s.experiment.beam.wavelength == pytest.approx(1e-10)


def test_every_flag_name_is_unique():
    names = [n for f in FLAGS for n in f.names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("args, words", [
    (["-bogus"], "unknown flag -bogus"),
    (["-distance"], "-distance needs 1 value"),
    (["-distance", "abc"], "-distance: 'abc' is not a number"),
    (["-distance", "-5"], "-distance: '-5' must be positive"),
    (["-pixel", "0"], "-pixel: '0' must be positive"),
    (["-lambda", "nan"], "-lambda: 'nan' is not a finite number"),
    (["-detpixels", "0"], "-detpixels: '0' must be positive"),
    (["-roi", "10", "5", "0", "4"], "-roi: minimum exceeds maximum"),
    (["-cell", "100", "100"], "-cell needs 6 values"),
    (["-hkl", "missing.hkl"], "missing.hkl"),
    (["-floatfile", "nowhere/x.bin"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(args, words, tmp_path, capsys):
    status, err = _run(BASE + args, tmp_path, capsys)
    assert status == 2
    first, hint = err.strip().splitlines()
    assert words in first
    assert "nanoBragg -h" in hint
    assert not any(p.suffix in (".bin", ".img", ".pgm") for p in tmp_path.iterdir())


def test_no_structure_factors_is_an_error(tmp_path, capsys):
    args = "-cell 100 100 100 90 90 90 -N 2 -detpixels 16 -nonoise -nopgm".split()
    status, err = _run(args, tmp_path, capsys)
    assert status == 2
    assert "structure factors are needed" in err.splitlines()[0]
    assert list(tmp_path.iterdir()) == []


def test_process_exit_status_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nanobragg", "-N", "x"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == "nanoBragg: error: -N: 'x' is not an integer"


def test_unknown_flag_raises_usage_error():
    with pytest.raises(UsageError, match="unknown flag -N5"):
        parse(["-N5"])


def test_help_lists_flags(capsys):
    assert run(["-h"]) == 0
    out = capsys.readouterr().out
    assert "-detector_abs -detector_absorb" in out and "-mosaic_dom -mosaic_domains" in out


def test_default_outputs_written_as_c_does(tmp_path, capsys):
    args = "-default_F 100 -cell 100 100 100 90 90 90 -lambda 6.2 -N 2 -detpixels 16 -seed 5".split()
    status, _ = _run(args, tmp_path, capsys)
    assert status == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["floatimage.bin", "image.pgm", "intimage.img", "noiseimage.img"]
