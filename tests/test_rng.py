"""Bit-exactness tests for the C random-number ports (nanobragg.rng)."""

import gzip
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import nanobragg.rng  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nanobragg.rng import (  # noqa: E402
    CRandom,
    mosaic_rotation_umat,
    mosaic_umats,
    poisson_noise_c,
    poisson_noise_torch,
    random_misset,
    umat2misset,
    uniform3d_dev,
)

DATA = Path(__file__).parent / "data"
GOLD = json.loads((DATA / "rng.json").read_text())
RTD = 57.29577951308232
MOSAIC_SEED = -12345678


def test_ran1_sequence_matches_c():
    rng = CRandom(MOSAIC_SEED)
    got = np.array([rng.ran1() for _ in range(10)])
    np.testing.assert_allclose(got, GOLD["ran1_seed_-12345678"], rtol=0, atol=5e-9)
    # ran1 returns C floats: every value must survive a float32 round trip.
    assert np.all(got.astype(np.float32).astype(np.float64) == got)
    assert np.all((got > 0) & (got < 1))


def test_ran1_initialisation_is_deterministic_and_mutates_seed():
    a, b = CRandom(-12), CRandom(-12)
    assert [a.ran1() for _ in range(50)] == [b.ran1() for _ in range(50)]
    assert a.idum > 0  # C overwrites the caller's negative seed on first use
    assert CRandom(-13).ran1() != CRandom(-12).ran1()


def test_mosaic_rotation_umat_matches_c():
    rng = CRandom(MOSAIC_SEED)
    got = [mosaic_rotation_umat(0.5 / RTD, rng) for _ in range(3)]
    want = GOLD["mosaic_rotation_umat_0.5deg_seed_-12345678_first3"]
    for g, w in zip(got, want):
        assert g.shape == (9,) and g.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)
        m = g.reshape(3, 3)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)


