"""Real structures as structure-factor inputs: MTZ, structure-factor mmCIF and coordinate models (gemmi).

nanoBragg imposes no symmetry, so every input becomes a P1 list of ``h k l F``:

- **Measured data** (``-mtz``, ``-sfcif``): one column, chosen by label or the default (the first
  amplitude column, type F; else the first anomalous amplitude pair, type G; else the first
  intensity column, type J; else the first anomalous intensity pair, type K). Intensities give
  F = sqrt(max(I, 0)). Missing values (MTZ NaN, mmCIF ``?``/``.``) are dropped. Each reflection is
  expanded to P1 by the file's space group (h -> h R for every rotation R); data that are not an
  anomalous pair also get their Friedel mates (-h). An anomalous pair F(+)/F(-) gives h and its
  symmetry mates F(+), and -h and its mates F(-); where both land on one index (a centric
  reflection), F(+) is kept. No F000 (the direct-beam pixel then takes ``-default_F``).
  Unmerged files (MTZ with batches or an M/ISYM column, mmCIF ``_diffrn_refln``) are refused.
- **Models** (``-pdb``, PDB or mmCIF by content): F is the direct sum over every atom of the file
  (hydrogens, waters, alternate conformers with their occupancies) and every operation of its space
  group, with the IT92 four-Gaussian form factors (gemmi's table), isotropic B or ANISOU, on the
  full P1 sphere d >= d_min: reflections the space group makes absent are listed with F = 0, and
  F000 (electrons in the cell, without solvent) is included. Occupancies are used as given (atoms
  on special positions carry their reduced occupancy, the PDB convention, as gemmi reads them).
  Options: anomalous dispersion at a wavelength (f', f'' from gemmi's Cromer-Liberman, which
  breaks Friedel's law) and a flat bulk solvent ``k_sol exp(-B_sol s^2/4) F_mask`` (gemmi's
  solvent mask, its FFT at the listed reflections).

Every failure is an :class:`~nanobragg.io.errors.InputError`: one line naming the file and the
problem. gemmi is optional (the ``structures`` extra); without it the error says what to install.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import InputError, read_bytes

#: What to install when gemmi is missing (one line).
INSTALL_HINT = ("gemmi is needed to read MTZ, mmCIF and PDB files: pip install 'nanobragg[structures]' "
                "(or pip install gemmi)")

#: Kinds of structure input.
KINDS = ("mtz", "sfcif", "model")

#: Column types: amplitude, intensity, anomalous amplitude pair, anomalous intensity pair.
AMPLITUDE_TYPES = ("F", "J", "G", "K")

#: mmCIF _refln tags -> (MTZ-like type, partner tag of an anomalous pair or None).
CIF_TAGS = {
    "F_meas_au": ("F", None), "F_meas": ("F", None), "F_calc": ("F", None), "F_calc_au": ("F", None),
    "intensity_meas": ("J", None), "intensity_calc": ("J", None), "F_squared_meas": ("J", None),
    "F_squared_calc": ("J", None),
    "pdbx_F_plus": ("G", "pdbx_F_minus"), "pdbx_F_minus": ("G", "pdbx_F_plus"),
    "pdbx_I_plus": ("K", "pdbx_I_minus"), "pdbx_I_minus": ("K", "pdbx_I_plus"),
}


def gemmi_module():
    """The gemmi module, or InputError saying what to install."""
    try:
        import gemmi
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return gemmi


def _fail(path, message):
    return InputError(path, message)


def _gemmi_message(exc: Exception) -> str:
    """gemmi's exception text on one line."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:300]


# ----------------------------------------------------------------------------------------------
# what a file is


def detect_kind(path: str) -> str:
    """``mtz``, ``sfcif`` or ``model`` from the file's content (not its name); InputError if none fits."""
    data = read_bytes(path)
    if data[:4] == b"MTZ ":
        return "mtz"
    head = data[:1 << 20].decode("latin-1")
    if "_refln." in head or "_refln_" in head or "_diffrn_refln." in head:
        return "sfcif"
    if "_atom_site." in head:
        return "model"
    for line in head.splitlines():
        if line[:6].rstrip() in ("ATOM", "HETATM", "CRYST1", "HEADER", "REMARK", "TITLE", "COMPND", "MODEL"):
            return "model"
    if not data.strip():
        raise _fail(path, "the file is empty")
    raise _fail(path, "not an MTZ, structure-factor mmCIF, mmCIF model or PDB file")


def _is_cif(path: str) -> bool:
    head = read_bytes(path)[:1 << 16].decode("latin-1")
    for line in head.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        return text.startswith("data_") or text.startswith("global_")
    return False


# ----------------------------------------------------------------------------------------------
# cell and symmetry


def cell_of(gcell) -> tuple:
    """(a, b, c, alpha, beta, gamma) in Angstrom and degrees from a gemmi UnitCell."""
    return (gcell.a, gcell.b, gcell.c, gcell.alpha, gcell.beta, gcell.gamma)


