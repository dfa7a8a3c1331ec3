"""One image of a dataset, through the ``nanoBragg`` command's own pipeline.

Image i's settings are parsed from its argument list by the command's
parser (:func:`nanobragg.cli.main.build_settings`) and rendered and written
by the command's :func:`nanobragg.cli.simulate.simulate_and_write`, so each
image is the image ``nanoBragg <its args>`` writes. A process reads the
input files (``-hkl``/dump, ``-mat``, ``-sourcefile``, ...) once: image i's
settings get the values read for image 0 (nothing in them depends on the
image). C's statistics are taken from the lines the pipeline prints.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .manifest import sha256_file
from .spec import OUTPUT_FLAGS, DatasetSpec

_FIELD = dict(OUTPUT_FLAGS)
_MAX_I = re.compile(r"^max_I = (\S+)\s+at (\S+) (\S+)")
_MEAN = re.compile(r"^mean= (\S+) rms= (\S+) rmsd= (\S+)")


def _quiet(*args, **kwargs) -> None:
    pass


def _section(settings, dotted: str):
    head, _, name = dotted.partition(".")
    obj = getattr(settings, head) if head in ("output", "files", "run") else getattr(settings.experiment, head)
    return obj, name


@dataclass
class LoadedInputs:
    """What :func:`nanobragg.cli.loaders.load_inputs` read, shared by every image of a process.

    The loader records each field it fills in ``settings.origins`` (the file
    it came from); the fields whose origin it set are the ones taken here, so
    whatever the loader reads (matrix, structure factors, sources, ...) is
    carried to every image's settings without naming it here.
    """
    values: dict = field(default_factory=dict)  #: dotted field -> value read
    origins: dict = field(default_factory=dict)  #: dotted field -> origin the loader recorded
    #: the dataset's background (S, F) float32, nonBragg's float file; None without --background
    background: Optional[np.ndarray] = None
    #: --format nxmx: the series' NXmx values (nanobragg.io.nexus.NXmxInfo, image 0's run); else None
    nxmx: Optional[object] = None

    @classmethod
    def read(cls, settings, fresh) -> "LoadedInputs":
        """Load the inputs into ``settings``; ``fresh`` is a second parse of the same flags, not loaded."""
        from ..cli.loaders import load_inputs
        load_inputs(settings, _quiet)
        keys = [k for k, v in settings.origins.items() if fresh.origins.get(k) != v]
        values = {}
        for key in keys:
            obj, name = _section(settings, key)
            values[key] = getattr(obj, name)
        return cls(values, {k: settings.origins[k] for k in keys})

    def apply(self, settings) -> None:
        for key, value in self.values.items():
            obj, name = _section(settings, key)
            setattr(obj, name, value)
        settings.origins.update(self.origins)


def load(spec: DatasetSpec) -> LoadedInputs:
    """Read the dataset's input files (as the command does for image 0), and render its background."""
    from ..cli.main import build_settings
    args = spec.image_args(0)
    loaded = LoadedInputs.read(build_settings(args), build_settings(args))
    loaded.background = render_background(spec)
    return loaded


def render_background(spec: DatasetSpec) -> Optional[np.ndarray]:
    """The float image ``nonBragg <spec.background_args()>`` writes (None without a background)."""
    if not spec.background:
        return None
    from ..cli.nonbragg import background
    return background(spec.background_args())


def write_background(spec: DatasetSpec, image: np.ndarray) -> None:
    """OUTDIR/background.bin, nonBragg's float file (atomically)."""
    from ..io import OutputSet
    from ..io.floatimage import float_bytes
    from .spec import BACKGROUND_FILE
    data = float_bytes(image)
    with OutputSet() as outputs:
        outputs.add(os.path.join(spec.outdir, BACKGROUND_FILE), size=len(data)).write_at(data, 0)


def _chain_files(spec: DatasetSpec, index: int, loaded: LoadedInputs) -> None:
    """After nanoBragg: float_add's sum (spots + background) and noisify's files, as the commands write them."""
    from ..io import OutputSet
    from ..io.floatimage import float_bytes
    if spec.background:
        spots = np.fromfile(os.path.join(spec.outdir, spec.spots_file(index)), dtype="<f4")
        water = loaded.background.reshape(-1)
        if spots.shape != water.shape:
            raise ValueError(f"the background has {water.size} pixels, the image {spots.size}")
        total = (spots.astype(np.float64) + water.astype(np.float64)).astype(np.float32)  # float_add
        data = float_bytes(total)
        with OutputSet() as outputs:
            path = os.path.join(spec.outdir, spec.float_add_args(index)[2])
            outputs.add(path, size=len(data)).write_at(data, 0)
    if spec.detector_effects:
        from ..cli.noisify import build_settings, noisify_and_write
        settings = build_settings(spec.noisify_args(index))
        settings.floatfile = os.path.join(spec.outdir, settings.floatfile)
        for target in ("intfile", "pgmfile", "noisefile"):
            setattr(settings, target, os.path.join(spec.outdir, getattr(settings, target)))
        noisify_and_write(settings, _quiet)


