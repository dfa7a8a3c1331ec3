"""CrystFEL geometry files (``.geom``, crystfel_geometry(5)): detector panels in nanoBragg's lab frame.

Syntax: ``key = value`` and ``panel/key = value`` lines, ``;`` starts a
comment. A top-level value of a panel key (``res``, ``coffset``, ``fs``,
...) is the default of every panel *first mentioned* after it, as in
CrystFEL. Each panel needs ``min_fs``/``max_fs``/``min_ss``/``max_ss``
(inclusive pixel ranges in the data array), ``fs`` and ``ss`` (lab
directions such as ``-0.001x +0.99y +0.02z``), ``corner_x``/``corner_y``
(the outer corner of its first pixel, in pixel widths) and ``res`` (pixels
per metre); ``clen`` (top level, ``m`` unless ``mm`` is given) and the
panel's ``coffset`` (m) place it along the beam, ``detector_shift_x/y``
(m or mm) shift the whole detector. The keys of the manual that do not
concern geometry (``adu_per_eV``, ``adu_per_photon``, ``max_adu``, ``data``,
``dim*``, masks, flags, ``no_index``, saturation maps, peak lists, the
wavelength, photon energy and bandwidth, ``group_*`` and ``rigid_group*``,
bad regions) are accepted and ignored: the beam comes from the command
line. A key the manual does not know is an error, as is a value taken from
a data file (``clen = /LCLS/detector_1/EncoderValue``).

Frames: CrystFEL's lab frame has +z along the beam, +y up, +x completing a
right-handed set; nanoBragg's default (MOSFLM) frame has the beam along +x.
A CrystFEL vector (x, y, z) is nanoBragg's (z, y, -x): CrystFEL's x, y, z
axes are nanoBragg's -z, y and x. Every length here is in metres.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import InputError, read_text_lines

#: Keys of a panel (or their top-level defaults) that place it.
GEOMETRY_KEYS = {"min_fs", "max_fs", "min_ss", "max_ss", "corner_x", "corner_y", "fs", "ss", "res", "coffset", "clen"}
#: Panel keys of the manual that do not concern geometry: accepted, ignored.
IGNORED_PANEL_KEYS = {"adu_per_eV", "adu_per_photon", "data", "mask_edge_pixels", "mask", "mask_file", "mask_good",
                      "mask_bad", "saturation_map", "saturation_map_file", "max_adu", "flag_equal", "flag_lessthan",
                      "flag_morethan", "badrow_direction", "no_index"}
#: Top-level keys that are not panel defaults.
TOP_KEYS = {"clen", "detector_shift_x", "detector_shift_y", "photon_energy", "electron_voltage", "wavelength",
            "bandwidth", "peak_list", "peak_list_type"}
#: Keys of a bad region (a name starting with "bad").
BAD_KEYS = {"min_x", "max_x", "min_y", "max_y", "min_fs", "max_fs", "min_ss", "max_ss", "panel"}
_MASK_KEY = re.compile(r"mask[0-7]_(data|file|goodbits|badbits)$")
_DIM_KEY = re.compile(r"dim[0-9]+$")
_TERM = re.compile(r"([+-]?)\s*([0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?)\s*([xyz])")


def crystfel_to_lab(v) -> np.ndarray:
    """A CrystFEL lab vector (x, y, z) in nanoBragg's default frame: (z, y, -x)."""
    x, y, z = (float(t) for t in v)
    return np.array([z, y, -x]) + 0.0  # + 0.0: no negative zeros


@dataclass
class Panel:
    """One panel: its data ranges (inclusive) and its geometry in nanoBragg's lab frame (metres)."""

    name: str
    min_fs: int
    max_fs: int
    min_ss: int
    max_ss: int
    fdet: np.ndarray  #: (3,) unit fast axis
    sdet: np.ndarray  #: (3,) unit slow axis
    odet: np.ndarray  #: (3,) unit normal, pointing away from the sample
    pix0: np.ndarray  #: (3,) outer corner of the first pixel
    pixel_size: float
    slot: tuple = ()  #: (data location, fixed dim indices): panels in one slot share a data array

    @property
    def shape(self) -> tuple:
        """(slow, fast) pixels."""
        return (self.max_ss - self.min_ss + 1, self.max_fs - self.min_fs + 1)

    def centre_and_distance(self) -> tuple:
        """(Xbeam, Ybeam, close_distance) of the custom-convention SAMPLE pivot that puts pix0 here:
        pix0 = -Xbeam fdet - Ybeam sdet + close_distance odet (m)."""
        f, s, o, p = self.fdet, self.sdet, self.odet, self.pix0
        gram = np.array([[f @ f, f @ s], [f @ s, s @ s]])
        x, y = np.linalg.solve(gram, -np.array([p @ f, p @ s]))
        return float(x), float(y), float(p @ o)


