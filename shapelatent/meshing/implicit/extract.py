"""Meshes from an implicit function f(x) -> logit: MISE grid, marching cubes, small-component removal, normals.

:func:`marching_cubes_grid` pads the grid with one layer of "outside" (so a shape that touches the box is still
closed), runs scikit-image's Lewiner marching cubes (Lewiner et al. 2003, "Efficient Implementation of Marching
Cubes' Cases with Topological Guarantees"; it resolves the ambiguous cases consistently) and maps the vertices to
the box frame. :func:`extract_mesh` evaluates the grid with :func:`~shapelatent.meshing.implicit.mise.evaluate_grid`,
then meshes it, optionally removes small floating components and computes normals.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from shapelatent.meshing.implicit.mise import ImplicitFn, _batch_points, _check_finite, _Evaluator, evaluate_grid

__all__ = ["IMPLICIT_NORMALS", "ImplicitMesh", "extract_mesh", "marching_cubes_grid"]

logger = logging.getLogger(__name__)

IMPLICIT_NORMALS = ("mesh", "gradient", "none")
_OUTSIDE = -1.0e6  # padding value below any threshold: the box faces close the surface (as Occupancy Networks)


@dataclass(frozen=True)
class ImplicitMesh:
    """A mesh extracted from an implicit function.

    Attributes:
        vertices: (V, 3) float32, in the box frame (the normalised frame of the queries).
        faces: (F, 3) int64, counter-clockwise seen from outside (normals point out of the inside region).
        normals: (V, 3) float32 unit outward vertex normals, or None with ``normals="none"``.
        evaluations: number of points passed to f (grid plus gradient normals).
        evaluations_per_level: grid points evaluated at each MISE level, coarse to fine.
        resolution: cells per axis of the final grid.
        components_removed: connected components dropped by ``remove_small``.
        timings: seconds: ``fn`` (inside f, grid and normals), ``grid`` (MISE bookkeeping and fill, without f),
            ``marching_cubes``, ``components``, ``normals`` (without f), ``total``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None
    evaluations: int
    evaluations_per_level: tuple[int, ...]
    resolution: int
    components_removed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when the level set did not cross the box (no faces)."""
        return len(self.faces) == 0

    def to_trimesh(self) -> Any:
        """The mesh as a ``trimesh.Trimesh`` (not processed: vertices and faces as they are)."""
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, vertex_normals=self.normals, process=False)


def marching_cubes_grid(values: np.ndarray, box: float = 1.1, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The closed surface ``values == threshold`` of a grid over ``[-box, box]^3``, inside where above.

    The grid is padded with one layer of "outside" first, so the surface is closed (watertight) even where the
    inside touches the box; there the surface runs along the box face. scikit-image's Lewiner marching cubes.

    Args:
        values: (R+1, R+1, R+1) float, ``ij`` indexing (axis 0 is x), point i at ``-box + i * 2 * box / R``.
        box: half-extent of the cube.
        threshold: the level.

    Returns:
        vertices (V, 3) float32 and faces (F, 3) int64 with outward normals; both empty when nothing is inside.

    Raises:
        ValueError: ``values`` is not a cube of at least 2 points per axis or holds non-finite values.
    """
    from skimage.measure import marching_cubes

    values = np.asarray(values)
    if values.ndim != 3 or len(set(values.shape)) != 1 or values.shape[0] < 2:
        raise ValueError(f"values must be an (R+1, R+1, R+1) grid with R >= 1; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values holds non-finite entries; marching cubes needs finite values")
    box = _check_finite("box", box, positive=True)
    threshold = _check_finite("threshold", threshold)
    if not (values > threshold).any():
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    padded = np.pad(values.astype(np.float32), 1, mode="constant", constant_values=min(_OUTSIDE, threshold - 1e6))
    verts, faces, _, _ = marching_cubes(padded, level=threshold)
    step = 2.0 * box / (values.shape[0] - 1)
    verts = ((verts.astype(np.float64) - 1.0) * step - box).astype(np.float32)
    # skimage winds faces so that they face the lower values (measured: negative volume when inside is high);
    # reversing the order makes the normals point out of the inside region.
    faces = np.ascontiguousarray(faces[:, ::-1], dtype=np.int64)
    return verts, faces


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (a vertex in no face gets (0, 0, 0))."""
    tri = vertices[faces].astype(np.float64)  # (F, 3, 3)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3), length = 2 * area
    normals = np.stack(
        [np.bincount(faces.ravel(), np.repeat(face_n[:, k], 3), minlength=len(vertices)) for k in range(3)], axis=1
    )
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _remove_small(vertices: np.ndarray, faces: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep the components (sharing vertices) with >= fraction x the largest one's faces; 1.0 keeps one."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    rows = faces[:, [0, 1, 2]].ravel()
    cols = faces[:, [1, 2, 0]].ravel()
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    face_label = labels[faces[:, 0]]  # (F,)
    sizes = np.bincount(face_label, minlength=count)
    if fraction >= 1.0:
        keep_label = np.zeros(count, dtype=bool)
        keep_label[np.argmax(sizes)] = True
    else:
        keep_label = sizes >= fraction * sizes.max()
    kept_faces = faces[keep_label[face_label]]
    used = np.zeros(n, dtype=bool)
    used[kept_faces.ravel()] = True
    remap = np.cumsum(used) - 1
    removed = int((sizes > 0).sum() - keep_label[sizes > 0].sum())
    return vertices[used], remap[kept_faces].astype(np.int64), removed


def extract_mesh(
    fn: ImplicitFn,
    resolution: int = 128,
    *,
    box: float = 1.1,
    threshold: float = 0.0,
    initial_resolution: int = 32,
    dilate: int = 0,
    trace: bool = True,
    batch_points: int | None = None,
    remove_small: float = 0.0,
    normals: str = "mesh",
    device: str | torch.device = "cpu",
) -> ImplicitMesh:
    """Extract the surface ``fn(x) == threshold`` in ``[-box, box]^3``: MISE grid, marching cubes, clean-up.

    Args:
        fn: maps ``(M, 3) float32`` torch points (on ``device``) to ``(M,)`` or ``(M, 1)`` logits (torch or
            numpy), positive inside; e.g. ``lambda x: head(z.expand(len(x), -1), x)``.
        resolution: cells per axis of the final grid (``initial_resolution * 2**L``; 128 or 256 are typical).
            Memory: the grid holds about 9 bytes per point, (R+1)^3 points (R = 256: 150 MB).
        box: half-extent of the cube, in the normalised frame (shapes fit the unit sphere).
        threshold: the level on fn's output; 0.0 on logits is occupancy probability 0.5.
        initial_resolution: cells per axis of MISE's coarse grid; separate parts thinner than ``2 * box /
            initial_resolution`` can be missed (see :mod:`~shapelatent.meshing.implicit.mise`). Equal to
            ``resolution``: the dense grid.
        dilate: neighbourhood (in cells) of the active cells that is refined too; 0 is libmise's rule.
        trace: follow the surface into cells of coarser cells that were not split (libmise: False).
        batch_points: the most points per call of ``fn``; None: 8192 on the CPU (fastest there), 65536 on a GPU.
        remove_small: drop connected components with fewer faces than this fraction of the largest one's
            (0.0 keeps all; 1.0 keeps only the largest).
        normals: ``"mesh"`` (area-weighted face normals), ``"gradient"`` (minus the normalised gradient of fn
            by autograd: one more pass over the vertices; fn must be differentiable torch) or ``"none"``.
        device: where the query points are put.

    Returns:
        :class:`ImplicitMesh`; watertight whenever it has faces (the box faces close a surface that leaves it),
        empty when nothing in the box is above ``threshold``.

    Raises:
        ValueError: a bad argument (the message names it and the allowed values), or ``fn`` returns the wrong
            shape, non-finite values, or (``normals="gradient"``) no gradient.
    """
    start = time.perf_counter()
    if normals not in IMPLICIT_NORMALS:
        raise ValueError(f"normals must be one of {', '.join(IMPLICIT_NORMALS)}; got {normals!r}")
    remove_small = _check_finite("remove_small", remove_small)
    if not 0.0 <= remove_small <= 1.0:
        raise ValueError(f"remove_small must be a fraction in [0, 1] of the largest component; got {remove_small}")
    grid = evaluate_grid(
        fn,
        resolution,
        box=box,
        threshold=threshold,
        initial_resolution=initial_resolution,
        dilate=dilate,
        trace=trace,
        batch_points=batch_points,
        device=device,
    )
    timings = {"fn": grid.seconds_in_fn, "grid": time.perf_counter() - start - grid.seconds_in_fn}

    t = time.perf_counter()
    vertices, faces = marching_cubes_grid(grid.values, box, threshold)
    timings["marching_cubes"] = time.perf_counter() - t

    t = time.perf_counter()
    removed = 0
    if remove_small > 0.0 and len(faces):
        vertices, faces, removed = _remove_small(vertices, faces, remove_small)
    timings["components"] = time.perf_counter() - t

    t = time.perf_counter()
    evaluations = grid.evaluations
    vertex_normals = None
    if normals == "mesh":
        vertex_normals = _vertex_normals(vertices, faces)
    elif normals == "gradient":
        device = torch.device(device)
        evaluator = _Evaluator(fn, _batch_points(batch_points, device), device)
        grad = evaluator.gradient(vertices)  # (V, 3); fn grows inward, so the outward normal is -grad
        length = np.linalg.norm(grad, axis=1, keepdims=True)
        flat = length[:, 0] == 0  # a zero gradient has no direction: the mesh normal stands in
        vertex_normals = (-grad / np.where(length > 0, length, 1.0)).astype(np.float32)
        if flat.any():
            vertex_normals[flat] = _vertex_normals(vertices, faces)[flat]
            logger.info("%d of %d vertices have a zero gradient; they use the mesh normal", flat.sum(), len(flat))
        evaluations += evaluator.count
        timings["fn"] += evaluator.seconds
        t += evaluator.seconds
    timings["normals"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    if not len(faces):
        logger.info("nothing in the box is above threshold %g: the mesh is empty", threshold)
    return ImplicitMesh(
        vertices=vertices,
        faces=faces,
        normals=vertex_normals,
        evaluations=evaluations,
        evaluations_per_level=grid.evaluations_per_level,
        resolution=grid.resolution,
        components_removed=removed,
        timings=timings,
    )
