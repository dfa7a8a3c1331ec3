"""Every file the command reads and writes: C's bytes, C's precedence rules, clean failures.

Byte comparisons use float64 mode, in which our float image rounds to the
same float32 values as C's, so the SMV, noise and PGM files are identical.
"""
import gzip
import hashlib
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from golden import CASES, DATA, INPUTS, case_names, load_case
from nanobragg.cli.main import run
from nanobragg.io import int_image_from_float, read_float_image, read_smv, smv_bytes, write_smv
from util import in_folder

#: output kind -> (flag, file name), as the golden cases were made.
OUTPUT_FLAGS = {"float": ("-floatfile", "float.bin"), "int": ("-intfile", "int.img"),
                "noise": ("-noisefile", "noise.img"), "pgm": ("-pgmfile", "image.pgm")}
#: output kind -> C's file in a golden case folder.
C_FILES = {"int": "int.img.gz", "noise": "noise.img.gz", "pgm": "image.pgm.gz"}
BYTE_CASES = [n for n in case_names() if any((CASES / n / f).exists() for f in C_FILES.values())]
PHOTONS = re.compile(r"^\d+ photons on noise image \(\d+ overloads\)$", re.M)
SMALL = "-default_F 100 -cell 100 100 100 90 90 90 -lambda 6.2 -N 2 -distance 100 -detpixels 16".split()


def command(args, folder: Path) -> tuple[int, list[str]]:
    """Run the command in ``folder``; return the exit status and the printed lines."""
    lines: list[str] = []
    with in_folder(folder):
        status = run([str(a) for a in args], log=lines.append)
    return status, lines


def with_inputs(folder: Path) -> Path:
    """Copy the shared input files into ``folder``."""
    for f in INPUTS.iterdir():
        shutil.copy(f, folder / f.name)
    return folder


def golden_args(name: str) -> list[str]:
    """A golden case's arguments with the output flags C was run with, float64 mode."""
    case = load_case(name)
    args = list(case["args"])
    for kind in case["outputs"]:
        args += OUTPUT_FLAGS[kind]
    args += [] if "noise" in case["outputs"] else ["-nonoise"]
    args += [] if "pgm" in case["outputs"] else ["-nopgm"]
    return args + ["-dtype", "float64"]


