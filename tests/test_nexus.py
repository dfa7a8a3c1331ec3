"""-h5file: NXmx files parsed by the nxmx package (wavelength, distance, module geometry, frame count and
omega equal to the run's; data equal to the SMV int or noise image); bitshuffle-LZ4 chunks written band by
band, in place, and refused cleanly."""
import os
import sys
import threading

import numpy as np
import pytest

from golden import run_case
from nanobragg.cli.main import main
from nanobragg.io import read_smv
from nanobragg.io.nexus import Module, NXmxInfo, to_mcstas, write_nxmx

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")
nxmx = pytest.importorskip("nxmx")


@pytest.fixture(autouse=True)
def _in_tmp_folder(tmp_path, monkeypatch):
    """Run in a fresh folder: no Fdump.bin or default-named files of the current folder are read or written."""
    monkeypatch.chdir(tmp_path)

BASE = ["-default_F", "100", "-cell", "70", "80", "90", "75", "85", "95", "-lambda", "1", "-N", "3",
        "-distance", "100", "-detpixels_f", "40", "-detpixels_s", "30", "-nocompile", "-dtype", "float64",
        "-seed", "7", "-noprogress", "-nopgm"]


def parsed(path):
    """(h5py File, nxmx entry, detector, module, sample) of an NXmx file."""
    handle = h5py.File(path, "r")
    entry = nxmx.NXmx(handle).entries[0]
    detector = entry.instruments[0].detectors[0]
    return handle, entry, detector, detector.modules[0], entry.samples[0]


def pixel_position(module, fast, slow) -> np.ndarray:
    """McStas position (mm) of the corner (fast, slow) pixels from the module's origin, by nxmx's chains."""
    origin = nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(module.module_offset))[0, :3, 3]
    f = module.fast_pixel_direction
    s = module.slow_pixel_direction
    step_f = f[()].to("mm").magnitude[0] * np.asarray(f.vector)
    step_s = s[()].to("mm").magnitude[0] * np.asarray(s.vector)
    return origin + fast * step_f + slow * step_s


def dials_to_mcstas(v) -> np.ndarray:
    """DIALS's (imgCIF) lab frame to NeXus's McStas frame: half a turn about y."""
    return np.array([-v[0], v[1], -v[2]])


@pytest.mark.parametrize("case", ["rot-beam", "rect"])
def test_golden_case_nxmx_parses_with_the_runs_values(case, tmp_path):
    h5 = tmp_path / "image.h5"
    run_case(case, tmp_path, "float64", ["-h5file", str(h5), "-phi", "12.5", "-osc", "0.25", "-h5float"])
    header, ints = read_smv(tmp_path / "int.img")
    handle, entry, det, module, sample = parsed(h5)
    with handle:
        assert entry.definition == "NXmx"
        beam = entry.instruments[0].beams[0]
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(float(header["WAVELENGTH"]), rel=1e-6)
        assert det.distance.to("mm").magnitude == pytest.approx(float(header["DISTANCE"]), rel=1e-6)
        assert list(module.data_origin) == [0, 0] and list(module.data_size) == list(ints.shape)
        pixel = float(header["PIXEL_SIZE"])
        assert module.fast_pixel_direction[()].to("mm").magnitude[0] == pytest.approx(pixel)
        # the first pixel's corner is DIALS_ORIGIN (the SMV header's pix0 in DIALS's frame), in McStas
        origin = dials_to_mcstas([float(t) for t in header["DIALS_ORIGIN"].split(",")])
        assert pixel_position(module, 0, 0) == pytest.approx(origin, abs=1e-3)
        data = handle["/entry/data/data"]
        assert data.shape == (1, *ints.shape) and data.chunks[0] == 1
        assert "32008" in data._filters  # bitshuffle (with LZ4: compression argument 2)
        assert data._filters["32008"][4] == 2
        assert np.array_equal(data[0], ints)
        assert np.array_equal(handle["/entry/data/float_image"][0],
                              np.fromfile(tmp_path / "float.bin", "<f4").reshape(ints.shape))
        axes = nxmx.get_rotation_axes(nxmx.get_dependency_chain(sample.depends_on))
        assert list(axes.names) == ["omega"] and axes.angles[0] == pytest.approx(12.5)
        omega = sample.depends_on
        assert len(omega) == 1 and omega.end[0].to("deg").magnitude == pytest.approx(12.75)
        # MOSFLM spindle (0, 0, 1) -> McStas (-1, 0, 0); the beam (1, 0, 0) -> (0, 0, 1)
        assert np.allclose(axes.axes[0], [-1, 0, 0])
        det_z = det.depends_on
        assert np.allclose(det_z.vector, [0, 0, 1])


