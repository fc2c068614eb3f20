"""Mesh quality of reconstructions, per mesher, against the true meshes (the Occupancy Networks protocol).

For each evaluated shape: its code (the encoder on the stored points), then a mesh from each mesher:

* ``implicit``: the occupancy head's 0.5 level set (MISE + marching cubes at ``resolution``), when the model has it;
* ``poisson``: screened Poisson on the decoded points (the point decoder's output);
* ``poisson_true``: screened Poisson on the shape's own stored points and normals, an upper bound of what any
  reconstruction from P points can reach with that mesher.

Each mesh is compared with the row's true source mesh, in the normalised frame (:mod:`shapelatent.data.reference`)
by :func:`shapelatent.metrics.mesh_metrics`: F-score at 1% and 2% of the reference bounding-box diagonal
(Tatarchenko et al. 2019), Chamfer-L1 and normal consistency (Mescheder et al. 2019), volumetric IoU where the
reference is closed, plus the share of watertight meshes, connected components and seconds per mesh.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shapelatent.data.format import ShapeDataset
from shapelatent.data.reference import reference_meshes
from shapelatent.errors import ShapelatentError
from shapelatent.latent.encode import codes_for_points
from shapelatent.latent.implicit_mesh import mesh_from_code
from shapelatent.meshing import MeshingConfig, reconstruct_mesh
from shapelatent.metrics.mesh import mesh_metrics
from shapelatent.models.pointnet import PointCloudAutoencoder

__all__ = [
    "MESH_EVAL_MESHERS",
    "implicit_surface_samples",
    "mesh_quality",
    "poisson_surface_samples",
    "summarize_mesh_quality",
]

MESH_EVAL_MESHERS = ("implicit", "poisson", "poisson_true")


def _components(vertices: np.ndarray, faces: np.ndarray) -> int:
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=True)
    return int(len(mesh.split(only_watertight=False)))


def mesh_quality(
    model: PointCloudAutoencoder,
    dataset: str | os.PathLike[str],
    indices: Sequence[int],
    *,
    meshers: Sequence[str] | None = None,
    archives: Sequence[str | os.PathLike[str]] = (),
    resolution: int = 128,
    n_points: int = 30_000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    refine: int = 0,
    codes: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Per-shape, per-mesher mesh metrics (module docstring).

    Args:
        model: the autoencoder (``implicit`` is skipped when it has no occupancy head).
        dataset: the dataset folder; rows ``indices`` are evaluated.
        meshers: subset of :data:`MESH_EVAL_MESHERS` (default: all available).
        archives: Sweet Home 3D libraries, for ``archive!member`` rows.
        resolution: final grid of the implicit extraction.
        n_points: surface samples per mesh for the metrics (ONet uses 100 000; fewer is faster and noisier).
        seed: seeds meshing and sampling.
        progress: ``progress(done, total)`` after each shape.
        refine: refine each code for this many Adam steps towards its stored points first
            (:func:`shapelatent.latent.refine.refine_codes`, default settings), so every mesher sees the refined code;
            0: the encoder's codes.
        codes: (M, Z) the codes to mesh, one per index, instead of the encoder's (e.g. codes fitted some other way);
            ``refine`` then starts from them.

    Returns:
        one dict per shape: ``index``, ``id``, ``class``, and per mesher either the metrics (``fscore@1%``,
        ``fscore@2%``, ``chamfer_l1``, ``normal_consistency``, ``iou``, ``watertight``, ``components``,
        ``seconds``) or ``{"error": reason}``; shapes whose true mesh cannot be recovered carry ``error``.
    """
    wanted = list(meshers or MESH_EVAL_MESHERS)
    bad = set(wanted) - set(MESH_EVAL_MESHERS)
    if bad:
        raise ValueError(f"unknown meshers {sorted(bad)}; allowed: {', '.join(MESH_EVAL_MESHERS)}")
    if not model.has_implicit:
        wanted = [m for m in wanted if m != "implicit"]
    ds = ShapeDataset(dataset)
    refs = reference_meshes(ds.root, indices, archives)
    pts = np.asarray(ds.points[np.asarray(indices, dtype=np.int64)], dtype=np.float32)  # (M, P, 3)
    nrm = np.asarray(ds.normals[np.asarray(indices, dtype=np.int64)], dtype=np.float32)
    if codes is None:
        codes = codes_for_points(model, pts)
    else:
        codes = np.asarray(codes, dtype=np.float32)
        if codes.shape != (len(pts), model.config.latent_dim):
            raise ValueError(
                f"codes must have shape ({len(pts)}, {model.config.latent_dim}), one per index; got {codes.shape}"
            )
    if refine:
        from shapelatent.latent.refine import refine_codes

        codes = refine_codes(model, pts, codes, refine).codes
    import torch

    with torch.no_grad():
        dec = model.decode(torch.from_numpy(codes))
    dec_pts = dec.points.numpy()
    dec_nrm = dec.normals.numpy() if dec.normals is not None else None
    rows: list[dict[str, Any]] = []
    for k, ref in enumerate(refs):
        meta = ds.meta[int(ref.index)]
        row: dict[str, Any] = {"index": int(ref.index), "id": meta["id"], "class": meta["class"]}
        if ref.error:
            row["error"] = ref.error
            rows.append(row)
            continue
        for m in wanted:
            t0 = time.perf_counter()
            try:
                if m == "implicit":
                    res = mesh_from_code(model, codes[k], resolution=resolution)
                elif m == "poisson":
                    n0 = dec_nrm[k] if dec_nrm is not None else None
                    res = reconstruct_mesh(dec_pts[k], n0, MeshingConfig(method="poisson"), seed=seed)
                else:
                    res = reconstruct_mesh(pts[k], nrm[k], MeshingConfig(method="poisson"), seed=seed)
            except ShapelatentError as exc:
                row[m] = {"error": str(exc)}
                continue
            seconds = time.perf_counter() - t0
            mm = mesh_metrics((res.vertices, res.faces), (ref.vertices, ref.faces), n_points=n_points, seed=seed)
            flat = mm.as_dict()
            row[m] = {
                "fscore@1%": flat.get("fscore@1%"),
                "fscore@2%": flat.get("fscore@2%"),
                "chamfer_l1": flat.get("chamfer_l1"),
                "normal_consistency": flat.get("normal_consistency"),
                "iou": flat.get("iou"),
                "watertight": bool(res.watertight),
                "components": _components(res.vertices, res.faces),
                "triangles": int(res.num_triangles),
                "seconds": round(seconds, 3),
            }
        rows.append(row)
        if progress is not None:
            progress(k + 1, len(refs))
    return rows


