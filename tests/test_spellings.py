"""Every spelling the C program's documents use: accepted when C acts on it, refused with a hint otherwise.

The lists below come from the three documents of the C program (bl831/nanoBragg): the comment
at the top of nanoBragg.c, its usage text, and the upstream README (its option list and
examples). For each spelling, the flag C's parser takes it for (its ``strstr`` tests, in
order), or None where no test matches and C skips the word with the values after it.
"""
import re
from pathlib import Path

import pytest

from nanobragg.cli.flags import BY_NAME, FLAGS
from nanobragg.cli.main import run
from nanobragg.cli.noisify import BY_NAME as NOISIFY_FLAGS
from nanobragg.cli.nonbragg_flags import BY_NAME as NONBRAGG_FLAGS
from nanobragg.cli.parser import UsageError, parse, split_flags
from nanobragg.cli.suggest import C_IGNORES, closest
from nanobragg.io import read_hkl, read_source_file
from util import in_folder

README = Path(__file__).resolve().parents[1] / "README.md"
BASE = "-default_F 100 -cell 100 100 100 90 90 90 -lambda 6.2 -N 2 -distance 100 -detpixels 16 -nonoise -nopgm".split()

#: The comment at the top of nanoBragg.c (its example command lines).
HEADER = {
    "-mat": "-mat", "-hkl": "-hkl", "-distance": "-distance", "-lambda": "-lambda",
    "-dispersion": "-dispersion", "-dispstep": None, "-detsize": "-detsize", "-pixel": "-pixel",
    "-hdiv": None, "-hdivstep": "-hdivstep", "-vdiv": None, "-vdivstep": "-vdivstep",
    "-fluence": "-fluence", "-N": "-N", "-water": "-water", "-cell": "-cell", "-misset": "-misset",
}

#: The usage text nanoBragg.c prints (``-source_distance`` is a commented-out line of it).
USAGE = {
    "-mat": "-mat", "-hkl": "-hkl", "-misset": "-misset", "-cell": "-cell", "-default_F": "-default_F",
    "-distance": "-distance", "-detsize": "-detsize", "-detsize_f": "-detsize_f", "-detsize_s": "-detsize_s",
    "-detpixels": "-detpixels", "-detpixels_x": "-detpixels_f", "-detpixels_y": "-detpixels_s",
    "-pixel": "-pixel", "-img": "-img", "-mask": "-mask", "-detector_absorb": "-detector_abs",
    "-detector_thick": "-detector_thick", "-detector_thicksteps": "-detector_thicksteps",
    "-Xbeam": "-Xbeam", "-Ybeam": "-Ybeam", "-mosflm": "-mosflm", "-denzo": "-denzo", "-xds": "-xds",
    "-ORGX": "-ORGX", "-ORGY": "-ORGY", "-twotheta": "-twotheta", "-N": "-N", "-Na": "-Na", "-Nb": "-Nb",
    "-Nc": "-Nc", "-xtalsize": "-xtalsize", "-square_xtal": "-square_xtal", "-round_xtal": "-round_xtal",
    "-gauss_xtal": "-gauss_xtal", "-tophat_spots": "-binary_spots", "-oversample": "-oversample",
    "-oversample_thick": "-oversample_thick", "-oversample_polar": "-oversample_polar",
    "-oversample_omega": "-oversample_omega", "-lambda": "-lambda", "-energy": "-energy",
    "-mosaic": "-mosaic", "-mosaic_domains": "-mosaic_dom", "-dispersion": "-dispersion",
    "-dispsteps": "-dispsteps", "-hdivrange": "-hdivrange", "-vdivrange": "-vdivrange",
    "-hdivstep": "-hdivstep", "-vdivstep": "-vdivstep", "-square_div": "-square_div", "-phi": "-phi",
    "-osc": "-osc", "-phisteps": "-phisteps", "-water": "-water", "-floatfile": "-floatfile",
    "-intfile": "-intfile", "-scale": "-scale", "-adc": "-adc", "-polar": "-polar",
    "-noisefile": "-noisefile", "-pgmfile": "-pgmfile", "-pgmscale": "-pgmscale", "-nopgm": "-nopgm",
    "-roi": "-roi", "-printout": "-printout", "-seed": "-seed", "-mosaic_seed": "-mosaic_seed",
    "-misset_seed": "-misset_seed", "-fluence": "-fluence", "-flux": "-flux", "-beamsize": "-beamsize",
    "-exposure": "-exposure", "-nonoise": "-nonoise", "-noprogress": "-noprogress", "-nopolar": "-nopolar",
    "-nointerpolate": "-nointerpolate", "-interpolate": "-interpolate", "-point_pixel": "-point_pixel",
    "-curved_det": "-curved_det", "-fdet_vector": "-fdet_vector", "-sdet_vector": "-sdet_vector",
    "-odet_vector": "-odet_vector", "-beam_vector": "-beam_vector", "-polar_vector": "-polar_vector",
    "-spindle_axis": "-spindle_axis", "-pix0_vector": "-pix0_vector", "-source_distance": None,
}