def image_settings(spec: DatasetSpec, index: int, loaded: LoadedInputs):
    """Image ``index``'s Settings: its args parsed by the command's parser, outputs in OUTDIR."""
    from ..cli.main import build_settings
    settings = build_settings(spec.image_args(index))
    loaded.apply(settings)
    for flag, name in spec.spot_files(index).items():
        setattr(settings.output, _FIELD[flag], os.path.join(spec.outdir, name))
    settings.output.progress = False  # the dataset has its own bar over images
    return settings


def _statistics(lines: list) -> dict:
    """C's statistics from the lines the pipeline prints (the values as printed, %g)."""
    stats = {}
    for line in lines:
        m = _MAX_I.match(line)
        if m:
            stats["max_I"] = float(m.group(1))
        m = _MEAN.match(line)
        if m:
            stats.update(mean=float(m.group(1)), rms=float(m.group(2)), rmsd=float(m.group(3)))
    return stats


def render_files(spec: DatasetSpec, index: int, loaded: LoadedInputs, publish=None) -> dict:
    """Render and write image ``index`` (its files renamed into place on return); returns C's statistics.

    ``publish``: as simulate_and_write's, the image's last step (waiting for its writes, publishing its
    files, then the background's and detector's files that read them) handed to ``publish(finish)``
    instead of run before returning.
    """
    from ..cli.simulate import simulate_and_write
    settings = image_settings(spec, index, loaded)
    lines: list = []
    deferred: list = []
    simulate_and_write(settings, settings.output.seed, lambda *a: lines.append(" ".join(map(str, a))), False,
                       series=True, publish=deferred.append if publish is not None else None)

    def finish() -> None:
        for step in deferred:
            step()
        _chain_files(spec, index, loaded)

    if publish is None:
        finish()
    else:
        publish(finish)
    return _statistics(lines)


def make_record(spec: DatasetSpec, index: int, stats: dict) -> dict:
    """Image ``index``'s manifest record, its files' sha256 read back from OUTDIR."""
    record = {"index": index,
              "files": {name: sha256_file(os.path.join(spec.outdir, name)) for name in spec.files(index).values()},
              "args": spec.image_args(index),
              "seed": spec.noise_seed + index}
    chain = spec.chain(index)
    if chain:
        record["chain"] = chain
    if spec.format == "nxmx":
        name, frame = spec.nxmx_place(index)
        record["nxmx"] = {"file": name, "frame": frame}
    own = spec.orientation(index)
    if own[0] == "-phi":
        record["phi"] = float(own[1])
    else:
        record["misset"] = [float(v) for v in own[1:]]
    record.update(stats)
    return record


def render_one(spec: DatasetSpec, index: int, loaded: LoadedInputs) -> dict:
    """Render and write image ``index``; returns its manifest record (after its files are in place)."""
    return make_record(spec, index, render_files(spec, index, loaded))


def write_nxmx_data(spec: DatasetSpec, indices: list) -> None:
    """--format nxmx: the data file of images ``indices`` (one whole file's), their SMV int images in order,
    written atomically."""
    from ..io import read_smv
    from ..io.nexus import write_nxmx_frames
    name = spec.nxmx_place(indices[0])[0]
    frames = np.stack([read_smv(os.path.join(spec.outdir, spec.spot_files(i)["-intfile"]))[1] for i in indices])
    write_nxmx_frames(os.path.join(spec.outdir, name), frames)


def render_group(spec: DatasetSpec, indices: list, loaded: LoadedInputs) -> list:
    """Render and write images ``indices``; returns their manifest records. With --format nxmx ``indices``
    are one data file's images: the file is written once they are, before any record is made."""
    if spec.format != "nxmx":
        return [render_one(spec, index, loaded) for index in indices]
    stats = [render_files(spec, index, loaded) for index in indices]
    write_nxmx_data(spec, indices)
    return [make_record(spec, index, s) for index, s in zip(indices, stats)]


def nxmx_sources(spec: DatasetSpec) -> list:
    """The master file's sources: (data file, dataset, frames) of every data file, in series order."""
    return [(spec.nxmx_place(group[0])[0], "/entry/data/data", len(group)) for group in spec.file_groups()]


def write_nxmx_master(spec: DatasetSpec, info) -> None:
    """OUTDIR/series_master.h5: the run's NXmx metadata (``info``, image 0's) with every frame's omega the
    image's phi, and its data a virtual dataset of the data files' frames in series order."""
    import dataclasses
    import math

    from ..io.nexus import write_nxmx_master as write_master
    from .spec import NXMX_MASTER
    angles = np.array([math.radians(float(spec.orientation(i)[1])) for i in range(spec.images)])
    info = dataclasses.replace(info, frames=spec.images, angles=angles, phi0=float(angles[0]),
                               osc=math.radians(float(spec.osc)))
    write_master(os.path.join(spec.outdir, NXMX_MASTER), info, nxmx_sources(spec), tuple(info.modules[0].shape))
