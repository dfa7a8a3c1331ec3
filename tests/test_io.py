"""Tests of nanobragg.io against files written by the C nanoBragg."""

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import nanobragg.io  # noqa: F401
except ImportError:  # package not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nanobragg.io import (
    InputError,
    auto_int_scale,
    auto_pgm_scale,
    fdump_bytes,
    format_smv_header,
    hkl_grid,
    int_image_from_float,
    pgm_bytes,
    read_fdump,
    read_float_image,
    read_hkl,
    read_mosflm_matrix,
    read_smv,
    read_source_file,
    read_text_columns,
    smv_bytes,
    smv_header_values,
    write_fdump,
    write_float_image,
    write_pgm,
    write_smv,
)
from nanobragg.io.cformat import c_g
from nanobragg.io.pgm import pgm_pixels

DATA = Path(__file__).resolve().parent / "data"
INPUTS = DATA / "inputs"
GOLDEN = DATA / "golden_cases"


def write_text(path, text):
    """Write ``text`` to ``path`` and return the path."""
    path.write_text(text)
    return path


# ---------------------------------------------------------------- HKL


def test_hkl_pattern_values():
    table = read_hkl(INPUTS / "pattern.hkl")
    assert table.hkl.shape == (8, 3) and table.hkl.dtype == np.int64
    assert table.hkl[6].tolist() == [-1, 0, 0]
    assert table.F.tolist() == [100.0, 50.0, 25.0, 12.5, 200.0, 150.0, 75.0, 33.0]
    assert table.warnings == []


def test_hkl_grid_layout_matches_c_allocation():
    grid = hkl_grid(read_hkl(INPUTS / "pattern.hkl"), default_F=0.0)
    assert grid.bounds == (-1, 2, 0, 2, 0, 1)
    assert grid.ranges == (4, 3, 2)
    assert grid.grid.shape == (5, 4, 3)  # one zero padding plane per high side
    assert grid.grid[2 - (-1), 0, 0] == 200.0
    assert grid.grid[-1 - (-1), 0, 0] == 75.0
    assert grid.grid[0 + 1, 0, 1] == 33.0
    assert np.count_nonzero(grid.grid) == 8


def test_hkl_default_F_fills_only_unpadded_part():
    grid = hkl_grid(read_hkl(INPUTS / "pattern.hkl"), default_F=7.0)
    assert np.all(grid.grid[4, :, :] == 0) and np.all(grid.grid[:, 3, :] == 0)
    assert np.all(grid.grid[:, :, 2] == 0)
    inner = grid.grid[:4, :3, :2]
    assert np.count_nonzero(inner == 7.0) == 4 * 3 * 2 - 8
    assert grid.grid[1, 1, 0] == 25.0


def test_hkl_extra_columns_give_same_grid():
    plain = hkl_grid(read_hkl(INPUTS / "pattern.hkl"), 0.0)
    extra = hkl_grid(read_hkl(INPUTS / "pattern_phase_sigma.hkl"), 0.0)
    assert extra.bounds == plain.bounds
    np.testing.assert_array_equal(extra.grid, plain.grid)


def test_hkl_comments_blank_lines_and_duplicates(tmp_path):
    path = write_text(tmp_path / "c.hkl",
                      "# h k l F\n\n   \n 1 2 3 4.5\n  # another comment\n"
                      "0\t0\t0\t1e2\r\n1 2 3 9.0 sigma-ignored\n")
    table = read_hkl(path)
    assert table.hkl.tolist() == [[1, 2, 3], [0, 0, 0], [1, 2, 3]]
    grid = hkl_grid(table)
    assert grid.grid[1, 2, 3] == 9.0  # the later line wins
    assert grid.grid[0, 0, 0] == 100.0


def test_hkl_malformed_line_names_file_and_line(tmp_path):
    path = write_text(tmp_path / "bad.hkl", "1 0 0 10\n\n1 x 0 20\n")
    with pytest.raises(InputError, match=r"bad\.hkl, line 3"):
        read_hkl(path)


