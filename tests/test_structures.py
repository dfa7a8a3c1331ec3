"""Real structures in: MTZ, structure-factor mmCIF and PDB/mmCIF models through gemmi (-mtz, -sfcif, -pdb, nb-sf).

The references in tests/data/structures (``*.reference.hkl.gz``) are P1 lists computed by an
independent program (cctbx; see tests/data/structures/README.md): the same index sets, MTZ
values to 1e-4 relative, model amplitudes correlated >= 0.9999 with the total within 0.5%.
"""
import gzip
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gemmi = pytest.importorskip("gemmi")

from nanobragg import api, structures  # noqa: E402
from nanobragg.cli.main import run  # noqa: E402
from nanobragg.io import read_float_image, read_hkl, read_mosflm_matrix  # noqa: E402
from nanobragg.io import structures as S  # noqa: E402
from nanobragg.tools import sf  # noqa: E402
from util import in_folder  # noqa: E402

DATA = Path(__file__).parent / "data" / "structures"
GEOM = "-lambda 1.0 -distance 80 -detpixels 48 -pixel 0.8 -N 3 -nonoise -nopgm -dtype float64".split()


def reference(name):
    with gzip.open(DATA / f"{name}.reference.hkl.gz", "rt") as fh:
        a = np.loadtxt(fh)
    return {tuple(int(x) for x in row[:3]): row[3] for row in a}


def listed(path):
    table = read_hkl(str(path))
    return {tuple(int(x) for x in h): f for h, f in zip(table.hkl, table.F)}


def _nbsf(args, capsys):
    status = sf.main([str(a) for a in args])
    return status, capsys.readouterr().err


def _run(args, folder, capsys):
    lines = []
    with in_folder(folder):
        status = run([str(a) for a in args], log=lines.append)
    return status, capsys.readouterr().err, lines


# ------------------------------------------------------------------ the independent P1 lists

@pytest.mark.parametrize("name, args", [
    ("7n2l.FOBS", ["7n2l.mtz", "--column", "FOBS"]),
    ("7n2l.IOBS", ["7n2l.mtz", "--column", "IOBS"]),
    ("tst_xtriage_fmodel", ["tst_xtriage_fmodel.mtz"]),  # default column: the anomalous pair F(+)/F(-)
])
def test_nb_sf_reproduces_the_measured_data_lists(name, args, tmp_path, capsys):
    out = tmp_path / "p1.hkl"
    status, err = _nbsf([DATA / args[0], *args[1:], "-o", out], capsys)
    assert status == 0, err
    mine, ref = listed(out), reference(name)
    assert set(mine) == set(ref)  # no index missing or extra; no F000
    keys = sorted(ref)
    x, y = np.array([mine[k] for k in keys]), np.array([ref[k] for k in keys])
    assert np.all(np.abs(x - y) <= 1e-4 * np.abs(y) + 1e-8)  # the reference prints 9 digits


@pytest.mark.parametrize("name, dmin", [("1yjp", 1.8), ("7n2l", 0.9)])
def test_nb_sf_reproduces_the_model_lists(name, dmin, tmp_path, capsys):
    out = tmp_path / "p1.hkl"
    status, err = _nbsf([DATA / f"{name}.pdb", "--dmin", dmin, "-o", out], capsys)
    assert status == 0, err
    mine, ref = listed(out), reference(name)
    assert set(mine) == set(ref)  # the full P1 sphere: absent reflections (F = 0) and F000 included
    keys = sorted(ref)
    x, y = np.array([mine[k] for k in keys]), np.array([ref[k] for k in keys])
    assert np.corrcoef(x, y)[0, 1] >= 0.9999
    assert abs(x.sum() / y.sum() - 1) <= 0.005
    # measured in this project: corr 1.0000000, sum ratio 1 +- 1e-8, worst relative 7e-7 (F >= 1% of mean)
    big = y >= 0.01 * y.mean()
    assert np.max(np.abs(x[big] - y[big]) / y[big]) < 1e-5
    assert mine[(0, 0, 0)] == pytest.approx(ref[(0, 0, 0)], rel=1e-6)
    assert all(mine[k] == 0.0 for k in keys if ref[k] == 0.0)


