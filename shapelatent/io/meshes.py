"""Mesh and point-cloud readers behind one registry keyed by file extension.

Every reader returns validated data: a mesh with at least one face, finite vertices and positive
surface area, or a point cloud ``(P, 3) float32`` with finite coordinates. Problems raise errors that
name the file and say what is wrong.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shapelatent.errors import MeshReadError, UnsupportedFormatError
from shapelatent.io.obj import read_obj
from shapelatent.io.off import read_off

logger = logging.getLogger(__name__)

__all__ = [
    "MESH_READERS",
    "POINT_READERS",
    "PointCloud",
    "read_mesh",
    "read_points",
    "register_mesh_reader",
    "supported_mesh_extensions",
    "supported_point_extensions",
    "validate_mesh",
]


class PointCloud(NamedTuple):
    """A point cloud read from disk.

    Attributes:
        points: (P, 3) float32 coordinates.
        normals: (P, 3) float32 unit normals, or None when the file has none.
    """

    points: np.ndarray
    normals: np.ndarray | None


def _load_trimesh(path: Path, file_type: str):  # -> trimesh.Trimesh
    import trimesh

    try:
        loaded = trimesh.load(str(path), file_type=file_type, process=False, force=None)
    except Exception as exc:  # trimesh raises many unrelated types for corrupt files
        raise MeshReadError(f"{path}: could not be read as a {file_type.upper()} mesh ({exc}).") from exc
    if isinstance(loaded, trimesh.Scene):
        # Flatten the scene graph (instances with their transforms) into one mesh.
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
        if not geoms:
            raise MeshReadError(f"{path}: the file holds no triangle geometry (only points, lines or nothing).")
        loaded = trimesh.util.concatenate(geoms)
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshReadError(
            f"{path}: the file holds a {type(loaded).__name__}, not a triangle mesh; "
            "use a point-cloud reader (read_points) if it is a point cloud."
        )
    return loaded


def _reader(file_type: str) -> Callable[[Path], object]:
    return lambda path: _load_trimesh(path, file_type)


#: Extension (lower case, with dot) -> reader returning a ``trimesh.Trimesh``.
MESH_READERS: dict[str, Callable[[Path], object]] = {
    ".obj": read_obj,  # fast geometry-only reader; never opens MTL or texture files
    ".off": read_off,  # own parser: ModelNet's 'OFFV F E' headers, polygons, errors with line numbers
    ".ply": _reader("ply"),
    ".stl": _reader("stl"),
    ".glb": _reader("glb"),
    ".gltf": _reader("gltf"),
}


def register_mesh_reader(extension: str, reader: Callable[[Path], object]) -> None:
    """Register (or replace) the reader for a file extension such as ``".obj"``."""
    if not extension.startswith("."):
        raise ValueError(f"extension must start with a dot, e.g. '.obj'; got {extension!r}")
    MESH_READERS[extension.lower()] = reader


def supported_mesh_extensions() -> list[str]:
    """The mesh extensions with a registered reader, sorted."""
    return sorted(MESH_READERS)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    if path.is_dir():
        raise MeshReadError(f"{path}: is a folder, expected a mesh or point-cloud file.")


def validate_mesh(mesh, path: Path | str = "<mesh>"):  # (trimesh.Trimesh) -> trimesh.Trimesh
    """Check that a mesh is usable for surface sampling.

    Raises:
        MeshReadError: no faces, non-finite vertices, or zero surface area.
    """
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise MeshReadError(f"{path}: the mesh is empty (0 faces); nothing to sample from.")
    vertices = np.asarray(mesh.vertices)
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        raise MeshReadError(f"{path}: {bad} vertices have NaN or infinite coordinates; repair or re-export the mesh.")
    faces = np.asarray(mesh.faces)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshReadError(f"{path}: face indices refer to vertices that do not exist.")
    if not float(mesh.area) > 0.0:
        raise MeshReadError(f"{path}: the mesh has zero surface area (all faces degenerate); nothing to sample from.")
    return mesh


def read_mesh(path: str | os.PathLike[str]):  # -> trimesh.Trimesh
    """Read a triangle mesh; scenes (GLB/GLTF, multi-object OBJ) are flattened to one mesh.

    Args:
        path: a file with one of :func:`supported_mesh_extensions`.

    Returns:
        A ``trimesh.Trimesh`` with F >= 1 faces, finite vertices and positive area.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsupportedFormatError: no reader for the extension (the message lists the supported ones).
        MeshReadError: the file is not a mesh, is empty, has NaN/inf vertices or zero area.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in MESH_READERS:
        raise UnsupportedFormatError(
            f"{p}: unknown mesh extension {ext or '(none)'!r}; supported: {', '.join(supported_mesh_extensions())}."
        )
    _check_exists(p)
    mesh = MESH_READERS[ext](p)
    return validate_mesh(mesh, p)