def test_hkl_too_few_columns(tmp_path):
    path = write_text(tmp_path / "short.hkl", "1 0 0 10\n1 0 0\n")
    with pytest.raises(InputError, match="line 2"):
        read_hkl(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_hkl_without_reflections(tmp_path, text):
    path = write_text(tmp_path / "empty.hkl", text)
    with pytest.raises(InputError, match="empty.hkl"):
        read_hkl(path)


def test_hkl_missing_file(tmp_path):
    with pytest.raises(InputError, match="nothere.hkl"):
        read_hkl(tmp_path / "nothere.hkl")


def test_hkl_non_integer_index_warns_like_c_and_truncates(tmp_path):
    path = write_text(tmp_path / "nonint.hkl", "1.5 0 0 10\n-1.5 0 0 20\n0 2.0 0 5\n")
    table = read_hkl(path)
    assert table.warnings == ["WARNING: non-integer value for h (1.5) at line 0",
                              "WARNING: non-integer value for h (-1.5) at line 1"]
    assert table.hkl.tolist() == [[1, 0, 0], [-1, 0, 0], [0, 2, 0]]
    grid = hkl_grid(table)
    # C's bounds for this file (checked against the C program): -1 1 0 2 0 0
    assert grid.bounds == (-1, 1, 0, 2, 0, 0)


# ---------------------------------------------------------------- Fdump


@pytest.mark.parametrize("default_F,name", [(0.0, "Fdump_pattern.bin"),
                                            (7.0, "Fdump_pattern_defaultF7.bin")])
def test_fdump_bytes_equal_c_file(default_F, name):
    grid = hkl_grid(read_hkl(INPUTS / "pattern.hkl"), default_F)
    assert fdump_bytes(grid) == (DATA / name).read_bytes()


def test_fdump_read_c_file():
    grid = read_fdump(DATA / "Fdump_pattern.bin")
    expected = hkl_grid(read_hkl(INPUTS / "pattern.hkl"))
    assert grid.bounds == expected.bounds
    np.testing.assert_array_equal(grid.grid, expected.grid)


def test_fdump_round_trip(tmp_path):
    grid = hkl_grid(read_hkl(INPUTS / "small.hkl"), default_F=3.5)
    write_fdump(tmp_path / "Fdump.bin", grid)
    back = read_fdump(tmp_path / "Fdump.bin")
    assert back.bounds == grid.bounds
    np.testing.assert_array_equal(back.grid, grid.grid)


def test_fdump_truncated(tmp_path):
    raw = (DATA / "Fdump_pattern.bin").read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(raw[:-8])
    with pytest.raises(InputError, match="truncated"):
        read_fdump(path)


@pytest.mark.parametrize("raw", [b"", b"1 2 3\n\f", b"garbage", b"1 2 3 4 5 x\n\f"])
def test_fdump_malformed_header(tmp_path, raw):
    path = tmp_path / "bad.bin"
    path.write_bytes(raw)
    with pytest.raises(InputError, match="bad.bin"):
        read_fdump(path)


# ---------------------------------------------------------------- SMV / PGM against C


def golden(case):
    """Decoded golden files and args of one C run."""
    folder = GOLDEN / case
    args = json.loads((folder / "case.json").read_text())["args"]
    stdout = (folder / "stdout.txt").read_text()
    floats = np.frombuffer(gzip.decompress((folder / "float.bin.gz").read_bytes()), "<f4")
    return folder, args, stdout, floats


def arg(args, name, default):
    return float(args[args.index(name) + 1]) if name in args else default


def c_rmsd(img):
    """C's rmsd of the float image, with its sequential double sums."""
    values = img.astype(np.float64).ravel()
    avg = np.cumsum(values)[-1] / values.size
    dev = values - avg
    return float(np.sqrt(np.cumsum(dev * dev)[-1] / (values.size - 1)))


def unpack_smv(tmp_path, folder, name):
    path = tmp_path / name.replace(".gz", "")
    raw = gzip.decompress((folder / name).read_bytes())
    path.write_bytes(raw)
    return path, raw


@pytest.mark.parametrize("case", ["detsize-256", "intfile-scale", "noise-seeded", "water"])
def test_int_image_bit_identical_to_c(tmp_path, case):
    folder, args, stdout, floats = golden(case)
    path, raw = unpack_smv(tmp_path, folder, "int.img.gz")
    header, data = read_smv(path)
    img = floats.reshape(data.shape)
    scale = auto_int_scale(max(0.0, float(img.max())), arg(args, "-scale", 0.0))
    assert f"intfile_scale = {c_g(scale)}\n" in stdout
    ints = int_image_from_float(img, scale, arg(args, "-adc", 40.0))
    assert ints.dtype == np.uint16
    np.testing.assert_array_equal(ints, data)
    assert format_smv_header(header) == raw[:512]
    assert smv_bytes(header, ints) == raw


@pytest.mark.parametrize("case", ["detsize-256", "intfile-scale"])
def test_pgm_bit_identical_to_c(tmp_path, case):
    # The pgm scale is recovered exactly by redoing C's statistics
    # (sequential double sums over the float image).
    folder, args, stdout, floats = golden(case)
    expected = gzip.decompress((folder / "image.pgm.gz").read_bytes())
    side = int(arg(args, "-detpixels", 0))
    img = floats.reshape(side, side)
    int_scale = auto_int_scale(max(0.0, float(img.max())), arg(args, "-scale", 0.0))
    pgm_scale = auto_pgm_scale(int_scale, c_rmsd(img))
    assert f"pgm_scale = {c_g(pgm_scale)}\n" in stdout
    assert pgm_bytes(img, pgm_scale) == expected
    write_pgm(tmp_path / "image.pgm", img, pgm_scale)
    assert (tmp_path / "image.pgm").read_bytes() == expected


def test_read_smv_parses_c_header(tmp_path):
    folder, _, _, _ = golden("detsize-256")
    header, data = read_smv(unpack_smv(tmp_path, folder, "int.img.gz")[0])
    assert data.shape == (256, 256)
    assert header["HEADER_BYTES"] == "512"
    assert header["BYTE_ORDER"] == "little_endian"
    assert header["SIZE1"] == "256" and header["PIXEL_SIZE"] == "0.1"
    assert header["DIALS_ORIGIN"] == "-12.9,12.9,-100"  # no semicolon in C
    assert header["XDS_ORGX"] == "129.5" and header["BEAMLINE"] == "fake"
    assert "ORGX" not in header  # keys matched exactly, no substring lookup


def detsize256_geometry(**extra):
    geometry = dict(fpixels=256, spixels=256, pixel_size=0.0001, distance=0.1,
                    wavelength=6.2e-10, xbeam=0.01285, ybeam=0.01285, fbeam=0.0129,
                    sbeam=0.0129, detsize_s=0.0256, dials_origin=(-12.9, 12.9, -100.0),
                    orgx=129.5, orgy=129.5, close_distance=0.1, phi0=0.0, osc=0.0,
                    twotheta=0.0, byte_order="little_endian")
    geometry.update(extra)
    return geometry


def test_header_from_geometry_equals_c(tmp_path):
    folder, _, _, _ = golden("detsize-256")
    raw = unpack_smv(tmp_path, folder, "int.img.gz")[1]
    header = format_smv_header(smv_header_values(**detsize256_geometry()))
    assert len(header) == 512
    assert header == raw[:512]


def test_noise_header_denzo_sign_of_zero():
    int_values = smv_header_values(**detsize256_geometry(sbeam=-0.0, fbeam=-0.0))
    noise_values = smv_header_values(**detsize256_geometry(sbeam=-0.0, fbeam=-0.0), noise=True)
    assert b"DENZO_X_BEAM=-0;\nDENZO_Y_BEAM=-0;\n" in format_smv_header(int_values)
    assert b"DENZO_X_BEAM=0;\nDENZO_Y_BEAM=0;\n" in format_smv_header(noise_values)


def test_noise_header_of_c_reformats(tmp_path):
    folder, _, _, _ = golden("noise-seeded")
    path, raw = unpack_smv(tmp_path, folder, "noise.img.gz")
    header, _ = read_smv(path)
    assert format_smv_header(header) == raw[:512]


def test_long_header_grows_to_next_block():
    values = {"BYTE_ORDER": "little_endian", "COMMENT": "x" * 600}
    header = format_smv_header(values)
    assert len(header) == 1024 and header.startswith(b"{\nHEADER_BYTES=1024;\n")


def test_smv_big_endian_read(tmp_path):
    data = np.arange(12, dtype=np.uint16).reshape(3, 4) * 257 + 1
    path = tmp_path / "big.img"
    write_smv(path, {"BYTE_ORDER": "big_endian", "TYPE": "unsigned_short"}, data)
    assert path.read_bytes()[512:] == data.astype(">u2").tobytes()
    header, back = read_smv(path)
    assert header["SIZE1"] == "4" and header["SIZE2"] == "3"
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, data)