def reciprocal_basis(cell) -> np.ndarray:
    """Rows a*, b*, c* (1/Angstrom, Cartesian) of a cell (Angstrom, degrees): d*(h) = h @ basis."""
    a, b, c = cell[:3]
    al, be, ga = (math.radians(x) for x in cell[3:])
    ax = np.array([a, 0.0, 0.0])
    bx = np.array([b * math.cos(ga), b * math.sin(ga), 0.0])
    cx_ = c * math.cos(be)
    cy = c * (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
    cz = math.sqrt(max(c * c - cx_ * cx_ - cy * cy, 0.0))
    real = np.array([ax, bx, [cx_, cy, cz]])
    return np.linalg.inv(real).T


def rotations(spacegroup) -> np.ndarray:
    """The point-group rotations (n, 3, 3) of a gemmi SpaceGroup, as integers (h' = h @ R)."""
    ops = spacegroup.operations()
    mats = {tuple(np.array(op.rot, dtype=np.int64).reshape(-1) // op.DEN) for op in ops.sym_ops}
    return np.array(sorted(mats), dtype=np.int64).reshape(-1, 3, 3)


def unique_rows(hkl: np.ndarray, values: np.ndarray, keep: str = "last"):
    """Distinct rows of ``hkl`` sorted by (h, k, l), each with the value of its last (or first) occurrence."""
    order = np.arange(len(hkl))
    if keep == "last":
        hkl, values, order = hkl[::-1], values[::-1], order[::-1]
    uniq, first = np.unique(hkl, axis=0, return_index=True)
    return uniq.reshape(-1, 3), values[first]


def expand_to_p1(hkl, F, rots, friedel: bool, minus=None):
    """P1 list (sorted, unique) from reflections of a space group's asymmetric unit.

    ``hkl`` (n, 3) with amplitudes ``F`` go to h @ R for every rotation R (and -h @ R with
    ``friedel``). ``minus``: (hkl, F) of an anomalous pair's F(-), listed at -h @ R; where an
    F(+) lands on the same index, the F(+) is kept.
    """
    parts_h, parts_f = [], []
    if minus is not None and len(minus[0]):
        mh, mf = minus
        for R in rots:
            parts_h.append(-(mh @ R))
            parts_f.append(mf)
    signs = (1, -1) if friedel else (1,)
    for sign in signs[::-1]:  # the +h copies last: they win
        for R in rots:
            parts_h.append(sign * (hkl @ R))
            parts_f.append(F)
    if not parts_h:
        return np.zeros((0, 3), np.int64), np.zeros(0)
    return unique_rows(np.concatenate(parts_h).astype(np.int64), np.concatenate(parts_f))


def p1_sphere(cell, dmin: float, budget: Optional[int] = None, path="<structure>") -> np.ndarray:
    """Every (h, k, l) with d >= dmin (000 included), sorted; InputError beyond ``budget`` bytes of F grid.

    d* = |h @ reciprocal_basis|; indices within 1e-12 relative of the limit are kept.
    """
    from .hkl import grid_shape

    if not (dmin > 0 and math.isfinite(dmin)):
        raise _fail(path, f"the resolution limit must be a positive number of Angstrom, got {dmin}")
    basis = reciprocal_basis(cell)
    smax2 = (1.0 / dmin) ** 2 * (1 + 1e-12)
    real_lengths = np.linalg.norm(np.linalg.inv(basis.T), axis=1)  # |a|, |b|, |c|
    lim = np.floor(real_lengths / dmin * (1 + 1e-12)).astype(int)
    grid_shape((-lim[0], lim[0], -lim[1], lim[1], -lim[2], lim[2]), path, budget)
    ks = np.arange(-lim[1], lim[1] + 1)
    ls = np.arange(-lim[2], lim[2] + 1)
    K, L = np.meshgrid(ks, ls, indexing="ij")
    out = []
    for h in range(-lim[0], lim[0] + 1):
        rows = np.stack([np.full(K.size, h), K.reshape(-1), L.reshape(-1)], 1)
        s = rows @ basis
        keep = (s * s).sum(1) <= smax2
        out.append(rows[keep])
    return np.concatenate(out).astype(np.int64)


def systematically_absent(spacegroup, hkl) -> np.ndarray:
    """(n,) bool: h is absent when an operation (R, t) of the group keeps it (h R = h) with h . t not whole."""
    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    absent = np.zeros(len(hkl), dtype=bool)
    for op in spacegroup.operations():
        R = np.array(op.rot, dtype=np.int64) // op.DEN
        t = np.array(op.tran, dtype=np.int64)
        kept = np.all(hkl @ R == hkl, axis=1)
        absent |= kept & ((hkl @ t) % op.DEN != 0)
    return absent


def d_spacings(cell, hkl) -> np.ndarray:
    """d (Angstrom) of each row of hkl (inf for 000)."""
    s = np.asarray(hkl, dtype=np.float64) @ reciprocal_basis(cell)
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt((s * s).sum(1))


# ----------------------------------------------------------------------------------------------
# measured data


@dataclass
class Column:
    label: str
    type: str
    partner: Optional[str] = None  #: the other half of an anomalous pair


@dataclass
class ReflectionFile:
    """Merged reflection data of an MTZ or structure-factor mmCIF, as the file holds them."""

    path: str
    kind: str
    cell: tuple  #: Angstrom, degrees
    spacegroup: str  #: Hermann-Mauguin symbol
    columns: list  #: [Column] in file order
    hkl: np.ndarray  #: (n, 3) as in the file
    values: dict = field(default_factory=dict)  #: label -> (n,) float64, NaN = missing
    gemmi_spacegroup: object = None

    def column(self, label: Optional[str]) -> Column:
        """The column ``label``, or the default one (see the module docstring); InputError otherwise."""
        if label is not None:
            if self.kind == "sfcif" and label.startswith("_refln."):
                label = label[len("_refln."):]
            for col in self.columns:
                if col.label == label:
                    if col.type not in AMPLITUDE_TYPES:
                        raise _fail(self.path, f"column {label} is not an amplitude or intensity column (type "
                                               f"{col.type}; amplitude types are F, J, G and K)")
                    return col
            names = ", ".join(f"{c.label} ({c.type})" for c in self.columns if c.type in AMPLITUDE_TYPES)
            raise _fail(self.path, f"no column {label} (amplitude and intensity columns: {names or 'none'})")
        for wanted in AMPLITUDE_TYPES:
            for col in self.columns:
                if col.type == wanted:
                    return col
        raise _fail(self.path, "no amplitude or intensity column (types F, J, G or K)")

    def resolution(self) -> tuple:
        """(d_max, d_min) in Angstrom over the rows of the file with any amplitude value."""
        d = d_spacings(self.cell, self.hkl)
        d = d[np.isfinite(d)]
        return (float(d.max()), float(d.min())) if len(d) else (float("nan"), float("nan"))

    def p1(self, label: Optional[str] = None):
        """(hkl, F, column, anomalous) of the chosen column expanded to P1; see :func:`expand_to_p1`."""
        col = self.column(label)
        rots = rotations(self.gemmi_spacegroup)

        def amplitudes(name, kind):
            v = np.asarray(self.values[name], dtype=np.float64)
            ok = np.isfinite(v)
            v = v[ok]
            if kind in ("J", "K"):
                v = np.sqrt(np.maximum(v, 0.0))
            return self.hkl[ok], v

        if col.type in ("G", "K"):
            plus, minus = (col.label, col.partner) if _is_plus(col.label, col.partner) else (col.partner, col.label)
            ph, pf = amplitudes(plus, col.type)
            mh, mf = amplitudes(minus, col.type)
            hkl, F = expand_to_p1(ph, pf, rots, friedel=False, minus=(mh, mf))
            return hkl, F, col, True
        h, f = amplitudes(col.label, col.type)
        hkl, F = expand_to_p1(h, f, rots, friedel=True)
        return hkl, F, col, False


def _is_plus(label: str, partner: str) -> bool:
    """Whether ``label`` is the F(+) half of a pair (by name: '+', 'plus'; else the first of the two)."""
    low = label.lower()
    if "+" in low or "plus" in low:
        return True
    if "-" in low or "minus" in low:
        return False
    return True


def _pair_columns(cols: list) -> list:
    """Pair consecutive anomalous columns (types G, K): each gets its partner's label."""
    for kind in ("G", "K"):
        group = [c for c in cols if c.type == kind]
        for first, second in zip(group[::2], group[1::2]):
            first.partner, second.partner = second.label, first.label
    return [c for c in cols if c.type not in ("G", "K") or c.partner is not None]


def read_mtz(path: str) -> ReflectionFile:
    """A merged MTZ file; InputError for an unreadable, corrupt or unmerged one."""
    gemmi = gemmi_module()
    read_bytes(path)  # missing or unreadable file: the usual one-line message
    try:
        mtz = gemmi.read_mtz_file(path)
    except (RuntimeError, ValueError, OSError, MemoryError) as exc:
        raise _fail(path, f"not a readable MTZ file: corrupt or truncated ({_gemmi_message(exc)})") from None
    labels = [c.label for c in mtz.columns]
    if len(mtz.batches) > 0 or "M/ISYM" in labels or "BATCH" in labels:
        raise _fail(path, "unmerged data (batches, M/ISYM or BATCH columns): merge them first "
                          "(e.g. with aimless or dials.merge); nanoBragg needs one F per reflection")
    if mtz.spacegroup is None:
        raise _fail(path, "the file names no space group")
    if not mtz.cell.is_crystal() or mtz.cell.volume <= 0:
        raise _fail(path, "the file has no unit cell")
    try:
        data = np.array(mtz, copy=True)
    except (RuntimeError, ValueError) as exc:
        raise _fail(path, f"corrupt reflection data ({_gemmi_message(exc)})") from None
    if data.ndim != 2 or data.shape[1] != len(labels) or data.shape[0] == 0:
        raise _fail(path, "no reflections")
    try:
        ih, ik, il = (labels.index(x) for x in "HKL")
    except ValueError:
        raise _fail(path, "no H, K, L index columns") from None
    hkl_f = data[:, [ih, ik, il]]
    if not np.all(np.isfinite(hkl_f)) or np.any(hkl_f != np.round(hkl_f)):
        raise _fail(path, "corrupt Miller indices (not whole numbers)")
    cols = _pair_columns([Column(c.label, c.type) for c in mtz.columns if c.type != "H"])
    values = {c.label: data[:, labels.index(c.label)].astype(np.float64) for c in cols}
    return ReflectionFile(path, "mtz", cell_of(mtz.cell), mtz.spacegroup.hm, cols, hkl_f.astype(np.int64), values,
                          mtz.spacegroup)


def read_sfcif(path: str) -> ReflectionFile:
    """The first block with merged ``_refln`` data of a structure-factor mmCIF; InputError otherwise."""
    gemmi = gemmi_module()
    _check_complete(path, read_bytes(path))
    try:
        doc = gemmi.cif.read(path)
        blocks = gemmi.as_refln_blocks(doc)
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        raise _fail(path, f"not a readable mmCIF file ({_gemmi_message(exc)})") from None
    merged = [rb for rb in blocks if rb.default_loop is not None and rb.is_merged()]
    if not merged:
        if any(rb.is_unmerged() for rb in blocks):
            raise _fail(path, "unmerged data (_diffrn_refln): merge them first; nanoBragg needs one F per reflection")
        raise _fail(path, "no _refln reflection loop (is it a coordinate file? use -pdb)")
    rb = merged[0]
    if rb.spacegroup is None:
        raise _fail(path, "the file names no space group (_symmetry.space_group_name_H-M)")
    if not rb.cell.is_crystal() or rb.cell.volume <= 0:
        raise _fail(path, "the file has no unit cell (_cell.length_a ...)")
    try:
        hkl = np.array(rb.make_miller_array(), dtype=np.int64).reshape(-1, 3)
    except (RuntimeError, ValueError) as exc:
        raise _fail(path, f"corrupt Miller indices ({_gemmi_message(exc)})") from None
    if len(hkl) == 0:
        raise _fail(path, "no reflections")
    tags = list(rb.column_labels())
    cols, values = [], {}
    for tag in tags:
        if tag in ("index_h", "index_k", "index_l"):
            continue
        kind, partner = CIF_TAGS.get(tag, ("?", None))
        if kind != "?":
            try:
                values[tag] = np.array(rb.make_float_array(tag), dtype=np.float64)
            except (RuntimeError, ValueError) as exc:
                raise _fail(path, f"corrupt column {tag} ({_gemmi_message(exc)})") from None
        cols.append(Column(tag, kind, partner if partner in tags else None))
    cols = [c for c in cols if c.type not in ("G", "K") or c.partner is not None]
    return ReflectionFile(path, "sfcif", cell_of(rb.cell), rb.spacegroup.hm, cols, hkl, values, rb.spacegroup)


def read_reflections(path: str, kind: str) -> ReflectionFile:
    return read_mtz(path) if kind == "mtz" else read_sfcif(path)


# ----------------------------------------------------------------------------------------------
# models


@dataclass
class Model:
    """The atoms of a coordinate model as arrays (every atom of the first model)."""

    path: str
    cell: tuple
    spacegroup: str
    gemmi_structure: object
    gemmi_spacegroup: object
    elements: list  #: element symbol of each atom
    xyz: np.ndarray  #: (n, 3) Cartesian, Angstrom
    occ: np.ndarray
    b_iso: np.ndarray
    u_aniso: np.ndarray  #: (n, 6) U11 U22 U33 U12 U13 U23 (Angstrom^2), zeros when isotropic
    has_aniso: np.ndarray  #: (n,) bool
    models: int = 1

    @property
    def atoms(self) -> int:
        return len(self.occ)


def read_model(path: str) -> Model:
    """A PDB or mmCIF coordinate model (by content); InputError for a corrupt file, no atoms, no cell."""
    gemmi = gemmi_module()
    data = read_bytes(path)
    try:
        if _is_cif(path):
            _check_complete(path, data)
            doc = gemmi.cif.read(path)
            st = gemmi.make_structure_from_block(doc.sole_block() if len(doc) == 1 else doc[0])
        else:
            _check_pdb_complete(path, data)
            st = gemmi.read_pdb_string(data.decode("latin-1"))
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        raise _fail(path, f"not a readable model file ({_gemmi_message(exc)})") from None
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        if "_refln." in data[:1 << 20].decode("latin-1"):
            raise _fail(path, "no atoms: this is a structure-factor file (use -sfcif)")
        raise _fail(path, "no atoms")
    if not st.cell.is_crystal() or st.cell.volume <= 1.0 + 1e-9 or min(cell_of(st.cell)[:3]) <= 1.0 + 1e-9:
        raise _fail(path, "the model has no unit cell (CRYST1 record or _cell): give a model of a crystal")
    sg = st.find_spacegroup()
    if sg is None:
        name = st.spacegroup_hm or "none"
        raise _fail(path, f"unknown space group ({name!r})")
    elements, xyz, occ, biso, uani, has = [], [], [], [], [], []
    for chain in st[0]:
        for res in chain:
            for atom in res:
                if atom.element.atomic_number == 0 or atom.element.it92 is None:
                    what = "unknown element" if atom.element.atomic_number == 0 else \
                        f"no IT92 form factor for element {atom.element.name}"
                    raise _fail(path, f"{what} (atom {atom.name} of {res.name} {chain.name} {res.seqid.num}): "
                                      "give the element in columns 77-78 (or _atom_site.type_symbol)")
                elements.append(atom.element.name)
                xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                occ.append(atom.occ)
                biso.append(atom.b_iso)
                a = atom.aniso
                aniso = a.nonzero()
                has.append(aniso)
                uani.append((a.u11, a.u22, a.u33, a.u12, a.u13, a.u23) if aniso else (0.0,) * 6)
    xyz = np.array(xyz, dtype=np.float64)
    occ, biso = np.array(occ, dtype=np.float64), np.array(biso, dtype=np.float64)
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(occ)) and np.all(np.isfinite(biso))):
        raise _fail(path, "corrupt atom records (coordinates, occupancy or B not finite)")
    return Model(path, cell_of(st.cell), sg.hm, st, sg, elements, xyz, occ, biso,
                 np.array(uani, dtype=np.float64).reshape(-1, 6), np.array(has, dtype=bool), len(st))


def _check_complete(path: str, data: bytes) -> None:
    """A text file cut short in the middle of its last line."""
    if data and not data.endswith((b"\n", b"\r")):
        raise _fail(path, "truncated file (its last line is incomplete)")


def _check_pdb_complete(path: str, data: bytes) -> None:
    """A PDB file cut short: its last line unfinished, or an ATOM/HETATM record without all its coordinates."""
    text = data.decode("latin-1")
    lines = text.splitlines()
    if text and not text.endswith(("\n", "\r")) and not lines[-1].startswith("END"):
        raise _fail(path, "truncated file (its last line is incomplete)")
    for number, line in enumerate(lines, start=1):
        if line.startswith(("ATOM  ", "HETATM")) and len(line.rstrip()) < 54:
            raise _fail(path, f"line {number}: truncated {line[:6].strip()} record (coordinates end at column 54)")


def _form_factor_coefficients(elements: list):
    """Unique elements, each atom's index into them, and their IT92 coefficients (a (E,4), b (E,4), c (E,))."""
    gemmi = gemmi_module()
    names = sorted(set(elements))
    index = {n: i for i, n in enumerate(names)}
    a, b, c = [], [], []
    for name in names:
        coef = gemmi.Element(name).it92.get_coefs()
        a.append(coef[0:4])
        b.append(coef[4:8])
        c.append(coef[8])
    return names, np.array([index[e] for e in elements], dtype=np.int64), np.array(a), np.array(b), np.array(c)


def f000(model: Model, wavelength: Optional[float] = None) -> float:
    """F(000): sum over the unit cell of occupancy * f0(0) (electrons; with f' at ``wavelength`` when given)."""
    names, idx, a, b, c = _form_factor_coefficients(model.elements)
    f0 = a.sum(1) + c
    if wavelength is not None:
        fp, fpp = dispersion(names, wavelength)
        f = np.abs((f0 + fp + 1j * fpp)[idx] @ model.occ)
        return float(f * len(model.gemmi_spacegroup.operations()))
    return float(f0[idx] @ model.occ * len(model.gemmi_spacegroup.operations()))


def dispersion(names: list, wavelength: float):
    """f' and f'' (electrons) of each element at ``wavelength`` (Angstrom), Cromer-Liberman (gemmi)."""
    gemmi = gemmi_module()
    energy = gemmi.hc / wavelength
    fp, fpp = [], []
    for name in names:
        z = gemmi.Element(name).atomic_number
        p, pp = gemmi.cromer_liberman(z=z, energy=energy) if z > 0 else (0.0, 0.0)
        fp.append(p)
        fpp.append(pp)
    return np.array(fp), np.array(fpp)


#: elements of one chunk of the direct sum (reflections x atoms)
CHUNK_ELEMENTS = 1 << 19  # about 8 arrays of complex128: ~64 MB at the peak


def model_structure_factors(model: Model, hkl: np.ndarray, wavelength: Optional[float] = None,
                            anomalous: bool = False) -> np.ndarray:
    """Complex F (electrons) of a model at each P1 index of ``hkl``: the direct sum over atoms and symmetry.

    F(h) = sum_ops sum_atoms occ (f0(s) + f' + i f'') T(h R) exp(2 pi i (h R . x + h . t)),
    T = exp(-B s^2/4) or exp(-2 pi^2 (hR)* U (hR)*). Without ``anomalous`` f' = f'' = 0.
    """
    hkl = np.asarray(hkl, dtype=np.float64).reshape(-1, 3)
    names, idx, a, b, c = _form_factor_coefficients(model.elements)
    if anomalous:
        if wavelength is None:
            raise ValueError("anomalous scattering needs the wavelength")
        fp, fpp = dispersion(names, wavelength)
    else:
        fp, fpp = np.zeros(len(names)), np.zeros(len(names))
    cell = model.gemmi_structure.cell
    frac = np.array(cell.frac.mat.tolist(), dtype=np.float64)  # x_frac = frac @ x_cart (origin shift 0)
    xf = model.xyz @ frac.T
    basis = reciprocal_basis(model.cell)  # s_cart = h @ basis
    ops = [(np.array(op.rot, dtype=np.float64) / op.DEN, np.array(op.tran, dtype=np.float64) / op.DEN)
           for op in model.gemmi_spacegroup.operations()]
    U = model.u_aniso
    aniso = model.has_aniso
    out = np.empty(len(hkl), dtype=np.complex128)
    step = max(1, CHUNK_ELEMENTS // max(1, model.atoms))
    for start in range(0, len(hkl), step):
        H = hkl[start:start + step]
        s = H @ basis
        stol2 = (s * s).sum(1) / 4.0  # (sin theta / lambda)^2
        f0 = (a[None, :, :] * np.exp(-b[None, :, :] * stol2[:, None, None])).sum(2) + c[None, :]  # (m, E)
        fat = (f0 + fp[None, :])[:, idx] + 1j * fpp[None, idx]  # (m, n)
        t_iso = np.exp(-np.outer(stol2, model.b_iso))
        total = np.zeros(fat.shape, dtype=np.complex128)
        for R, t in ops:
            Hr = H @ R
            phase = 2.0 * np.pi * (Hr @ xf.T + (H @ t)[:, None])
            term = np.cos(phase) + 1j * np.sin(phase)
            if aniso.any():
                sr = Hr @ basis
                Ua = U[None, aniso]
                quad = (sr[:, 0:1] ** 2 * Ua[..., 0] + sr[:, 1:2] ** 2 * Ua[..., 1] + sr[:, 2:3] ** 2 * Ua[..., 2]
                        + 2 * sr[:, 0:1] * sr[:, 1:2] * Ua[..., 3] + 2 * sr[:, 0:1] * sr[:, 2:3] * Ua[..., 4]
                        + 2 * sr[:, 1:2] * sr[:, 2:3] * Ua[..., 5])
                dw = t_iso.copy()
                dw[:, aniso] = np.exp(-2.0 * np.pi ** 2 * quad)
                term *= dw
            else:
                term *= t_iso
            total += term
        out[start:start + step] = (fat * model.occ[None, :] * total).sum(1)
    return out


def solvent_structure_factors(model: Model, hkl: np.ndarray, dmin: float, k_sol: float, b_sol: float) -> np.ndarray:
    """Flat bulk solvent k_sol exp(-B_sol s^2/4) F_mask at ``hkl`` (complex, electrons), gemmi's solvent mask."""
    gemmi = gemmi_module()
    st = model.gemmi_structure
    grid = gemmi.FloatGrid()
    grid.setup_from(st, spacing=min(0.5, dmin / 4.0))
    masker = gemmi.SolventMasker(gemmi.AtomicRadiiSet.Refmac)
    masker.put_mask_on_float_grid(grid, st[0])  # 1 in the solvent, 0 in the protein
    fmask = gemmi.transform_map_to_f_phi(grid, half_l=False)
    arr = np.array(fmask, copy=False)
    n = np.array(arr.shape)
    h = np.asarray(hkl, dtype=np.int64)
    if np.any(np.abs(h) * 2 >= n[None, :]):
        raise ValueError("the solvent grid is too coarse for the resolution")
    vals = arr[h[:, 0] % n[0], h[:, 1] % n[1], h[:, 2] % n[2]].astype(np.complex128)
    s = h.astype(np.float64) @ reciprocal_basis(model.cell)
    stol2 = (s * s).sum(1) / 4.0
    return k_sol * np.exp(-b_sol * stol2) * vals


# ----------------------------------------------------------------------------------------------
# the one entry point


@dataclass
class P1Structure:
    """The P1 structure-factor list of one input file, what nanoBragg simulates."""

    path: str
    kind: str  #: mtz, sfcif or model
    cell: tuple  #: Angstrom, degrees (the file's)
    spacegroup: str
    hkl: np.ndarray  #: (n, 3) int64, sorted
    F: np.ndarray  #: (n,) float64
    has_F000: bool
    anomalous: bool
    dmin: float  #: Angstrom: the limit computed to (models) or the data's
    column: Optional[str] = None
    notes: list = field(default_factory=list)
    method: Optional[str] = None  #: models: how F was computed, ``direct`` (summation) or ``fft`` (gemmi's density)


def load_p1(path: str, kind: Optional[str] = None, column: Optional[str] = None, dmin: Optional[float] = None,
            wavelength: Optional[float] = None, anomalous: bool = False, solvent: Optional[tuple] = None,
            budget: Optional[int] = None, method: str = "auto") -> P1Structure:
    """Read ``path`` and return its P1 list (see the module docstring).

    kind: mtz, sfcif or model (None: from the content). Measured data: ``column`` label;
    ``dmin`` (Angstrom), when given, drops reflections beyond it. Models: ``dmin`` is required;
    ``anomalous`` needs ``wavelength`` (Angstrom); ``solvent`` = (k_sol e/A^3, B_sol A^2).
    ``budget``: bytes the F grid of the sphere may take (InputError beyond it, before computing).
    ``method`` (models): ``direct`` summation, ``fft`` (gemmi's density and its transform; two of them
    with ``anomalous``), or ``auto``: direct up to :data:`DIRECT_LIMIT` atom-reflection terms, else fft.
    """
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"method must be auto, direct or fft, got {method!r}")
    if kind is None:
        kind = detect_kind(path)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind in ("mtz", "sfcif"):
        if anomalous or solvent is not None:
            raise _fail(path, "anomalous dispersion and bulk solvent apply to models (-pdb), not to measured data")
        data = read_reflections(path, kind)
        hkl, F, col, anom = data.p1(column)
        if len(hkl) == 0:
            raise _fail(path, f"column {col.label} has no values")
        d = d_spacings(data.cell, hkl)
        if dmin is not None:
            keep = d >= dmin * (1 - 1e-12)
            hkl, F, d = hkl[keep], F[keep], d[keep]
        if len(hkl):
            from .hkl import grid_shape
            lo, hi = hkl.min(0), hkl.max(0)
            grid_shape((lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]), path, budget)
        return P1Structure(path, kind, data.cell, data.spacegroup, hkl, F, False, anom,
                           float(d.min()) if len(d) else float("nan"), col.label)
    if column is not None:
        raise _fail(path, "a column applies to MTZ and mmCIF data, not to a model")
    if dmin is None:
        raise ValueError("a model needs a resolution limit (dmin)")
    model = read_model(path)
    if anomalous and wavelength is None:
        raise _fail(path, "anomalous dispersion needs the wavelength")
    hkl = p1_sphere(model.cell, dmin, budget, path)
    absent = systematically_absent(model.gemmi_spacegroup, hkl)
    zero = np.all(hkl == 0, axis=1)
    compute = ~absent & ~zero
    F = np.zeros(len(hkl))
    wl = wavelength if anomalous else None
    chosen = _method(model, int(compute.sum()), dmin, anomalous, method, budget)
    try:
        if anomalous and chosen == "fft":
            Fc = fft_anomalous_structure_factors(model, hkl[compute], dmin, wavelength)
        elif anomalous:
            Fc = model_structure_factors(model, hkl[compute], wavelength, anomalous=True)
        elif chosen == "fft":
            Fc = fft_structure_factors(model, hkl[compute], dmin)
        else:
            Fc = _friedel_sum(model, hkl[compute])
        if solvent is not None:
            Fc = Fc + solvent_structure_factors(model, hkl[compute], dmin, float(solvent[0]), float(solvent[1]))
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise _fail(path, f"structure factors could not be computed ({_gemmi_message(exc)})") from None
    F[compute] = np.abs(Fc)
    F[zero] = f000(model, wl)
    notes = []
    if model.models > 1:
        notes.append(f"{path}: {model.models} models in the file; the first is used")
    return P1Structure(path, "model", model.cell, model.spacegroup, hkl, F, True, anomalous, float(dmin),
                       None, notes, chosen)