#: The upstream README: its option list and its nanoBragg examples (the nonBragg example's
#: ``-stol -thick -MW -density`` are nonBragg's; ``-stol -MW -density`` are read by nanoBragg too).
UPSTREAM_README = {
    "-hkl": "-hkl", "-matrix": "-mat", "-mat": "-mat", "-cell": "-cell", "-misset": "-misset",
    "-Na": "-Na", "-Nb": "-Nb", "-Nc": "-Nc", "-N": "-N", "-samplesize": "-samplesize",
    "-sample_thick": "-sample_thick", "-sample_x": "-sample_thick", "-sample_width": "-sample_width",
    "-sample_y": "-sample_width", "-sample_height": "-sample_height", "-sample_z": "-sample_height",
    "-img": "-img", "-distance": "-distance", "-close_distance": "-close_distance", "-detsize": "-detsize",
    "-detsize_x": None, "-detsize_y": None, "-pixel": "-pixel", "-detpixels": "-detpixels",
    "-detpixels_x": "-detpixels_f", "-detpixels_y": "-detpixels_s", "-Xbeam": "-Xbeam", "-Ybeam": "-Ybeam",
    "-Xclose": "-Xclose", "-Yclose": "-Yclose", "-ORGX": "-ORGX", "-ORGY": "-ORGY",
    "-detector_rotx": "-detector_rotx", "-detector_roty": "-detector_roty", "-detector_rotz": "-detector_rotz",
    "-twotheta": "-twotheta", "-pivot": "-pivot", "-xdet_vector": None, "-ydet_vector": None,
    "-zdet_vector": None, "-beam_vector": "-beam_vector", "-polar_vector": "-polar_vector",
    "-spindle_axis": "-spindle_axis", "-twotheta_axis": "-twotheta_axis", "-pix0_vector": "-pix0_vector",
    "-curved_det": "-curved_det", "-oversample": "-oversample", "-roi": "-roi", "-mask": "-mask",
    "-lambda": "-lambda", "-fluence": "-fluence", "-flux": "-flux", "-exposure": "-exposure",
    "-beamsize": "-beamsize", "-hdivrange": "-hdivrange", "-vdivrange": "-vdivrange",
    "-hdivstep": "-hdivstep", "-vdivstep": "-vdivstep", "-round_div": "-round_div",
    "-square_div": "-square_div", "-dispersion": "-dispersion", "-dispsteps": "-dispsteps",
    "-sourcefile": "-sourcefile", "-coherent": "-coherent", "-mosaic": "-mosaic",
    "-mosaic_domains": "-mosaic_dom", "-phi": "-phi", "-osc": "-osc", "-phistep": "-phistep",
    "-phisteps": "-phisteps", "-floatfile": "-floatfile", "-intfile": "-intfile", "-pgmfile": "-pgmfile",
    "-noisefile": "-noisefile", "-nonoise": "-nonoise", "-nopgm": "-nopgm", "-scale": "-scale",
    "-pgmscale": "-pgmscale", "-adcoffset": "-adc", "-point_pixel": "-point_pixel",
    "-printout": "-printout", "-noprogress": "-noprogress", "-nointerpolate": "-nointerpolate",
    "-interpolate": "-interpolate", "-round_xtal": "-round_xtal", "-square_xtal": "-square_xtal",
    "-binary_spots": "-binary_spots", "-seed": "-seed", "-mosaic_seed": "-mosaic_seed",
    "-hdiv": None, "-vdiv": None, "-water": "-water", "-MW": "-MW", "-density": "-density", "-stol": "-stol",
}

DOCUMENTS = {"nanoBragg.c header": HEADER, "usage text": USAGE, "upstream README": UPSTREAM_README}
ACTED_ON = sorted({(doc, s, c) for doc, table in DOCUMENTS.items() for s, c in table.items() if c})
IGNORED = sorted({s for table in DOCUMENTS.values() for s, c in table.items() if c is None})

#: The flag meant by each spelling C ignores, and words of the message.
MEANT = {
    "-hdiv": "-hdivrange", "-vdiv": "-vdivrange", "-dispstep": "-dispsteps",
    "-detsize_x": "-detsize_f", "-detsize_y": "-detsize_s", "-xdet_vector": "-fdet_vector",
    "-ydet_vector": "-sdet_vector", "-zdet_vector": "-odet_vector", "-source_distance": "-sourcefile",
}