def test_smv_big_endian_handmade(tmp_path):
    text = "{\nHEADER_BYTES=  512;\nDIM=2;\nBYTE_ORDER=big_endian;\nTYPE=unsigned_short;\nSIZE1=2;\nSIZE2=1;\n}\f"
    path = tmp_path / "hand.img"
    path.write_bytes(text.encode().ljust(512) + b"\x01\x02\x00\x03")
    header, data = read_smv(path)
    assert header["HEADER_BYTES"] == "512"
    assert data.tolist() == [[0x0102, 0x0003]]


def test_smv_short_header(tmp_path):
    path = tmp_path / "short.img"
    path.write_bytes(format_smv_header({"BYTE_ORDER": "little_endian", "SIZE1": 2, "SIZE2": 2})[:300])
    with pytest.raises(InputError, match="header truncated"):
        read_smv(path)


def test_smv_short_data(tmp_path):
    path = tmp_path / "cut.img"
    path.write_bytes(smv_bytes({}, np.ones((4, 4), np.uint16))[:-2])
    with pytest.raises(InputError, match="data truncated"):
        read_smv(path)


def test_smv_not_smv(tmp_path):
    path = write_text(tmp_path / "x.img", "hello")
    with pytest.raises(InputError, match="not an SMV"):
        read_smv(path)


