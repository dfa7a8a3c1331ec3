"""``-geom FILE``: a multi-panel detector from a CrystFEL geometry file, one image per panel.

Panel ``p`` is resolved as its own detector (:func:`panel_settings`, the
same resolve and detector code as any run): it is the single-panel run with
the custom-convention flags

    -fdet_vector F -sdet_vector S -odet_vector O -beam_vector 1 0 0 -pix0_vector P
    -Xbeam X -Ybeam Y -close_distance D -pivot sample -detpixels_f NF -detpixels_s NS -pixel PIX

(:func:`panel_flags` prints them; ``-pix0_vector`` alone would be recomputed by
the pivot, as in C, so the beam centre and close distance place the panel).
The panels' engine inputs are then stacked
(:func:`nanobragg.engine.inputs.stack_panels`) and rendered in one engine
call (:func:`render_panels`: one prepare_render, one run_render per band
of the panels' rows, one compiled kernel), which gives each panel its
single-panel image and totals, C's first spindle pass at each panel's first
pixel included. Panels whose inputs differ elsewhere (C's automatic
oversampling, from each panel's pixel size and distance) form separate
stacks, one call each. All panels share the crystal, beam and seeds; panel
``p``'s noise is that of ``-seed S+p`` (``-seed S`` the run's), so that the
panels' noise is independent. Per-image outputs are named
``<name>_pNN.<ext>`` (float, SMV, noise, PGM, PNG, CBF); ``-h5file`` is one
NXmx file with one module per panel: panels of one size as a (panel, slow,
fast) array, panels of different sizes at their CrystFEL data ranges in one
(slow, fast) array. Every output is opened before the render and all are
published together at the end.
"""
from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np
import torch

from ..config.experiment import DetectorConfig, Experiment
from ..engine.image import engine_name, prepare_render, run_render
from ..engine.inputs import group_panels, stack_panels
from ..engine.totals import combine_totals
from ..io import InputError, OutputSet, QueuedWrites
from ..io.crystfel_geom import Geometry, Panel, read_geom
from ..io.nexus import Module, NXmxWriter, require_h5
from ..resolve import resolve
from . import simulate
from .bands import BYTES_PER_PIXEL, FloatStore, band_rows
from .loaders import write_dump
from .outputs import nxmx_info, open_outputs
from .parser import UsageError
from .report import report_setup
from .settings import Settings

#: Detector settings a -geom run keeps from the command line (the sensor); every other one is the file's.
KEPT_DETECTOR_FIELDS = {"detector.thickness", "detector.attenuation_length", "detector.thicksteps",
                        "detector.thickstep", "detector.point_pixel", "detector.convention"}
#: Output settings that name a file per image.
PER_IMAGE_OUTPUTS = ("floatfile", "intfile", "noisefile", "pgmfile", "pngfile", "cbffile")


def panel_path(path, index: int):
    """``<stem>_pNN<ext>`` for panel ``index``; a device or FIFO (written in place) keeps its name."""
    if not path:
        return path
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return path
    except OSError:
        pass
    stem, ext = os.path.splitext(path)
    return f"{stem}_p{index:02d}{ext}"


def _refuse_geometry_flags(settings: Settings) -> None:
    """A -geom run takes its geometry from the file: a detector placement, ROI, mask or beam direction
    given on the command line is an error naming it."""
    for target, origin in settings.origins.items():
        head = target.split(".")[0]
        if (head == "detector" and target not in KEPT_DETECTOR_FIELDS) or target == "beam.beam_vector":
            raise UsageError(f"-geom {settings.files.geom}: {origin} cannot be combined with a geometry file "
                             "(the panels, and the beam along CrystFEL's +z, come from the file)")
    if settings.experiment.detector.curved:
        raise UsageError(f"-geom {settings.files.geom}: -curved_det cannot be combined with a geometry file")