@pytest.mark.parametrize("name, dmin", [("1yjp", 1.8), ("7n2l", 0.9)])
def test_the_fft_path_meets_the_tolerances(name, dmin):
    """gemmi's density FFT (auto's choice for large models): measured corr 1.0000000, sum 1 +- 2e-7, max rel 2.5e-4."""
    p1 = S.load_p1(str(DATA / f"{name}.pdb"), dmin=dmin, method="fft")
    assert p1.method == "fft"
    ref = reference(name)
    mine = {tuple(h): f for h, f in zip(p1.hkl.tolist(), p1.F)}
    assert set(mine) == set(ref)
    keys = sorted(ref)
    x, y = np.array([mine[k] for k in keys]), np.array([ref[k] for k in keys])
    assert np.corrcoef(x, y)[0, 1] >= 0.9999 and abs(x.sum() / y.sum() - 1) <= 0.005
    big = y >= 0.01 * y.mean()
    assert np.max(np.abs(x[big] - y[big]) / y[big]) < 1e-3


def test_anomalous_by_fft_equals_the_direct_sum():
    """f' and f'' through two gemmi densities (f0 + f', f0 + f' + f''): Bijvoet differences as summed."""
    a = S.load_p1(str(DATA / "1yjp.pdb"), dmin=2.0, wavelength=1.0, anomalous=True, method="direct")
    b = S.load_p1(str(DATA / "1yjp.pdb"), dmin=2.0, wavelength=1.0, anomalous=True, method="fft")
    assert np.array_equal(a.hkl, b.hkl) and np.corrcoef(a.F, b.F)[0, 1] > 0.99999
    where = {tuple(h): i for i, h in enumerate(a.hkl.tolist())}
    mate = np.array([where[tuple(-x for x in h)] for h in a.hkl.tolist()])
    da, db = a.F - a.F[mate], b.F - b.F[mate]
    assert np.abs(da).max() > 0.05 and np.corrcoef(da, db)[0, 1] > 0.9999  # measured 0.99999998


def test_the_direct_sum_is_gemmis(tmp_path):
    """The vectorised direct sum equals gemmi's own StructureFactorCalculatorX (complex values, aniso B)."""
    model = S.read_model(str(DATA / "7n2l.pdb"))
    hkl = np.array([[1, 2, 3], [-2, 1, 5], [3, -1, -4], [0, 0, 7], [4, 4, -9]])
    calc = gemmi.StructureFactorCalculatorX(model.gemmi_structure.cell)
    want = np.array([calc.calculate_sf_from_model(model.gemmi_structure[0], [int(x) for x in h]) for h in hkl])
    assert np.allclose(S.model_structure_factors(model, hkl), want, rtol=1e-6, atol=1e-6)


def test_the_list_round_trips_and_reads_as_hkl(tmp_path, capsys):
    out = tmp_path / "p1.hkl"
    assert _nbsf([DATA / "1yjp.pdb", "--dmin", 3, "-o", out], capsys)[0] == 0
    p1 = S.load_p1(str(DATA / "1yjp.pdb"), dmin=3.0)
    table = read_hkl(str(out))
    assert np.array_equal(table.hkl, p1.hkl) and np.array_equal(table.F, p1.F)  # 17 digits: exact doubles
    assert (0, 0, 0) in listed(out) and listed(out)[(0, 1, 0)] == 0.0  # F000; 0k0 k odd absent in P2_1


def test_sfcif_reads_as_the_mtz(tmp_path, capsys):
    """A structure-factor mmCIF (written from the MTZ by gemmi) gives the FOBS reference list."""
    mtz = gemmi.read_mtz_file(str(DATA / "7n2l.mtz"))
    cif = tmp_path / "7n2l-sf.cif"
    conv = gemmi.MtzToCif()
    cif.write_text(conv.write_cif_to_string(mtz))
    assert S.detect_kind(str(cif)) == "sfcif"
    out = tmp_path / "p1.hkl"
    status, err = _nbsf([cif, "-o", out], capsys)
    assert status == 0, err
    mine, ref = listed(out), reference("7n2l.FOBS")
    assert set(mine) == set(ref)
    assert max(abs(mine[k] - ref[k]) / ref[k] for k in ref if ref[k] > 0) < 1e-4