@dataclass
class Geometry:
    """A detector of panels, in file order."""

    panels: list
    path: str = ""

    @property
    def data_shape(self) -> tuple:
        """(slow, fast) size of the data array that holds every panel at its ranges."""
        return (max(p.max_ss for p in self.panels) + 1, max(p.max_fs for p in self.panels) + 1)

    @property
    def same_size(self) -> bool:
        return len({p.shape for p in self.panels}) == 1

    def overlapping(self):
        """The first two panels whose data ranges overlap (in any data block), or None."""
        for i, a in enumerate(self.panels):
            for b in self.panels[i + 1:]:
                if a.min_fs <= b.max_fs and b.min_fs <= a.max_fs and a.min_ss <= b.max_ss and b.min_ss <= a.max_ss:
                    return a, b
        return None


def _number(path, line, key, text) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"{key} = {text!r} is not a number", line) from None
    if not math.isfinite(value):
        raise InputError(path, f"{key} = {text!r} is not a finite number", line)
    return value


def _length(path, line, key, text) -> float:
    """A length with an optional unit (m, the default, or mm); a data-file location is refused."""
    parts = text.split()
    if parts and parts[0].startswith("/"):
        raise InputError(path, f"{key} = {text}: a value from a data file cannot be used (give a number)", line)
    if len(parts) == 2 and parts[1] in ("m", "mm"):
        return _number(path, line, key, parts[0]) * (1e-3 if parts[1] == "mm" else 1.0)
    if len(parts) != 1:
        raise InputError(path, f"{key} = {text!r}: expected a length in m or mm", line)
    return _number(path, line, key, parts[0])


def _direction(path, line, key, text) -> np.ndarray:
    """A direction such as ``-0.001x +0.99y +0.02z`` (CrystFEL frame)."""
    compact = text.replace(" ", "").replace("\t", "")
    v, pos = np.zeros(3), 0
    for match in _TERM.finditer(compact):
        if match.start() != pos or (pos > 0 and not match.group(1)):
            break
        sign, coef, axis = match.groups()
        value = float(coef) if coef not in ("", ".") else 1.0
        v["xyz".index(axis)] += -value if sign == "-" else value
        pos = match.end()
    if pos != len(compact) or not compact:
        raise InputError(path, f"{key} = {text!r} is not a direction like '+1.0x -0.5y +0.0z'", line)
    return v


def _check_key(path, line, scope: str, key: str) -> None:
    known = GEOMETRY_KEYS | IGNORED_PANEL_KEYS
    if scope == "bad":
        ok = key in BAD_KEYS
    elif scope == "top":
        ok = key in known or key in TOP_KEYS or bool(_MASK_KEY.match(key) or _DIM_KEY.match(key)) \
            or key.startswith("group_") or key.startswith("rigid_group")
    else:
        ok = key in known or bool(_MASK_KEY.match(key) or _DIM_KEY.match(key))
    if not ok:
        raise InputError(path, f"unknown key '{key}' (not in crystfel_geometry(5))", line)


def read_geom(path) -> Geometry:
    """Read a CrystFEL geometry file; InputError (file and line) for anything it cannot place."""
    path = str(path)
    defaults: dict = {}
    panels: dict = {}  #: name -> {key: (value text, line)}
    top: dict = {}
    for number, raw in enumerate(read_text_lines(path), start=1):
        text = raw.split(";", 1)[0].strip()
        if not text:
            continue
        if "=" not in text:
            raise InputError(path, f"not a 'key = value' line: {text!r}", number)
        key, value = (t.strip() for t in text.split("=", 1))
        if not value:
            raise InputError(path, f"{key} has no value", number)
        if "/" in key:
            name, _, field = key.partition("/")
            if not name or not field or "/" in field:
                raise InputError(path, f"bad key {key!r} (expected panel/key)", number)
            if name.startswith("bad"):
                _check_key(path, number, "bad", field)
                continue
            if name.startswith("group") or name.startswith("rigid_group"):
                raise InputError(path, f"panel name {name!r} is reserved (group, rigid_group, bad)", number)
            _check_key(path, number, "panel", field)
            if name not in panels:
                panels[name] = dict(defaults)
            panels[name][field] = (value, number)
        else:
            _check_key(path, number, "top", key)
            if key in TOP_KEYS:
                top[key] = (value, number)
            elif not (key.startswith("group_") or key.startswith("rigid_group")):
                defaults[key] = (value, number)
    if not panels:
        raise InputError(path, "no panels (lines such as 'p0/min_fs = 0')")
    geometry = Geometry([_panel(path, name, fields, top) for name, fields in panels.items()], path)
    _check_overlaps(geometry)
    return geometry


