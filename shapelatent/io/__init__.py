"""Readers and writers for meshes and point clouds, behind one registry keyed by extension."""

from shapelatent.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, write_points_ply
from shapelatent.io.meshes import (
    MESH_READERS,
    POINT_READERS,
    PointCloud,
    read_mesh,
    read_points,
    register_mesh_reader,
    supported_mesh_extensions,
    supported_point_extensions,
    validate_mesh,
)

__all__ = [
    "MESH_READERS",
    "POINT_READERS",
    "PointCloud",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_mesh",
    "read_points",
    "register_mesh_reader",
    "supported_mesh_extensions",
    "supported_point_extensions",
    "validate_mesh",
    "write_points_ply",
]