def test_sfcif_anomalous_pair_and_unmerged(tmp_path, capsys):
    """_refln.pdbx_F_plus/pdbx_F_minus (as the PDB distributes them; '?' missing) give the F(+)/F(-) list."""
    mtz = gemmi.read_mtz_file(str(DATA / "tst_xtriage_fmodel.mtz"))
    rows = np.array(mtz, copy=True)
    text = ["data_r1yyysf", "_cell.length_a 23.0", "_cell.length_b 6.666", "_cell.length_c 25.0",
            "_cell.angle_alpha 90", "_cell.angle_beta 107.08", "_cell.angle_gamma 90",
            "_symmetry.space_group_name_H-M 'P 1 21 1'", "loop_", "_refln.index_h", "_refln.index_k",
            "_refln.index_l", "_refln.status", "_refln.pdbx_F_plus", "_refln.pdbx_F_minus"]
    def fmt(v):
        return "?" if math.isnan(v) else f"{v:.6f}"

    text += [f"{int(h)} {int(k)} {int(l)} o {fmt(fp)} {fmt(fm)}" for h, k, l, fp, fm in rows]
    cif = tmp_path / "anom-sf.cif"
    cif.write_text("\n".join(text) + "\n")
    out = tmp_path / "p1.hkl"
    status, err = _nbsf([cif, "-o", out], capsys)
    assert status == 0, err
    mine, ref = listed(out), reference("tst_xtriage_fmodel")
    assert set(mine) == set(ref)
    assert max(abs(mine[k] - ref[k]) / ref[k] for k in ref if ref[k] > 0) < 1e-4
    unmerged = tmp_path / "unmerged-sf.cif"
    unmerged.write_text("data_x\n_cell.length_a 23.0\n_cell.length_b 6.666\n_cell.length_c 25.0\n"
                        "_cell.angle_alpha 90\n_cell.angle_beta 107.08\n_cell.angle_gamma 90\n"
                        "_symmetry.space_group_name_H-M 'P 1 21 1'\nloop_\n_diffrn_refln.index_h\n"
                        "_diffrn_refln.index_k\n_diffrn_refln.index_l\n_diffrn_refln.intensity_net\n"
                        "1 2 3 40.0\n1 2 3 42.0\n")
    status, err = _nbsf([unmerged, "-o", out], capsys)
    assert status == 2 and "unmerged data" in err, err


def test_an_mmcif_model_gives_the_pdb_list(tmp_path):
    st = gemmi.read_structure(str(DATA / "1yjp.pdb"))
    st.setup_entities()
    cif = tmp_path / "1yjp.cif"
    st.make_mmcif_document().write_file(str(cif))
    assert S.detect_kind(str(cif)) == "model"
    a, b = S.load_p1(str(cif), dmin=2.5), S.load_p1(str(DATA / "1yjp.pdb"), dmin=2.5)
    assert np.array_equal(a.hkl, b.hkl) and np.allclose(a.F, b.F, rtol=1e-9)


def test_info(capsys):
    assert sf.main(["--info", str(DATA / "7n2l.mtz")]) == 0
    text = capsys.readouterr().out
    for words in ("cell: 4.87 10.06 30.66", "space group: P 1", "FOBS (F)", "IOBS (J)", "SIGFOBS (Q)",
                  "resolution:", "reflections in the file: 3437", "6874 P1 reflections", "F000: not in measured data"):
        assert words in text
    assert sf.main(["--info", str(DATA / "1yjp.pdb")]) == 0
    text = capsys.readouterr().out
    assert "66 atoms" in text and "P 1 21 1" in text and "F000: 899.792" in text


def test_anomalous_breaks_friedel_and_solvent_adds_to_low_resolution(tmp_path):
    plain = S.load_p1(str(DATA / "1yjp.pdb"), dmin=4.0)
    anom = S.load_p1(str(DATA / "1yjp.pdb"), dmin=4.0, wavelength=1.0, anomalous=True)
    F = {tuple(h): f for h, f in zip(anom.hkl.tolist(), anom.F)}
    diffs = [abs(F[h] - F[tuple(-x for x in h)]) for h in F if h != (0, 0, 0)]
    assert max(diffs) > 1e-3  # Bijvoet differences from f''
    assert np.array_equal(plain.hkl, anom.hkl)
    Fp = {tuple(h): f for h, f in zip(plain.hkl.tolist(), plain.F)}
    assert all(abs(Fp[h] - Fp[tuple(-x for x in h)]) < 1e-9 for h in Fp)
    # bulk solvent: 1yjp's peptides leave no room for solvent in their cell; in a P1 cell of 40x30x40 A they do
    boxed = tmp_path / "boxed.pdb"
    lines = [l for l in (DATA / "1yjp.pdb").read_text().splitlines(True) if not l.startswith(("CRYST1", "SCALE"))]
    boxed.write_text(f"CRYST1{40:9.3f}{30:9.3f}{40:9.3f}{90:7.2f}{90:7.2f}{90:7.2f} P 1\n" + "".join(lines))
    base = S.load_p1(str(boxed), dmin=3.0)
    solv = S.load_p1(str(boxed), dmin=3.0, solvent=(0.35, 46.0))
    assert np.array_equal(base.hkl, solv.hkl)
    zero = (base.hkl == 0).all(1)
    assert solv.F[zero] == base.F[zero]  # F000: the atoms' electrons, without solvent
    d = S.d_spacings(base.cell, base.hkl)
    low = (d > 15) & ~zero
    change = np.abs(solv.F - base.F) / base.F
    assert np.median(change[low]) > 0.2  # the solvent's contrast flattens low-resolution F ...
    assert np.median(change[d < 3.5]) < 0.5 * np.median(change[low])  # ... and fades with exp(-B_sol s^2 / 4)


