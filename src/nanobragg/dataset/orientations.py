"""Random crystal orientations for serial shots: uniform over all rotations, as C's ``-misset`` angles.

Shot ``i`` of a dataset with seed ``S`` gets its rotation from three
uniform numbers taken from SHA-256 of ``"S:i"`` alone, so a shot's
orientation depends on nothing but (S, i): not on the worker that renders
it, the order, the batch or the number of shots. The three numbers give a
unit quaternion by Shoemake's method (uniform over SO(3), the Haar measure),
and its matrix is written as the three angles of C's ``rotate()``: about x,
then y, then z (``R = Rz Ry Rx``), the angles ``-misset rotx roty rotz``
takes, in degrees.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

_TWO53 = float(1 << 53)


def uniforms(seed: int, index: int, count: int = 3) -> list[float]:
    """``count`` numbers in [0, 1) determined by (seed, index) alone (53 bits each from SHA-256)."""
    digest = hashlib.sha256(f"nb-dataset:{int(seed)}:{int(index)}".encode()).digest()
    out = []
    for k in range(count):
        word = int.from_bytes(digest[8 * k:8 * k + 8], "little") >> 11
        out.append(word / _TWO53)
    return out


def quaternion(u1: float, u2: float, u3: float) -> np.ndarray:
    """Shoemake's uniform unit quaternion (w, x, y, z) from three uniform numbers."""
    a, b = math.sqrt(1.0 - u1), math.sqrt(u1)
    t2, t3 = 2.0 * math.pi * u2, 2.0 * math.pi * u3
    x, y, z, w = a * math.sin(t2), a * math.cos(t2), b * math.sin(t3), b * math.cos(t3)
    return np.array([w, x, y, z])


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """The 3x3 rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_matrix_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """C's ``rotate(v, rx, ry, rz)`` as a matrix (radians): about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def misset_angles(R: np.ndarray) -> tuple[float, float, float]:
    """(rotx, roty, rotz) in radians with ``rotation_matrix_xyz(*angles) == R``."""
    ry = math.asin(max(-1.0, min(1.0, -float(R[2, 0]))))
    if abs(float(R[2, 0])) < 1.0 - 1e-12:
        rx = math.atan2(float(R[2, 1]), float(R[2, 2]))
        rz = math.atan2(float(R[1, 0]), float(R[0, 0]))
    else:  # gimbal lock: only rx - rz (or rx + rz) is defined; put it all in rx
        rz = 0.0
        rx = math.atan2(-float(R[1, 2]), float(R[1, 1]))
    return rx, ry, rz


def random_misset(seed: int, index: int) -> tuple[str, str, str]:
    """Shot ``index``'s orientation as the three ``-misset`` values (degrees, as text).

    The text is what the image's argument list records and what it is
    rendered from, so ``nanoBragg ... -misset X Y Z`` reproduces it.
    """
    R = quaternion_matrix(quaternion(*uniforms(seed, index)))
    return tuple("%.12f" % math.degrees(a) for a in misset_angles(R))
