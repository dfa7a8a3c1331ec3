"""noisify beyond the golden cases: bad input, C's crash case, and the tensor functions of
physics.detector_effects against C's exact pipeline."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from golden_tools import INPUTS, run_in
from nanobragg.cli.noisify import run
from nanobragg.physics import detector_effects as de


def _input(tmp_path, name="spots128.bin"):
    shutil.copy(INPUTS / name, tmp_path / name)
    return name


@pytest.mark.parametrize("args, words", [
    ([], "-floatfile"),
    (["-floatfile", "none.bin"], "none.bin"),
    (["-floatfile", "spots128.bin", "-bits", "24"], "-bits"),
    (["-floatfile", "spots128.bin", "-psf", "box"], "-psf"),
    (["-floatfile", "spots128.bin", "-detpixels", "200"], "spots128.bin"),
    (["-floatfile", "spots128.bin", "-header", "none.img"], "none.img"),
    (["-floatfile", "spots128.bin", "-seed"], "-seed"),
    (["-floatfile", "spots128.bin", "-unknown", "1"], "-unknown"),
    (["-floatfile", "spots128.bin", "-intfile", "nodir/x.img"], "nodir"),
])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(args, words, tmp_path, capsys):
    _input(tmp_path)
    (tmp_path / "intimage.img").write_bytes(b"old")
    status, _ = run_in(tmp_path, run, args)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err[0].startswith("noisify: error:") and words in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intimage.img", "spots128.bin"]
    assert (tmp_path / "intimage.img").read_bytes() == b"old"


def test_nonoise_gauss_psf_without_radius_does_not_crash(tmp_path):
    """C segfaults here (a pixel with 0 < I < 0.01 photons: the square root of a negative number)."""
    img = np.zeros((32, 32), dtype="<f4")
    img[10, 10], img[20, 5], img[3, 3] = 5000.0, 0.005, 0.5
    img.tofile(tmp_path / "in.bin")
    status, lines = run_in(tmp_path, run, ["-floatfile", "in.bin", "-psf", "gauss", "-psf_fwhm", "200", "-nonoise"])
    assert status == 0, lines
    ints = np.frombuffer((tmp_path / "intimage.img").read_bytes()[512:], "<u2").reshape(32, 32)
    assert ints[10, 10] > ints[10, 13] > 40 and not (tmp_path / "noiseimage.img").exists()


def test_tensor_psf_equals_c_loop():
    """apply_psf (a convolution, differentiable) equals C's float32 loop to rounding, C's edge wrap included."""
    rng = np.random.default_rng(1)
    img = (rng.random((40, 50)) * 100).astype(np.float32)
    img[5, 49] = 5000.0  # its spill past the right edge wraps to the next row in C
    for psf, fwhm, radius in (("gauss", 2.5, 4), ("fiber", 1.5, 6)):
        kind = de.PSF_TYPES[psf]
        kernel = de.psf_kernel(psf, fwhm, radius).numpy().reshape(-1)
        out = np.zeros(img.size + 1, dtype=np.float32)
        de.loops.psf_loop(img.reshape(-1).copy(), 50, 40, kind, fwhm, radius, kernel, radius, out)
        ours = de.apply_psf(torch.from_numpy(img).double(), psf, fwhm, radius).numpy()
        np.testing.assert_allclose(ours, out[:-1].reshape(40, 50), rtol=2e-6, atol=1e-3)
        assert abs(ours.sum() - img.sum()) / img.sum() < 0.05


def test_tensor_functions():
    x = torch.full((64, 64), 100.0, dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(3)
    photons = de.photon_scale(x, scale=2.0)
    assert math.isclose(float(photons[0, 0].detach()), 200.0, rel_tol=1e-12)
    noisy = de.photon_noise(de.calibration_error(de.flicker(photons, 0.0, generator=g), 0.0, generator=g), generator=g)
    noisy = noisy.detach()
    assert abs(float(noisy.mean()) - 200.0) < 2.0 and abs(float(noisy.var()) - 200.0) < 30.0
    values, overloads = de.adc(noisy, gain=2.0, offset=10.0, noise=de.read_noise(torch.zeros_like(noisy), 0.0))
    assert values.dtype == torch.int64 and overloads == 0 and int(values.min()) >= 10
    assert de.adc(torch.tensor([40000.0]), gain=2.0)[1] == 1 and de.adc(torch.tensor([40000.0]), 2.0, bits=32)[1] == 0
    total = de.add_images(photons, photons)
    total.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 4.0))
    with pytest.raises(ValueError):
        de.add_images(photons, photons[:2])


def test_noisify_c_matches_the_command(tmp_path):
    """The library entry point gives the command's (C's) noise image."""
    name = _input(tmp_path)
    assert run_in(tmp_path, run, ["-floatfile", name, "-seed", "1", "-flicker", "0.05", "-readout", "2"])[0] == 0
    img = np.fromfile(tmp_path / name, dtype="<f4").reshape(128, 128)
    res = de.noisify_c(img, seed=-1, flicker_fraction=0.05, readout=2.0, log=lambda *a: None)
    assert (tmp_path / "noiseimage.img").read_bytes()[512:] == res.noise16.astype("<u2").tobytes()


def test_console_script(tmp_path):
    exe = shutil.which("noisify", path=os.path.dirname(sys.executable))
    assert exe is not None
    done = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "-psf" in done.stdout


def test_library_chain_equals_the_c_chain():
    """nonBragg then noisify through the library functions (no files) equals the C programs' chain:
    nz-geometry is C noisify on C nonBragg's nb-water image."""
    from golden_tools import c_output
    from nanobragg.cli.nonbragg import background
    water = background("-stol water -distance 100 -detpixels 128 -pixel 0.4".split())
    res = de.noisify_c(water, seed=-12, scale=1e-9, log=lambda *a: None)
    ref = c_output("nz-geometry", "noise.img")
    assert res.noise16.astype("<u2").tobytes() == ref[512:]
    assert res.int16.astype("<u2").tobytes() == c_output("nz-geometry", "int.img")[512:]