def test_mosaic_umats_forces_domain_zero_to_identity():
    want = GOLD["mosaic_rotation_umat_0.5deg_seed_-12345678_first3"]
    umats = mosaic_umats(0.5 / RTD, 3, MOSAIC_SEED)
    assert umats.shape == (3, 3, 3)
    np.testing.assert_array_equal(umats[0], np.eye(3))
    # Domain 0's draw is still consumed, so domains 1, 2 are draws 2, 3.
    np.testing.assert_allclose(umats[1].ravel(), want[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(umats[2].ravel(), want[2], rtol=0, atol=1e-12)


def test_poidev_matches_c_for_all_branches():
    rng = CRandom(-424242)
    means = [0.5, 5, 50, 5000, 2e6]  # direct, direct, rejection, rejection, gaussian
    got = [rng.poidev(m) for m in means]
    want = GOLD["poidev_seed_-424242_means_[0.5,5,50,5000,2e6]"]
    assert got[:4] == want[:4]
    assert got[4] == pytest.approx(want[4], abs=0.01)
    assert got[4] == float(np.float32(got[4]))  # C returns a float


def test_gaussdev_returns_cached_pair_without_drawing():
    rng = CRandom(-99)
    rng.gaussdev()
    idum = rng.idum
    rng.gaussdev()  # the spare Box-Muller deviate: no ran1 call
    assert rng.idum == idum
    draws = np.array([rng.gaussdev() for _ in range(20000)])
    assert abs(draws.mean()) < 0.03 and abs(draws.std() - 1) < 0.03


def test_uniform3d_dev_is_unit_vector():
    rng = CRandom(-4242)
    for _ in range(100):
        dx, dy, dz, dr = uniform3d_dev(rng)
        assert math.sqrt(dx * dx + dy * dy + dz * dz) == pytest.approx(1, abs=1e-6)
        assert 1e-2 <= dr <= 1


def test_random_misset_matches_c():
    umat, angles = random_misset(-98765)
    np.testing.assert_allclose(umat, GOLD["misset_random_seed_-98765_umat"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        np.degrees(angles), GOLD["misset_random_seed_-98765_angles_deg"], rtol=0, atol=1e-8
    )


def _xyz_rotation(rx, ry, rz):
    cx, sx, cy, sy, cz, sz = (math.cos(rx), math.sin(rx), math.cos(ry),
                              math.sin(ry), math.cos(rz), math.sin(rz))
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


@pytest.mark.parametrize("angles", [(0.1, -0.2, 0.3), (-1.0, 0.5, 2.5), (0.0, 0.0, 0.0)])
def test_umat2misset_round_trip(angles):
    got = umat2misset(_xyz_rotation(*angles))
    np.testing.assert_allclose(got, angles, atol=1e-12)


def test_umat2misset_rebuilds_missing_row():
    umat = _xyz_rotation(0.1, -0.2, 0.3)
    broken = umat.copy()
    broken[2] = 0.0  # C substitutes x cross y for an all-zero row
    np.testing.assert_allclose(umat2misset(broken), (0.1, -0.2, 0.3), atol=1e-12)


def _golden_noise_case(name):
    case_dir = DATA / "golden_cases" / name
    args = json.loads((case_dir / "case.json").read_text())["args"]
    seed = -int(args[args.index("-seed") + 1])
    adc = float(args[args.index("-adc") + 1]) if "-adc" in args else 40.0
    flt = np.frombuffer(gzip.decompress((case_dir / "float.bin.gz").read_bytes()), "<f4")
    raw = gzip.decompress((case_dir / "noise.img.gz").read_bytes())
    size = int(re.search(rb"SIZE1=(\d+);", raw[:512]).group(1))
    noise = np.frombuffer(raw[512:], "<u2").reshape(-1, size)
    stdout = (case_dir / "stdout.txt").read_text()
    photons, overloads = re.search(r"(\d+) photons on noise image \((\d+) overloads\)", stdout).groups()
    return flt.reshape(noise.shape), seed, adc, noise, int(photons), int(overloads)


@pytest.mark.parametrize("name", ["noise-seeded", "water"])
def test_poisson_noise_c_bit_exact(name):
    flt, seed, adc, want, photons, overloads = _golden_noise_case(name)
    noise, got_photons, got_overloads = poisson_noise_c(flt, seed, adc=adc)
    assert noise.dtype == np.uint16 and noise.shape == want.shape
    np.testing.assert_array_equal(noise, want)
    assert f"{got_photons:.0f}" == str(photons)
    assert got_overloads == overloads


def test_poisson_noise_c_uses_the_crandom_stream():
    flt = np.array([[0.0, 3.5, 40.0], [2e6, 7.0, 1e3]], dtype=np.float32)
    noise, photons, _ = poisson_noise_c(flt, -5, adc=0.0)
    rng = CRandom(-5)
    want = [rng.poidev(v) for v in flt.ravel()]
    np.testing.assert_array_equal(noise.ravel(), np.trunc(np.minimum(want, 65535)).astype(np.uint16))
    assert photons == sum(want)


def test_poisson_noise_c_roi_and_overloads():
    flt = np.full((6, 8), 1e5, dtype=np.float32)
    noise, photons, overloads = poisson_noise_c(flt, -3, roi=(2, 4, 1, 3), adc=40.0)
    inside = np.zeros(flt.shape, bool)
    inside[1:4, 2:5] = True  # inclusive ROI
    assert np.all(noise[~inside] == 0)
    assert np.all(noise[inside] == 65535)
    assert overloads == inside.sum()
    assert photons == pytest.approx(1e5 * inside.sum(), rel=0.01)


def test_poisson_noise_c_wraps_negative_like_c_cast():
    flt = np.zeros((1, 4), dtype=np.float32)
    noise, photons, _ = poisson_noise_c(flt, -1, adc=-10.0)
    # (unsigned short)(-10.0) on x86-64 keeps the low 16 bits of int -10.
    assert photons == 0 and np.all(noise == 65526)


def test_poisson_noise_torch_statistics():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    img = torch.full((200, 200), 25.0)
    img[0, 0] = 1e6
    noise, photons, overloads = poisson_noise_torch(img, gen, roi=(0, 149, 0, 199), adc=40.0)
    assert noise.dtype == torch.uint16 and tuple(noise.shape) == (200, 200)
    vals = noise.to(torch.int32)
    assert torch.all(vals[:, 150:] == 0)
    assert vals[0, 0] == 65535 and overloads == 1
    body = vals[1:, :150].double() - 40
    assert abs(body.mean().item() - 25) < 0.2 and abs(body.var().item() - 25) < 1.0
    assert photons == pytest.approx(25 * 200 * 150 + 1e6, rel=0.01)


# --- C's statics: one shuffle table shared by every seed variable --------------------------------

def test_fresh_statics_keep_the_old_per_seed_streams():
    from nanobragg.rng import CStatics

    a, b = CRandom(MOSAIC_SEED), CRandom(MOSAIC_SEED, CStatics())
    assert [a.ran1() for _ in range(10)] == [b.ran1() for _ in range(10)]


def test_positive_seed_on_an_empty_table_starts_from_one():
    """C's ran1: a positive seed with iy == 0 sets idum = 1 before loading the table."""
    assert [CRandom(5).ran1() for _ in range(1)] == [CRandom(-1).ran1()]
    assert CRandom(7).ran1() == CRandom(0).ran1() == CRandom(-1).ran1()


def test_positive_seed_draws_on_the_table_left_by_other_seeds():
    from nanobragg.rng import CStatics

    statics = CStatics()
    first = CRandom(MOSAIC_SEED, statics)
    for _ in range(3):
        first.ran1()
    table = statics.table
    shared = CRandom(7, statics)
    value = shared.ran1()
    assert value != CRandom(7).ran1()  # not a fresh table
    # by hand: one Schrage step of idum = 7, then the shuffle through the left table
    idum = (16807 * 7) % 2147483647
    iy = table[1 + table[0] // (1 + (2147483647 - 1) // 32)]
    assert value == float(np.float32(iy / 2147483647))
    assert shared.idum == idum
    # a negative seed rebuilds the table whatever came before
    assert CRandom(-424242, statics).ran1() == CRandom(-424242).ran1()


def test_gaussdev_spare_is_a_process_static():
    """gaussdev's spare deviate belongs to the process: the next seed variable gets it."""
    from nanobragg.rng import CStatics

    statics = CStatics()
    a = CRandom(-99, statics)
    a.gaussdev()
    spare = CRandom(-99)
    spare.gaussdev()
    assert CRandom(-5, statics).gaussdev() == spare.gaussdev()


def test_one_mosaic_domain_still_draws_three_deviates():
    from nanobragg.rng import CStatics
    from nanobragg.rng.orientation import mosaic_draws

    one, many = CStatics(), CStatics()
    assert np.array_equal(mosaic_draws(one, MOSAIC_SEED, 1), np.eye(3)[None])
    mosaic_umats(0.0, 1, MOSAIC_SEED, many)
    assert np.array_equal(one.table, many.table)
    umats = mosaic_draws(CStatics(), MOSAIC_SEED, 3, 0.5 / RTD)
    np.testing.assert_array_equal(umats, mosaic_umats(0.5 / RTD, 3, MOSAIC_SEED))


def test_misset_then_mosaic_share_the_table():
    """-misset random, then mosaic domains from a positive seed value: the domains continue the misset's table."""
    from nanobragg.rng import CStatics

    statics = CStatics()
    umat, _ = random_misset(-98765, statics)
    np.testing.assert_allclose(umat, GOLD["misset_random_seed_-98765_umat"], rtol=0, atol=1e-12)
    shared = mosaic_umats(0.5 / RTD, 3, 2, statics)
    fresh = mosaic_umats(0.5 / RTD, 3, 2)
    assert not np.allclose(shared[1:], fresh[1:])


def test_cnoise_takes_a_snapshot_of_the_statics():
    from nanobragg.rng import CStatics
    from nanobragg.rng.noise import CNoise

    statics = CStatics()
    mosaic_umats(0.0, 1, MOSAIC_SEED, statics)
    flt = np.full((4, 5), 30.0, dtype=np.float32)
    table = statics.table
    first = CNoise(7, statics=statics).band(flt)
    assert np.array_equal(statics.table, table)
    assert np.array_equal(CNoise(7, statics=statics).band(flt), first)
    assert not np.array_equal(CNoise(7).band(flt), first)