def test_fabio_reads_written_smv(tmp_path):
    fabio = pytest.importorskip("fabio")
    data = (np.arange(20 * 30, dtype=np.uint32) % 65536).astype(np.uint16).reshape(20, 30)
    path = tmp_path / "image.img"
    write_smv(path, smv_header_values(**detsize256_geometry()), data)
    image = fabio.open(str(path))
    assert image.data.shape == (20, 30)
    np.testing.assert_array_equal(image.data, data)
    assert float(image.header["PIXEL_SIZE"]) == 0.1


def test_int_conversion_rounds_through_float32():
    # 1.99999999 rounds to 2.0f before floorf: C gives 2, not 1
    ints = int_image_from_float(np.array([[1.0]], np.float32), 0.49999999, 1.0)
    assert ints[0, 0] == 2
    ints = int_image_from_float(np.array([[-5.0, 1e9, np.nan]], np.float32), 1.0, 0.0)
    assert ints.tolist() == [[0, 65535, 0]]


def _int_reference(img, scale, adc):
    """C's loop written out per pixel in plain Python floats (double) and numpy float32 (floorf)."""
    out = np.zeros(img.shape, np.uint16)
    for i, v in np.ndenumerate(img):
        test = float(v) * scale + adc
        test = 65535.0 if test > 65535.0 else test
        test = 0.0 if test < 0.0 else test
        out[i] = 0 if test != test else int(np.floor(np.float32(test + 0.5)))
    return out


def test_int_conversion_across_blocks_matches_c_loop(monkeypatch):
    """Blocks of the conversion (made small here) join without seams; edge values as C's loop."""
    monkeypatch.setattr("nanobragg.io.smv.INT_BLOCK", 64)
    rng = np.random.default_rng(4)
    img = (rng.standard_normal((23, 17)) * 300).astype(np.float32)
    img[0, :4] = [np.nan, 1e9, -1e9, 0.0]
    img[5, 5] = 238.49998  # sums to within a float32 rounding of an integer + 0.5
    for scale, adc in ((1.0, 40.0), (55000.0 / 1111.0, 0.0), (0.49999999, 1.0)):
        np.testing.assert_array_equal(int_image_from_float(img, scale, adc), _int_reference(img, scale, adc))


def test_roi_zeroes_outside_pixels():
    img = np.full((4, 5), 10.0, np.float32)
    roi = (1, 3, 2, 3)  # x 1..3, y 2..3 inclusive
    ints = int_image_from_float(img, 1.0, 0.0, roi)
    assert ints.sum() == 10 * 3 * 2 and ints[2, 1] == 10 and ints[1, 1] == 0
    pix = pgm_pixels(img, 1.0, roi)
    assert pix.sum() == 10 * 3 * 2 and pix[3, 3] == 10 and pix[3, 4] == 0


def test_pgm_truncates_caps_and_header():
    img = np.array([[0.99, 2.7, 1000.0]], np.float32)
    data = pgm_bytes(img, 1.0)
    assert data == b"P5\n3 1\n# pixels scaled by 1\n255\n" + bytes([0, 2, 255])