def panel_detector(base: DetectorConfig, panel: Panel) -> DetectorConfig:
    """The single-panel detector of ``panel`` (custom convention, SAMPLE pivot), sensor from ``base``."""
    xbeam, ybeam, close = panel.centre_and_distance()
    slow, fast = panel.shape
    return DetectorConfig(
        fpixels=fast, spixels=slow, pixel_size=panel.pixel_size, convention="custom", pivot="sample",
        fdet_vector=tuple(panel.fdet), sdet_vector=tuple(panel.sdet), odet_vector=tuple(panel.odet),
        pix0_vector=tuple(panel.pix0), beam_x=xbeam, beam_y=ybeam, close_distance=close,
        thickness=base.thickness, attenuation_length=base.attenuation_length, thicksteps=base.thicksteps,
        thickstep=base.thickstep, point_pixel=base.point_pixel)


def panel_flags(panel: Panel) -> list:
    """The nanoBragg flags of the single-panel run equal to ``panel`` (lengths in mm, full precision)."""
    xbeam, ybeam, close = panel.centre_and_distance()
    slow, fast = panel.shape
    vec = lambda v: [repr(float(t)) for t in v]  # noqa: E731
    return (["-fdet_vector", *vec(panel.fdet), "-sdet_vector", *vec(panel.sdet), "-odet_vector", *vec(panel.odet),
             "-beam_vector", "1", "0", "0", "-pix0_vector", *vec(panel.pix0),
             "-Xbeam", repr(xbeam * 1000), "-Ybeam", repr(ybeam * 1000), "-close_distance", repr(close * 1000),
             "-pivot", "sample", "-detpixels_f", str(fast), "-detpixels_s", str(slow),
             "-pixel", repr(panel.pixel_size * 1000)])


def panel_settings(settings: Settings, panel: Panel, index: int) -> Settings:
    """The settings of panel ``index``'s image: its detector, the beam along +x, its file names and noise seed."""
    exp = settings.experiment
    beam = dataclasses.replace(exp.beam, beam_vector=(1.0, 0.0, 0.0))
    experiment = Experiment(detector=panel_detector(exp.detector, panel), beam=beam, crystal=exp.crystal,
                            sampling=exp.sampling, origins=dict(exp.origins))
    out = settings.output
    names = {k: panel_path(getattr(out, k), index) for k in PER_IMAGE_OUTPUTS}
    seed = None if out.seed is None else out.seed - index
    output = dataclasses.replace(out, h5file=None, seed=seed, **names)
    return Settings(experiment=experiment, output=output, files=settings.files, run=settings.run)


def _placements(geometry: Geometry) -> tuple:
    """(data shape without frames, [(panel index or None, first row, first column) per panel])."""
    panels = geometry.panels
    if geometry.same_size:
        return (len(panels), *panels[0].shape), [(i, 0, 0) for i in range(len(panels))]
    clash = geometry.overlapping()
    if clash is not None:
        raise InputError(geometry.path, f"panels {clash[0].name} and {clash[1].name} have different sizes and "
                                        "overlapping data ranges: -h5file cannot place them in one array")
    return geometry.data_shape, [(None, p.min_ss, p.min_fs) for p in panels]


