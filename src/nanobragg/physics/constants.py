"""C's numeric constants of the physics, in a module free of torch (the numba loops read them too)."""

#: sqrt of the volume ratio between a cube and its inscribed sphere (C constant of the round shape).
ROUND_SCALE = 0.723601254558268
