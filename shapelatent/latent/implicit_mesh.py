"""Meshes from codes through the model's occupancy head (the ``implicit`` mesher).

Where the point meshers (Poisson, ball pivoting, alpha) rebuild a surface from decoded points, this one extracts
the 0.5 level set of the occupancy head f(z, .) with MISE + marching cubes (``shapelatent.meshing.implicit``), so a
thin part the point decoder left with few points is still there when the head has it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from shapelatent.errors import MeshingError
from shapelatent.meshing.reconstruct import MeshResult
from shapelatent.models.implicit import implicit_fn
from shapelatent.models.pointnet import PointCloudAutoencoder

__all__ = ["DEFAULT_RESOLUTION", "IMPLICIT", "mesh_from_code", "resolve_mesher"]

IMPLICIT = "implicit"
DEFAULT_RESOLUTION = 128


def resolve_mesher(mesher: str | None, model: PointCloudAutoencoder, model_path: str = "the model") -> str | None:
    """``auto`` -> the model's own ``auto_mesher`` when its checkpoint names one (the shipped ``furniture`` model:
    ``poisson``, measured better than its head on held-out furniture), else ``implicit`` when the model has an
    occupancy head, else ``poisson``; checks ``implicit``.

    Raises:
        ValueError: ``implicit`` asked of a model without the head (the message says how to add one).
    """
    if mesher == "auto":
        if model.auto_mesher is not None:
            return model.auto_mesher
        return IMPLICIT if model.has_implicit else "poisson"
    if mesher == IMPLICIT and not model.has_implicit:
        raise ValueError(
            f"{model_path}: --mesher implicit needs a model with an occupancy head, and this one has none; add one "
            f"with `shapelatent train-implicit --model {model_path} --data DATASET --out RUN` (encoder frozen, stores "
            "keep matching), or choose --mesher poisson."
        )
    return mesher


def mesh_from_code(
    model: PointCloudAutoencoder,
    code: np.ndarray,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    remove_small: float = 0.02,
    points: np.ndarray | None = None,
    seed: int = 0,
) -> MeshResult:
    """Extract the surface of the shape a code stands for, from the model's occupancy head.

    The level is the model's ``implicit_threshold`` (a logit; 0.0, probability 0.5, unless the checkpoint records
    another level, e.g. one tuned on validation shapes).

    Args:
        model: an autoencoder with an occupancy head.
        code: (Z,) float32.
        resolution: cells per axis of the final MISE grid over the box [-1.1, 1.1]^3.
        remove_small: drop floating components with fewer faces than this share of the largest one.
        points: (P, 3) decoded points to measure ``chamfer_to_points`` against (NaN when None).
        seed: seeds the surface sampling of that measurement.

    Returns:
        a :class:`MeshResult` (method ``implicit``), in the normalised frame of the model's data.

    Raises:
        MeshingError: the head puts no surface in the box (everything inside or everything outside).
    """
    from shapelatent.meshing.implicit import extract_mesh

    if model.implicit is None:
        raise ValueError("the model has no occupancy head; see resolve_mesher")
    t0 = time.perf_counter()
    fn = implicit_fn(model, torch.as_tensor(np.asarray(code, dtype=np.float32)))
    res = extract_mesh(fn, resolution, threshold=model.implicit_threshold, remove_small=remove_small)
    seconds = time.perf_counter() - t0
    if len(res.faces) == 0:
        raise MeshingError(
            "implicit: the occupancy head puts no surface in the box for this code (empty level set); try "
            "--mesher poisson, or train the head longer"
        )
    import trimesh

    mesh = trimesh.Trimesh(res.vertices, res.faces, process=False)
    cd = float("nan")
    if points is not None and len(points):
        from scipy.spatial import cKDTree

        sample = np.asarray(trimesh.sample.sample_surface(mesh, len(points), seed=seed)[0])
        p = np.asarray(points, dtype=np.float64)
        d1 = cKDTree(p).query(sample)[0]
        d2 = cKDTree(sample).query(p)[0]
        cd = float((d1**2).mean() + (d2**2).mean())
    return MeshResult(
        vertices=res.vertices.astype(np.float32),
        faces=res.faces.astype(np.int64),
        method=IMPLICIT,
        seconds=seconds,
        watertight=bool(mesh.is_watertight),
        chamfer_to_points=cd,
        num_triangles=len(res.faces),
    )
