"""Output files under faults: device nodes, FIFOs and links written through, never replaced; an old
file intact until the new one is complete; every path checked before rendering; disk full; a
read-only folder; images larger than the memory budget written in bands, identical to one band."""
import errno
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from nanobragg.cli.main import main
from nanobragg.io import InputError, OutputSet, atomic_open, atomic_write

BASE = ["-default_F", "100", "-cell", "70", "80", "90", "75", "85", "95", "-lambda", "1", "-N", "3",
        "-distance", "100", "-detpixels", "64", "-nocompile", "-dtype", "float64", "-seed", "7", "-noprogress"]
#: The flag of every output file and the bytes of a default run that it holds.
OUTPUT_FLAGS = ("-floatfile", "-intfile", "-noisefile", "-pgmfile", "-pngfile")


def _outputs(folder: Path, **names) -> list:
    """The output flags with each file in ``folder`` (names override the defaults)."""
    files = {"-floatfile": "float.bin", "-intfile": "int.img", "-noisefile": "noise.img", "-pgmfile": "image.pgm"}
    files.update({f"-{k}": v for k, v in names.items()})
    return [x for flag, name in files.items() for x in (flag, str(folder / name))]


def _run(args, capsys=None) -> int:
    status = main(BASE + list(args))
    if capsys is not None:
        capsys.readouterr()
    return status


def _snapshot(folder: Path) -> dict:
    """Name -> bytes of each regular file, a link's target, or "node" for anything else."""
    def content(p: Path):
        if p.is_symlink():
            return os.readlink(p)
        return p.read_bytes() if p.is_file() else "node"
    return {p.name: content(p) for p in sorted(folder.iterdir())}


@pytest.fixture
def reference(tmp_path_factory):
    """The files of a plain run, by output flag."""
    folder = tmp_path_factory.mktemp("reference")
    assert main(BASE + _outputs(folder) + ["-pngfile", str(folder / "p.png")]) == 0
    return {"-floatfile": (folder / "float.bin").read_bytes(), "-intfile": (folder / "int.img").read_bytes(),
            "-noisefile": (folder / "noise.img").read_bytes(), "-pgmfile": (folder / "image.pgm").read_bytes(),
            "-pngfile": (folder / "p.png").read_bytes()}


# ---------------------------------------------------------------- the write policy


