"""-geom: multi-panel detectors from CrystFEL geometry files. A 4-panel detector (two panels turned 90
degrees, gaps, one tilted out of plane, one with its own res): every panel equals its single-panel run,
one equals the C program's image; the NXmx file places every module where CrystFEL does; bad files
are one line, exit 2, nothing touched."""
import os

import numpy as np
import pytest

from golden import c_image
from nanobragg.cli import panels
from nanobragg.cli.main import main
from nanobragg.cli.panels import panel_flags, panel_path
from nanobragg.cli.settings import Settings
from nanobragg.io import InputError, read_smv
from nanobragg.io.crystfel_geom import _direction, read_geom


@pytest.fixture(autouse=True)
def _in_tmp_folder(tmp_path, monkeypatch):
    """Run in a fresh folder: no Fdump.bin or default-named files of the current folder are read or written."""
    monkeypatch.chdir(tmp_path)

CRYSTAL = ["-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90", "-lambda", "6.2", "-N", "5",
           "-dtype", "float64", "-nocompile", "-noprogress", "-nopgm"]

#: p0 is the golden case "rect" (MOSFLM, 160x96 pixels of 0.1 mm at 100 mm): fs = -x, ss = -y, its corner at
#: (81, 49) pixels; p1 and p2 turned by +-90 degrees, p2 5 mm further back; p3 tilted 15 degrees out of the
#: plane with pixels of 0.125 mm. Gaps in the data array and on the detector; a bad region and groups ignored.
FOUR = """; four panels
res = 10000
clen = 100 mm
adu_per_eV = 0.001
data = /data/data
dim0 = %
dim1 = ss
dim2 = fs
photon_energy = 2000 eV
p0/min_fs = 0
p0/max_fs = 159
p0/min_ss = 0
p0/max_ss = 95
p0/fs = -1.0x +0.0y
p0/ss = -y
p0/corner_x = 81
p0/corner_y = 49   ; the direct beam hits (81, 49) pixels from the corner

p1/min_fs = 0
p1/max_fs = 39
p1/min_ss = 100
p1/max_ss = 129
p1/fs = +1.0y
p1/ss = -1.0x
p1/corner_x = -90
p1/corner_y = -20

p2/min_fs = 44
p2/max_fs = 83
p2/min_ss = 100
p2/max_ss = 129
p2/fs = -1.0y
p2/ss = +1.0x
p2/corner_x = 120
p2/corner_y = 30
p2/coffset = 0.005

p3/min_fs = 88
p3/max_fs = 127
p3/min_ss = 100
p3/max_ss = 129
p3/fs = +0.9659258263x +0.2588190451z
p3/ss = +1.0y
p3/corner_x = -20
p3/corner_y = -110
p3/res = 8000
badregionA/min_fs = 0
badregionA/max_fs = 3
badregionA/min_ss = 0
badregionA/max_ss = 3
badregionA/panel = p0
rigid_group_q0 = p0,p1
group_all = p0,p1,p2,p3
"""


class EngineCalls:
    """Counts the engine calls of cli.panels (prepare_render, run_render) and keeps the jobs prepared."""

    def __init__(self, monkeypatch):
        self.prepared, self.runs = [], 0
        real_prepare, real_run = panels.prepare_render, panels.run_render

        def prepare(*args, **kwargs):
            self.prepared.append(real_prepare(*args, **kwargs))
            return self.prepared[-1]

        def run(*args, **kwargs):
            self.runs += 1
            return real_run(*args, **kwargs)
        monkeypatch.setattr(panels, "prepare_render", prepare)
        monkeypatch.setattr(panels, "run_render", run)


@pytest.fixture(scope="module")
def four_run(tmp_path_factory):
    """The 4-panel run (noise on, NXmx file): its folder and its engine calls."""
    folder = tmp_path_factory.mktemp("four")
    (folder / "four.geom").write_text(FOUR)
    args = CRYSTAL + ["-geom", str(folder / "four.geom"), "-seed", "7", "-floatfile", str(folder / "f.bin"),
                      "-intfile", str(folder / "i.img"), "-noisefile", str(folder / "n.img"),
                      "-h5file", str(folder / "four.h5"), "-h5float", "-cbffile", str(folder / "c.cbf")]
    cwd = os.getcwd()
    os.chdir(folder)
    with pytest.MonkeyPatch.context() as patch:
        calls = EngineCalls(patch)
        try:
            assert main(args) == 0
        finally:
            os.chdir(cwd)
    return folder, calls


