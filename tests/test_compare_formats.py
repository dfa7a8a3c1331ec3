"""nb-compare reads SMV and CBF (fabio) and NXmx (h5py) images as well as raw floats: two files given with
--files, or the programs' -intfile/-cbffile/-h5file outputs with --image."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")
fabio = pytest.importorskip("fabio")
h5py = pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

from nanobragg.cli.main import main as nanobragg  # noqa: E402
from nanobragg.io import read_smv  # noqa: E402
from nanobragg.io.nexus import write_nxmx_frames  # noqa: E402
from nanobragg.tools import compare as nbc  # noqa: E402

ARGS = ["-default_F", "100", "-cell", "70", "80", "90", "75", "85", "95", "-lambda", "1", "-N", "3",
        "-distance", "100", "-detpixels_f", "40", "-detpixels_s", "30", "-nocompile", "-dtype", "float64",
        "-seed", "7", "-noprogress", "-nopgm", "-nonoise"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """One run's float, SMV, CBF and NXmx files, and an NXmx file of two frames (zeros, then the int image)."""
    folder = tmp_path_factory.mktemp("formats")
    assert nanobragg([*ARGS, "-floatfile", str(folder / "float.bin"), "-intfile", str(folder / "int.img"),
                      "-cbffile", str(folder / "image.cbf"), "-h5file", str(folder / "image.h5")]) == 0
    ints = read_smv(folder / "int.img")[1]
    write_nxmx_frames(folder / "two.h5", np.stack([np.zeros_like(ints), ints]))
    return folder


def summary(outdir: Path) -> dict:
    return json.loads((outdir / "summary.json").read_text())


@pytest.mark.parametrize("ref, test", [("int.img", "image.cbf"), ("int.img", "image.h5"), ("image.cbf", "image.h5")])
def test_files_of_one_run_in_any_two_formats_are_equal(images, tmp_path, ref, test, capsys):
    out = tmp_path / "cmp"
    assert nbc.main(["--outdir", str(out), "--files", str(images / ref), str(images / test)]) == 0
    s = summary(out)
    assert s["max_abs_diff"] == 0 and s["correlation"] == pytest.approx(1.0) and s["shape"] == [30, 40]
    assert (s["image_c"], s["image_py"]) == tuple(nbc.image_kind(images / n) for n in (ref, test))
    assert s["sum_c"] == pytest.approx(float(read_smv(images / "int.img")[1].sum()))
    assert "OK: corr=1.000000" in capsys.readouterr().out


def test_the_readers_are_fabio_and_h5py(images):
    ints = read_smv(images / "int.img")[1]
    assert nbc.image_kind(images / "int.img") == "smv" and nbc.image_kind(images / "image.cbf") == "cbf"
    assert nbc.image_kind(images / "image.h5") == "nxmx" and nbc.image_kind(images / "float.bin") == "float"
    assert np.array_equal(nbc.read_image(images / "int.img", (30, 40)), fabio.open(str(images / "int.img")).data)
    assert np.array_equal(nbc.read_image(images / "image.cbf", (30, 40)), ints)
    with h5py.File(images / "image.h5", "r") as f:
        assert np.array_equal(nbc.read_image(images / "image.h5", (30, 40)), f["/entry/data/data"][0])


def test_raw_floats_take_their_shape_from_the_args_and_compare_with_the_int_image(images, tmp_path):
    out = tmp_path / "cmp"
    assert nbc.main(["--outdir", str(out), "--files", str(images / "float.bin"), str(images / "float.bin"),
                     "--", *ARGS]) == 0
    assert summary(out)["shape"] == [30, 40] and summary(out)["max_abs_diff"] == 0
    out2 = tmp_path / "cmp2"
    assert nbc.main(["--outdir", str(out2), "--files", str(images / "float.bin"), str(images / "int.img"),
                     "--", *ARGS]) == 0  # the spots scaled and rounded: still one image
    assert summary(out2)["correlation"] > 0.99


def test_nxmx_frame(images, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert nbc.main(["--outdir", str(out), "--frame", "1", "--files", str(images / "int.img"),
                     str(images / "two.h5")]) == 0
    assert summary(out)["max_abs_diff"] == 0
    capsys.readouterr()
    assert nbc.main(["--outdir", str(out), "--frame", "2", "--files", str(images / "int.img"),
                     str(images / "two.h5")]) == nbc.EXIT_UNREADABLE
    err = capsys.readouterr().err
    assert "--frame 2, the file holds 2 frame(s)" in err and len(err.strip().splitlines()) == 1


def test_bad_files_are_one_line_with_nanobragg_compares_exit_codes(images, tmp_path, capsys):
    bad_cbf = tmp_path / "bad.cbf"
    bad_cbf.write_bytes(b"###CBF: VERSION 1.5\nnot really a cbf\n")
    bad_h5 = tmp_path / "bad.h5"
    with h5py.File(bad_h5, "w") as f:
        f["x"] = 1
    cases = [(bad_cbf, nbc.EXIT_UNREADABLE, "bad.cbf: "), (bad_h5, nbc.EXIT_UNREADABLE, "no /entry/data/data"),
             (tmp_path / "missing.img", nbc.EXIT_UNREADABLE, "no such file")]
    for path, code, message in cases:
        assert nbc.main(["--outdir", str(tmp_path / "cmp"), "--files", str(images / "int.img"), str(path)]) == code
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    other = tmp_path / "other.h5"
    write_nxmx_frames(other, np.zeros((1, 20, 40), dtype=np.uint16))
    assert nbc.main(["--outdir", str(tmp_path / "cmp"), "--files", str(images / "int.img"),
                     str(other)]) == nbc.EXIT_SHAPE
    assert nbc.main(["--files", "a", "b", "--c-bin", "x"]) == nbc.EXIT_USAGE
    assert "--files compares two files and runs no program: --c-bin not used" in capsys.readouterr().err


@pytest.mark.parametrize("image", ["smv", "nxmx"])
def test_programs_outputs_of_another_kind(tmp_path, image):
    """--image: each program writes -intfile/-h5file into the artifact folder; nb-compare reads those."""
    program = str(Path(sys.executable).parent / "nanoBragg")
    if not Path(program).exists():
        pytest.skip("the nanoBragg command is not installed")
    out = tmp_path / "cmp"
    assert nbc.main(["--outdir", str(out), "--image", image, "--c-bin", program, "--py-bin", program,
                     "--", *ARGS]) == 0
    s = summary(out)
    assert s["image_c"] == image and s["max_abs_diff"] == 0 and s["shape"] == [30, 40]
    ext = nbc.IMAGE_KINDS[image][1]
    assert (out / f"c_image{ext}").exists() and (out / f"py_image{ext}").exists()
