"""Refine detector geometry and crystal orientation against a simulated still image.

A target image is rendered from known parameters; the fit starts from
perturbed ones (cell lengths +1.5%, distance +2 mm, beam centre +0.3 mm,
misset +0.5 degrees about each axis) and recovers them by gradient descent
through the simulator: Adam first (robust far from the minimum), then
L-BFGS (fast convergence close to it).

Design choices that make the fit converge:

* A Gaussian crystal shape (``shape="gauss"``) gives smooth spots a few
  pixels wide, and a uniform structure factor (``default_F``) avoids the
  jumps of nearest-index F lookups, so the loss is smooth.
* A long wavelength (4 Angstrom) and a short distance give scattering angles
  up to ~25 degrees: the curvature of the Ewald sphere then separates the
  cell lengths from the distance (at small angles only their ratio matters).
* The loss compares log(1 + I/s) of both images, so weak and strong spots
  weigh alike; s = 1% of the target's maximum.
* Each parameter is optimised as a normalised offset (value - start)/scale,
  with ``torch.nn.utils.parametrize``, so one learning rate fits all.

Prints the errors at every iteration and ends with one line
``RECOVERED cell_rel=... distance_mm=... beam_mm=... misset_deg=...``;
exits 1 if any error is above its tolerance. ``--quick`` runs a reduced budget.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.nn.utils import parametrize

from nanobragg import api
from nanobragg.simulator import Simulator

#: True values: cell (Angstrom), distance (mm), beam centre (mm), misset (degrees).
TRUTH = {"cell_lengths": (60.0, 70.0, 80.0), "distance": 50.0, "beam_center": (16.0, 16.0),
         "misset": (15.0, 25.0, 35.0)}
#: Scale of each parameter's normalised offset (its start error, in its unit).
SCALES = {"cell_lengths": 1.0, "distance": 2.0, "beam_center": 0.3, "misset": 0.5}
#: Tolerances of the final RECOVERED line.
TOLERANCES = {"cell_rel": 1e-3, "distance_mm": 0.05, "beam_mm": 0.01, "misset_deg": 0.02}


def make_experiment(cell_lengths, distance, beam_center, misset) -> api.Experiment:
    """128x128 detector of 0.25 mm pixels, 4 Angstrom beam, Gaussian 7x7x7-cell crystal."""
    xtal = api.crystal(api.unit_cell(*cell_lengths), N=7, shape="gauss", misset=misset, default_F=100.0)
    det = api.detector(pixels=128, pixel_size=0.25, distance=distance, beam_center=beam_center)
    return api.experiment(det, api.beam(wavelength=4.0), xtal)


def perturbed_start() -> api.Experiment:
    """The fit's starting point: every refined quantity off by its perturbation."""
    cell = tuple(1.015 * a for a in TRUTH["cell_lengths"])
    beam = tuple(b + 0.3 for b in TRUTH["beam_center"])
    misset = tuple(m + 0.5 for m in TRUTH["misset"])
    return make_experiment(cell, TRUTH["distance"] + 2.0, beam, misset)


class Offset(torch.nn.Module):
    """Parametrization value = start + scale * x, so the optimiser sees x of order one."""

    def __init__(self, start: torch.Tensor, scale: float):
        super().__init__()
        self.register_buffer("start", start.detach().clone())
        self.scale = scale

    def forward(self, x):
        return self.start + self.scale * x

    def right_inverse(self, value):
        return (value - self.start) / self.scale


def build_model() -> Simulator:
    """Simulator over the perturbed start, refining cell lengths, distance, beam centre, misset."""
    sim = Simulator(perturbed_start(), parameters=tuple(SCALES), dtype=torch.float64)
    for name, scale in SCALES.items():
        parametrize.register_parametrization(sim, name, Offset(getattr(sim, name), scale))
    return sim


def errors(sim: Simulator) -> dict[str, float]:
    """Current errors in the units of :data:`TOLERANCES`."""
    with torch.no_grad():
        v = sim.current()
        true = {k: torch.tensor(x, dtype=torch.float64) for k, x in TRUTH.items()}
        return {
            "cell_rel": float(((v["cell_lengths"] - true["cell_lengths"]) / true["cell_lengths"]).abs().max()),
            "distance_mm": float((v["distance"] - true["distance"]).abs()),
            "beam_mm": float((v["beam_center"] - true["beam_center"]).abs().max()),
            "misset_deg": float((v["misset"] - true["misset"]).abs().max()),
        }


def log_loss(target: torch.Tensor):
    """Loss on log(1 + I/s), s = 1% of the target's maximum (a function of the model image)."""
    s = 0.01 * target.max()
    t = torch.log1p(target / s)
    return lambda image: ((torch.log1p(image / s) - t) ** 2).mean()


def report(stage: str, step: int, loss: float, sim: Simulator) -> None:
    e = errors(sim)
    print(f"{stage:5s} {step:4d} loss={loss:.3e} " + " ".join(f"{k}={v:.2e}" for k, v in e.items()), flush=True)


def fit_adam(sim: Simulator, loss_of, steps: int, lr: float = 0.05) -> None:
    opt = torch.optim.Adam(sim.parameters(), lr=lr)
    for step in range(steps):
        opt.zero_grad()
        loss = loss_of(sim())
        loss.backward()
        opt.step()
        report("adam", step, loss.item(), sim)


def fit_lbfgs(sim: Simulator, loss_of, steps: int) -> None:
    opt = torch.optim.LBFGS(sim.parameters(), lr=1.0, max_iter=20, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-14, tolerance_change=1e-18)

    def closure():
        opt.zero_grad()
        loss = loss_of(sim())
        loss.backward()
        return loss

    previous = None
    for step in range(steps):
        loss = opt.step(closure).item()  # the loss before this step
        report("lbfgs", step, loss, sim)
        if previous is not None and loss >= previous:
            break  # no progress in the last step: converged to rounding
        previous = loss


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adam-iterations", type=int, default=40, help="Adam steps (default 40)")
    p.add_argument("--lbfgs-iterations", type=int, default=8,
                   help="L-BFGS outer steps, up to 20 evaluations each (default 8)")
    p.add_argument("--quick", action="store_true", help="reduced budget: 10 Adam and 3 L-BFGS steps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args(argv)
    if args.quick:
        args.adam_iterations, args.lbfgs_iterations = 10, 3
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    target = api.simulate(make_experiment(**TRUTH)).image
    sim = build_model()
    loss_of = log_loss(target)
    fit_adam(sim, loss_of, args.adam_iterations)
    fit_lbfgs(sim, loss_of, args.lbfgs_iterations)
    e = errors(sim)
    print(f"time {time.time() - start:.1f} s")
    print("RECOVERED " + " ".join(f"{k}={v:.3g}" for k, v in e.items()))
    return 0 if all(e[k] <= TOLERANCES[k] for k in TOLERANCES) else 1


if __name__ == "__main__":
    sys.exit(main())