@pytest.fixture(scope="module")
def four(four_run):
    """The 4-panel run's folder."""
    return four_run[0]


def test_the_four_panels_render_in_one_engine_call(four_run):
    """One prepare_render and one run_render (the detector fits one band) for all four panels: one job
    holding each panel's single-detector job, one chunk plan."""
    calls = four_run[1]
    assert len(calls.prepared) == 1 and calls.runs == 1
    job = calls.prepared[0]
    assert job.inp.panel_shapes == ((96, 160), (30, 40), (30, 40), (30, 40))
    assert tuple(job.inp.pix0.shape) == (4, 3) and job.inp.spixels == 96 + 3 * 30
    assert [one.count for one in job.panels] == [96 * 160, 1200, 1200, 1200] and job.count == 96 * 160 + 3600


def test_every_panel_equals_its_single_panel_run(four, tmp_path, capsys):
    geometry = read_geom(four / "four.geom")
    assert [p.name for p in geometry.panels] == ["p0", "p1", "p2", "p3"]
    for index, panel in enumerate(geometry.panels):
        one = tmp_path / f"one{index}"
        one.mkdir()
        args = CRYSTAL + panel_flags(panel) + ["-seed", str(7 + index), "-floatfile", str(one / "f.bin"),
                                               "-intfile", str(one / "i.img"), "-noisefile", str(one / "n.img")]
        assert main(args) == 0
        capsys.readouterr()
        ours = np.fromfile(four / f"f_p{index:02d}.bin", "<f4")
        single = np.fromfile(one / "f.bin", "<f4")
        assert ours.size == panel.shape[0] * panel.shape[1] and ours.max() > 0
        np.testing.assert_allclose(ours, single, rtol=1e-6, atol=1e-9 * single.max())
        assert np.array_equal(read_smv(four / f"n_p{index:02d}.img")[1], read_smv(one / "n.img")[1])


def test_the_first_panel_equals_the_c_programs_image(four):
    """p0 is golden case 'rect' (C's own MOSFLM geometry): the same float image."""
    ours = np.fromfile(four / "f_p00.bin", "<f4").astype(np.float64)
    c = c_image("rect").astype(np.float64)
    np.testing.assert_allclose(ours, c, rtol=1e-6, atol=1e-7 * c.max())


def test_the_panels_are_where_crystfel_puts_them(four):
    """Turned to NeXus's McStas frame (CrystFEL's: +z along the beam, +y up), each module's first pixel
    corner is (corner_x / res, corner_y / res, clen + coffset) and its axes are fs and ss."""
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("hdf5plugin")
    nxmx = pytest.importorskip("nxmx")
    expected = {"p0": ((81e-4, 49e-4, 0.1), (-1, 0, 0), (0, -1, 0)),
                "p1": ((-90e-4, -20e-4, 0.1), (0, 1, 0), (-1, 0, 0)),
                "p2": ((120e-4, 30e-4, 0.105), (0, -1, 0), (1, 0, 0)),
                "p3": ((-20 / 8000, -110 / 8000, 0.1), (0.9659258263, 0, 0.2588190451), (0, 1, 0))}
    geometry = read_geom(four / "four.geom")
    with h5py.File(four / "four.h5") as handle:
        entry = nxmx.NXmx(handle).entries[0]
        modules = entry.instruments[0].detectors[0].modules
        assert len(modules) == 4
        data = handle["/entry/data/data"]
        assert data.shape == (1, 130, 160)  # different sizes: one array holding every panel at its data ranges
        for index, (panel, module) in enumerate(zip(geometry.panels, modules)):
            corner, fs, ss = expected[panel.name]
            origin = nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(module.module_offset))[0, :3, 3]
            assert origin == pytest.approx(np.array(corner) * 1000, abs=1e-9)
            assert np.asarray(module.fast_pixel_direction.vector) == pytest.approx(fs, abs=1e-9)
            assert np.asarray(module.slow_pixel_direction.vector) == pytest.approx(ss, abs=1e-9)
            assert module.fast_pixel_direction[()].to("mm").magnitude[0] == pytest.approx(panel.pixel_size * 1000)
            assert list(module.data_origin) == [panel.min_ss, panel.min_fs]
            assert list(module.data_size) == list(panel.shape)
            rows = slice(panel.min_ss, panel.max_ss + 1)
            cols = slice(panel.min_fs, panel.max_fs + 1)
            assert np.array_equal(data[0, rows, cols], read_smv(four / f"n_p{index:02d}.img")[1])
            floats = np.fromfile(four / f"f_p{index:02d}.bin", "<f4").reshape(panel.shape)
            assert np.array_equal(handle["/entry/data/float_image"][0, rows, cols], floats)
        assert not data[0, 96:100].any() and not data[0, 100:, 40:44].any()  # the gaps stay zero


