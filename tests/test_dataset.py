"""nb-dataset in one process: every image byte-identical to ``nanoBragg <its manifest args>``,
resume after SIGKILL, bad input refused before anything is written."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nanobragg.cli import dataset as cli
from nanobragg.cli import main as nanobragg_main
from nanobragg.dataset import MANIFEST, read_manifest, run_dataset, sha256_file
from nanobragg.dataset.orientations import (
    misset_angles,
    quaternion,
    quaternion_matrix,
    random_misset,
    rotation_matrix_xyz,
    uniforms,
)

INPUTS = Path(__file__).parent / "data" / "inputs"
#: A small rotation series: structure factors and matrix read from files, two spindle steps per image.
SERIES = ["-hkl", str(INPUTS / "pattern.hkl"), "-mat", str(INPUTS / "lyso.mat"), "-lambda", "1.2", "-N", "3",
          "-distance", "80", "-detpixels", "40", "-pixel", "0.4", "-osc", "0.25", "-phi", "3.5", "-phisteps", "2",
          "-nocompile"]
SHOTS = ["-default_F", "100", "-cell", "70", "80", "90", "90", "90", "90", "-lambda", "1", "-N", "4",
         "-distance", "60", "-detpixels", "32", "-pixel", "0.5", "-nocompile", "-dtype", "float64"]


def files_of(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def check_against_nanobragg(outdir: Path, workdir: Path, monkeypatch) -> None:
    """Each manifest entry: ``nanoBragg <args>`` run alone (in its own folder) writes the same bytes."""
    records = [json.loads(line) for line in (outdir / MANIFEST).read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(len(records)))
    for rec in records:
        alone = workdir / f"alone{rec['index']}"
        alone.mkdir()
        monkeypatch.chdir(alone)
        assert nanobragg_main.run(rec["args"], log=lambda *a: None) == 0
        for name, digest in rec["files"].items():
            assert (alone / name).read_bytes() == (outdir / name).read_bytes(), name
            assert sha256_file(alone / name) == digest


def test_rotation_series_images_equal_nanobragg_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "series"
    assert cli.main([str(out), "--images", "6", "--", *SERIES, "-seed", "11"]) == 0
    assert "6 images" in capsys.readouterr().out
    records = read_manifest(str(out))
    assert sorted(records) == list(range(6))
    for i, rec in records.items():
        n = f"{i + 1:05d}"
        assert set(rec["files"]) == {f"floatimage_{n}.bin", f"intimage_{n}.img", f"image_{n}.pgm",
                                     f"noiseimage_{n}.img"}
        assert rec["phi"] == pytest.approx(3.5 + 0.25 * i)
        assert rec["seed"] == 11 + i and rec["args"][-4:-2] == ["-seed", str(11 + i)]
        assert {"-dtype", "-nocompile", "-device"} <= set(rec["args"])
        assert rec["max_I"] > 0 and rec["mean"] > 0 and rec["rms"] > 0
    # contiguous wedges: image i starts where image i-1 ended
    assert [records[i]["args"][records[i]["args"].index("-phi") + 1] for i in range(6)] == \
        ["3.5", "3.75", "4", "4.25", "4.5", "4.75"]
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]
    check_against_nanobragg(out, tmp_path, monkeypatch)


def test_random_orientations_reproducible_and_equal_nanobragg(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    run_dataset(str(a), SHOTS, 4, random_orientations=True, seed=5)
    run_dataset(str(b), SHOTS, 4, random_orientations=True, seed=5)
    assert files_of(a) == files_of(b)
    recs = read_manifest(str(a))
    assert len({tuple(r["misset"]) for r in recs.values()}) == 4
    assert recs[2]["args"][recs[2]["args"].index("-misset") + 1:][:3] == list(random_misset(5, 2))
    check_against_nanobragg(a, tmp_path, monkeypatch)


def test_orientations_uniform_and_exact():
    # shot i depends on (seed, i) alone; the angles reproduce the sampled rotation as C's rotate() applies them
    assert random_misset(3, 7) == random_misset(3, 7) and random_misset(3, 7) != random_misset(4, 7)
    mats = []
    for i in range(3000):
        q = quaternion(*uniforms(9, i))
        R = quaternion_matrix(q)
        assert np.allclose(rotation_matrix_xyz(*misset_angles(R)), R, atol=1e-12)
        mats.append(R)
    mats = np.array(mats)
    for ry in (np.pi / 2, -np.pi / 2):  # gimbal lock: the decomposition still gives the same rotation
        R = rotation_matrix_xyz(0.3, ry, 0.7)
        assert np.allclose(rotation_matrix_xyz(*misset_angles(R)), R, atol=1e-12)
    # Haar measure: E[R] = 0 and E[R_ij^2] = 1/3 for every element
    assert np.abs(mats.mean(0)).max() < 0.04
    assert np.abs((mats ** 2).mean(0) - 1 / 3).max() < 0.03


def test_compiled_series_converts_every_int_image_compiled_and_equals_nanobragg(tmp_path, monkeypatch):
    """Under -compile a series' process loads the compiled int conversion once and uses it at any image size:
    the images are nanoBragg's bytes (whichever conversion a single small run uses: all give the same)."""
    from nanobragg.engine import compiled
    if not compiled.compiler_available():
        pytest.skip("no C++ compiler to build the kernels")
    used = []
    real = compiled.compiled_int_kernel
    monkeypatch.setattr(compiled, "compiled_int_kernel", lambda build: used.append(real(build)) or used[-1])
    out = tmp_path / "compiled"
    # F from -default_F, not pattern.hkl (whose index range is baked into the kernel): the kind of
    # tests/test_compiled.py's first kernel, so that in the suite the render kernel is loaded from the
    # session's cache instead of built again (the int conversion is the one under test here). In a folder
    # of its own: without -hkl a run reads Fdump.bin from the current folder, where other tests leave one.
    monkeypatch.chdir(tmp_path)
    at = SERIES.index("-hkl")
    flags = [*SERIES[:at], "-default_F", "100", *SERIES[at + 2:-1], "-compile", "-nonoise", "-nopgm"]
    run_dataset(str(out), flags, 2)
    assert len(used) == 2 and all(k is not None for k in used)
    check_against_nanobragg(out, tmp_path, monkeypatch)
    # two threads (a Dask worker's renders) converting at once, each with the kernel it asks for: no deadlock
    # (one loader run by two threads at once never returns; a thread's loaders are its own)
    import threading

    import torch
    values, done = torch.rand(1 << 19) * 1000, []

    def convert():
        out = torch.empty(values.numel(), dtype=torch.uint16)
        for _ in range(20):
            real(build=False)(values, 1.0, 40.0, out)
        done.append(out)

    threads = [threading.Thread(target=convert, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(done) == 2 and torch.equal(done[0], done[1])


def test_publish_hands_over_waiting_and_publishing(tmp_path, monkeypatch):
    """simulate_and_write(publish=...) (how a dataset publishes an image while rendering the next): nothing
    is in place until the step handed over runs, then every file is, the bytes of the run that publishes."""
    from nanobragg.cli.main import build_settings
    from nanobragg.cli.simulate import simulate_and_write
    monkeypatch.chdir(tmp_path)
    args = [*SHOTS, "-nopgm", "-nonoise", "-floatfile", "f.bin", "-intfile", "i.img"]
    steps = []
    assert simulate_and_write(build_settings(args), 1, lambda *a: None, publish=steps.append) == 0
    assert len(steps) == 1 and os.listdir(tmp_path) == []
    steps[0]()
    later = files_of(tmp_path)
    assert sorted(later) == ["f.bin", "i.img"]
    for name in later:
        os.unlink(name)
    simulate_and_write(build_settings(args), 1, lambda *a: None)
    assert files_of(tmp_path) == later


def test_resume_rerenders_only_missing_or_damaged(tmp_path):
    out = tmp_path / "r"
    run_dataset(str(out), SERIES, 4)
    before = files_of(out)
    # damage one image's file and drop another image's manifest line
    (out / "intimage_00002.img").write_bytes(b"broken")
    lines = (out / MANIFEST).read_text().splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # a torn last line
    done = []
    summary = run_dataset(str(out), SERIES, 4, resume=True, on_record=lambda r: done.append(r["index"]))
    assert sorted(done) == [1, 3] and summary.kept == 2 and summary.rendered == 2
    assert files_of(out) == before


def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path):
    flags = [*SERIES, "-seed", "3"]
    whole = tmp_path / "whole"
    run_dataset(str(whole), flags, 10)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nanobragg.cli.dataset", str(killed), "--images", "10", "--", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = killed / MANIFEST
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_text().count("\n") >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = read_manifest(str(killed))
    assert 2 <= len(listed) < 10, "the run was not stopped midway"
    for rec in listed.values():  # every listed image is complete
        assert all(sha256_file(killed / n) == d for n, d in rec["files"].items())
    assert not [p for p in os.listdir(killed) if p.endswith(".img") and p.startswith("intimage_") and
                int(p[9:14]) - 1 not in listed and (killed / p).stat().st_size != (whole / p).stat().st_size]
    assert cli.main([str(killed), "--images", "10", "--resume", "--", *flags]) == 0
    assert files_of(killed) == files_of(whole)  # same images, the same manifest, nothing else


def test_interrupt_keeps_finished_images_listed(tmp_path):
    out = tmp_path / "i"

    def stop_after_two(rec):
        if rec["index"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dataset(str(out), SERIES, 8, on_record=stop_after_two)
    listed = read_manifest(str(out))
    assert {0, 1} <= set(listed) and len(listed) < 8
    # exactly the listed images have files (an image being hashed when it stopped is listed too)
    written = {int(p.split("_")[1][:5]) - 1 for p in os.listdir(out) if p.startswith("intimage_")}
    assert written == set(listed)
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]


def _bad(argv, capsys, tmp_path, expect):
    before = sorted(os.listdir(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert expect in err, err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


@pytest.mark.parametrize("argv, expect", [
    (["--images", "3", "--", *SHOTS], "-osc"),
    (["--images", "3", "--random-orientations", "--", *SHOTS], "--seed"),
    (["--images", "3", "--random-orientations", "--seed", "1", "--", *SHOTS, "-misset", "1", "2", "3"], "-misset"),
    (["--images", "0", "--", *SERIES], "--images"),
    (["--images", "2", *SERIES], "after '--'"),
    (["--images", "2", "--", *SERIES, "-bogus"], "unknown flag -bogus"),
    (["--images", "2", "--", *SERIES, "-N", "-3"], "-N"),
    (["--images", "2", "--", *SERIES, "-hkl", "/nonexistent.hkl"], "nonexistent.hkl"),
    (["--images", "2", "--", *SERIES, "-misset", "random"], "-misset_seed"),
    (["--imagez", "2", "--", *SERIES], "--images"),
    (["--images", "2", "--", *SERIES, "-nopgm", "-floatfile", "x.img", "-intfile", "x.img"], "x_00001.img"),
])
def test_bad_input_one_line_exit_2_nothing_written(argv, expect, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _bad([str(tmp_path / "out"), *argv], capsys, tmp_path, expect)


def test_existing_dataset_needs_resume_and_same_flags(tmp_path, capsys):
    out = tmp_path / "d"
    run_dataset(str(out), SERIES, 2)
    before = files_of(out)
    assert cli.main([str(out), "--images", "2", "--", *SERIES]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main([str(out), "--images", "2", "--resume", "--", *SERIES, "-N", "4"]) == 2
    assert "another dataset" in capsys.readouterr().err
    assert files_of(out) == before
    assert cli.main([str(out), "--images", "2", "--resume", "--", *SERIES]) == 0  # nothing left to do
    assert "0 rendered, 2 kept" in capsys.readouterr().out
    assert files_of(out) == before


def test_workers_without_dask_say_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    _bad([str(tmp_path / "o"), "--images", "2", "--workers", "2", "--", *SERIES], capsys, tmp_path,
         "pip install 'nanobragg[dataset]'")


def test_benchmark_gives_c_the_flags_it_has():
    from nanobragg.dataset.bench import CUBIC, c_args
    args = ["-N", "5", "-dtype", "float32", "-device", "cpu", "-compile", "-phi", "0.1", "-nocompile"]
    assert c_args(args) == ["-N", "5", "-phi", "0.1"]
    assert "-osc" in CUBIC  # a rotation series needs the image width


def test_sigterm_ends_with_143_finished_images_listed(tmp_path):
    out = tmp_path / "t"
    cmd = [sys.executable, "-m", "nanobragg.cli.dataset", str(out), "--images", "10", "--", *SERIES]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / MANIFEST).exists() and (out / MANIFEST).read_text().count("\n") >= 1:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert b"--resume" in err and b"Traceback" not in err
    listed = read_manifest(str(out))
    assert 1 <= len(listed) < 10
    for rec in listed.values():
        assert all(sha256_file(out / n) == d for n, d in rec["files"].items())
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]


def test_progress_bar_over_images(tmp_path, capsys):
    run_dataset(str(tmp_path / "p"), SERIES, 3, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "img/s" in err


def test_image_args_spell_out_what_decides_the_arithmetic(tmp_path, monkeypatch):
    from nanobragg.dataset import make_spec
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.hkl").write_text("0 0 1 10\n")
    flags = ["-hkl", "in.hkl", "-cell", "50", "50", "50", "90", "90", "90", "-osc", "0.1", "-phi", "-0.3",
             "-detpixels", "16", "-intfile", "sub/run.img", "-nopgm", "-nonoise", "-floatfile", "f", "-seed", "4"]
    spec, settings = make_spec("out", flags, 12, device="cpu")
    args = spec.image_args(5)
    assert args[args.index("-hkl") + 1] == str(tmp_path / "in.hkl")
    assert args[args.index("-dump") + 1] == str(tmp_path / "Fdump.bin")
    assert ["-dtype", "float32", "-device", "cpu", "-numba"] == spec.fixed  # neither given: the numba loop
    for extra, engine in ((["-curved_det"], "-compile"), (["-oversample_omega"], "-compile"),
                          (["-nocompile"], "-nocompile"), (["-compile"], "-compile"), (["-numba"], "-numba")):
        other = make_spec("out", [*flags, *extra], 2, device="cpu")[0]
        engines = [a for a in other.image_args(1) if a in ("-numba", "-compile", "-nocompile")]
        assert other.fixed[-1] == engine and engines == [engine], (extra, engines)
    assert args[args.index("-phi") + 1] == "0.2" and args[args.index("-seed") + 1] == "9"
    assert spec.files(11) == {"-floatfile": "f_00012", "-intfile": "run_00012.img"}
    assert "-nopgm" in args and "-noisefile" not in args
    assert settings.output.intfile == "run_00001.img"
    # a files.* value that names no file (a column name) is left as given
    spec, _ = make_spec("out", [*flags, "-mtz_column", "FP"], 2, device="cpu")
    assert spec.image_args(0)[spec.image_args(0).index("-mtz_column") + 1] == "FP"


def test_cbf_and_nxmx_datasets_equal_nanobragg(tmp_path, monkeypatch):
    pytest.importorskip("fabio")
    pytest.importorskip("hdf5plugin")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the CBF header's time of writing
    out = tmp_path / "formats"
    flags = [*SERIES, "-nopgm", "-nonoise", "-cbffile", "shot.cbf", "-h5file", "shot.h5", "-pngfile", "p.png"]
    run_dataset(str(out), flags, 2)
    assert set(read_manifest(str(out))[1]["files"]) == {"floatimage_00002.bin", "intimage_00002.img",
                                                        "shot_00002.cbf", "shot_00002.h5", "p_00002.png"}
    check_against_nanobragg(out, tmp_path, monkeypatch)


def test_one_writer_at_a_time(tmp_path, capsys):
    import fcntl
    out = tmp_path / "locked"
    run_dataset(str(out), SERIES, 1)
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running nb-dataset holds it
        assert cli.main([str(out), "--images", "1", "--resume", "--", *SERIES]) == 2
        assert "another nb-dataset run" in capsys.readouterr().err
    finally:
        os.close(fd)


def test_structure_from_a_model_read_once_and_equal_nanobragg(tmp_path, monkeypatch):
    pytest.importorskip("gemmi")
    model = Path(__file__).parent / "data" / "structures" / "1yjp.pdb"
    out = tmp_path / "pdb"
    flags = ["-pdb", str(model), "-lambda", "1", "-N", "3", "-distance", "80", "-detpixels", "32", "-pixel", "0.4",
             "-osc", "0.2", "-nocompile", "-nonoise", "-nopgm", "-seed", "1"]
    run_dataset(str(out), flags, 2)
    check_against_nanobragg(out, tmp_path, monkeypatch)


#: nonBragg flags putting its detector where nanoBragg's SHOTS flags put it (32 pixels of 0.5 mm at 60 mm:
#: nanoBragg's default beam centre is 8.25 mm from the first pixel's corner along both axes, plus its half pixel)
WATER = ["-stol", "water", "-thickness", "0.00001", "-lambda", "1", "-distance", "60", "-detpixels", "32",
         "-pixel", "0.5", "-Xbeam", "8.5", "-Ybeam", "8.5"]
DETECTOR = ["-scale", "0.001", "-readout", "2", "-psf", "gauss", "-psf_fwhm", "600", "-psf_radius", "2",
            "-calib_seed", "3", "-detpixels", "32"]


def test_background_and_detector_effects_equal_the_command_chain(tmp_path, monkeypatch):
    from nanobragg.cli import noisify, nonbragg
    out = tmp_path / "chain"
    home = os.getcwd()
    run_dataset(str(out), SHOTS, 2, random_orientations=True, seed=4, background=WATER, detector_effects=DETECTOR)
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    for rec in records:  # the spots: nanoBragg <args>, byte for byte
        spots = tmp_path / f"spots{rec['index']}"
        spots.mkdir()
        monkeypatch.chdir(spots)
        assert nanobragg_main.run(rec["args"], log=lambda *a: None) == 0
        made = sorted(p.name for p in spots.iterdir())
        assert made and set(made) < set(rec["files"])
        for name in made:
            assert (spots / name).read_bytes() == (out / name).read_bytes(), name
    alone = tmp_path / "chain_alone"
    alone.mkdir()
    monkeypatch.chdir(alone)
    assert nonbragg.run(records[0]["chain"]["nonBragg"] + ["-nonoise", "-nopgm"], log=lambda *a: None) == 0
    assert (alone / "background.bin").read_bytes() == (out / "background.bin").read_bytes()
    water = np.fromfile(alone / "background.bin", dtype="<f4")
    assert water.min() > 0
    for rec in records:
        spots_name, bg_name, total_name = rec["chain"]["float_add"]
        spots = np.fromfile(out / spots_name, dtype="<f4")
        total = (spots.astype(np.float64) + water).astype(np.float32)  # float_add
        assert total.tobytes() == (out / total_name).read_bytes()
        (alone / total_name).write_bytes(total.tobytes())
        args = rec["chain"]["noisify"]
        assert args[args.index("-seed") + 1] == str(rec["seed"])
        assert noisify.run(args, log=lambda *a: None) == 0
        for name in (f"detector_int_{rec['index'] + 1:05d}.img", f"detector_{rec['index'] + 1:05d}.img"):
            assert name in rec["files"]
            assert (alone / name).read_bytes() == (out / name).read_bytes(), name
            assert sha256_file(out / name) == rec["files"][name]
    # resume keeps them all
    monkeypatch.chdir(home)  # the same -dump path
    summary = run_dataset(str(out), SHOTS, 2, random_orientations=True, seed=4, background=WATER,
                          detector_effects=DETECTOR, resume=True)
    assert summary.rendered == 0 and summary.kept == 2


@pytest.mark.parametrize("background, effects, expect", [
    (WATER[:-4], None, "detector origin"),
    (WATER + ["-floatfile", "w.bin"], None, "writes background.bin itself"),
    (WATER[:-6] + ["-detpixels", "30", "-pixel", "0.5"], None, "pixels"),
    (None, DETECTOR + ["-seed", "3"], "-seed"),
    (None, ["-floatfile", "x.bin"], "its input"),
])
def test_chain_options_refused_before_anything_is_written(tmp_path, background, effects, expect):
    from nanobragg.dataset import DatasetError
    out = tmp_path / "bad"
    with pytest.raises(DatasetError, match=expect):
        run_dataset(str(out), SHOTS, 1, random_orientations=True, seed=1, background=background,
                    detector_effects=effects)
    assert not out.exists()


def test_cli_takes_chain_options_as_strings(tmp_path, capsys):
    out = tmp_path / "cli"
    status = cli.run([str(out), "--images", "1", "--random-orientations", "--seed", "2", "--no-progress",
                      "--background", " ".join(WATER), "--detector-effects", " ".join(DETECTOR), "--", *SHOTS])
    assert status == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert {"background.bin", "total_00001.bin", "detector_00001.img", "detector_int_00001.img"} <= set(names)