def _run(args, tmp_path, capsys):
    with in_folder(tmp_path):
        status = run(args, log=lambda *_: None)
    return status, capsys.readouterr().err


def _values(flag, name):
    """Values with which ``name`` parses (the first candidate that its converters accept)."""
    n = len(flag.values)
    for word in ("2", "0.5", "beam", "c", "float32", "cpu", "random", "file.txt"):
        try:
            parse([name] + [word] * n)
        except UsageError:
            continue
        return [word] * n
    raise AssertionError(f"no value found for {name}")


def _same_settings(a, b):
    """Equal in every field (the dataclasses' equality leaves out which flag set each field)."""
    assert a == b
    assert set(a.origins) == set(b.origins)


# --- each synonym parses to the same Settings as its canonical flag ---

SYNONYMS = [(flag.names[0], alias) for flag in FLAGS for alias in flag.names[1:]]


@pytest.mark.parametrize("canonical, alias", SYNONYMS, ids=[a for _, a in SYNONYMS])
def test_each_synonym_parses_as_its_flag(canonical, alias):
    flag = BY_NAME[canonical]
    values = _values(flag, canonical)
    _same_settings(parse([alias] + values), parse([canonical] + values))


@pytest.mark.parametrize("doc, spelling, meaning", ACTED_ON, ids=[f"{d}:{s}" for d, s, _ in ACTED_ON])
def test_every_documented_spelling_c_acts_on_is_accepted(doc, spelling, meaning):
    assert BY_NAME.get(spelling) is BY_NAME[meaning], f"{spelling} ({doc}) should be read as {meaning}"


def test_matrix_is_mat_in_the_upstream_readme_example():
    readme = "-hkl P1.hkl -matrix A.mat -lambda 6.2 -N 10 -fluence 2e22 -water 4".split()
    s = parse(readme)
    assert s.files.mat == "A.mat"
    _same_settings(s, parse([w if w != "-matrix" else "-mat" for w in readme]))


def test_adcoffset_is_adc():
    s = parse("-adcoffset 10".split())
    assert s.output.adc == 10.0
    _same_settings(s, parse("-adc 10".split()))


# --- spellings C ignores stay errors, naming the flag meant ---

@pytest.mark.parametrize("spelling", IGNORED)
def test_spellings_c_ignores_are_refused_with_the_flag_meant(spelling):
    assert spelling not in BY_NAME
    assert C_IGNORES[spelling][0] == MEANT[spelling]
    with pytest.raises(UsageError) as err:
        parse([spelling, "1", "0", "0"])
    message = str(err.value)
    assert message.startswith(f"unknown flag {spelling} (")
    assert "ignores it" in message and MEANT[spelling] in message
    assert "\n" not in message


def test_hints_name_why():
    assert "did you mean -hdivrange?" in _message(["-hdiv", "0"])
    assert "did you mean -dispsteps?" in _message(["-dispstep", "3"])
    assert "did you mean -fdet_vector?" in _message(["-xdet_vector", "1", "0", "0"])
    assert "did you mean -detsize_f?" in _message(["-detsize_x", "100"])
    assert "only nonBragg reads it" in _message(["-detsize_x", "100"])
    source = _message(["-source_distance", "10000"])
    assert "commented out" in source and "nonBragg" in source and "-sourcefile" in source


def test_hints_only_where_the_flag_meant_exists():
    """nonBragg.c ignores -hdiv too (same hint); noisify has no divergence (a plain suggestion)."""
    with pytest.raises(UsageError, match=r"ignores it.*did you mean -hdivrange\?"):
        split_flags(["-hdiv", "0"], NONBRAGG_FLAGS)
    split_flags(["-source_distance", "10"], NONBRAGG_FLAGS)  # a real flag of nonBragg
    split_flags(["-detsize_x", "10"], NONBRAGG_FLAGS)
    with pytest.raises(UsageError) as err:
        split_flags(["-hdiv", "0"], NOISIFY_FLAGS)
    assert "ignores it" not in str(err.value) and "did you mean" in str(err.value)


def _message(argv):
    with pytest.raises(UsageError) as err:
        parse(argv)
    return str(err.value)


# --- every unknown flag gets a "did you mean" from the table ---

