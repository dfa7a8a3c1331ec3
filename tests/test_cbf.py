"""-cbffile: Pilatus mini-CBF images read back by fabio and pycbf, equal to the SMV int (or noise) image,
with the run's header values; written band by band, in place, and refused cleanly."""
import os
import sys
import threading

import numpy as np
import pytest

from golden import run_case
from nanobragg.cli.main import main
from nanobragg.io import read_smv
from nanobragg.io.cbf import ByteOffsetEncoder, PilatusHeader, cbf_bytes, write_cbf

fabio = pytest.importorskip("fabio")
pycbf = pytest.importorskip("pycbf")


@pytest.fixture(autouse=True)
def _in_tmp_folder(tmp_path, monkeypatch):
    """Run in a fresh folder: no Fdump.bin or default-named files of the current folder are read or written."""
    monkeypatch.chdir(tmp_path)

BASE = ["-default_F", "100", "-cell", "70", "80", "90", "75", "85", "95", "-lambda", "1", "-N", "3",
        "-distance", "100", "-detpixels_f", "40", "-detpixels_s", "30", "-nocompile", "-dtype", "float64",
        "-seed", "7", "-noprogress", "-nopgm"]


def pilatus_values(path) -> dict:
    """The header as DIALS's FormatCBFMini reads it: '# Key value' lines -> {Key: value}."""
    image = fabio.open(str(path))
    values = {}
    for line in image.header["_array_data.header_contents"].splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(" ")
            values[key] = value
    return values


def pycbf_image(path) -> np.ndarray:
    handle = pycbf.cbf_handle_struct()
    handle.read_widefile(str(path).encode(), pycbf.MSG_DIGEST)
    handle.find_category(b"array_data")
    handle.find_column(b"data")
    handle.select_row(0)
    compression, binary_id, elsize, elsigned, elunsigned, elements, minelem, maxelem = \
        handle.get_integerarrayparameters()
    assert (elsize, elsigned) == (4, 1)
    fast, slow = handle.get_integerarrayparameters_wdims()[9:11]
    data = np.frombuffer(handle.get_integerarray_as_string(), np.int32)
    return data.reshape(slow, fast)


def test_golden_case_cbf_equals_the_smv_int_image_with_the_runs_header(tmp_path):
    cbf = tmp_path / "image.cbf"
    run_case("rect", tmp_path, "float64", ["-cbffile", str(cbf), "-phi", "12.5", "-osc", "0.25",
                                           "-exposure", "0.5", "-detector_thick", "320"])
    header, ints = read_smv(tmp_path / "int.img")
    image = fabio.open(str(cbf))
    assert image.data.dtype == np.int32 and image.data.shape == ints.shape == (96, 160)
    assert np.array_equal(image.data, ints)
    assert np.array_equal(pycbf_image(cbf), ints)
    v = pilatus_values(cbf)
    pixel = float(header["PIXEL_SIZE"]) / 1000
    assert v["Pixel_size"] == f"{pixel:.10g} m x {pixel:.10g} m"
    assert float(v["Detector_distance"].split()[0]) == pytest.approx(float(header["DISTANCE"]) / 1000, rel=1e-9)
    assert float(v["Wavelength"].split()[0]) == pytest.approx(float(header["WAVELENGTH"]), rel=1e-9)
    # Beam_xy: pixels from the first pixel's corner along fast, slow (ADXV_CENTER_X is Fbeam in mm; the
    # MOSFLM centre's Y is Fbeam - half a pixel, its X Sbeam - half a pixel)
    bx, by = (float(t) for t in v["Beam_xy"].strip("() pixels").split(","))
    assert bx * pixel * 1000 == pytest.approx(float(header["ADXV_CENTER_X"]), abs=1e-6)
    assert by * pixel * 1000 == pytest.approx(float(header["MOSFLM_CENTER_X"]) + 0.05, abs=1e-6)
    assert float(v["Start_angle"].split()[0]) == pytest.approx(12.5) == float(header["OSC_START"])
    assert float(v["Angle_increment"].split()[0]) == pytest.approx(0.25) == float(header["OSC_RANGE"])
    assert float(v["Exposure_time"].split()[0]) == 0.5
    assert v["Silicon"] == "sensor, thickness 0.00032 m"
    assert v["Count_cutoff"] == "65535 counts"
    assert image.pilatus_headers["Beam_xy"] == pytest.approx((bx, by))
    assert fabio.open(str(cbf)).header["Content-MD5"]  # fabio checked the MD5 while reading


def test_with_noise_the_cbf_holds_the_noise_image(tmp_path, capsys):
    args = ["-intfile", str(tmp_path / "int.img"), "-noisefile", str(tmp_path / "noise.img"),
            "-floatfile", str(tmp_path / "f.bin"), "-cbffile", str(tmp_path / "n.cbf")]
    assert main(BASE + args) == 0
    assert "writing " + str(tmp_path / "n.cbf") + " as a mini-CBF of the noise image" in capsys.readouterr().out
    noise = read_smv(tmp_path / "noise.img")[1]
    assert np.array_equal(fabio.open(str(tmp_path / "n.cbf")).data, noise)
    assert not np.array_equal(noise, read_smv(tmp_path / "int.img")[1])


