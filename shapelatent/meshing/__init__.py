"""Meshes from point clouds with normals: Poisson, ball pivoting and alpha shapes, with normal orientation."""

from shapelatent.meshing.orient import ORIENTATIONS, OrientedNormals, estimate_normals, mean_spacing, orient_normals
from shapelatent.meshing.reconstruct import (
    MESH_FORMATS,
    MESHERS,
    MIN_POINTS,
    MeshingConfig,
    MeshResult,
    reconstruct_mesh,
    save_mesh,
)

__all__ = [
    "MESHERS",
    "MESH_FORMATS",
    "MIN_POINTS",
    "ORIENTATIONS",
    "MeshResult",
    "MeshingConfig",
    "OrientedNormals",
    "estimate_normals",
    "mean_spacing",
    "orient_normals",
    "reconstruct_mesh",
    "save_mesh",
]