def _panel(path, name, fields: dict, top: dict) -> Panel:
    def need(key):
        if key not in fields:
            if key == "res":
                raise InputError(path, f"panel {name} has no res (pixels per metre), and no global res is given")
            raise InputError(path, f"panel {name} has no {key}")
        return fields[key]

    ranges = {}
    for key in ("min_fs", "max_fs", "min_ss", "max_ss"):
        text, line = need(key)
        value = _number(path, line, f"{name}/{key}", text)
        if value != int(value) or value < 0:
            raise InputError(path, f"{name}/{key} = {text} is not a pixel index (0, 1, ...)", line)
        ranges[key] = int(value)
    for lo, hi in (("min_fs", "max_fs"), ("min_ss", "max_ss")):
        if ranges[hi] < ranges[lo]:
            raise InputError(path, f"panel {name}: {hi} {ranges[hi]} is below {lo} {ranges[lo]}", fields[hi][1])
    text, line = need("res")
    res = _number(path, line, f"{name}/res", text)
    if res <= 0:
        raise InputError(path, f"{name}/res = {text} must be positive (pixels per metre)", line)
    pixel = 1.0 / res
    vectors = {}
    for key in ("fs", "ss"):
        text, line = need(key)
        v = _direction(path, line, f"{name}/{key}", text)
        length = float(np.linalg.norm(v))
        if length == 0:
            raise InputError(path, f"{name}/{key} = {text!r} is a zero vector", line)
        if abs(length - 1) > 1e-3:
            raise InputError(path, f"{name}/{key} = {text!r} has length {length:g}: nanoBragg's pixels are square "
                                   "(fs and ss of length 1)", line)
        vectors[key] = v / length
    cross = np.cross(vectors["fs"], vectors["ss"])
    if np.linalg.norm(cross) < 1e-6:
        raise InputError(path, f"panel {name}: fs and ss are parallel", fields["ss"][1])
    corner = [_number(path, need(k)[1], f"{name}/{k}", need(k)[0]) for k in ("corner_x", "corner_y")]
    if "clen" in fields:
        clen = _length(path, fields["clen"][1], f"{name}/clen", fields["clen"][0])
    elif "clen" in top:
        clen = _length(path, top["clen"][1], "clen", top["clen"][0])
    else:
        raise InputError(path, f"panel {name} has no clen (camera length), and no global clen is given")
    coffset = 0.0
    if "coffset" in fields:
        coffset = _length(path, fields["coffset"][1], f"{name}/coffset", fields["coffset"][0])
    shift = [(_length(path, top[k][1], k, top[k][0]) if k in top else 0.0)
             for k in ("detector_shift_x", "detector_shift_y")]
    corner_lab = np.array([corner[0] * pixel + shift[0], corner[1] * pixel + shift[1], clen + coffset])
    fdet, sdet = crystfel_to_lab(vectors["fs"]), crystfel_to_lab(vectors["ss"])
    normal = np.cross(fdet, sdet)
    normal /= np.linalg.norm(normal)
    pix0 = crystfel_to_lab(corner_lab)
    if normal @ pix0 < 0:  # nanoBragg's normal points away from the sample
        normal = -normal
    if normal @ pix0 <= 0:
        raise InputError(path, f"panel {name}: its plane passes through the sample (clen + coffset and corner put "
                               "the sample on the panel)")
    slot = (fields.get("data", ("/data/data",))[0],
            tuple(sorted((k, v[0]) for k, v in fields.items() if _DIM_KEY.match(k) and v[0] not in ("fs", "ss", "%"))))
    return Panel(name, ranges["min_fs"], ranges["max_fs"], ranges["min_ss"], ranges["max_ss"],
                 fdet, sdet, normal, pix0, pixel, slot)


def _check_overlaps(geometry: Geometry) -> None:
    """Refuse two panels whose data ranges overlap in the same data block (same data and fixed dims)."""
    for i, a in enumerate(geometry.panels):
        for b in geometry.panels[i + 1:]:
            if a.slot == b.slot and a.min_fs <= b.max_fs and b.min_fs <= a.max_fs \
                    and a.min_ss <= b.max_ss and b.min_ss <= a.max_ss:
                raise InputError(geometry.path, f"panels {a.name} and {b.name} overlap in the data array "
                                                f"(fs {a.min_fs}-{a.max_fs} and {b.min_fs}-{b.max_fs}, "
                                                f"ss {a.min_ss}-{a.max_ss} and {b.min_ss}-{b.max_ss})")
