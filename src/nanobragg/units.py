"""Units: every conversion factor of the package, in one place.

The configuration (:mod:`nanobragg.config`) and the engine work in SI units
(metres, radians); people type Angstrom, millimetres, micrometres,
milliradians, percent and degrees, on the command line and in
:mod:`nanobragg.api` alike. Each constant is the SI value of one user unit,
so ``distance_m = 100 * MM`` and ``angle_deg = angle_rad * RTD``.

``DEG`` and ``RTD`` are C's ``1/RTD`` and ``RTD = 180*M_1_PI``; the two
expressions are the same double (``math.pi / 180 == 1 / RTD``), so the
conversions agree bit for bit with nanoBragg.c whichever is used.
"""
from __future__ import annotations

import math

ANGSTROM = 1e-10  #: metres per Angstrom
MM = 1e-3  #: metres per millimetre
UM = 1e-6  #: metres per micrometre
MRAD = 1e-3  #: radians per milliradian
PERCENT = 1e-2  #: fraction per percent
DEG = math.pi / 180.0  #: radians per degree
RTD = 180.0 * 0.31830988618379067154  #: degrees per radian (C's RTD = 180*M_1_PI)
EV_ANGSTROM = 12398.42  #: C's photon energy-wavelength product (eV Angstrom)

#: Unit name -> SI value of one such unit: the factors the API's argument table and the
#: checks' messages use ("1": dimensionless or a count; "pixels", "cells", "electrons",
#: "photons/m^2", "photons/s", "s" are kept as given).
FACTORS = {
    "A": ANGSTROM, "mm": MM, "um": UM, "mrad": MRAD, "%": PERCENT, "deg": DEG,
    "1": 1.0, "pixels": 1.0, "cells": 1.0, "electrons": 1.0, "photons/m^2": 1.0, "photons/s": 1.0, "s": 1.0,
}