# ------------------------------------------------------------------ the command line

def test_pdb_renders_as_hkl_of_the_nb_sf_list(tmp_path, capsys):
    """-pdb renders the image -hkl renders from nb-sf's list (float64); the cell comes from the file."""
    status, err, lines = _run(["-pdb", DATA / "1yjp.pdb", *GEOM, "-floatfile", "pdb.bin"], tmp_path, capsys)
    assert status == 0, err
    assert any("-pdb 1yjp.pdb: P 1 21 1, F computed (direct) for" in line for line in lines)
    hkl = tmp_path / "1yjp.hkl"
    assert _nbsf([DATA / "1yjp.pdb", "--dmin", 1.5, "-o", hkl], capsys)[0] == 0  # a superset of the sphere
    (tmp_path / "Fdump.bin").unlink()
    status, err, _ = _run(["-hkl", hkl, "-cell", "21.937", "4.866", "23.477", "90", "107.08", "90", *GEOM,
                           "-floatfile", "hkl.bin"], tmp_path, capsys)
    assert status == 0, err
    a = read_float_image(str(tmp_path / "pdb.bin"), (48, 48)).astype(np.float64)
    b = read_float_image(str(tmp_path / "hkl.bin"), (48, 48)).astype(np.float64)
    assert a.sum() > 0
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.999999
    assert np.allclose(a, b, rtol=1e-6, atol=1e-6 * a.max())


@pytest.mark.skipif(not os.environ.get("NB_C_BIN"), reason="NB_C_BIN names no C nanoBragg binary")
def test_the_c_program_given_the_list_renders_the_pdb_image(tmp_path, capsys):
    """C nanoBragg's -hkl of nb-sf's list at the -pdb run's limit: byte-identical here (bl831 nanoBragg.c, gcc -O2)."""
    geom = [a for a in GEOM if a != "-dtype" and a != "float64"]
    status, err, lines = _run(["-pdb", DATA / "1yjp.pdb", *GEOM, "-misset", "10", "20", "30", "-floatfile", "pdb.bin"],
                              tmp_path, capsys)
    assert status == 0, err
    dmin = float(next(l for l in lines if l.startswith("-pdb")).split(" to ")[1].split()[0])
    hkl = tmp_path / "list.hkl"
    p1 = S.load_p1(str(DATA / "1yjp.pdb"), dmin=structures.reach_dmin(
        structures.detector_dmin(_experiment_of(GEOM, p1_cell=(21.937, 4.866, 23.477, 90, 107.08, 90))),
        (21.937, 4.866, 23.477, 90, 107.08, 90)))
    hkl.write_text(S.format_hkl(p1.hkl, p1.F))
    assert abs(p1.dmin - dmin) < 1e-3 * dmin
    folder = tmp_path / "c"
    folder.mkdir()
    subprocess.run([os.environ["NB_C_BIN"], "-hkl", str(hkl), "-cell", "21.937", "4.866", "23.477", "90", "107.08",
                    "90", *geom, "-misset", "10", "20", "30", "-floatfile", "c.bin"], cwd=folder, check=True,
                   capture_output=True, timeout=300)
    a = read_float_image(str(tmp_path / "pdb.bin"), (48, 48)).astype(np.float64)
    c = read_float_image(str(folder / "c.bin"), (48, 48)).astype(np.float64)
    assert a.sum() > 0 and np.corrcoef(a.ravel(), c.ravel())[0, 1] >= 0.999999
    assert np.allclose(a, c, rtol=1e-5, atol=1e-6 * a.max())