def summarize_mesh_quality(rows: Sequence[dict[str, Any]], by_class: bool = False) -> dict[str, Any]:
    """Means per mesher (and per class with ``by_class``) of :func:`mesh_quality` rows.

    Returns:
        ``{group: {mesher: {"n", "fscore@1%", "fscore@2%", "chamfer_l1", "normal_consistency", "iou",
        "watertight_share", "one_component_share", "mean_components", "seconds", "failed"}}}``; the group is ``all``
        (and each class with ``by_class``).
    """
    groups: dict[str, list[dict[str, Any]]] = {"all": [r for r in rows if "error" not in r]}
    if by_class:
        for r in groups["all"]:
            groups.setdefault(r["class"], []).append(r)
    out: dict[str, Any] = {}
    for g, members in groups.items():
        per: dict[str, Any] = {}
        for m in MESH_EVAL_MESHERS:
            have = [r[m] for r in members if m in r]
            ok = [h for h in have if "error" not in h]
            if not have:
                continue

            def mean(key: str, ok: list[dict[str, Any]] = ok) -> float | None:
                vals = [h[key] for h in ok if h.get(key) is not None]
                return float(np.mean(vals)) if vals else None

            per[m] = {
                "n": len(have),
                "failed": len(have) - len(ok),
                "fscore@1%": mean("fscore@1%"),
                "fscore@2%": mean("fscore@2%"),
                "chamfer_l1": mean("chamfer_l1"),
                "normal_consistency": mean("normal_consistency"),
                "iou": mean("iou"),
                "watertight_share": float(np.mean([h["watertight"] for h in ok])) if ok else None,
                "one_component_share": float(np.mean([h["components"] == 1 for h in ok])) if ok else None,
                "mean_components": mean("components"),
                "seconds": mean("seconds"),
            }
        out[g] = per
    return out