def panel_bands(stores: list, budget: int) -> list:
    """Bands (r0, r1) of a stack's rows (its panels' rows one after another) for run_render: runs of
    whole store bands of the panels (``stores``, in stack order) holding at most ``budget`` bytes of
    pixels (at least one store band each), so that a store that keeps its panel in one band gets it
    in one piece, and panels that fit the budget together render in one band."""
    cap = max(1, budget // BYTES_PER_PIXEL)
    bands, top, start, pixels = [], 0, 0, 0
    for store in stores:
        slow, fast = store.shape
        for first in store.band_starts():
            rows = min(store.rows, slow - first)
            if pixels and pixels + rows * fast > cap:
                bands.append((start, top + first))
                start, pixels = top + first, 0
            pixels += rows * fast
        top += slow
    if top > start:
        bands.append((start, top))
    return bands


def render_panels(settings: Settings, resolved: list, device: torch.device, stores: list, log) -> list:
    """Render every panel (``resolved``: each panel's Resolved) into its store; returns each panel's totals.

    The panels' inputs are stacked and rendered by one prepare_render and one
    run_render per band of the stack's rows (:func:`panel_bands`; one band when
    the whole detector fits half the memory budget), one stack per group of
    panels whose inputs agree but for their geometry (engine.inputs.group_panels).
    """
    budget = settings.budget_bytes() // 2
    totals = [None] * len(resolved)
    for group in group_panels([res.inputs for res in resolved]):
        inp = stack_panels([resolved[i].inputs for i in group]).to(device=device)
        with torch.no_grad():
            job = prepare_render(inp, [resolved[i].roi for i in group], [resolved[i].mask for i in group],
                                 budget=budget, compile=settings.run.compile)
        log(f"rendering {len(group)} of the {len(resolved)} panels in one engine call ({job.count} pixels, "
            f"{engine_name(job.kernel)})")
        bar, update = simulate._progress(settings, job.count)
        parts = [[] for _ in group]
        try:
            with torch.no_grad():
                for rows in panel_bands([stores[i] for i in group], budget):
                    for out in run_render(job, progress=update, rows=rows):
                        stores[group[out.panel]].put(out.first_row, out.image.to(torch.float32).cpu().numpy())
                        parts[out.panel].append(out.totals)
        finally:
            if bar is not None:
                bar.close()
        for i, part in zip(group, parts):
            totals[i] = combine_totals(part)
    return totals


def simulate_panels(settings: Settings, seed: int, log, dump: bool = False) -> int:
    """Render and write every panel of ``-geom``; the outputs are opened first and published together."""
    geometry = read_geom(settings.files.geom)
    _refuse_geometry_flags(settings)
    out = settings.output
    if out.h5file:
        require_h5("-h5file")
    dtype = torch.float64 if settings.run.dtype == "float64" else torch.float32
    device = simulate.pick_device(settings.run.device)
    runs = []
    for index, panel in enumerate(geometry.panels):
        s = panel_settings(settings, panel, index)
        res = resolve(s.experiment, seed=seed, dtype=dtype)
        if not float(res.detector.close_distance) > 0:
            # C replaces a normal whose length is not exactly 1 by fs x ss, which here faces the sample
            raise InputError(geometry.path, f"panel {panel.name} is mirrored (fs x ss points towards the sample) "
                                            "and its normal cannot be given exactly: not supported")
        runs.append((panel, s, res))
    shape, places = _placements(geometry) if out.h5file else (None, None)
    budget = settings.budget_bytes() // 2
    with OutputSet() as outputs, QueuedWrites() as writes:
        files = [open_outputs(s.output, res, outputs, s.experiment) for _, s, res in runs]
        h5 = None
        if out.h5file:
            h5_out = outputs.add(out.h5file)
            info = nxmx_info(runs[0][2], runs[0][1].experiment)
            info.modules = [Module(pix0=np.asarray(p.pix0), fdet=np.asarray(p.fdet), sdet=np.asarray(p.sdet),
                                   pixel_size=p.pixel_size, shape=p.shape, name=f"module_{i:02d}", index=place[0],
                                   origin=place[1:]) for i, (p, place) in enumerate(zip(geometry.panels, places))]
            rows = band_rows(max(p.shape[1] for p in geometry.panels), budget)
            h5 = NXmxWriter(h5_out, info, shape, rows, bool(out.h5_float))
        stores = [FloatStore((res.detector.spixels, res.detector.fpixels), band_rows(res.detector.fpixels, budget),
                             f.float, writes) for (_, _, res), f in zip(runs, files)]
        try:
            if dump:
                write_dump(settings, log)
            heads = [f"panel {panel.name} ({index + 1} of {len(runs)}): {panel.shape[1]}x{panel.shape[0]} pixels"
                     for index, (panel, _, _) in enumerate(runs)]
            for head, (_, s, res) in zip(heads, runs):
                log(head)
                report_setup(res, s, log)
            totals = render_panels(settings, [res for _, _, res in runs], device, stores, log)
            for index, ((_, s, res), f, store) in enumerate(zip(runs, files, stores)):
                log(heads[index])
                if h5 is not None:
                    f.h5_shared, f.h5_place = h5, places[index]
                simulate.write_results(s, res, store, f, writes, log, totals[index])
            if h5 is not None:
                log(f"writing {out.h5file} as NXmx HDF5 of the {'noise' if out.calculate_noise else 'int'} "
                    f"images of {len(runs)} panels")
                h5.finish()
        finally:
            for store in stores:
                store.close()
            if h5 is not None:
                h5.close()
    return 0
