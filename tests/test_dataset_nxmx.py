"""nb-dataset --format nxmx: a 5-frame rotation series as NXmx data files (one per chunk of frames) and a
master file read by the ``nxmx`` package: the run's wavelength, distance, module, frame count and omega
values; every frame the SMV int image that ``nanoBragg`` alone writes; same bytes on a re-run, on Dask
and after a resume."""
import json
import os

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")
nxmx = pytest.importorskip("nxmx")

from nanobragg.cli import dataset as cli  # noqa: E402
from nanobragg.cli import main as nanobragg_main  # noqa: E402
from nanobragg.dataset import MANIFEST, read_manifest, run_dataset  # noqa: E402
from nanobragg.io import read_smv  # noqa: E402
from test_dataset import SERIES, files_of  # noqa: E402

FLAGS = [*SERIES, "-seed", "21"]
H5 = ("series_00001.h5", "series_00002.h5", "series_00003.h5", "series_master.h5")


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the master's start_time


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    out = tmp_path_factory.mktemp("nxmx") / "series"
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        assert cli.main([str(out), "--images", "5", "--format", "nxmx", "--chunk", "2", "--", *FLAGS]) == 0
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    return out


def h5_files(folder) -> dict:
    return {name: (folder / name).read_bytes() for name in H5}


def test_master_parses_with_the_runs_values_and_frames_equal_nanobragg_alone(series, tmp_path, monkeypatch):
    records = [json.loads(line) for line in (series / MANIFEST).read_text().splitlines()]
    assert [r["nxmx"] for r in records] == [{"file": f"series_{k // 2 + 1:05d}.h5", "frame": k % 2} for k in range(5)]
    alone = []
    for rec in records:  # each image's SMV int image from nanoBragg run alone with its manifest args
        folder = tmp_path / f"alone{rec['index']}"
        folder.mkdir()
        monkeypatch.chdir(folder)
        assert nanobragg_main.run(rec["args"], log=lambda *a: None) == 0
        alone.append(read_smv(folder / f"intimage_{rec['index'] + 1:05d}.img"))
    header = alone[0][0]
    with h5py.File(series / "series_master.h5", "r") as handle:
        entry = nxmx.NXmx(handle).entries[0]
        assert entry.definition == "NXmx"
        beam = entry.instruments[0].beams[0]
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(1.2)
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(float(header["WAVELENGTH"]))
        det = entry.instruments[0].detectors[0]
        assert det.distance.to("mm").magnitude == pytest.approx(80.0)
        module = det.modules[0]
        assert list(module.data_origin) == [0, 0] and list(module.data_size) == [40, 40]
        assert module.fast_pixel_direction[()].to("mm").magnitude[0] == pytest.approx(0.4)
        assert module.slow_pixel_direction[()].to("mm").magnitude[0] == pytest.approx(0.4)
        origin = nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(module.module_offset))[0, :3, 3]
        dials = [float(t) for t in header["DIALS_ORIGIN"].split(",")]
        assert origin == pytest.approx([-dials[0], dials[1], -dials[2]], abs=1e-3)  # DIALS frame -> McStas
        omega = entry.samples[0].depends_on
        assert len(omega) == 5
        assert omega[()].to("deg").magnitude == pytest.approx([r["phi"] for r in records], abs=1e-12)
        assert omega.end[()].to("deg").magnitude == pytest.approx([r["phi"] + 0.25 for r in records], abs=1e-12)
        data = handle["/entry/data/data"]
        assert data.is_virtual and data.shape == (5, 40, 40) and data.dtype == np.uint16
        for k, (_, ints) in enumerate(alone):
            assert np.array_equal(data[k], ints), k
    for name, frames in (("series_00001.h5", 2), ("series_00002.h5", 2), ("series_00003.h5", 1)):
        with h5py.File(series / name, "r") as f:
            d = f["/entry/data/data"]
            assert d.shape == (frames, 40, 40) and d.chunks == (1, 40, 40) and "32008" in d._filters