def test_tilted_detector_every_pixel_where_nanobragg_puts_it(tmp_path, capsys):
    """Pixel corners from nxmx's chains equal pix0 + i*pixel*fdet + j*pixel*sdet turned to McStas."""
    import torch

    from nanobragg.cli.main import build_settings
    from nanobragg.resolve import resolve
    args = BASE + ["-detector_rotx", "5", "-detector_roty", "3", "-detector_rotz", "2", "-twotheta", "10",
                   "-nonoise", "-floatfile", "/dev/null", "-intfile", "/dev/null", "-h5file", str(tmp_path / "t.h5")]
    assert main(args) == 0
    capsys.readouterr()
    g = resolve(build_settings(args).experiment, seed=-7, dtype=torch.float64).detector
    R = to_mcstas(g.beam.numpy())
    handle, entry, det, module, sample = parsed(tmp_path / "t.h5")
    with handle:
        for i, j in ((0, 0), (39, 0), (0, 29), (17, 11)):
            lab = g.pix0.numpy() + (i * g.fdet.numpy() + j * g.sdet.numpy()) * float(g.pixel_size)
            assert pixel_position(module, i, j) == pytest.approx(R @ lab * 1000, abs=1e-9)
        assert float(det.beam_center_x.magnitude) == pytest.approx(float(g.Fbeam / g.pixel_size))


def test_xds_convention_beam_along_z_keeps_the_frame(tmp_path, capsys):
    """XDS's beam is already +z: the lab frame is McStas's; the spindle (1, 0, 0) stays."""
    assert main(BASE + ["-xds", "-nonoise", "-floatfile", "/dev/null", "-intfile", str(tmp_path / "i.img"),
                        "-h5file", str(tmp_path / "x.h5")]) == 0
    capsys.readouterr()
    handle, entry, det, module, sample = parsed(tmp_path / "x.h5")
    with handle:
        axes = nxmx.get_rotation_axes(nxmx.get_dependency_chain(sample.depends_on))
        assert np.allclose(axes.axes[0], [1, 0, 0])
        assert np.allclose(module.fast_pixel_direction.vector, [1, 0, 0])
        assert np.allclose(module.slow_pixel_direction.vector, [0, 1, 0])
        assert np.array_equal(handle["/entry/data/data"][0], read_smv(tmp_path / "i.img")[1])


def test_with_noise_the_nxmx_data_are_the_noise_image(tmp_path, capsys):
    assert main(BASE + ["-noisefile", str(tmp_path / "n.img"), "-floatfile", "/dev/null", "-intfile", "/dev/null",
                        "-h5file", str(tmp_path / "n.h5"), "-cbffile", str(tmp_path / "n.cbf")]) == 0
    assert "as NXmx HDF5 of the noise image" in capsys.readouterr().out
    with h5py.File(tmp_path / "n.h5") as handle:
        assert np.array_equal(handle["/entry/data/data"][0], read_smv(tmp_path / "n.img")[1])
        assert "float_image" not in handle["/entry/data"]


def test_bands_of_rows_are_chunks_with_the_same_data(tmp_path, monkeypatch, capsys):
    args = BASE + ["-nonoise", "-floatfile", str(tmp_path / "f.bin"), "-intfile", str(tmp_path / "i.img"), "-h5float",
                   "-roi", "2", "33", "4", "27"]
    monkeypatch.setattr("nanobragg.cli.simulate.band_rows", lambda fpixels, budget: 7)
    assert main(args + ["-h5file", str(tmp_path / "b.h5")]) == 0
    capsys.readouterr()
    with h5py.File(tmp_path / "b.h5") as handle:
        data = handle["/entry/data/data"]
        assert data.chunks == (1, 7, 40)
        assert np.array_equal(data[0], read_smv(tmp_path / "i.img")[1])
        floats = np.fromfile(tmp_path / "f.bin", "<f4").reshape(30, 40)
        assert np.array_equal(handle["/entry/data/float_image"][0], floats)