#: ``auto`` sums directly up to this many terms (reflections x atoms x operations, halved by Friedel
#: symmetry), about 10 s on one core (5 ns a term); beyond it the FFT path (max relative error ~3e-4):
#: 1980 atoms in P 21 21 21 to 2.5 A (89913 reflections) took 69 s summed, 0.7 s by FFT (corr 1 - 3e-10)
DIRECT_LIMIT = 5e7
#: the FFT grid: points per d_min (gemmi's rate)
FFT_RATE = 3.0


def _fft_grid_bytes(model: Model, dmin: float) -> float:
    spacing = dmin / (2 * FFT_RATE)
    points = np.prod([math.ceil(x / spacing) + 1 for x in model.cell[:3]])
    return float(points) * (4 + 8 + 8)  # the density (float32) and its transform (complex64), twice over


def _method(model: Model, n_refl: int, dmin: float, anomalous: bool, method: str, budget) -> str:
    if method != "auto":
        return method
    terms = n_refl / (1.0 if anomalous else 2.0) * model.atoms * len(model.gemmi_spacegroup.operations())
    if terms <= DIRECT_LIMIT:
        return "direct"
    if budget is not None and _fft_grid_bytes(model, dmin) > budget:
        return "direct"  # slower, in bounded memory
    return "fft"