def _experiment_of(args, p1_cell):
    """The experiment the command line builds from ``args`` (with the file's cell)."""
    from nanobragg.cli.parser import parse
    settings = parse([str(a) for a in args])
    settings.experiment.crystal.cell = structures.cell_si(p1_cell)
    return settings.experiment


def test_mtz_run_reports_missing_reflections_and_takes_the_files_cell(tmp_path, capsys):
    status, err, lines = _run(["-mtz", DATA / "7n2l.mtz", "-mtz_column", "IOBS", *GEOM, "-floatfile", "m.bin"],
                              tmp_path, capsys)
    assert status == 0, err
    assert any("column IOBS, P 1 expanded to 6874 P1 reflections" in line for line in lines)
    assert any("reflections on the detector are not in the list" in line for line in lines)
    assert any(line.startswith("Unit Cell: 4.87 10.06 30.66") for line in lines)


def test_pdb_with_anomalous_and_solvent_flags(tmp_path, capsys):
    status, err, lines = _run(["-pdb", DATA / "1yjp.pdb", "-anomalous", "-solvent", "0.35", "46", *GEOM,
                               "-floatfile", "a.bin"], tmp_path, capsys)
    assert status == 0, err
    assert any("anomalous f' f'', bulk solvent 0.35 46" in line for line in lines)
    status, err, _ = _run(["-pdb", DATA / "1yjp.pdb", "-solvent", "-1", "46", *GEOM], tmp_path, capsys)
    assert status == 2 and "-solvent" in err


def test_reflections_outside_the_list_are_counted():
    p1 = S.load_p1(str(DATA / "7n2l.mtz"), column="FOBS")
    sphere = S.p1_sphere(p1.cell, 1.5)
    inside = S.d_spacings(p1.cell, p1.hkl) >= 1.5
    have = {tuple(h) for h in p1.hkl[inside].tolist()}
    expected = sum(1 for h in sphere.tolist() if tuple(h) not in have and any(h))
    assert structures.count_outside(p1, 1.5) == expected > 0
    full = S.P1Structure("x", "mtz", p1.cell, "P 1", sphere, np.ones(len(sphere)), False, False, 1.5)
    assert structures.count_outside(full, 1.5) == 0


def test_a_close_cell_is_accepted_and_a_far_one_refused(tmp_path, capsys):
    close = ["-cell", "21.9", "4.87", "23.5", "90", "107.1", "90"]
    status, err, _ = _run(["-pdb", DATA / "1yjp.pdb", *close, *GEOM, "-floatfile", "c.bin"], tmp_path, capsys)
    assert status == 0, err
    far = ["-cell", "21.937", "4.866", "24.0", "90", "107.08", "90"]
    status, err, _ = _run(["-pdb", DATA / "1yjp.pdb", *far, *GEOM, "-floatfile", "f.bin"], tmp_path, capsys)
    assert status == 2 and "differs from the file's" in err and "21.937 4.866 24" in err and "23.477" in err
    assert not (tmp_path / "f.bin").exists()


def test_a_random_matrix_for_the_cell_is_read_by_mat(tmp_path, capsys):
    mat = tmp_path / "A.mat"
    cell = (21.937, 4.866, 23.477, 90.0, 107.08, 90.0)
    assert sf.main(["--matrix", str(mat), "--cell", *map(str, cell), "--lambda", "1.0", "--seed", "7"]) == 0
    again = tmp_path / "B.mat"
    assert sf.main(["--matrix", str(again), "--cell", *map(str, cell), "--lambda", "1.0", "--seed", "7"]) == 0
    assert mat.read_text() == again.read_text()
    A = read_mosflm_matrix(str(mat))
    assert structures.cell_from_matrix(A, 1e-10) == pytest.approx(cell, rel=1e-6)
    triclinic = (21.9, 4.87, 23.5, 80.0, 107.0, 95.0)  # UBtoA.awk's own B matrix gives another cell here
    assert sf.main(["--matrix", str(again), "--cell", *map(str, triclinic), "--lambda", "0.9"]) == 0
    assert structures.cell_from_matrix(read_mosflm_matrix(str(again)), 0.9e-10) == pytest.approx(triclinic, rel=1e-6)
    status, err, _ = _run(["-pdb", DATA / "1yjp.pdb", "-mat", mat, *GEOM, "-floatfile", "m.bin"], tmp_path, capsys)
    assert status == 0, err
    status, err, _ = _run(["-pdb", DATA / "7n2l.pdb", "-mat", mat, *GEOM, "-floatfile", "x.bin"], tmp_path, capsys)
    assert status == 2 and "the cell of -mat" in err