def test_noise_is_made_for_the_cbf_without_a_noise_file_and_equals_it(tmp_path, capsys):
    """-cbffile with noise on but the noise file sent to /dev/null: the same noise pixels."""
    assert main(BASE + ["-noisefile", str(tmp_path / "noise.img"), "-cbffile", str(tmp_path / "a.cbf"),
                        "-floatfile", "/dev/null", "-intfile", "/dev/null"]) == 0
    assert main(BASE + ["-noisefile", "/dev/null", "-cbffile", str(tmp_path / "b.cbf"),
                        "-floatfile", "/dev/null", "-intfile", "/dev/null"]) == 0
    capsys.readouterr()
    a, b = fabio.open(str(tmp_path / "a.cbf")).data, fabio.open(str(tmp_path / "b.cbf")).data
    assert np.array_equal(a, b) and np.array_equal(a, read_smv(tmp_path / "noise.img")[1])


def test_bands_of_rows_give_the_same_bytes_as_one_band(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one, many = tmp_path / "one.cbf", tmp_path / "many.cbf"
    args = ["-nonoise", "-floatfile", "/dev/null", "-intfile", str(tmp_path / "int.img"), "-roi", "3", "35", "2", "25"]
    assert main(BASE + args + ["-cbffile", str(one)]) == 0
    monkeypatch.setattr("nanobragg.cli.simulate.band_rows", lambda fpixels, budget: 7)
    assert main(BASE + args + ["-cbffile", str(many)]) == 0
    capsys.readouterr()
    assert one.read_bytes() == many.read_bytes()
    assert "2023-11-14T22:13:20.000" in pilatus_values(one)  # $SOURCE_DATE_EPOCH: reproducible bytes
    assert np.array_equal(fabio.open(str(many)).data, read_smv(tmp_path / "int.img")[1])


def test_band_codes_joined_are_the_whole_images_code():
    """Large steps at band boundaries (every code length) decode to the image, as fabio encodes it whole."""
    rng = np.random.default_rng(4)
    image = rng.choice([0, 1, 127, 128, 200, 32767, 32768, 65535], size=(23, 11)).astype(np.int32)
    image[::2, -1], image[1::2, 0] = 65535, 0
    whole = ByteOffsetEncoder().encode(image)
    encoder = ByteOffsetEncoder()
    parts = b"".join(encoder.encode(image[r:r + 3]) for r in range(0, 23, 3))
    assert parts == whole == bytes(fabio.compression.compByteOffset(image))
    assert encoder.size == len(whole)


def test_write_cbf_round_trip_and_header_class(tmp_path):
    data = np.arange(12 * 7, dtype=np.uint16).reshape(12, 7) * 800
    header = PilatusHeader(pixel_size=172e-6, thickness=450e-6, exposure=0.1, wavelength=0.9795e-10, distance=0.245,
                           beam_f=172e-6 * 3.5, beam_s=172e-6 * 6.25, start_angle=np.radians(30),
                           increment=np.radians(0.1),
                           time="2024-01-02T03:04:05.006")
    write_cbf(tmp_path / "x.cbf", data, header)
    assert (tmp_path / "x.cbf").read_bytes() == cbf_bytes(data, header)
    image = fabio.open(str(tmp_path / "x.cbf"))
    assert np.array_equal(image.data, data)
    v = pilatus_values(tmp_path / "x.cbf")
    assert v["Beam_xy"] == "(3.5, 6.25) pixels" and v["Wavelength"] == "0.9795 A"
    assert v["Start_angle"] == "30 deg." and v["Angle_increment"] == "0.1 deg." and v["Detector_distance"] == "0.245 m"
    assert v["2024-01-02T03:04:05.006"] == ""


def test_cbf_to_a_fifo_is_written_in_place(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    assert main(BASE + ["-nonoise", "-floatfile", "/dev/null", "-intfile", str(tmp_path / "int.img"),
                        "-cbffile", str(fifo)]) == 0
    reader.join(30)
    capsys.readouterr()
    (tmp_path / "copy.cbf").write_bytes(got[0])
    assert np.array_equal(fabio.open(str(tmp_path / "copy.cbf")).data, read_smv(tmp_path / "int.img")[1])


def test_bad_cbf_paths_are_one_line_exit_2_nothing_touched(tmp_path, capsys):
    (tmp_path / "int.img").write_bytes(b"old")
    common = BASE + ["-nonoise", "-floatfile", str(tmp_path / "f.bin"), "-intfile", str(tmp_path / "int.img")]
    for bad, words in ((tmp_path / "missing" / "a.cbf", "does not exist"), (tmp_path, "is a directory"),
                       (tmp_path / "int.img", "is also named as another output")):
        assert main(common + ["-cbffile", str(bad)]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 2
        assert sorted(os.listdir(tmp_path)) == ["int.img"] and (tmp_path / "int.img").read_bytes() == b"old"


def test_missing_fabio_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fabio", None)
    assert main(BASE + ["-nonoise", "-floatfile", str(tmp_path / "f.bin"), "-cbffile", str(tmp_path / "a.cbf")]) == 2
    err = capsys.readouterr().err
    assert "-cbffile needs fabio: pip install 'nanobragg[formats]'" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []
