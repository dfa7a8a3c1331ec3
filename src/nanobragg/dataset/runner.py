"""Running a dataset: checks, OUTDIR, resume, the manifest, and the images in one process or on Dask.

One process pays torch's start-up and the compiled kernel's loading once
and renders image after image (:mod:`nanobragg.dataset.render`); with
``workers``/``scheduler``/``client`` the images go to Dask
(:mod:`nanobragg.dataset.dask_backend`).
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .manifest import (
    MANIFEST,
    SPEC,
    ManifestAppender,
    read_manifest,
    read_spec,
    record_is_valid,
    rewrite_manifest,
    write_spec,
)
from .render import LoadedInputs, make_record, render_background, render_files, write_background
from .spec import DatasetError, make_spec


@dataclass
class Summary:
    outdir: str
    images: int
    rendered: int
    kept: int
    seconds: float
    workers: Optional[str] = None

    def line(self) -> str:
        rate = self.rendered / self.seconds if self.seconds > 0 else 0.0
        where = f" on {self.workers}" if self.workers else ""
        return (f"nb-dataset: {self.images} images in {self.outdir} ({self.rendered} rendered, {self.kept} kept "
                f"from before) in {self.seconds:.1f} s, {rate:.2f} images/s{where}; manifest {MANIFEST}")


def _progress_bar(total: int, initial: int, progress: Optional[bool]):
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="img", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _check_outdir(outdir: str) -> None:
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise DatasetError(f"OUTDIR {outdir} exists and is not a folder")
    parent = os.path.dirname(outdir.rstrip(os.sep)) or os.sep
    folder = outdir if os.path.isdir(outdir) else parent
    if not os.path.isdir(folder):
        raise DatasetError(f"OUTDIR {outdir}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatasetError(f"OUTDIR {outdir}: folder {folder} is not writable")


def _remove_stale_temporaries(outdir: str) -> None:
    """A SIGKILL between linking a temporary and renaming it can leave one .tmp- file (io.atomic); remove it."""
    for name in os.listdir(outdir):
        if name.startswith(".tmp-"):
            try:
                os.unlink(os.path.join(outdir, name))
            except OSError:
                pass


def _uses_dask(workers, scheduler, client) -> bool:
    return workers is not None or scheduler is not None or client is not None


def prepare(outdir: str, flags: list, images: int, *, random_orientations: bool = False, seed: Optional[int] = None,
            resume: bool = False, background: Optional[list] = None, detector_effects: Optional[list] = None,
            format: str = "files", frames_per_file: Optional[int] = None):
    """Check everything (dataset options, the flags as nanoBragg checks them, input files, OUTDIR) before
    anything is written; returns (spec, inputs read, existing dataset.json or None)."""
    import torch

    from ..cli.main import build_settings
    from ..cli.simulate import pick_device
    from ..cli.validate import validate
    from ..resolve import resolve

    outdir = os.path.abspath(outdir)
    _check_outdir(outdir)
    existing = read_spec(outdir) if os.path.isdir(outdir) else None
    has_manifest = os.path.exists(os.path.join(outdir, MANIFEST))
    if (existing is not None or has_manifest) and not resume:
        raise DatasetError(f"OUTDIR {outdir} already holds a dataset ({SPEC if existing is not None else MANIFEST}): "
                           "--resume continues it, or choose another OUTDIR")
    base = build_settings([str(f) for f in flags])
    device = pick_device(base.run.device).type
    noise_seed = None
    if existing and "-seed" not in flags and seed is None:
        noise_seed = existing.get("noise_seed")  # the clock's seed of the interrupted run
    if format == "nxmx":
        from ..io.nexus import require_h5
        require_h5("--format nxmx")
        if existing and frames_per_file is None and isinstance(existing.get("frames_per_file"), int):
            frames_per_file = existing["frames_per_file"] or None  # the interrupted run's --chunk
    spec, settings = make_spec(outdir, flags, images, random_orientations, seed, noise_seed, device,
                               background, detector_effects, format, frames_per_file)
    if existing is not None:
        mine = spec.describe()
        differ = sorted(k for k in set(mine) | set(existing) if mine.get(k) != existing.get(k))
        if differ:
            verb = "differs" if len(differ) == 1 else "differ"
            raise DatasetError(f"OUTDIR {outdir} holds another dataset ({', '.join(differ)} {verb}): "
                               "choose another OUTDIR")
    validate(settings)
    loaded = LoadedInputs.read(settings, build_settings(spec.image_args(0)))
    dtype = torch.float64 if settings.run.dtype == "float64" else torch.float32
    res = resolve(settings.experiment, seed=settings.output.seed, dtype=dtype)
    if spec.background:
        _check_background_detector(spec, res)
        loaded.background = render_background(spec)
    if spec.format == "nxmx":
        from ..cli.outputs import nxmx_info
        loaded.nxmx = nxmx_info(res, settings.experiment)
    return spec, loaded, existing


def _check_background_detector(spec, res) -> None:
    """The background's detector must be the spots' (nonBragg's defaults place it half a pixel and a pixel off)."""
    from ..cli.nonbragg import build_settings, resolve
    settings, _ = build_settings(spec.background_args())
    r = resolve(settings, lambda *a: None)
    det = res.detector
    shape, mine = (det.spixels, det.fpixels), (r.spixels, r.fpixels)
    if shape != mine:
        raise DatasetError(f"--background: nonBragg's detector is {mine[1]}x{mine[0]} pixels, nanoBragg's "
                           f"{shape[1]}x{shape[0]}: give nonBragg the same -detpixels/-pixel")
    offset = float((r.pix0.double() - det.pix0.double().cpu()).abs().max())
    if offset > 1e-9 or float(abs(r.close_distance - float(det.close_distance))) > 1e-9:
        p0 = " ".join(f"{float(v) * 1000:g}" for v in det.pix0)
        p1 = " ".join(f"{float(v) * 1000:g}" for v in r.pix0)
        raise DatasetError(f"--background: nonBragg's detector origin ({p1} mm) is not nanoBragg's ({p0} mm): "
                           "give nonBragg the beam centre that puts it there (nonBragg's -Xbeam/-Ybeam are the "
                           "fast/slow distances of the beam from the first pixel's corner, without nanoBragg's "
                           "half pixel), and the same distance and rotations")


#: Images rendered whose publication (render_files' publish) may still be pending on the post thread while
#: the next renders: one, so that at most two images' buffers are alive at once (the memory budget is an image's).
PUBLISH_AHEAD = 1


def _render_in_process(spec, todo: list, loaded: LoadedInputs, finished) -> None:
    """Render ``todo`` in order. Each image's last steps run on a second thread while the next image
    renders: waiting for its writes and publishing its files, the sha256 pass and ``finished`` (its
    manifest line, written and fsynced). One thread, so images are published and listed in order, at
    most PUBLISH_AHEAD behind the render; on an interruption, every image rendered is still published
    and listed."""
    from concurrent.futures import ThreadPoolExecutor

    if spec.format == "nxmx":  # a data file's images, then the file, then their records
        from .render import render_group
        wanted = set(todo)
        for group in spec.file_groups():
            if wanted.intersection(group):
                for record in render_group(spec, group, loaded):
                    finished(record)
        return
    pending = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nb-dataset-manifest") as post:
        try:
            for index in todo:
                steps = []
                stats = render_files(spec, index, loaded, publish=steps.append)
                pending.append(post.submit(_publish, steps, lambda i=index, s=stats: finished(make_record(spec, i, s))))
                while pending and (pending[0].done() or len(pending) > PUBLISH_AHEAD):
                    pending.pop(0).result()  # raises its error here
        finally:
            while pending:
                pending.pop(0).result()


def _publish(steps: list, then) -> None:
    for step in steps:
        step()
    then()


def run_dataset(outdir: str, flags: list, images: int, *, random_orientations: bool = False,
                seed: Optional[int] = None, resume: bool = False, workers: Optional[int] = None,
                scheduler: Optional[str] = None, client=None, chunk: Optional[int] = None,
                progress: Optional[bool] = False, on_record: Optional[Callable[[dict], None]] = None,
                background: Optional[list] = None, detector_effects: Optional[list] = None,
                format: str = "files") -> Summary:
    """Render a dataset into ``outdir``; see :mod:`nanobragg.dataset`. Returns a :class:`Summary`.

    Bad input raises DatasetError (or the command's UsageError, InputError,
    ConfigError: one line each) before anything is written. ``background``: nonBragg's flags (its
    float file ``background.bin`` once, added to each image's float file as float_add does:
    ``total_NNNNN.bin``); ``detector_effects``: noisify's flags, run on each image's total (else its
    float file) with the image's noise seed. The manifest's ``chain`` records the commands.
    ``format="nxmx"``: the SMV int images also go to NXmx data files of ``chunk`` frames each
    (default 16; one Dask task each), ``series_NNNNN.h5``, each written by the task that renders its
    images, and the client writes ``series_master.h5`` at the end (a virtual dataset of every frame
    in order, omega the images' phi); each record's ``nxmx`` names its (file, frame).
    """
    start = time.perf_counter()
    if _uses_dask(workers, scheduler, client):
        from .dask_backend import require_dask
        require_dask("--workers" if workers is not None else "--scheduler")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise DatasetError(f"--workers must be a positive whole number (got {workers!r})")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise DatasetError(f"--chunk must be a positive whole number (got {chunk!r})")
    spec, loaded, existing = prepare(outdir, flags, images, random_orientations=random_orientations, seed=seed,
                                     resume=resume, background=background, detector_effects=detector_effects,
                                     format=format, frames_per_file=chunk if format == "nxmx" else None)
    outdir = spec.outdir
    os.makedirs(outdir, exist_ok=True)
    lock = _lock(outdir)
    try:
        return _run_locked(spec, loaded, existing, start, workers, scheduler, client, chunk, progress, on_record)
    finally:
        os.close(lock)


def _lock(outdir: str) -> int:
    """An exclusive lock on the OUTDIR folder itself (flock), held for the run: one writer at a time."""
    fd = os.open(outdir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DatasetError(f"OUTDIR {outdir} is being written by another nb-dataset run") from None
    return fd


def _run_locked(spec, loaded, existing, start, workers, scheduler, client, chunk, progress, on_record) -> Summary:
    outdir = spec.outdir
    if existing is None and read_spec(outdir) not in (None, spec.describe()):
        raise DatasetError(f"OUTDIR {outdir}: another dataset was started there meanwhile; choose another OUTDIR")
    _remove_stale_temporaries(outdir)
    if existing is None:
        write_spec(outdir, spec.describe())
    if loaded.background is not None:
        write_background(spec, loaded.background)
    records = {}
    for index, rec in read_manifest(outdir).items():
        if 0 <= index < spec.images and record_is_valid(rec, outdir, spec.image_args(index), spec.files(index)):
            records[index] = rec
    if spec.format == "nxmx":  # a data file holds its images together: one missing, the file is rendered again
        for group in spec.file_groups():
            if any(i not in records for i in group):
                for i in group:
                    records.pop(i, None)
    if os.path.exists(os.path.join(outdir, MANIFEST)):
        rewrite_manifest(outdir, records)  # only the valid lines stay; appends follow them
    todo = [i for i in range(spec.images) if i not in records]
    kept = len(records)
    bar = _progress_bar(spec.images, kept, progress)
    appender = ManifestAppender(outdir)

    def finished(record: dict) -> None:
        index = record["index"]
        if index in records:  # a chunk rerun by Dask after its first result arrived: listed once
            return
        records[index] = record
        appender.append(record)
        if bar is not None:
            bar.update(1)
        if on_record is not None:
            on_record(record)

    where = None
    try:
        if _uses_dask(workers, scheduler, client):
            from .dask_backend import render_on_dask
            groups = None
            if spec.format == "nxmx":
                groups = [g for g in spec.file_groups() if set(g) & set(todo)]
            where = render_on_dask(spec, todo, finished, workers=workers, scheduler=scheduler, client=client,
                                   chunk=chunk, groups=groups)
        else:
            _render_in_process(spec, todo, loaded, finished)
    finally:
        appender.close()
        if bar is not None:
            bar.close()
    rewrite_manifest(outdir, records)
    if spec.format == "nxmx":  # every data file is in place: the master joins them
        from .render import write_nxmx_master
        write_nxmx_master(spec, loaded.nxmx)
    return Summary(outdir, spec.images, len(todo), kept, time.perf_counter() - start, where)