def fft_structure_factors(model: Model, hkl: np.ndarray, dmin: float, addends: Optional[dict] = None) -> np.ndarray:
    """F at ``hkl`` from gemmi's model density (IT92, B/ANISOU, symmetry; blurred, then de-blurred).

    ``addends``: element -> a constant added to its form factor (f')."""
    gemmi = gemmi_module()
    st = model.gemmi_structure
    dc = gemmi.DensityCalculatorX()
    dc.d_min = float(dmin)
    dc.rate = FFT_RATE
    for name, value in (addends or {}).items():
        dc.addends.set(gemmi.Element(name), float(value))
    dc.set_refmac_compatible_blur(st[0])
    dc.set_grid_cell_and_spacegroup(st)
    dc.put_model_density_on_grid(st[0])
    arr = np.array(gemmi.transform_map_to_f_phi(dc.grid, half_l=False), copy=False)
    n = np.array(arr.shape)
    h = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    values = arr[h[:, 0] % n[0], h[:, 1] % n[1], h[:, 2] % n[2]].astype(np.complex128)
    s = h.astype(np.float64) @ reciprocal_basis(model.cell)
    return values * np.exp(dc.blur * (s * s).sum(1) / 4.0)


def fft_anomalous_structure_factors(model: Model, hkl: np.ndarray, dmin: float, wavelength: float) -> np.ndarray:
    """F with f' and f'' by two FFTs: F1 with f0 + f', F2 with f0 + f' + f''; F = F1 + i (F2 - F1)."""
    names = sorted(set(model.elements))
    fp, fpp = dispersion(names, wavelength)
    F1 = fft_structure_factors(model, hkl, dmin, dict(zip(names, fp)))
    F2 = fft_structure_factors(model, hkl, dmin, dict(zip(names, fp + fpp)))
    return F1 + 1j * (F2 - F1)