def test_the_detector_reach(tmp_path):
    """The corner of a centred flat detector at the shortest wavelength, then grown by half a reciprocal diagonal."""
    cell = api.unit_cell(50, 60, 70)
    exp = api.experiment(api.detector(pixels=100, pixel_size=1.0, distance=100), api.beam(wavelength=1.0),
                         api.crystal(cell, default_F=1))
    d = structures.detector_dmin(exp)
    # MOSFLM's default beam centre, (100 + 1)/2 mm plus half a pixel, is 50.5 mm from the centre of pixel 0
    two_theta = math.atan(math.hypot(50.5, 50.5) / 100)
    assert d == pytest.approx(1.0 / (2 * math.sin(two_theta / 2)), rel=1e-9)
    shorter = api.experiment(api.detector(pixels=100, pixel_size=1.0, distance=100),
                             api.beam(wavelength=1.0, dispersion=0.1, dispsteps=3), api.crystal(cell, default_F=1))
    from nanobragg.resolve import resolve
    shortest = float(resolve(shorter).inputs.source_lambdas.min()) * 1e10
    assert shortest < 1.0
    assert structures.detector_dmin(shorter) == pytest.approx(d * shortest, rel=1e-9)
    grown = structures.reach_dmin(d, (50, 60, 70, 90, 90, 90))
    half = 0.5 * math.sqrt(1 / 50 ** 2 + 1 / 60 ** 2 + 1 / 70 ** 2)
    assert 1 / grown == pytest.approx(1 / d + half)


def test_the_api(tmp_path):
    """structure_from_file with an experiment: the detector's reach, the file's cell; rendered by api.simulate."""
    det, beam = api.detector(pixels=32, pixel_size=1.0, distance=80), api.beam(wavelength=1.0)
    exp = api.experiment(det, beam, api.crystal(api.unit_cell(21.937, 4.866, 23.477, 90, 107.08, 90), default_F=1))
    src = structures.structure_from_file(str(DATA / "1yjp.pdb"), experiment=exp)
    # N = 1: tricubic interpolation (its stencil reaches 2 indices out); a cell given: 2% more
    assert structures.interpolation_on(exp)
    want = structures.reach_dmin(structures.detector_dmin(exp), src.p1.cell, interpolate=True, given_cell=True)
    assert src.p1.has_F000 and src.dmin == pytest.approx(want)
    assert want < structures.reach_dmin(structures.detector_dmin(exp), src.p1.cell)
    xtal = api.crystal(src.cell, N=2)
    xtal.fgrid = src.fgrid  # the API's F argument is being renamed: set the field itself
    out = api.simulate(api.experiment(det, beam, xtal))
    img = getattr(out, "image", out)  # a tensor, or (API being reworked) a record holding it
    assert float(img.sum()) > 0
    data = structures.structure_from_file(str(DATA / "tst_xtriage_fmodel.mtz"), experiment=exp.__class__(
        detector=det, beam=beam, crystal=api.crystal(api.unit_cell(23, 6.666, 25, 90, 107.08, 90), default_F=1)))
    assert data.outside is not None and not data.p1.has_F000 and data.p1.anomalous
    with pytest.raises(ValueError, match="dmin"):
        structures.structure_from_file(str(DATA / "1yjp.pdb"))


# ------------------------------------------------------------------ bad input: one line, exit 2, nothing written

def _unmerged(tmp_path):
    mtz = gemmi.read_mtz_file(str(DATA / "7n2l.mtz"))
    mtz.add_column("M/ISYM", "Y")
    mtz.add_column("BATCH", "B")
    data = np.array(mtz, copy=True)
    data[:, -2:] = 1
    mtz.set_data(data)
    path = tmp_path / "unmerged.mtz"
    mtz.write_to_file(str(path))
    return path