def test_per_panel_cbf_files(four):
    fabio = pytest.importorskip("fabio")
    for index in range(4):
        image = fabio.open(str(four / f"c_p{index:02d}.cbf"))
        assert np.array_equal(image.data, read_smv(four / f"n_p{index:02d}.img")[1])


def test_panels_of_one_size_are_a_stack(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("hdf5plugin")
    nxmx = pytest.importorskip("nxmx")
    lines = ["res = 10000", "clen = 0.08", "fs = -x", "ss = -y"]
    for p, (x, ss0) in enumerate(((30, 0), (-10, 20))):
        lines += [f"a{p}/min_fs = 0", f"a{p}/max_fs = 23", f"a{p}/min_ss = {ss0}", f"a{p}/max_ss = {ss0 + 15}",
                  f"a{p}/corner_x = {x}", f"a{p}/corner_y = 8"]
    (tmp_path / "two.geom").write_text("\n".join(lines) + "\n")
    assert main(CRYSTAL + ["-geom", str(tmp_path / "two.geom"), "-nonoise", "-floatfile", "/dev/null",
                           "-intfile", str(tmp_path / "i.img"), "-h5file", str(tmp_path / "two.h5")]) == 0
    capsys.readouterr()
    with h5py.File(tmp_path / "two.h5") as handle:
        data = handle["/entry/data/data"]
        assert data.shape == (1, 2, 16, 24)
        modules = nxmx.NXmx(handle).entries[0].instruments[0].detectors[0].modules
        assert [list(m.data_origin) for m in modules] == [[0, 0, 0], [1, 0, 0]]
        assert [list(m.data_size) for m in modules] == [[1, 16, 24], [1, 16, 24]]
        for p in range(2):
            assert np.array_equal(data[0, p], read_smv(tmp_path / f"i_p{p:02d}.img")[1])


def test_panel_file_names():
    assert panel_path("dir/float.bin", 3) == "dir/float_p03.bin"
    assert panel_path("noext", 12) == "noext_p12"
    assert panel_path("/dev/null", 1) == "/dev/null"
    assert panel_path(None, 0) is None


def test_directions_in_crystfels_notation():
    assert list(_direction("g", 1, "fs", "-0.0010058292x +0.9999995232y")) == [-0.0010058292, 0.9999995232, 0]
    assert list(_direction("g", 1, "fs", "x")) == [1, 0, 0]
    assert list(_direction("g", 1, "fs", "-y")) == [0, -1, 0]
    assert list(_direction("g", 1, "fs", "+0.5x -0.5y +1e-3z")) == [0.5, -0.5, 0.001]
    for bad in ("2q", "x y", "1.0", "+0.5x junk"):
        with pytest.raises(InputError, match="is not a direction"):
            _direction("g", 1, "fs", bad)


GOOD = ["res = 10000", "clen = 0.1", "p0/min_fs = 0", "p0/max_fs = 9", "p0/min_ss = 0", "p0/max_ss = 9",
        "p0/fs = -x", "p0/ss = -y", "p0/corner_x = 5", "p0/corner_y = 5"]
SECOND = ["p1/min_fs = 5", "p1/max_fs = 14", "p1/min_ss = 5", "p1/max_ss = 14", "p1/fs = -x", "p1/ss = -y",
          "p1/corner_x = -20", "p1/corner_y = 5"]


@pytest.mark.parametrize("lines, words", [
    (GOOD[1:], "panel p0 has no res (pixels per metre), and no global res is given"),
    (GOOD + SECOND, "panels p0 and p1 overlap in the data array"),
    ([*GOOD[:6], "p0/fs = 0.0x +0.0y", *GOOD[7:]], "p0/fs = '0.0x +0.0y' is a zero vector"),
    (GOOD + ["p0/colour = blue"], "line 11: unknown key 'colour' (not in crystfel_geometry(5))"),
    (GOOD + ["frobnicate = 1"], "line 11: unknown key 'frobnicate'"),
    (GOOD + ["p0/wibble"], "line 11: not a 'key = value' line"),
    (["res = 10000", "clen = /LCLS/detector_1/EncoderValue", *GOOD[2:]], "a value from a data file cannot be used"),
    ([*GOOD[:2], "p0/min_fs = 3", "p0/max_fs = 1", *GOOD[4:]], "panel p0: max_fs 1 is below min_fs 3"),
    ([*GOOD[:6], "p0/fs = -2x", *GOOD[7:]], "has length 2: nanoBragg's pixels are square"),
    ([*GOOD[:7], "p0/ss = +x", *GOOD[8:]], "panel p0: fs and ss are parallel"),
    (GOOD[:-1], "panel p0 has no corner_y"),
    (["res = 10000", *GOOD[2:]], "panel p0 has no clen"),
    (["; nothing"], "no panels"),
])
def test_bad_geometry_files_are_one_line_exit_2(lines, words, tmp_path, capsys):
    geom = tmp_path / "bad.geom"
    geom.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    status = main(CRYSTAL + ["-geom", str(geom), "-floatfile", str(out / "f.bin"), "-intfile", str(out / "i.img"),
                             "-noisefile", str(out / "n.img"), "-h5file", str(out / "x.h5")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    first, hint = err.strip().splitlines()
    assert words in first and str(geom) in first, first
    assert os.listdir(out) == []


def test_geometry_flags_with_a_geometry_file_are_refused(tmp_path, capsys):
    (tmp_path / "g.geom").write_text("\n".join(GOOD) + "\n")
    for flag in (["-distance", "50"], ["-detpixels", "64"], ["-roi", "0", "3", "0", "3"],
                 ["-beam_vector", "0", "0", "1"]):
        assert main(CRYSTAL + ["-geom", str(tmp_path / "g.geom"), "-floatfile", str(tmp_path / "f.bin")] + flag) == 2
        err = capsys.readouterr().err
        assert f"{flag[0]} cannot be combined with a geometry file" in err and "Traceback" not in err
        assert sorted(os.listdir(tmp_path)) == ["g.geom"]


def test_a_mirrored_panel_sees_the_mirror_image(tmp_path, capsys):
    """The 'rect' panel mirrored across the beam: fs = +x instead of -x and its corner at x = -81 pixels (fs x ss
    now faces the sample; nanoBragg's normal is turned round). Pixel i sees the mirror point of the 'rect'
    panel's pixel i; for the cubic crystal, symmetric under x -> -x, the same image as C's."""
    mirrored = FOUR.split("p1/")[0].replace("p0/fs = -1.0x +0.0y", "p0/fs = +1.0x").replace(
        "p0/corner_x = 81", "p0/corner_x = -81")
    (tmp_path / "m.geom").write_text(mirrored)
    assert main(CRYSTAL + ["-geom", str(tmp_path / "m.geom"), "-nonoise", "-floatfile", str(tmp_path / "m.bin"),
                           "-intfile", "/dev/null"]) == 0
    capsys.readouterr()
    ours = np.fromfile(tmp_path / "m_p00.bin", "<f4").reshape(96, 160).astype(np.float64)
    c = c_image("rect").reshape(96, 160).astype(np.float64)
    np.testing.assert_allclose(ours, c, rtol=1e-5, atol=1e-6 * c.max())
    assert not np.allclose(ours, c[:, ::-1], rtol=1e-3)  # the pattern itself is not symmetric on the panel


def test_a_tilted_panel_equals_the_c_programs_image(tmp_path, capsys):
    """C case 'custom-pivot-sample' (custom vectors, two-theta 12 degrees, rotx 4 degrees: a panel tilted
    about two axes): its resolved panel written as a CrystFEL geometry renders C's image."""
    import torch

    from golden import load_case
    from nanobragg.cli.main import build_settings
    from nanobragg.resolve import resolve
    args = load_case("custom-pivot-sample")["args"]
    g = resolve(build_settings(args).experiment, seed=-1, dtype=torch.float64).detector
    pixel = float(g.pixel_size)

    def crystfel(v):  # nanoBragg (a, b, c) is CrystFEL (-c, b, a)
        a, b, c = (float(t) for t in v)
        return -c, b, a

    x, y, z = crystfel(g.pix0)
    vec = lambda v: " ".join(f"{t:+.17g}{axis}" for t, axis in zip(crystfel(v), "xyz"))  # noqa: E731
    (tmp_path / "tilted.geom").write_text("\n".join([
        f"res = {1 / pixel!r}", f"clen = {z!r}", "t/min_fs = 0", f"t/max_fs = {g.fpixels - 1}", "t/min_ss = 0",
        f"t/max_ss = {g.spixels - 1}", f"t/fs = {vec(g.fdet)}", f"t/ss = {vec(g.sdet)}",
        f"t/corner_x = {x / pixel!r}", f"t/corner_y = {y / pixel!r}"]) + "\n")
    crystal = args[:args.index("-distance")]  # cell, F and wavelength; the detector comes from the file
    flags = ["-geom", str(tmp_path / "tilted.geom"), "-dtype", "float64", "-nocompile", "-nonoise", "-nopgm",
             "-noprogress", "-floatfile", str(tmp_path / "f.bin"), "-intfile", "/dev/null"]
    assert main(crystal + flags) == 0
    capsys.readouterr()
    ours = np.fromfile(tmp_path / "f_p00.bin", "<f4").astype(np.float64)
    c = c_image("custom-pivot-sample").astype(np.float64)
    np.testing.assert_allclose(ours, c, rtol=1e-5, atol=1e-6 * c.max())


class FloatStoreShape:
    """What panel_bands reads of a FloatStore: its shape, rows per band and band starts."""

    def __init__(self, slow, fast, rows):
        self.shape, self.rows = (slow, fast), rows

    def band_starts(self):
        return range(0, self.shape[0], self.rows)


def test_a_small_memory_budget_renders_the_panels_in_bands(four, tmp_path, capsys, monkeypatch):
    """A budget of 0.5 MiB (below -max_memory's least, 16 MB; a quarter of a MiB for the bands): panel 0
    in two bands of its rows, the second band also holding the other three panels; the same files as one band."""
    monkeypatch.setattr(Settings, "budget_bytes", lambda self: 1 << 19)
    calls = EngineCalls(monkeypatch)
    args = CRYSTAL + ["-geom", str(four / "four.geom"), "-seed", "7", "-floatfile", str(tmp_path / "f.bin"),
                      "-noisefile", str(tmp_path / "n.img"), "-intfile", str(tmp_path / "i.img")]
    assert main(args) == 0
    capsys.readouterr()
    assert len(calls.prepared) == 1 and calls.runs == 2
    assert panels.panel_bands([FloatStoreShape(96, 160, 68)] + [FloatStoreShape(30, 40, 273)] * 3,
                              262144) == [(0, 68), (68, 186)]
    for index in range(4):
        assert np.array_equal(np.fromfile(tmp_path / f"f_p{index:02d}.bin", "<f4"),
                              np.fromfile(four / f"f_p{index:02d}.bin", "<f4"))
        assert np.array_equal(read_smv(tmp_path / f"n_p{index:02d}.img")[1], read_smv(four / f"n_p{index:02d}.img")[1])

