"""Occupancy queries and inside/outside labels for one mesh.

Queries (default Q = 8192, in the normalised frame, inside [-1.1, 1.1]^3): the first Q/2 = 4096 uniform in the
box (Occupancy Networks, Mescheder et al. 2019), then Q/2 near the surface (ConvONet, IF-Net): area-weighted
surface samples plus isotropic Gaussian noise, Q/4 = 2048 with sigma 0.01 then Q/4 = 2048 with sigma 0.05
(normalised units: the shape fits the unit sphere), clipped to the box. Points are rounded to float16 (as
stored) before they are labelled, so the labels are those of the stored points.

Labels (``label_method``):

- ``winding``: generalized winding number > 0.5 (libigl's fast winding number). On a closed, consistently
  wound mesh (a procedural chair after :func:`~shapelatent.data.union.union_mesh`) this is the exact inside test.
- ``winding+shell``: the above, or unsigned distance to the surface < ``shell_eps`` (default
  :data:`SHELL_EPS` = 2 * 1.1 / 128 ~= 0.0172, one voxel of a 128^3 grid over the box). For real meshes (Sweet
  Home 3D OBJs: open shells, single-sided panels, duplicated faces) the shell keeps panels, legs and wires that
  have no inside; on a closed mesh it adds a layer ``shell_eps`` thick around the exact solid.
- ``auto``: ``winding`` for watertight, consistently wound meshes, ``winding+shell`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from shapelatent.data.occupancy_format import BOX
from shapelatent.data.sampling import sample_surface
from shapelatent.errors import WindingNumberError

__all__ = [
    "LABEL_METHODS",
    "SHELL_EPS",
    "SIGMAS",
    "ShapeOccupancy",
    "check_mesh",
    "label_points",
    "sample_queries",
    "shape_occupancy",
]

SHELL_EPS = 2 * BOX / 128  #: one voxel of a 128^3 grid over [-1.1, 1.1]^3, ~= 0.0172
SIGMAS = (0.01, 0.05)  #: near-surface noise scales, half of the near-surface queries each
LABEL_METHODS = ("winding", "winding+shell", "auto")


class ShapeOccupancy(NamedTuple):
    """The occupancy supervision of one shape.

    Attributes:
        points: (Q, 3) float16 queries, normalised frame.
        labels: (Q,) bool, True = inside.
        method: the label method used (``winding`` or ``winding+shell``; ``auto`` resolved).
    """

    points: np.ndarray
    labels: np.ndarray
    method: str


def check_mesh(vertices: np.ndarray, faces: np.ndarray, source: str = "<mesh>") -> tuple[np.ndarray, np.ndarray]:
    """Validate a mesh for winding numbers.

    Args:
        vertices: (V, 3) float.
        faces: (F, 3) int.
        source: the file named in errors.

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64, C-contiguous.

    Raises:
        WindingNumberError: no faces, face indices out of range, non-finite vertices, or zero surface area.
    """
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise WindingNumberError(
            f"{source}: the mesh has no triangle faces (faces {f.shape}); it has no inside or surface."
        )
    if v.ndim != 2 or v.shape[1] != 3 or f.min() < 0 or f.max() >= len(v):
        raise WindingNumberError(f"{source}: face indices out of range for {v.shape} vertices.")
    if not np.isfinite(v).all():
        raise WindingNumberError(f"{source}: {int((~np.isfinite(v)).any(axis=1).sum())} vertices are NaN or infinite.")
    tri = v[f]  # (F, 3, 3)
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum() / 2
    if not area > 0:
        raise WindingNumberError(f"{source}: the mesh has zero surface area (every face is degenerate).")
    return v, f


def _is_closed(faces: np.ndarray) -> bool:
    """Every edge used by exactly two faces, once in each direction (closed, consistently wound)."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2)
    if len(np.unique(directed, axis=0)) != len(directed):
        return False
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    return bool(len(undirected)) and bool((counts == 2).all())


def label_points(
    vertices: np.ndarray,
    faces: np.ndarray,
    points: np.ndarray,
    *,
    method: str = "winding+shell",
    shell_eps: float = SHELL_EPS,
    source: str = "<mesh>",
) -> np.ndarray:
    """Inside/outside labels of query points against a mesh.

    Args:
        vertices: (V, 3) float mesh vertices, same frame as ``points``.
        faces: (F, 3) int.
        points: (Q, 3) float queries.
        method: one of :data:`LABEL_METHODS` (see the module docstring).
        shell_eps: shell half-thickness for ``winding+shell`` (same units as the mesh), > 0.
        source: the file named in errors.

    Returns:
        (Q,) bool, True = inside.

    Raises:
        WindingNumberError: a mesh whose winding numbers are meaningless (see :func:`check_mesh`).
        ValueError: an unknown method or a bad ``shell_eps``.
    """
    return _label(vertices, faces, points, method, shell_eps, source)[0]