def implicit_surface_samples(
    model: PointCloudAutoencoder,
    codes: np.ndarray,
    num_points: int,
    *,
    oversample: int | None = None,
    resolution: int = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Clouds sampled from the occupancy head's meshes of some codes, the way the dataset sampled its meshes.

    Each code's implicit mesh (:func:`shapelatent.latent.implicit_mesh.mesh_from_code`) is sampled uniformly by
    area (:func:`shapelatent.data.sampling.sample_surface`, with the dataset's ``oversample`` when it used
    farthest-point thinning), so a generated shape is a point cloud drawn from a surface as the reference clouds
    are, whatever the point decoder's density. This is how generators that output meshes (IM-NET, Occupancy
    Networks) are compared on point-cloud metrics.

    Args:
        model: an autoencoder with an occupancy head.
        codes: (N, Z) float32.
        num_points: P per cloud.
        oversample: the dataset's sampling ``oversample`` (None: plain area sampling).
        resolution: final MISE grid of the extraction.
        seed: sample k is drawn with ``seed + k``.
        progress: ``progress(done, total)`` after each code.

    Returns:
        clouds (N', P, 3) float32 in the model's normalised frame, and the indices of the codes whose level set
        was empty (no surface in the box), which are left out (N' = N - len(empty)).
    """
    codes = np.asarray(codes, dtype=np.float32)
    return _area_samples(
        len(codes),
        lambda k: mesh_from_code(model, codes[k], resolution=resolution),
        num_points,
        oversample,
        seed,
        progress,
    )


def poisson_surface_samples(
    points: np.ndarray,
    normals: np.ndarray | None,
    num_points: int,
    *,
    oversample: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Clouds sampled from Poisson meshes of decoded clouds, the way the dataset sampled its meshes.

    Each decoded cloud is meshed as the product meshes a point decoder's output
    (:func:`shapelatent.meshing.reconstruct_mesh`, screened Poisson, normals oriented or estimated) and the mesh is
    sampled uniformly by area (:func:`shapelatent.data.sampling.sample_surface`, with the dataset's
    ``oversample``). The decoder's points bunch on large surfaces, which EMD punishes point by point; the mesh the
    user gets does not carry that density, so this scores generated shapes as the meshes they are delivered as,
    on the same footing as the reference clouds (sampled from meshes) and as :func:`implicit_surface_samples`.

    Args:
        points: (N, P', 3) float32 decoded clouds.
        normals: (N, P', 3) float32 decoded normals, or None (estimated per cloud).
        num_points: P per output cloud.
        oversample: the dataset's sampling ``oversample`` (None: plain area sampling).
        seed: cloud k is meshed and sampled with ``seed + k``.
        progress: ``progress(done, total)`` after each cloud.

    Returns:
        clouds (N', P, 3) float32, and the indices of the clouds Poisson could not mesh (degenerate clouds, an
        empty mesh), which are left out (N' = N - len(failed)).
    """
    config = MeshingConfig(method="poisson")

    def mesh(k: int) -> Any:
        return reconstruct_mesh(points[k], None if normals is None else normals[k], config, seed=seed + k)

    return _area_samples(len(points), mesh, num_points, oversample, seed, progress)


def _area_samples(
    n: int,
    mesh: Callable[[int], Any],
    num_points: int,
    oversample: int | None,
    seed: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, list[int]]:
    """(N', P, 3) float32 clouds sampled by area from ``mesh(k)`` (anything with ``vertices`` and ``faces``) for k <
    ``n``, cloud k with ``seed + k``; and the k whose ``mesh(k)`` raised :class:`MeshingError` (left out)."""
    import trimesh

    from shapelatent.data.sampling import sample_surface
    from shapelatent.errors import MeshingError

    clouds: list[np.ndarray] = []
    left_out: list[int] = []
    for k in range(n):
        try:
            res = mesh(k)
        except MeshingError:
            left_out.append(k)
        else:
            surface = trimesh.Trimesh(res.vertices, res.faces, process=False)
            clouds.append(sample_surface(surface, num_points, seed=seed + k, oversample=oversample).points)
        if progress is not None:
            progress(k + 1, n)
    out = np.stack(clouds) if clouds else np.zeros((0, num_points, 3), dtype=np.float32)
    return out, left_out