def _bad_inputs(tmp_path):
    trunc_mtz = tmp_path / "trunc.mtz"
    trunc_mtz.write_bytes((DATA / "7n2l.mtz").read_bytes()[:5000])
    trunc_pdb = tmp_path / "trunc.pdb"
    trunc_pdb.write_bytes((DATA / "1yjp.pdb").read_bytes()[:24000])
    nocell = tmp_path / "nocell.pdb"
    text = (DATA / "1yjp.pdb").read_text().splitlines(True)
    nocell.write_text("".join(line for line in text if not line.startswith("CRYST1")))
    unknown = tmp_path / "unknown.pdb"
    lines = (DATA / "1yjp.pdb").read_text().splitlines(True)
    first = next(i for i, l in enumerate(lines) if l.startswith("ATOM"))
    lines[first] = lines[first][:76] + " X\n"
    unknown.write_text("".join(lines))
    garbage = tmp_path / "garbage.mtz"
    garbage.write_bytes(b"MTZ \x00\x01" + bytes(range(256)) * 4)
    return [
        (["-mtz", DATA / "7n2l.mtz", "-mtz_column", "F_NOPE"], "no column F_NOPE"),
        (["-mtz", DATA / "7n2l.mtz", "-mtz_column", "SIGFOBS"], "not an amplitude or intensity column (type Q"),
        (["-mtz", _unmerged(tmp_path)], "unmerged data"),
        (["-pdb", nocell], "no unit cell"),
        (["-pdb", unknown], "unknown element (atom N of GLY A 1)"),
        (["-mtz", trunc_mtz], "not a readable MTZ file"),
        (["-mtz", garbage], "not a readable MTZ file"),
        (["-pdb", trunc_pdb], "truncated"),
        (["-pdb", DATA / "7n2l.mtz"], "this is an MTZ file (use -mtz)"),
        (["-mtz", tmp_path / "missing.mtz"], "cannot open file"),
        (["-pdb", DATA / "1yjp.pdb", "-hkl", "x.hkl"], "give only one source"),
        (["-mtz", DATA / "7n2l.mtz", "-anomalous"], "-anomalous: needs -pdb"),
        # a detector reaching 0.14 A: the sphere's F grid (about 60 MB) is refused before any F is computed
        (["-pdb", DATA / "1yjp.pdb", "-max_memory", "16", "-lambda", "0.05"], "does not fit the memory budget"),
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for args, words in _bad_inputs(tmp_path):
        status, err, _ = _run([*GEOM, *args, "-floatfile", "out.bin"], tmp_path, capsys)
        assert status == 2, (args, err)
        first = err.splitlines()[0]
        assert words in first, (args, err)
        assert "Traceback" not in err and len(err.splitlines()) == 2  # the message and the usage hint
        assert not (tmp_path / "out.bin").exists() and not (tmp_path / "Fdump.bin").exists()


def test_nb_sf_bad_input(tmp_path, capsys):
    cases = [a for a in _bad_inputs(tmp_path) if a[0][0] in ("-mtz", "-pdb") and len(a[0]) <= 4 and "-hkl" not in a[0]
             and "-anomalous" not in a[0] and "-max_memory" not in a[0] and "use -mtz" not in a[1]]
    for args, words in cases:
        argv = [args[1], "-o", tmp_path / "o.hkl", "--dmin", "3"]
        if len(args) == 4:
            argv += ["--column", args[3]]
        status, err = _nbsf(argv, capsys)
        assert status == 2 and words in err and len(err.splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert not (tmp_path / "o.hkl").exists()
    status, err = _nbsf([DATA / "7n2l.pdb", "-o", tmp_path / "o.hkl"], capsys)  # no REMARK 2 resolution
    assert status == 2 and "needs --dmin" in err and not (tmp_path / "o.hkl").exists()
    status, err = _nbsf([DATA / "1yjp.pdb", "-o", tmp_path / "o.hkl"], capsys)  # REMARK 2: 1.80 A
    assert status == 0 and "--dmin 1.8 A, the resolution the file states" in err
    assert set(listed(tmp_path / "o.hkl")) == set(reference("1yjp"))


def test_without_gemmi_the_error_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gemmi", None)
    status, err, _ = _run(["-pdb", DATA / "1yjp.pdb", *GEOM], tmp_path, capsys)
    assert status == 2 and "pip install 'nanobragg[structures]'" in err.splitlines()[0]
    status, err = _nbsf(["--info", DATA / "7n2l.mtz"], capsys)
    assert status == 2 and "pip install 'nanobragg[structures]'" in err