def test_a_rerun_gives_the_same_bytes(series, tmp_path):
    out = tmp_path / "again"
    run_dataset(str(out), FLAGS, 5, format="nxmx", chunk=2)
    assert files_of(out) == files_of(series)


def test_two_dask_workers_write_the_same_files(series, tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "w2"
    assert cli.main([str(out), "--images", "5", "--format", "nxmx", "--chunk", "2", "--workers", "2",
                     "--", *FLAGS]) == 0
    assert "2 Dask workers" in capsys.readouterr().out
    assert files_of(out) == files_of(series)


def test_resume_renders_a_lost_data_file_again_and_writes_the_master(series, tmp_path):
    out = tmp_path / "resumed"
    run_dataset(str(out), FLAGS, 5, format="nxmx", chunk=2)
    (out / "series_00002.h5").unlink()  # images 3 and 4 fail their sha256; the master was lost too
    (out / "series_master.h5").unlink()
    summary = run_dataset(str(out), FLAGS, 5, format="nxmx", resume=True)  # --chunk from dataset.json
    assert (summary.rendered, summary.kept) == (2, 3)
    assert files_of(out) == files_of(series)
    assert sorted(read_manifest(str(out))) == list(range(5))
    # an interrupted run's manifest lists image 1 of a file but not image 2: the whole file is rendered again
    lines = (out / MANIFEST).read_text().splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:4]) + "\n")
    (out / "series_master.h5").unlink()
    summary = run_dataset(str(out), FLAGS, 5, format="nxmx", resume=True)
    assert (summary.rendered, summary.kept) == (1, 4)
    assert files_of(out) == files_of(series)


@pytest.mark.parametrize("extra, flags, message", [
    (["--random-orientations", "--seed", "3"], FLAGS, "--format nxmx writes a rotation series"),
    ([], [*FLAGS, "-intfile", ""], "give -intfile"),
    ([], [*FLAGS, "-floatfile", "series.h5"], "-floatfile and nxmx would both write series_00001.h5"),
    (["--chunk", "0"], FLAGS, "--chunk must be a positive whole number"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, flags, message):
    out = tmp_path / "bad"
    assert cli.main([str(out), "--images", "5", "--format", "nxmx", *extra, "--", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_other_datasets_keep_their_identity(tmp_path):
    """Without --format nxmx dataset.json is as before (no format keys): older datasets still resume."""
    out = tmp_path / "plain"
    run_dataset(str(out), FLAGS, 1)
    spec = json.loads((out / "dataset.json").read_text())
    assert "format" not in spec and "frames_per_file" not in spec
    assert "nxmx" not in read_manifest(str(out))[0]


def test_master_file_has_no_hdf5_timestamp(tmp_path):
    """The virtual dataset too is written without a modification time: a second later, the same bytes."""
    import time

    from nanobragg.io.nexus import Module, NXmxInfo, write_nxmx_frames, write_nxmx_master
    module = Module(np.array([0.1, 0.003, -0.0035]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0]), 1e-4, (6, 7))
    info = NXmxInfo(1e-10, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), 0.0, 0.01, 0.1, 0.0035, 0.003, 0.0, 1.0,
                    [module], frames=2)
    write_nxmx_frames(tmp_path / "d.h5", np.arange(84, dtype=np.uint16).reshape(2, 6, 7))
    write_nxmx_master(tmp_path / "a.h5", info, [("d.h5", "/entry/data/data", 2)], (6, 7))
    time.sleep(1.1)
    write_nxmx_master(tmp_path / "b.h5", info, [("d.h5", "/entry/data/data", 2)], (6, 7))
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert np.array_equal(f["/entry/data/data"][()], np.arange(84).reshape(2, 6, 7))


def test_missing_hdf5plugin_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)
    out = tmp_path / "none"
    assert cli.main([str(out), "--images", "2", "--format", "nxmx", "--", *FLAGS]) == 2
    err = capsys.readouterr().err
    assert "--format nxmx needs h5py and hdf5plugin: pip install 'nanobragg[formats]'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