def _label(vertices, faces, points, method, shell_eps, source) -> tuple[np.ndarray, str]:
    if method not in LABEL_METHODS:
        raise ValueError(f"label method must be one of {LABEL_METHODS}; got {method!r}")
    if not shell_eps > 0:
        raise ValueError(f"shell_eps must be > 0; got {shell_eps!r}")
    import igl

    v, f = check_mesh(vertices, faces, source)
    q = np.ascontiguousarray(points, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 3:
        raise ValueError(f"points must be (Q, 3); got {q.shape}")
    if method == "auto":
        method = "winding" if _is_closed(f) else "winding+shell"
    inside = igl.fast_winding_number(v, f, q) > 0.5  # (Q,)
    if method == "winding+shell":
        sq_dist = igl.point_mesh_squared_distance(q, v, f)[0]  # (Q,)
        inside |= sq_dist < shell_eps**2
    return inside, method


def sample_queries(
    vertices: np.ndarray,
    faces: np.ndarray,
    queries: int = 8192,
    *,
    seed: int | Sequence[int] = 0,
    box: float = BOX,
    sigmas: Sequence[float] = SIGMAS,
) -> np.ndarray:
    """Occupancy queries for a mesh already in the normalised frame.

    Args:
        vertices: (V, 3) float, normalised.
        faces: (F, 3) int.
        queries: Q, a multiple of 8: Q/2 uniform in ``[-box, box]^3``, then Q/2 near the surface split evenly
            over ``sigmas`` (the last sigma takes any remainder).
        seed: an int or a sequence of ints (``numpy.random.SeedSequence`` entropy).

    Returns:
        (Q, 3) float16, inside the box.
    """
    if isinstance(queries, bool) or not isinstance(queries, (int, np.integer)) or queries <= 0 or queries % 8:
        raise ValueError(f"queries must be a positive multiple of 8; got {queries!r}")
    if not sigmas or any(not s > 0 for s in sigmas):
        raise ValueError(f"sigmas must be positive numbers; got {list(sigmas)}")
    uniform_ss, surface_ss, noise_ss = np.random.SeedSequence(seed).spawn(3)
    n_uni = queries // 2
    n_near = queries - n_uni
    uni = np.random.default_rng(uniform_ss).uniform(-box, box, size=(n_uni, 3))
    mesh = _Mesh(vertices, faces)
    surf = sample_surface(mesh, n_near, seed=int(surface_ss.generate_state(1)[0])).points.astype(np.float64)
    per = [n_near // len(sigmas)] * len(sigmas)
    per[-1] += n_near - sum(per)
    scale = np.repeat(np.asarray(sigmas, dtype=np.float64), per)[:, None]  # (S, 1)
    near = surf + np.random.default_rng(noise_ss).normal(size=surf.shape) * scale
    pts = np.clip(np.concatenate([uni, near]), -box, box).astype(np.float16)
    return np.clip(pts, np.float16(-box), np.float16(box))  # float16 rounding may step just past the box


class _Mesh(NamedTuple):  # the two attributes sample_surface reads
    vertices: np.ndarray
    faces: np.ndarray


def shape_occupancy(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    center: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
    rotation: Sequence[float] | None = None,
    queries: int = 8192,
    seed: int | Sequence[int] = 0,
    method: str = "auto",
    shell_eps: float = SHELL_EPS,
    source: str = "<mesh>",
) -> ShapeOccupancy:
    """Queries and labels for one shape, given its mesh and the transform that normalised its points.

    The builder calls this per shape with the mesh it sampled and the centre/scale the normalisation returned
    (``Normalization.apply``): the mesh is taken to the dataset frame as ``(M v - center) / scale`` (``M`` the
    row-major 3x3 ``rotation`` applied before normalisation, e.g. Sweet Home 3D's ``modelRotation``), then
    queries are drawn (:func:`sample_queries`) and labelled (:func:`label_points`) there.

    Args:
        vertices: (V, 3) float, the raw mesh.
        faces: (F, 3) int.
        center: (3,) the centre subtracted after rotation.
        scale: the divisor, > 0.
        rotation: 9 numbers, row-major, or None.
        queries, seed: see :func:`sample_queries`.
        method, shell_eps: see :func:`label_points` (``shell_eps`` in normalised units).
        source: the file named in errors.

    Raises:
        WindingNumberError: a mesh whose winding numbers are meaningless.
    """
    v, f = check_mesh(vertices, faces, source)
    if rotation is not None:
        v = v @ np.asarray(rotation, dtype=np.float64).reshape(3, 3).T
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"{source}: scale must be a positive finite number; got {scale!r}")
    v = (v - np.asarray(center, dtype=np.float64)) / float(scale)
    pts = sample_queries(v, f, queries, seed=seed)
    labels, used = _label(v, f, pts, method, shell_eps, source)
    return ShapeOccupancy(pts, labels, used)