def _read_xyz(path: Path) -> PointCloud:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # empty file: reported below as an error
            data = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    except ValueError as exc:
        raise MeshReadError(f"{path}: not a whitespace-separated XYZ point file ({exc}).") from exc
    if data.shape[1] not in (3, 6):
        raise MeshReadError(f"{path}: expected 3 (x y z) or 6 (x y z nx ny nz) columns, found {data.shape[1]}.")
    normals = data[:, 3:6].astype(np.float32) if data.shape[1] == 6 else None
    return PointCloud(data[:, :3].astype(np.float32), normals)


def _read_npy(path: Path) -> PointCloud:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise MeshReadError(f"{path}: not a plain numeric .npy array ({exc}).") from exc
    if data.ndim != 2 or data.shape[1] not in (3, 6):
        raise MeshReadError(f"{path}: expected an array of shape (P, 3) or (P, 6), found {data.shape}.")
    normals = data[:, 3:6].astype(np.float32) if data.shape[1] == 6 else None
    return PointCloud(np.ascontiguousarray(data[:, :3], dtype=np.float32), normals)


def _read_ply_points(path: Path) -> PointCloud:
    import trimesh

    try:
        loaded = trimesh.load(str(path), file_type="ply", process=False)
    except Exception as exc:  # trimesh raises many unrelated types for corrupt files
        raise MeshReadError(f"{path}: could not be read as PLY ({exc}).") from exc
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float32)
    normals = None
    ply_raw = loaded.metadata.get("_ply_raw", {}) if hasattr(loaded, "metadata") else {}
    vert: Any = ply_raw.get("vertex", {}).get("data") if isinstance(ply_raw, dict) else None
    # binary PLY: a structured array; ASCII PLY: a dict of columns
    names = set(vert.dtype.names or ()) if hasattr(vert, "dtype") else set(vert) if isinstance(vert, dict) else set()
    if vert is not None and {"nx", "ny", "nz"} <= names:
        normals = np.stack([np.asarray(vert[k]).ravel() for k in ("nx", "ny", "nz")], axis=1).astype(np.float32)
    return PointCloud(vertices, normals)


#: Extension -> reader returning a :class:`PointCloud`.
POINT_READERS: dict[str, Callable[[Path], PointCloud]] = {
    ".xyz": _read_xyz,
    ".npy": _read_npy,
    ".ply": _read_ply_points,
}


def supported_point_extensions() -> list[str]:
    """The point-cloud extensions with a registered reader, sorted."""
    return sorted(POINT_READERS)


def read_points(path: str | os.PathLike[str]) -> PointCloud:
    """Read a point cloud (PLY vertices, XYZ text, or NPY ``(P, 3|6)``).

    Returns:
        :class:`PointCloud` with points (P, 3) float32, P >= 1, finite; normals (P, 3) or None.

    Raises:
        FileNotFoundError, UnsupportedFormatError, MeshReadError.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in POINT_READERS:
        raise UnsupportedFormatError(
            f"{p}: unknown point-cloud extension {ext or '(none)'!r}; "
            f"supported: {', '.join(supported_point_extensions())}."
        )
    _check_exists(p)
    cloud = POINT_READERS[ext](p)
    if len(cloud.points) == 0:
        raise MeshReadError(f"{p}: the point cloud is empty (0 points).")
    if not np.isfinite(cloud.points).all():
        raise MeshReadError(f"{p}: some points have NaN or infinite coordinates.")
    return cloud