def test_atomic_write_replaces_and_a_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, b"one")
    atomic_write(target, b"two", b"!")
    assert target.read_bytes() == b"two!"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"two!" and os.listdir(tmp_path) == ["out.bin"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_missing_folder_and_directory_target_are_errors_naming_the_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        atomic_write(tmp_path / "missing" / "out.img", b"data")
    with pytest.raises(InputError, match="is a directory"):
        atomic_write(tmp_path, b"data")
    assert os.listdir(tmp_path) == []


def test_a_link_to_a_regular_file_is_followed_and_kept(tmp_path):
    (tmp_path / "real.bin").write_bytes(b"old")
    (tmp_path / "link.bin").symlink_to("real.bin")
    atomic_write(tmp_path / "link.bin", b"new")
    assert (tmp_path / "link.bin").is_symlink() and (tmp_path / "real.bin").read_bytes() == b"new"
    (tmp_path / "dangling").symlink_to("created.bin")
    atomic_write(tmp_path / "dangling", b"made")
    assert (tmp_path / "created.bin").read_bytes() == b"made"


def test_outputs_are_published_together_or_not_at_all(tmp_path):
    (tmp_path / "a").write_bytes(b"old a")
    with pytest.raises(RuntimeError):
        with OutputSet() as outputs:
            outputs.add(tmp_path / "a").write_at(b"new a", 0)
            outputs.add(tmp_path / "b").write_at(b"new b", 0)
            raise RuntimeError("interrupted")
    assert _snapshot(tmp_path) == {"a": b"old a"}
    with OutputSet() as outputs:
        outputs.add(tmp_path / "a").write_at(b"new a", 0)
        outputs.add(tmp_path / "b").write_at(b"new b", 0)
    assert _snapshot(tmp_path) == {"a": b"new a", "b": b"new b"}


# ---------------------------------------------------------------- nodes that are written, not replaced


def _char_device(path: Path) -> None:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pytest.skip("mknod is not permitted here")


@pytest.mark.parametrize("flag", OUTPUT_FLAGS + ("-dump",))
def test_a_character_device_is_written_not_replaced(tmp_path, flag, capsys):
    node = tmp_path / "null"
    _char_device(node)
    extra = ["-hkl", _hkl(tmp_path)] if flag == "-dump" else []
    assert _run(_outputs(tmp_path) + [flag, str(node)] + extra, capsys) == 0
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def _hkl(folder: Path) -> str:
    path = folder / "P1.hkl"
    path.write_text("1 0 0 10\n0 1 0 20\n0 0 1 30\n")
    return str(path)


def _fifo_reader(fifo: Path):
    """Make the FIFO ``fifo`` and read it on a thread; returns (thread, list that gets its bytes)."""
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    return reader, got


@pytest.mark.parametrize("flag", OUTPUT_FLAGS)
def test_a_fifo_is_written_in_place(tmp_path, flag, reference, capsys):
    fifo = tmp_path / "fifo"
    reader, got = _fifo_reader(fifo)
    assert _run(_outputs(tmp_path) + [flag, str(fifo)], capsys) == 0
    reader.join(30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got == [reference[flag]]


def test_a_link_to_a_descriptor_is_followed(tmp_path, reference):
    """-floatfile naming a link to /proc/self/fd/N, a pipe: the bytes go down the pipe, the link stays."""
    read_end, write_end = os.pipe()
    link = tmp_path / "out"
    link.symlink_to(f"/proc/self/fd/{write_end}")
    cmd = [sys.executable, "-m", "nanobragg"] + BASE + _outputs(tmp_path) + ["-floatfile", str(link)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(write_end,))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    assert proc.wait(120) == 0, proc.stderr.read()
    assert link.is_symlink() and data == reference["-floatfile"]


# ---------------------------------------------------------------- checks before rendering


def test_two_outputs_naming_one_file_are_refused(tmp_path, capsys):
    assert main(BASE + _outputs(tmp_path, intfile="float.bin")) == 2
    err = capsys.readouterr().err
    assert "float.bin" in err and "also named" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_a_bad_output_fails_before_any_other_is_written(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    (tmp_path / "float.bin").write_bytes(b"old")
    assert main(BASE + _outputs(tmp_path, intfile="adir")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is a directory" in err[0] and len(err) == 2
    assert _snapshot(tmp_path) == {"adir": "node", "float.bin": b"old"}


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("mount is not permitted here")


@pytest.fixture
def tmpfs(tmp_path):
    """A 1 MB tmpfs; unmounted afterwards."""
    mounted = tmp_path / "tmpfs"
    _mount_tmpfs(mounted, "size=1m")
    yield mounted
    subprocess.run(["umount", str(mounted)], check=True)


def test_read_only_folder_is_refused_before_rendering(tmpfs, capsys):
    (tmpfs / "float.bin").write_bytes(b"old")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    assert main(BASE + _outputs(tmpfs)) == 2
    assert "not writable" in capsys.readouterr().err
    assert _snapshot(tmpfs) == {"float.bin": b"old"}


def test_too_little_space_is_refused_and_the_old_file_kept(tmpfs, capsys):
    old = os.urandom(700_000)
    (tmpfs / "float.bin").write_bytes(old)
    args = ["-detpixels", "256", "-nonoise", "-nopgm"] + _outputs(tmpfs)[:4]  # 256 KB + 128 KB new
    assert main(BASE + args) == 2
    assert "not enough free space" in capsys.readouterr().err
    assert _snapshot(tmpfs) == {"float.bin": old}


def test_disk_full_mid_write_keeps_every_old_file(tmpfs, monkeypatch, capsys):
    """The disk fills up after the space check (another writer): the write fails, exit 2, old files intact."""
    (tmpfs / "float.bin").write_bytes(b"old float")
    (tmpfs / "int.img").write_bytes(b"old int")
    real, written = os.pwrite, []

    def filling(fd, data, offset):
        written.append(len(data))
        if sum(written) > 20_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", filling)
    assert main(BASE + _outputs(tmpfs)) == 2
    err = capsys.readouterr().err
    assert "No space left" in err and "Traceback" not in err
    assert _snapshot(tmpfs) == {"float.bin": b"old float", "int.img": b"old int"}


def test_no_temporary_is_left_after_a_failure(tmp_path, monkeypatch, capsys):
    """Without O_TMPFILE the named temporaries are removed on failure too."""
    monkeypatch.setattr("nanobragg.io.atomic._UNNAMED", False)
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    assert main(BASE + _outputs(tmp_path)) == 2
    capsys.readouterr()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- bands of rows


def test_images_in_many_bands_equal_one_band(tmp_path, monkeypatch, capsys):
    """ROI, mosaic domains, noise, PGM and PNG: files byte for byte the same with bands of 5 rows."""
    args = ["-detpixels", "48", "-roi", "3", "40", "5", "44", "-mosaic", "0.5", "-mosaic_dom", "3"]
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    assert main(BASE + args + _outputs(one) + ["-pngfile", str(one / "p.png")]) == 0
    log_one = capsys.readouterr().out
    monkeypatch.setattr("nanobragg.cli.simulate.band_rows", lambda fpixels, budget: 5)
    assert main(BASE + args + _outputs(many) + ["-pngfile", str(many / "p.png")]) == 0
    log_many = capsys.readouterr().out
    assert _snapshot(one) == _snapshot(many)
    assert log_one.replace(str(one), "") == log_many.replace(str(many), "")


def test_bands_read_back_from_a_scratch_file_when_the_float_file_is_a_fifo(tmp_path, monkeypatch, reference, capsys):
    reader, got = _fifo_reader(tmp_path / "fifo")
    monkeypatch.setattr("nanobragg.cli.simulate.band_rows", lambda fpixels, budget: 7)
    assert _run(_outputs(tmp_path, floatfile="fifo"), capsys) == 0
    reader.join(30)
    assert got == [reference["-floatfile"]]
    assert (tmp_path / "int.img").read_bytes() == reference["-intfile"]
    assert (tmp_path / "noise.img").read_bytes() == reference["-noisefile"]


def test_png_scale_from_bands_is_numpys_percentile():
    from nanobragg.cli.outputs import png_top
    rng = np.random.default_rng(3)
    image = (rng.exponential(5.0, (37, 23)) * (rng.random((37, 23)) > 0.3)).astype(np.float32)
    image[3, 4] = -2.0

    class Store:
        shape, rows, whole = image.shape, 4, False

        def bands(self):
            for first in range(0, image.shape[0], 4):
                yield first, image[first:first + 4]
    want = np.percentile(np.clip(image.astype(np.float64), 0, None), 99.9)
    assert png_top(Store()) == pytest.approx(want, rel=1e-6)