def test_nxmx_to_a_fifo_is_built_in_a_scratch_file_then_streamed(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    assert main(BASE + ["-nonoise", "-floatfile", "/dev/null", "-intfile", str(tmp_path / "i.img"),
                        "-h5file", str(fifo)]) == 0
    reader.join(30)
    capsys.readouterr()
    (tmp_path / "copy.h5").write_bytes(got[0])
    with h5py.File(tmp_path / "copy.h5") as handle:
        assert np.array_equal(handle["/entry/data/data"][0], read_smv(tmp_path / "i.img")[1])
    assert sorted(os.listdir(tmp_path)) == ["copy.h5", "fifo", "i.img"]


def test_write_nxmx_panels_stack(tmp_path):
    """(panel, slow, fast) data: one module per panel at data_origin (p, 0, 0)."""
    counts = np.arange(2 * 5 * 6, dtype=np.uint16).reshape(2, 5, 6)
    modules = [Module(np.array([0.1, 0.01 * p, 0.0]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0]), 1e-4, (5, 6),
                      name=f"module_{p:02d}", index=p) for p in range(2)]
    info = NXmxInfo(1e-10, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), 0.0, 0.01, 0.1, 0.0, 0.0, 0.0, 1.0, modules)
    write_nxmx(tmp_path / "p.h5", info, counts)
    handle, entry, det, module, sample = parsed(tmp_path / "p.h5")
    with handle:
        assert [list(m.data_origin) for m in det.modules] == [[0, 0, 0], [1, 0, 0]]
        assert [list(m.data_size) for m in det.modules] == [[1, 5, 6], [1, 5, 6]]
        assert pixel_position(det.modules[1], 0, 0) == pytest.approx([0, 10, 100])
        assert np.array_equal(handle["/entry/data/data"][0], counts)


def test_bad_h5_paths_are_one_line_exit_2_nothing_touched(tmp_path, capsys):
    common = BASE + ["-nonoise", "-floatfile", str(tmp_path / "f.bin"), "-intfile", str(tmp_path / "i.img")]
    for bad, words in ((tmp_path / "missing" / "a.h5", "does not exist"), (tmp_path, "is a directory"),
                       (tmp_path / "i.img", "is also named as another output")):
        assert main(common + ["-h5file", str(bad)]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 2
        assert os.listdir(tmp_path) == []


def test_missing_h5py_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)
    assert main(BASE + ["-nonoise", "-floatfile", str(tmp_path / "f.bin"), "-h5file", str(tmp_path / "a.h5")]) == 2
    err = capsys.readouterr().err
    assert "-h5file needs h5py and hdf5plugin: pip install 'nanobragg[formats]'" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_same_run_same_bytes_with_source_date_epoch(tmp_path, monkeypatch, capsys):
    """No HDF5 timestamps, the start time from $SOURCE_DATE_EPOCH: a re-run gives the same file."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for name in ("a.h5", "b.h5"):
        assert main(BASE + ["-nonoise", "-floatfile", "/dev/null", "-intfile", "/dev/null",
                            "-h5file", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5") as handle:
        assert handle["/entry/start_time"][()].decode() == "2023-11-14T22:13:20.000Z"


def test_a_master_file_joins_chunk_files_in_series_order(tmp_path):
    """Five frames in chunk files of 2, 2 and 1 frames: the master's virtual dataset holds them in order, its
    omega values are the series' angles, and nxmx reads it (as it reads the frames through the master)."""
    from nanobragg.io.atomic import OutputSet
    from nanobragg.io.nexus import NXmxWriter, write_nxmx_master
    shape = (6, 7)
    frames = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    module = Module(np.array([0.1, 0.003, -0.0035]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0]), 1e-4, shape)
    angles = np.radians([10.0, 10.5, 11.0, 11.5, 12.0])

    def info(count, start):
        return NXmxInfo(1e-10, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), 0.0, np.radians(0.5), 0.1, 0.0035,
                        0.003, 0.0, 1.0, [module], frames=count, angles=angles[start:start + count])
    sources, start = [], 0
    for part, count in enumerate((2, 2, 1)):
        name = f"series_{part:03d}.h5"
        with OutputSet() as outputs:
            writer = NXmxWriter(outputs.add(tmp_path / name), info(count, start), shape, 6)
            try:
                for k in range(count):
                    writer.band(0, frames[start + k], frame=k)
                writer.finish()
            finally:
                writer.close()
        sources.append((name, "/entry/data/data", count))
        start += count
    write_nxmx_master(tmp_path / "master.h5", info(5, 0), sources, shape)
    handle, entry, det, module_read, sample = parsed(tmp_path / "master.h5")
    with handle:
        assert np.array_equal(handle["/entry/data/data"][()], frames)
        omega = sample.depends_on
        assert len(omega) == 5 and omega[()].to("deg").magnitude == pytest.approx([10.0, 10.5, 11.0, 11.5, 12.0])
        assert entry.instruments[0].beams[0].incident_wavelength.to("angstrom").magnitude == pytest.approx(1.0)
    with pytest.raises(ValueError, match="hold 5 frames, info.frames is 4"):
        write_nxmx_master(tmp_path / "bad.h5", info(4, 0), sources, shape)