def sha(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------ outputs vs C


def test_byte_cases_exist():
    assert BYTE_CASES == ["detsize-256", "intfile-scale", "noise-seeded", "seed-k3g3", "water"]


@pytest.mark.parametrize("name", BYTE_CASES)
def test_outputs_byte_identical_to_c(name, tmp_path):
    """SMV (header included), noise and PGM files equal C's; so does the noise summary line."""
    status, lines = command(golden_args(name), with_inputs(tmp_path))
    assert status == 0
    for kind, gz in C_FILES.items():
        if (CASES / name / gz).exists():
            ours = (tmp_path / OUTPUT_FLAGS[kind][1]).read_bytes()
            assert ours == gzip.decompress((CASES / name / gz).read_bytes()), kind
    c_photons = PHOTONS.findall((CASES / name / "stdout.txt").read_text())
    assert PHOTONS.findall("\n".join(lines)) == c_photons
    assert bool(c_photons) == ("noise" in load_case(name)["outputs"])


#: A run of the C program recorded here (one thread): -roi, -scale, -adc, -pgmscale, clipped
#: int pixels and 1125 noise overloads. SHA-256 of C's int, noise and pgm files.
RECORDED_ARGS = ("-cell 100 100 100 90 90 90 -default_F 300 -N 10 -lambda 1.0 -distance 100 -detpixels_f 96 "
                 "-detpixels_s 80 -pixel 0.1 -oversample 1 -seed 5 -roi 2 90 3 70 -scale 0.9 -adc 12 "
                 "-fluence 3e31 -pgmscale 0.002").split()
RECORDED_SHA = {"int.img": "58dc6588d8e2c41bf7221a30f2544232f643aec676efe95a92a065191147487e",
                "noise.img": "d803b09acf8dafad2b3afe54afce3e13b39abee633fdd636788ecfc55921317d",
                "image.pgm": "05bca75a506da863ac31bd10d9a6e6bba2f37685597eb5d4fa8c09897182eeb3"}
RECORDED_LINES = ["intfile_scale = 0.9", "pgm_scale = 0.002", "589452782 photons on noise image (1125 overloads)"]


def test_recorded_c_run_with_overloads(tmp_path):
    """Scales, offset, ROI and overload count as C writes and prints them."""
    outputs = ["-intfile", "int.img", "-noisefile", "noise.img", "-pgmfile", "image.pgm", "-floatfile", "f.bin"]
    status, lines = command(RECORDED_ARGS + outputs + ["-dtype", "float64"], tmp_path)
    assert status == 0
    assert {name: sha(tmp_path / name) for name in RECORDED_SHA} == RECORDED_SHA
    assert [line for line in lines if line in RECORDED_LINES] == RECORDED_LINES


# ------------------------------------------------------------ noise, pgm and default names


def test_noise_seed_from_clock_is_printed_and_reproducible(tmp_path):
    """Without -seed the seed is minus the clock's seconds, printed as C prints it."""
    before = int(time.time())
    status, lines = command(SMALL + ["-noisefile", "a.img", "-nopgm"], tmp_path)
    after = int(time.time())
    assert status == 0
    seeds = [int(m.group(1)) for m in map(re.compile(r"^  seed: (-?\d+)$").match, lines) if m]
    assert len(seeds) == 1 and -after <= seeds[0] <= -before
    status, _ = command(SMALL + ["-noisefile", "b.img", "-nopgm", "-seed", str(-seeds[0])], tmp_path)
    assert status == 0
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()


@pytest.mark.parametrize("flags, written, noise", [
    (["-nonoise", "-nopgm"], {"floatimage.bin", "intimage.img"}, False),
    (["-noisefile", "n.img", "-nonoise", "-pgmfile", "p.pgm", "-nopgm"], {"floatimage.bin", "intimage.img"}, False),
    (["-nonoise", "-noisefile", "n.img", "-nopgm", "-pgmscale", "2"],
     {"floatimage.bin", "intimage.img", "n.img", "image.pgm"}, True),
    (["-seed", "3"], {"floatimage.bin", "intimage.img", "noiseimage.img", "image.pgm"}, True),
])
def test_nonoise_nopgm_and_default_names(flags, written, noise, tmp_path):
    """C's flags act in order: -noisefile/-pgmfile/-pgmscale turn outputs on, -nonoise/-nopgm off."""
    status, lines = command(SMALL + flags, tmp_path)
    assert status == 0
    assert {p.name for p in tmp_path.iterdir()} == written
    assert any(line.startswith("  seed: ") for line in lines) == noise


# ------------------------------------------------------------ structure factor files


def hkl_pattern_args(hkl: str) -> list[str]:
    """The hkl-pattern golden case with another HKL file (or none)."""
    args = load_case("hkl-pattern")["args"]
    assert args[:2] == ["-hkl", "pattern.hkl"]
    return (["-hkl", hkl] if hkl else []) + args[2:] + ["-nonoise", "-nopgm", "-dtype", "float64"]


def test_fdump_round_trip(tmp_path):
    """-hkl writes Fdump.bin with C's bytes; without -hkl the same image comes from it."""
    with_inputs(tmp_path)
    status, lines = command(hkl_pattern_args("pattern.hkl") + ["-floatfile", "a.bin"], tmp_path)
    assert status == 0 and "writing dump file for next time: Fdump.bin" in lines
    assert (tmp_path / "Fdump.bin").read_bytes() == (DATA / "Fdump_pattern.bin").read_bytes()
    (tmp_path / "pattern.hkl").unlink()
    status, lines = command(hkl_pattern_args(None) + ["-floatfile", "b.bin"], tmp_path)
    assert status == 0 and "reading Fs from Fdump.bin" in lines
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert np.fromfile(tmp_path / "a.bin", "<f4").max() > 0


def test_dump_flag_names_the_file(tmp_path):
    """-dump other.bin is written (C's bytes, -default_F filling the grid) and read back."""
    with_inputs(tmp_path)
    args = hkl_pattern_args("pattern.hkl") + ["-default_F", "7", "-dump", "other.bin", "-floatfile", "a.bin"]
    assert command(args, tmp_path)[0] == 0
    assert not (tmp_path / "Fdump.bin").exists()
    assert (tmp_path / "other.bin").read_bytes() == (DATA / "Fdump_pattern_defaultF7.bin").read_bytes()
    args = hkl_pattern_args(None) + ["-default_F", "7", "-dump", "other.bin", "-floatfile", "b.bin"]
    status, lines = command(args, tmp_path)
    assert status == 0 and "reading Fs from other.bin" in lines
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_phase_sigma_columns_give_same_image(tmp_path):
    """Extra columns (sigma, phase) after F change nothing: same image, same dump."""
    with_inputs(tmp_path)
    for hkl, out in (("pattern.hkl", "a"), ("pattern_phase_sigma.hkl", "b")):
        args = hkl_pattern_args(hkl) + ["-floatfile", f"{out}.bin", "-dump", f"{out}.dump"]
        assert command(args, tmp_path)[0] == 0
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert (tmp_path / "a.dump").read_bytes() == (tmp_path / "b.dump").read_bytes()


# ------------------------------------------------------------ -img and -mask

FAST, SLOW, BLOCK = 64, 48, (slice(10, 20), slice(30, 46))
ROI = ["-roi", "4", "60", "2", "40"]
RENDER = "-default_F 100 -cell 100 100 100 90 90 90 -N 5 -nonoise -nopgm -dtype float64".split()


def write_detector_files(folder: Path) -> None:
    """A mask (little-endian, zero block) and an img (big-endian) whose headers disagree."""
    mask = np.ones((SLOW, FAST), np.uint16)
    mask[BLOCK] = 0
    write_smv(folder / "mask.img", {"BYTE_ORDER": "little_endian", "PIXEL_SIZE": 0.15, "DISTANCE": 80.0,
                                    "WAVELENGTH": 5.0, "BEAM_CENTER_X": 3.0, "BEAM_CENTER_Y": 2.5}, mask)
    write_smv(folder / "img.img", {"BYTE_ORDER": "big_endian", "PIXEL_SIZE": 0.1, "DISTANCE": 90.0,
                                   "BEAM_CENTER_X": 2.8}, np.full((SLOW, FAST), 7, np.uint16))


def printed_stats(lines: list[str]) -> dict:
    """mean, rms and rmsd as printed."""
    text = "\n".join(lines)
    return {k: float(re.search(rf"\b{k}= (\S+)", text).group(1)) for k in ("mean", "rms", "rmsd")}


def c_rule_stats(image: np.ndarray, rendered: np.ndarray, roi: np.ndarray) -> dict:
    """C's rule: mean and rms over rendered pixels, rmsd about that mean over every ROI pixel."""
    v = image.astype(np.float64)
    n, mean = rendered.sum(), v[rendered].sum() / rendered.sum()
    rmsd = np.sqrt(((v[roi] - mean) ** 2).sum() / (roi.sum() - 1))
    return {"mean": mean, "rms": np.sqrt((v[rendered] ** 2).sum() / (n - 1)), "rmsd": rmsd}


def test_img_and_mask_headers_precedence_and_mask(tmp_path):
    """Mask header, then img header, then flags; zero mask pixels stay 0 but count in rmsd."""
    write_detector_files(tmp_path)
    masked = ["-mask", "mask.img", "-img", "img.img", "-distance", "70", *ROI,
              "-floatfile", "m.bin", "-intfile", "m.img"]
    status, lines = command(RENDER + masked, tmp_path)
    assert status == 0
    # pixel size and Xbeam from img, wavelength and flipped Ybeam (7.2 - 2.5 mm) from the mask, distance from the flag
    plain = ["-detpixels_f", FAST, "-detpixels_s", SLOW, "-pixel", "0.1", "-lambda", "5", "-Xbeam", "2.8",
             "-Ybeam", "4.7", "-distance", "70", *ROI, "-floatfile", "p.bin", "-intfile", "p.img"]
    assert command(RENDER + plain, tmp_path)[0] == 0
    assert read_smv(tmp_path / "m.img")[0] == read_smv(tmp_path / "p.img")[0]
    image = read_float_image(tmp_path / "m.bin", (SLOW, FAST))
    expected = read_float_image(tmp_path / "p.bin", (SLOW, FAST)).copy()
    expected[BLOCK] = 0.0
    np.testing.assert_array_equal(image, expected)
    assert (image[BLOCK] == 0).all() and (expected[15, 20:30] > 0).all()
    roi = np.zeros((SLOW, FAST), bool)
    roi[2:41, 4:61] = True
    rendered = roi.copy()
    rendered[BLOCK] = False
    want = c_rule_stats(image, rendered, roi)
    assert printed_stats(lines) == pytest.approx(want, rel=2e-5)
    assert c_rule_stats(image, roi, roi)["mean"] < want["mean"] * 0.99  # the rule matters here


def test_img_header_alone_sets_detector(tmp_path):
    """-img alone: its size, pixel, distance and beam centre (not flipped) are used."""
    write_detector_files(tmp_path)
    assert command(RENDER + ["-img", "img.img", "-intfile", "a.img", "-floatfile", "a.bin"], tmp_path)[0] == 0
    header = read_smv(tmp_path / "a.img")[0]
    assert (header["SIZE1"], header["SIZE2"], header["PIXEL_SIZE"]) == (str(FAST), str(SLOW), "0.1")
    assert (header["DISTANCE"], header["BEAM_CENTER_X"]) == ("90", "2.8")


# ------------------------------------------------------------ bad inputs

TRUNCATED_SMV = (b"{\nHEADER_BYTES=1024;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
                 b"SIZE1=4;\nSIZE2=4;\n}\f").ljust(700, b" ")
#: file name -> content of the malformed inputs.
BAD_FILES = {
    "field.hkl": b"1 2 3 100\n1 x 3 5\n",
    "none.hkl": b"# only a comment\n\n",
    "Fdump.bin": (DATA / "Fdump_pattern.bin").read_bytes()[:100],
    "short.img": TRUNCATED_SMV,
    "eight.mat": b"1 2 3\n4 5 6\n7 8\n",
    "bad_sources.txt": b"0 0 0 1 1e-10\n0 zero 0 1 1e-10\n",
    "mask.img": smv_bytes({"PIXEL_SIZE": 0.1}, np.ones((8, 8), np.uint16)),
}

BAD = [
    (["-hkl", "field.hkl"], "field.hkl, line 2:", "field.hkl"),
    (["-hkl", "none.hkl"], "none.hkl: no reflections", "none.hkl"),
    (["-default_F", "1"], "Fdump.bin: Fdump file truncated", "Fdump.bin"),
    (["-img", "short.img"], "short.img: SMV header truncated", "short.img"),
    (["-mat", "eight.mat"], "eight.mat: expected 9 numbers, found 8", "eight.mat"),
    (["-hkl", "pattern.hkl", "-sourcefile", "bad_sources.txt"], "bad_sources.txt, line 2:", "bad_sources.txt"),
    (["-default_F", "1", "-stol", "missing.stol"], "missing.stol: cannot open file", None),
    (["-default_F", "1", "-mask", "mask.img", "-detpixels", "16"], "-mask mask.img: mask has 8x8 pixels", "mask.img"),
    (["-default_F", "1", "-intfile", "nowhere/x.img"], "cannot write nowhere/x.img", None),
    (["-default_F", "1", "-noisefile", "nowhere/x.img"], "cannot write nowhere/x.img", None),
    (["-default_F", "1", "-pgmfile", "nowhere/x.pgm"], "cannot write nowhere/x.pgm", None),
]


@pytest.mark.parametrize("args, words, bad_file", BAD)
def test_bad_input_file_one_line_exit_2_nothing_written(args, words, bad_file, tmp_path, capsys):
    """One line naming the file (and line), status 2, no traceback, no file created or changed."""
    with_inputs(tmp_path)
    if bad_file:
        (tmp_path / bad_file).write_bytes(BAD_FILES[bad_file])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    status, _ = command(SMALL[2:] + args, tmp_path)
    err = capsys.readouterr().err
    assert status == 2
    first, hint = err.strip().splitlines()
    assert first.startswith("nanoBragg: error: ") and words in first
    assert "Traceback" not in err and "nanoBragg -h" in hint
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_unwritable_dump_is_only_a_warning(tmp_path):
    """As in C, a dump file that cannot be written is reported and the run goes on."""
    with_inputs(tmp_path)
    status, lines = command(hkl_pattern_args("pattern.hkl") + ["-dump", "nowhere/F.bin"], tmp_path)
    assert status == 0 and "WARNING: unable to open dump file: nowhere/F.bin" in lines
    assert (tmp_path / "floatimage.bin").exists()


# ------------------------------------------------------------ other readers


@pytest.mark.parametrize("flag", ["-stol", "-4stol", "-Q"])
def test_stol_file_is_read_and_does_not_change_the_image(flag, tmp_path):
    """C reads the S(stol) table but does not use it for the image; -stolout is accepted."""
    (tmp_path / "s.txt").write_text("0.0 1.0\n0.1 2.5\n")
    assert command(SMALL + ["-nonoise", "-nopgm", "-floatfile", "a.bin"], tmp_path)[0] == 0
    args = SMALL + ["-nonoise", "-nopgm", "-floatfile", "b.bin", flag, "s.txt", "-stolout", "o.stol"]
    status, lines = command(args, tmp_path)
    assert status == 0 and "reading s.txt" in lines
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert not (tmp_path / "o.stol").exists()


def test_matrix_with_extra_lines_and_short_source_file(tmp_path):
    """-mat reads the first nine numbers of a MOSFLM file; -sourcefile takes 1-5 columns."""
    with_inputs(tmp_path)
    lyso = (tmp_path / "lyso.mat").read_text()
    (tmp_path / "long.mat").write_text(lyso.rstrip("\n") + "\n1 2 3\nextra words\n")
    (tmp_path / "src.txt").write_text("-10\n-10 0.002\n-10 0 0.002\n-10 0.002 0 0.5\n")
    base = ["-default_F", "100", "-N", "2", "-distance", "100", "-detpixels", "16", "-nonoise", "-nopgm"]
    assert command(base + ["-mat", "lyso.mat", "-floatfile", "a.bin"], tmp_path)[0] == 0
    assert command(base + ["-mat", "long.mat", "-floatfile", "b.bin"], tmp_path)[0] == 0
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    status, lines = command(base + ["-mat", "lyso.mat", "-sourcefile", "src.txt"], tmp_path)
    assert status == 0 and any(line.startswith("  4 sources") for line in lines)


# ------------------------------------------------------------ fabio


def test_fabio_opens_command_output(tmp_path):
    """fabio reads our SMV files: shape (slow, fast), pixels and header geometry."""
    fabio = pytest.importorskip("fabio")
    args = ["-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-lambda", "1.3",
            "-distance", "120", "-detpixels_f", "40", "-detpixels_s", "24", "-pixel", "0.15", "-Xbeam", "2.5",
            "-Ybeam", "1.75", "-floatfile", "f.bin", "-intfile", "i.img", "-noisefile", "n.img", "-seed", "9",
            "-nopgm"]
    assert command(args, tmp_path)[0] == 0
    floats = read_float_image(tmp_path / "f.bin", (24, 40))
    image = fabio.open(str(tmp_path / "i.img"))
    assert image.data.shape == (24, 40)
    np.testing.assert_array_equal(image.data, int_image_from_float(floats, 55000.0 / floats.max(), 40.0))
    h = image.header
    got = [float(h[k]) for k in ("DISTANCE", "PIXEL_SIZE", "WAVELENGTH", "BEAM_CENTER_X", "BEAM_CENTER_Y")]
    assert got == [120.0, 0.15, 1.3, 2.5, 1.75]
    noise = fabio.open(str(tmp_path / "n.img"))
    np.testing.assert_array_equal(noise.data, read_smv(tmp_path / "n.img")[1])
    assert smv_bytes(read_smv(tmp_path / "i.img")[0], image.data) == (tmp_path / "i.img").read_bytes()


def test_command_smv_fed_back_as_img_keeps_geometry(tmp_path):
    """An SMV written by the command, read back with -img, reproduces its header and image."""
    geometry = ["-detpixels_f", "40", "-detpixels_s", "24", "-pixel", "0.15", "-distance", "120", "-lambda", "1.3",
                "-Xbeam", "2.5", "-Ybeam", "1.75", "-phi", "10", "-osc", "0.5"]
    common = SMALL[:9] + ["-N", "5", "-nonoise", "-nopgm", "-dtype", "float64"]
    assert command(common + geometry + ["-intfile", "a.img", "-floatfile", "a.bin"], tmp_path)[0] == 0
    assert command(common + ["-img", "a.img", "-intfile", "b.img", "-floatfile", "b.bin"], tmp_path)[0] == 0
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