@pytest.mark.parametrize("typed, meant", [
    ("-xbeam", "-Xbeam"), ("-Lambda", "-lambda"), ("-dist", "-distance"), ("-oversampl", "-oversample"),
    ("-detpixel", "-detpixels"), ("-mosaic_domain", "-mosaic_domains"), ("-N5", "-N"), ("-n", "-N"),
    ("-hklfile", "-hkl"), ("-phistart", "-phistep"),
])
def test_unknown_flag_suggests_the_closest(typed, meant):
    message = _message([typed, "1"])
    assert re.fullmatch(rf"unknown flag {re.escape(typed)}; did you mean [-\w, ]+\?", message.replace(" or ", ", "))
    assert meant in message.split("did you mean ", 1)[1]


def test_every_unknown_flag_gets_a_suggestion():
    for typed in ("-bogus", "-zzzzzzzz", "-q", "-matrixfile", "--distance"):
        assert "; did you mean -" in _message([typed])
    assert closest("-dist", {"-distance": None, "-dials": None})[0] == "-distance"
    assert closest("-x", {}) == []


# --- a value after a flag that takes none, or after all of a flag's values ---

def test_oversample_thick_takes_no_value():
    message = _message(["-oversample_thick", "0"])
    assert message.startswith("-oversample_thick takes no value, but '0' follows it")
    assert "applies -oversample_thick" in message


@pytest.mark.parametrize("flag", [f.names[0] for f in FLAGS if not f.values])
def test_every_switch_says_it_takes_no_value(flag):
    assert _message([flag, "1"]).startswith(f"{flag} takes no value, but '1' follows it")


def test_a_value_beyond_a_flags_values():
    assert _message(["-distance", "100", "200"]) == "unexpected value '200': -distance takes 1 value"
    assert _message("-cell 1 2 3 90 90 90 90".split()) == "unexpected value '90': -cell takes 6 values"
    assert _message(["7"]) == "unexpected value '7' (no flag takes it)"


@pytest.mark.parametrize("args, words", [
    (["-hdiv", "0.28"], "unknown flag -hdiv (the C program ignores it and its value); did you mean -hdivrange?"),
    (["-matrixx", "A.mat"], "unknown flag -matrixx; did you mean -matrix"),
    (["-oversample_thick", "0"], "-oversample_thick takes no value, but '0' follows it"),
    (["-nonoise", "1"], "-nonoise takes no value"),
])
def test_messages_are_one_line_exit_2(args, words, tmp_path, capsys):
    status, err = _run(BASE + args, tmp_path, capsys)
    assert status == 2
    first, hint = err.strip().splitlines()
    assert first == f"nanoBragg: error: {words}" or first.startswith(f"nanoBragg: error: {words}")
    assert "nanoBragg -h" in hint
    assert list(tmp_path.iterdir()) == []


# --- C's silent habits that apply here ---

def test_curved_det_applies_as_the_last_argument():
    assert parse(["-distance", "100", "-curved_det"]).experiment.detector.curved is True
    assert parse(["-curved_det", "-distance", "100"]).experiment.detector.curved is True


def test_comment_lines_of_hkl_and_source_files(tmp_path):
    hkl = tmp_path / "P1.hkl"
    hkl.write_text("# h k l F\n0 0 1 100\n# more\n1 0 0 50\n")
    assert len(read_hkl(hkl).F) == 2
    sources = tmp_path / "sources.txt"
    sources.write_text("# X Y Z I lambda\n-10 0 0 1 1e-10\n")
    table = read_source_file(sources)
    assert table.shape == (1, 5) and table[0, 3] == 1.0 and table[0, 4] == 1e-10


# --- the README lists these differences ---

def _differences() -> str:
    text = README.read_text()
    start = text.index("### Where this program deliberately differs from the C program")
    end = text.index("\n## ", start)
    return re.sub(r"\s+", " ", text[start:end])


@pytest.mark.parametrize("words", [
    "`-matrix` for `-mat`", "`-adcoffset` for `-adc`",
    "`-hdiv`, `-vdiv` -> `-hdivrange`, `-vdivrange`", "`-dispstep` -> `-dispsteps`",
    "`-detsize_x`, `-detsize_y` -> `-detsize_f`, `-detsize_s`",
    "`-xdet_vector`, `-ydet_vector`, `-zdet_vector` -> `-fdet_vector`, `-sdet_vector`, `-odet_vector`",
    "`-source_distance`, whose parsing is commented out in nanoBragg.c", 'every unknown flag gets a "did you mean"',
    "a word after a flag that takes no value is an error saying so",
    "so `-oversample_thick 0` turns the option on",
    "`-curved_det` applies wherever it stands (C ignores it as the last argument",
    "`#` lines are comments in HKL and source files",
    "an HKL file that starts with `#` has 0 reflections",
    "`# X Y Z I lambda` becomes a source at the origin with weight and wavelength 0",
])
def test_readme_lists_the_differences(words):
    assert words in _differences()
