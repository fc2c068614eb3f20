"""From codes to files: decoded point clouds and meshes for a manifest.

Shared by ``interpolate``, ``sample``, ``arithmetic`` and the demo. A mesher failing on one decoded
cloud is recorded in the manifest (with the reason) and the other shapes go on; the points are always
written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shapelatent.data.build import sample_file
from shapelatent.errors import ShapelatentError
from shapelatent.io.atomic import write_points_ply
from shapelatent.latent.encode import codes_for_points, model_sampling
from shapelatent.latent.store import LatentStore, model_fingerprint
from shapelatent.models.load import LoadedModel
from shapelatent.viz.figures import short_label

logger = logging.getLogger(__name__)

__all__ = ["MESH_FORMATS", "ResolvedShape", "decode_codes", "resolve_shape", "write_shapes"]

MESH_FORMATS = ("ply", "obj", "glb")


class ResolvedShape(dict):
    """``{"ref", "code" (Z,), "label", "class"}`` for a shape named on the command line, and ``"points"`` (P, 3)
    float32 (the sampled, normalised cloud the code was encoded from) when it was a file."""


def resolve_shape(
    ref: str, loaded: LoadedModel, store: LatentStore | None, model_path: str = "the model"
) -> ResolvedShape:
    """Turn a store id or a mesh/point file into a code of this model.

    The caller checks once that ``store`` was made by this model (:func:`store_for_model`).

    Raises:
        FileNotFoundError: ``ref`` is neither an id in the store nor an existing file.
    """
    if store is not None:
        if ref in store.ids:
            i = store.index_of(ref)
            label = short_label(ref)
            return ResolvedShape(ref=ref, code=store.codes[i], label=label, **{"class": store.items[i]["class"]})
    p = Path(ref)
    if not p.is_file():
        where = f"an id in {store.path} nor " if store is not None else ""
        raise FileNotFoundError(f"{ref}: neither {where}an existing mesh or point-cloud file.")
    cfg = model_sampling(loaded)
    points = sample_file(p, cfg, seed=cfg.seed).points
    code = codes_for_points(loaded.model, points[None])[0]
    return ResolvedShape(ref=ref, code=code, label=p.stem, points=points, **{"class": ""})


@torch.no_grad()
def decode_codes(loaded: LoadedModel, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode codes.

    Args:
        codes: (S, Z) float array.

    Returns:
        points (S, P, 3) float32 and normals (S, P, 3) float32 (None when the model does not predict them).
    """
    model = loaded.model.eval()
    device = next(model.parameters()).device  # the model may have been moved to a GPU
    out = model.decode(torch.as_tensor(np.asarray(codes, dtype=np.float32), device=device))
    normals = out.normals.cpu().numpy() if out.normals is not None else None
    return out.points.cpu().numpy(), normals


def write_shapes(
    out: Path,
    names: Sequence[str],
    points: np.ndarray,
    normals: np.ndarray | None,
    *,
    mesher: str | None = "poisson",
    mesh_format: str = "ply",
    seed: int = 0,
    codes: np.ndarray | None = None,
    model: Any = None,
) -> list[dict[str, Any]]:
    """Write each decoded cloud as PLY and, unless ``mesher`` is None, its reconstructed mesh.

    Args:
        names: S file stems.
        points: (S, P, 3).
        normals: (S, P, 3) or None (then the mesher estimates them).
        mesher: a point mesher (``shapelatent.meshing.MESHERS``), ``implicit`` (the occupancy head of ``model`` on
            ``codes``), or None for points only.
        codes: (S, Z) the codes behind ``points``; needed by ``implicit``.
        model: the autoencoder (with an occupancy head for ``implicit``).

    Returns:
        S manifest rows: ``points`` file, and ``mesh`` file with its statistics or ``mesh_error``.
    """
    if mesh_format not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {MESH_FORMATS}; got {mesh_format!r}")
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        nrm = normals[i] if normals is not None else None
        pts_file = out / f"{name}_points.ply"
        write_points_ply(pts_file, points[i], nrm)
        row: dict[str, Any] = {"points": pts_file.name}
        if mesher is not None:
            from shapelatent.meshing import MeshingConfig, reconstruct_mesh, save_mesh

            try:
                if mesher == "implicit":
                    from shapelatent.latent.implicit_mesh import mesh_from_code

                    if codes is None or model is None:
                        raise ValueError("the implicit mesher needs the codes and the model")
                    res = mesh_from_code(model, codes[i], points=points[i], seed=seed)
                else:
                    res = reconstruct_mesh(points[i], nrm, MeshingConfig(method=mesher), seed=seed)
            except ShapelatentError as exc:  # MeshingError: report it, keep the points, go on
                logger.warning("%s: %s", name, exc)
                row["mesh_error"] = str(exc)
            else:
                mesh_file = out / f"{name}_mesh.{mesh_format}"
                save_mesh(mesh_file, res)
                row.update(
                    mesh=mesh_file.name,
                    mesher=mesher,
                    triangles=int(res.num_triangles),
                    watertight=bool(res.watertight),
                    chamfer_mesh_to_points=float(res.chamfer_to_points),
                    mesh_seconds=round(float(res.seconds), 3),
                )
        rows.append(row)
    return rows


def store_for_model(
    path: str | os.PathLike[str] | None, loaded: LoadedModel, model_path: str = "the model"
) -> LatentStore | None:
    """Open a store (None for no path) and check, once, that its codes were made by this model.

    Raises:
        StoreError: the store was made by another model.
    """
    if path is None:
        return None
    store = LatentStore.open(path)
    store.check_model(model_fingerprint(loaded.model), model_path)
    return store
