"""Area-weighted surface sampling with normals, and farthest-point thinning."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["SampledCloud", "farthest_point_sample", "sample_surface"]


class SampledCloud(NamedTuple):
    """Points sampled on a mesh surface.

    Attributes:
        points: (P, 3) float32.
        normals: (P, 3) float32 unit face normals of the faces the points lie on.
    """

    points: np.ndarray
    normals: np.ndarray


def _check_count(num_points: int, what: str = "num_points") -> None:
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or num_points <= 0:
        raise ValueError(f"{what} must be a positive integer; got {num_points!r}")


def sample_surface(mesh, num_points: int = 2048, *, seed: int = 0, oversample: int | None = None) -> SampledCloud:
    """Sample points uniformly by area on a triangle mesh, with the normal of each point's face.

    Args:
        mesh: a ``trimesh.Trimesh`` with F >= 1 faces and positive area.
        num_points: P, the number of points returned (> 0).
        seed: seeds the sampler; the same seed gives the same points.
        oversample: if given (> num_points), draw this many points first and keep ``num_points`` of
            them by farthest-point sampling, which spreads the points more evenly.

    Returns:
        :class:`SampledCloud` with points and normals, each (P, 3) float32.
    """
    _check_count(num_points)
    if oversample is not None:
        _check_count(oversample, "oversample")
        if oversample < num_points:
            raise ValueError(f"oversample ({oversample}) must be >= num_points ({num_points})")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    tri = vertices[faces]  # (F, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3)
    double_area = np.linalg.norm(cross, axis=1)  # (F,)
    total = double_area.sum()
    if not total > 0:
        raise ValueError("mesh has zero surface area; nothing to sample from")
    rng = np.random.default_rng(seed)
    n_draw = oversample or num_points
    positive = np.flatnonzero(double_area > 0)  # degenerate faces never receive points
    cdf = np.cumsum(double_area[positive])
    pick = np.searchsorted(cdf, rng.random(n_draw) * cdf[-1], side="right")
    face_idx = positive[np.minimum(pick, len(positive) - 1)]  # (n_draw,)
    u, v = rng.random(n_draw), rng.random(n_draw)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    t = tri[face_idx]  # (n_draw, 3, 3)
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[face_idx] / np.maximum(double_area[face_idx], 1e-30)[:, None]
    if oversample is not None and oversample > num_points:
        keep = farthest_point_sample(points, num_points, seed=seed)
        points, normals = points[keep], normals[keep]
    return SampledCloud(points.astype(np.float32), normals.astype(np.float32))


def farthest_point_sample(points: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Greedy farthest-point sampling.

    Args:
        points: (N, 3) float array.
        k: number of points to keep, 0 < k <= N.
        seed: picks the first point.

    Returns:
        (k,) int64 indices into ``points``, distinct.
    """
    _check_count(k, "k")
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if k > n:
        raise ValueError(f"k ({k}) must be <= the number of points ({n})")
    rng = np.random.default_rng(seed)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(n)
    dist = np.full(n, np.inf)
    for i in range(1, k):
        d = ((pts - pts[chosen[i - 1]]) ** 2).sum(axis=1)  # (N,)
        np.minimum(dist, d, out=dist)
        chosen[i] = int(np.argmax(dist))
    return chosen
