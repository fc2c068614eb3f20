"""What the headless renderer accepts, turned into one kind of shape it draws.

Items are file paths (any mesh or point-cloud format of :mod:`shapelatent.io`; a PLY with faces is a mesh),
``(P, 3)`` arrays, ``(vertices (V, 3), faces (F, 3))`` tuples or trimesh meshes. Shapes are expected to be
normalised to the unit sphere (as every shapelatent dataset and decoder output is). A shape that is not (its
farthest point from the origin is beyond 1.02 or within 0.5, or its bounding-box centre is more than 0.15 from the
origin) is re-centred on its bounding-box centre and scaled to the unit sphere before drawing; a debug log line
says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["MODES", "POINTS_FOR_MESH", "Shape", "prepare", "shaded"]

MODES = ("auto", "points", "mesh")
POINTS_FOR_MESH = 4096  # points sampled on a mesh drawn in points mode


class Shape(NamedTuple):
    """One shape to draw.

    Attributes:
        vertices: (V, 3) float64 (the points of a point cloud).
        faces: (F, 3) int64, or None for a point cloud.
    """

    vertices: np.ndarray
    faces: np.ndarray | None


def shaded(shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split vertices at sharp edges (> 30 degrees) so boxes look flat and smooth surfaces stay smooth.

    Returns:
        vertices (V', 3) float64, faces (F', 3) int32 and vertex normals (V', 3) float64, every face twice (once
        per side), so open meshes (Poisson surfaces, single-sided furniture) show no holes from behind.
    """
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=True)
    smooth = trimesh.graph.smooth_shade(mesh, angle=np.radians(30.0))
    verts = np.asarray(smooth.vertices, dtype=np.float64)
    faces = np.asarray(smooth.faces, dtype=np.int32)
    normals = np.asarray(smooth.vertex_normals, dtype=np.float64)
    back = faces[:, ::-1] + len(verts)
    return np.vstack([verts, verts]), np.vstack([faces, back]), np.vstack([normals, -normals])


def _normalised(vertices: np.ndarray) -> np.ndarray:
    """The vertices as drawn: as given when they already fill the unit sphere about the origin (radius 0.5-1.1,
    the sphere the camera frames, :func:`viewers.camera.camera_distance`), else re-centred on their box and scaled
    to radius 1.

    Shapes of one normalised frame (a dataset's clouds, a model's decodes, an interpolation's steps) are drawn as
    given, so they keep their relative size and place across panels even when their box is off-centre (e.g. a
    step whose small part under the seat vanished); only shapes outside that frame are rescaled.
    """
    radius = float(np.linalg.norm(vertices, axis=1).max())
    if 0.5 <= radius <= 1.1:
        return vertices
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centred = vertices - (lo + hi) / 2
    scale = float(np.linalg.norm(centred, axis=1).max()) or 1.0
    logger.debug("shape (radius %.3g) re-centred and scaled to the unit sphere", radius)
    return centred / scale


def _load_path(path: Path) -> Shape:
    from shapelatent.io.meshes import MESH_READERS, POINT_READERS, read_mesh, read_points

    ext = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file to render")
    if ext in MESH_READERS and ext in POINT_READERS:  # .ply: a mesh when it has faces, else points
        import trimesh

        loaded = trimesh.load(str(path), file_type=ext[1:], process=False)
        if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
            ext_kind = "mesh"
        else:
            ext_kind = "points"
    elif ext in MESH_READERS:
        ext_kind = "mesh"
    elif ext in POINT_READERS:
        ext_kind = "points"
    else:
        known = sorted(set(MESH_READERS) | set(POINT_READERS))
        raise ValueError(f"{path}: cannot render extension {ext or '(none)'!r}; supported: {', '.join(known)}")
    if ext_kind == "mesh":
        mesh = read_mesh(path)
        return Shape(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64))
    return Shape(read_points(path).points.astype(np.float64), None)


def _to_shape(item: Any, index: int) -> Shape:
    if isinstance(item, (str, os.PathLike)):
        return _load_path(Path(item))
    if hasattr(item, "vertices") and hasattr(item, "faces"):  # trimesh.Trimesh (or alike)
        return _to_shape((np.asarray(item.vertices), np.asarray(item.faces)), index)
    if isinstance(item, tuple) and len(item) == 2:
        v, f = np.asarray(item[0], dtype=np.float64), np.asarray(item[1])
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise ValueError(
                f"item {index}: a (vertices, faces) tuple needs (V, 3) and (F, 3) with F >= 1; "
                f"got {v.shape} and {f.shape}"
            )
        if f.min() < 0 or f.max() >= len(v):
            raise ValueError(f"item {index}: face indices must lie in [0, {len(v)}); got [{f.min()}, {f.max()}]")
        return Shape(v, f.astype(np.int64))
    arr = np.asarray(item, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
        raise ValueError(f"item {index}: points must have shape (P, 3) with P >= 1; got {arr.shape}")
    return Shape(arr, None)


def prepare(item: Any, index: int, mode: str) -> Shape:
    """One item as the shape to draw in ``mode``, normalised to the unit sphere.

    Args:
        item: a file path, a (P, 3) array, a ``(vertices (V, 3), faces (F, 3))`` tuple or a trimesh mesh.
        index: the item's position, named in error messages (and the seed of points sampled on a mesh).
        mode: ``"auto"`` (as given), ``"points"`` (a mesh is sampled into ``POINTS_FOR_MESH`` points) or
            ``"mesh"`` (a point cloud is an error).

    Raises:
        ValueError: a malformed item, non-finite coordinates, or a point cloud in ``"mesh"`` mode.
        FileNotFoundError: a path that does not exist.
    """
    shape = _to_shape(item, index)
    if not np.isfinite(shape.vertices).all():
        raise ValueError(f"item {index}: coordinates contain NaN or infinity")
    if mode == "mesh" and shape.faces is None:
        raise ValueError(f"item {index}: mode='mesh' but this item is a point cloud (no faces); use mode='auto'")
    if mode == "points" and shape.faces is not None:
        import trimesh

        mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
        pts, _ = trimesh.sample.sample_surface(mesh, POINTS_FOR_MESH, seed=index)
        shape = Shape(np.asarray(pts, dtype=np.float64), None)
    return Shape(_normalised(shape.vertices), shape.faces)