def test_auto_scales():
    assert auto_int_scale(110.0) == 500.0
    assert auto_int_scale(0.0) == 1.0
    assert auto_int_scale(110.0, user_scale=2.0) == 2.0
    assert auto_pgm_scale(3.0, 10.0) == 5.0
    assert auto_pgm_scale(3.0, 0.0) == 3.0
    assert auto_pgm_scale(3.0, 10.0, user_scale=0.25) == 0.25


# ---------------------------------------------------------------- matrix


def test_matrix_lyso():
    matrix = read_mosflm_matrix(INPUTS / "lyso.mat")
    assert matrix.shape == (3, 3)
    assert matrix[0].tolist() == [0.0051034365, -0.0117393382, 0.0014636051]
    assert matrix[2, 1] == 0.0033249151


def test_matrix_with_extra_lines(tmp_path):
    text = (INPUTS / "tric.mat").read_text() + (
        "       0.000       0.000       0.000\n"
        "  0.9 0.1 0.0\n  -0.1 0.9 0.0\n  0.0 0.0 1.0\n"
        "  40.0 50.0 60.0 80.0 90.0 100.0\n  SYMM P1\n")
    path = write_text(tmp_path / "full.mat", text)
    np.testing.assert_array_equal(read_mosflm_matrix(path), read_mosflm_matrix(INPUTS / "tric.mat"))


def test_matrix_eight_numbers(tmp_path):
    path = write_text(tmp_path / "eight.mat", "1 2 3\n4 5 6\n7 8\n")
    with pytest.raises(InputError, match="expected 9 numbers, found 8"):
        read_mosflm_matrix(path)


def test_matrix_bad_number(tmp_path):
    path = write_text(tmp_path / "bad.mat", "1 2 3\n4 five 6\n7 8 9\n")
    with pytest.raises(InputError, match="line 2"):
        read_mosflm_matrix(path)


# ---------------------------------------------------------------- sources


def test_source_file_inputs():
    sources = read_source_file(INPUTS / "sources.txt")
    assert sources.shape == (3, 5)
    assert sources[1].tolist() == [-10.0, 0.002, 0.0, 0.5, 1.02e-10]


def test_source_file_one_to_five_columns(tmp_path):
    path = write_text(tmp_path / "src.txt",
                      "1\n\n1,2\n  1;2;3\n1:2:3:4\n1\t2 ! 3 4 5\n1 2 3 4 5 6 7\n")
    sources = read_source_file(path)
    assert sources.shape == (6, 5)
    for row, count in zip(sources, [1, 2, 3, 4, 5, 5]):
        assert row[:count].tolist() == list(range(1, count + 1))
        assert np.isnan(row[count:]).all()


def test_source_file_malformed_number(tmp_path):
    path = write_text(tmp_path / "src.txt", "1 2 3\n\n1 2 oops\n")
    with pytest.raises(InputError, match=r"src\.txt, line 3"):
        read_source_file(path)


def test_source_file_empty(tmp_path):
    path = write_text(tmp_path / "src.txt", "\n  \n")
    with pytest.raises(InputError, match="no data"):
        read_source_file(path)


def test_text_columns_two(tmp_path):
    path = write_text(tmp_path / "stol.txt", "0.1 2.5\n0.2\n")
    table = read_text_columns(path, 2)
    assert table[0].tolist() == [0.1, 2.5] and table[1, 0] == 0.2 and np.isnan(table[1, 1])


# ---------------------------------------------------------------- float image


def test_float_image_round_trip(tmp_path):
    img = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    write_float_image(tmp_path / "f.bin", img)
    assert (tmp_path / "f.bin").read_bytes() == img.astype("<f4").tobytes()
    np.testing.assert_array_equal(read_float_image(tmp_path / "f.bin", (3, 4)), img)
    assert read_float_image(tmp_path / "f.bin").shape == (12,)


def test_float_image_golden_and_errors(tmp_path):
    folder, _, _, floats = golden("intfile-scale")
    path = tmp_path / "float.bin"
    path.write_bytes(gzip.decompress((folder / "float.bin.gz").read_bytes()))
    np.testing.assert_array_equal(read_float_image(path, (64, 64)).ravel(), floats)
    with pytest.raises(InputError, match="expected"):
        read_float_image(path, (64, 63))
    path.write_bytes(b"12345")
    with pytest.raises(InputError, match="4-byte"):
        read_float_image(path)


def test_input_error_forms():
    error = InputError("a.hkl", "bad number", line=3)
    assert str(error) == "a.hkl, line 3: bad number" and error.line == 3
    assert str(InputError("plain message")) == "plain message"
