"""The set-up summary the C program prints before rendering (same words)."""
from __future__ import annotations

from ..physics.shapes import SHAPES
from ..resolve import Resolved
from .settings import Settings


def report_setup(res: Resolved, settings: Settings, log) -> None:
    g, c = res.detector, res.cell
    log(f"{g.convention} convention selected.")
    log("pivoting detector around " + ("sample" if g.pivot == "sample" else "direct beam spot"))
    for note in res.notes:
        log(note)
    if res.misset_deg is not None:
        log("random orientation misset angles: %f %f %f deg" % res.misset_deg)
    a, b, cc = (float(v.norm()) * 1e10 for v in (c.a, c.b, c.c))
    log(f"Unit Cell: {a:g} {b:g} {cc:g}")
    log(f"volume = {float(c.volume):g} A^3")
    log(f"  {res.sources} sources, {res.domains} mosaic domains, {res.phisteps} phi steps, "
        f"{res.oversample}x{res.oversample} pixel oversample steps, {res.thicksteps} sensor layers")
    word = SHAPES[settings.experiment.crystal.shape].c_word
    log(f"  {word} xtal: {res.N[0]:.0f}x{res.N[1]:.0f}x{res.N[2]:.0f} cells")
    log(f"  wave={res.wavelength:g} meters +/- {res.dispersion * 100:g}% in {res.dispsteps} steps")
    log(f"  incident fluence: {res.fluence:g} photons/m^2")
    log(f"  distance={float(g.distance):g} detsize={g.detsize_f:g}x{g.detsize_s:g}  pixel={float(g.pixel_size):g} "
        f"meters ({g.fpixels}x{g.spixels} pixels)")
    log(f"  Xbeam={float(g.beam_x):g} Ybeam={float(g.beam_y):g}")
    log(f"  Fbeam={float(g.Fbeam):g} Sbeam={float(g.Sbeam):g}")
    log(f"  Fclose={float(g.Fclose):g} Sclose={float(g.Sclose):g}")
    log(f"  auto-selected {'tricubic interpolation' if res.interpolate else 'no interpolation'}")
    if settings.output.calculate_noise:
        log(f"  seed: {settings.output.seed}")