def _friedel_sum(model: Model, hkl: np.ndarray) -> np.ndarray:
    """F at ``hkl`` computing only one of each Friedel pair (F(-h) = conj F(h) without f'')."""
    if len(hkl) == 0:
        return np.zeros(0, dtype=np.complex128)
    canon = np.where((_lex_positive(hkl))[:, None], hkl, -hkl)
    uniq, inverse = np.unique(canon, axis=0, return_inverse=True)
    Fu = model_structure_factors(model, uniq)
    F = Fu[inverse.reshape(-1)]
    flip = ~_lex_positive(hkl)
    F[flip] = np.conj(F[flip])
    return F


def _lex_positive(hkl: np.ndarray) -> np.ndarray:
    """True where (h, k, l) > (0, 0, 0) lexicographically (or is 000)."""
    h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]
    return (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l >= 0))


# ----------------------------------------------------------------------------------------------
# writing and describing


def format_hkl(hkl: np.ndarray, F: np.ndarray) -> str:
    """``h k l F`` lines, F with 17 significant digits (round-trips a double), readable by C nanoBragg."""
    return "".join(f"{int(h)} {int(k)} {int(l)} {float(f):.17g}\n" for (h, k, l), f in zip(hkl, F))


def describe(path: str, kind: Optional[str] = None) -> list:
    """Lines for ``nb-sf --info``: kind, cell, space group, columns, resolution, reflection count, F000."""
    if kind is None:
        kind = detect_kind(path)
    name = os.path.basename(path)
    if kind in ("mtz", "sfcif"):
        data = read_reflections(path, kind)
        dmax, dmin = data.resolution()
        lines = [f"{name}: {'MTZ' if kind == 'mtz' else 'structure-factor mmCIF'}, merged reflection data",
                 "cell: " + " ".join(f"{x:g}" for x in data.cell) + " (A, deg)",
                 f"space group: {data.spacegroup}",
                 f"resolution: {dmax:.4g} - {dmin:.4g} A",
                 f"reflections in the file: {len(data.hkl)}",
                 "columns: " + ", ".join(f"{c.label} ({c.type})" for c in data.columns)]
        try:
            col = data.column(None)
            hkl, F, col, anom = data.p1(None)
            lines.append(f"default column: {col.label}" + (f" with {col.partner}" if col.partner else "")
                         + f" ({'anomalous pair, no Friedel mates' if anom else 'with Friedel mates'}): "
                         f"{len(hkl)} P1 reflections")
        except InputError as exc:
            lines.append(f"default column: none ({str(exc).split(': ', 1)[-1]})")
        lines.append("F000: not in measured data (left out: the direct-beam pixel takes -default_F)")
        return lines
    model = read_model(path)
    counts = {}
    for e in model.elements:
        counts[e] = counts.get(e, 0) + 1
    return [f"{name}: coordinate model, {model.atoms} atoms in the first of {model.models} model(s) "
            f"({', '.join(f'{e} {n}' for e, n in sorted(counts.items()))}; {int(model.has_aniso.sum())} anisotropic)",
            "cell: " + " ".join(f"{x:g}" for x in model.cell) + " (A, deg)",
            f"space group: {model.spacegroup} ({len(model.gemmi_spacegroup.operations())} operations)",
            "resolution: any (structure factors are computed to the limit asked for: --dmin, or the detector's)",
            f"F000: {f000(model):.6g} electrons (atoms only, no solvent)"]
