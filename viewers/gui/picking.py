"""Mouse picking on the latent map: which code is under the cursor, from the scene camera's matrices.

Open3D's cameras use OpenGL conventions: ``view`` (4, 4) maps world to eye coordinates, ``projection`` (4, 4) eye to
clip coordinates, normalised device coordinates are clip / w in [-1, 1] with y up; a widget's pixel (x, y) counts
from its top-left corner, y down. :func:`project_to_pixels` applies exactly that; :func:`pick` takes the code whose
projection is nearest the click (within ``radius`` pixels, in front of the camera), the nearest to the eye on ties.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pick", "project_to_pixels"]


def project_to_pixels(
    points: np.ndarray, view: np.ndarray, projection: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> widget pixels (N, 2) float64 (x right, y down) and eye depth (N,) float64 (> 0 in
    front of the camera)."""
    p = np.asarray(points, dtype=np.float64)
    hom = np.concatenate([p, np.ones((len(p), 1))], axis=1)  # (N, 4)
    eye = hom @ np.asarray(view, dtype=np.float64).T  # (N, 4)
    clip = eye @ np.asarray(projection, dtype=np.float64).T  # (N, 4)
    w = clip[:, 3:4]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    ndc = clip[:, :2] / w
    px = np.stack([(ndc[:, 0] + 1) * 0.5 * width, (1 - ndc[:, 1]) * 0.5 * height], axis=1)
    return px, -eye[:, 2]


def pick(
    points: np.ndarray,
    click: tuple[float, float],
    view: np.ndarray,
    projection: np.ndarray,
    width: int,
    height: int,
    radius: float = 12.0,
) -> int | None:
    """The index of the point drawn nearest the widget pixel ``click``, or None when none is within ``radius``
    pixels (or every point is behind the camera)."""
    if len(points) == 0:
        return None
    px, depth = project_to_pixels(points, view, projection, width, height)
    d = np.hypot(px[:, 0] - click[0], px[:, 1] - click[1])
    d[depth <= 0] = np.inf
    best = float(d.min())
    if not best <= radius:
        return None
    near = np.flatnonzero(d <= best + 0.5)  # ties in the picture: the one in front
    return int(near[np.argmin(depth[near])])
