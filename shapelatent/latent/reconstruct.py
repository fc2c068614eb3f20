"""Mesh in, code, mesh out: the ``reconstruct`` command's library.

Each input file is sampled and normalised as the model's training data, encoded, decoded to points and meshed with
the chosen mesher (``auto``: the occupancy head when the model has one, else Poisson). The output mesh is written in
the input file's own coordinates (the normalisation inverted: ``v * scale + center``), named after the input
(``<stem>.<format>``), so it lies over the input in any tool. With a drawer, ``<stem>_compare.png`` shows the input,
the decoded points, the Poisson mesh of the decoded points and, for a model with the head, the implicit mesh.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.errors import ShapelatentError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.latent.encode import codes_for_points, model_sampling
from shapelatent.latent.implicit_mesh import IMPLICIT, mesh_from_code, resolve_mesher
from shapelatent.latent.refine import RefineSettings, load_for_refinement
from shapelatent.meshing import MeshingConfig, reconstruct_mesh, save_mesh
from shapelatent.meshing.reconstruct import MeshResult
from shapelatent.provenance import provenance
from shapelatent.viz.drawer import StripDrawer

logger = logging.getLogger(__name__)

__all__ = ["run_reconstruct"]


def _to_input_frame(res: MeshResult, center: np.ndarray, scale: float) -> MeshResult:
    verts = (res.vertices.astype(np.float64) * scale + center).astype(np.float32)
    return res._replace(vertices=verts)


def run_reconstruct(
    model_path: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    mesher: str = "auto",
    mesh_format: str = "ply",
    compare: bool = True,
    force: bool = False,
    seed: int = 0,
    draw: StripDrawer | None = None,
    progress: Any = None,
    refine: RefineSettings | None = None,
) -> dict[str, Any]:
    """Reconstruct mesh files through the model (module docstring).

    Args:
        model_path: run folder, checkpoint or shipped model name.
        files: mesh (or point-cloud) files.
        out: output folder (``<stem>.<format>`` per input, ``manifest.json``, ``provenance.json``).
        mesher: ``auto``, ``implicit``, ``poisson``, ``ball_pivoting`` or ``alpha``.
        mesh_format: ``ply``, ``obj`` or ``glb``.
        compare: also build the other meshes of the comparison picture (Poisson, and implicit when available).
        draw: renders ``<stem>_compare.png``; None writes no picture.
        progress: called with no argument after each file (and, with ``refine``, once more per file as its code is
            refined).
        refine: refine the codes (all files in one batch) with the decoder frozen before decoding
            (:mod:`shapelatent.latent.refine`).

    Returns:
        the manifest: per input, the output mesh, its statistics, the Chamfer distance of the decoded points to
        the input points (normalised frame) and the picture; with ``refine``, per input ``refine`` (Chamfer before
        and after) and a ``refine`` summary (means, ratio, seconds per shape, settings).

    Raises:
        CheckpointError: ``refine`` asked of a model without decoder weights.
        ValueError: ``implicit`` asked of a model without the head, or a bad format.
        FileNotFoundError: an input does not exist.
        OutputExistsError: ``out`` exists and ``force`` is not set.
    """
    from shapelatent.data.sampling import sample_surface
    from shapelatent.io import read_mesh
    from shapelatent.latent.decode import MESH_FORMATS, decode_codes
    from shapelatent.latent.runs import _prepare_out
    from shapelatent.ops.chamfer import chamfer_distance

    if mesh_format not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {MESH_FORMATS}; got {mesh_format!r}")
    loaded = load_for_refinement(model_path, refine)
    chosen = resolve_mesher(mesher, loaded.model, str(model_path))
    if chosen is None:
        raise ValueError("reconstruct writes a mesh; choose a mesher (auto, implicit, poisson, ball_pivoting, alpha)")
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such mesh file.")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two inputs share a file name stem ({stems}); outputs are named after it, rename one.")
    cfg = model_sampling(loaded)
    out_dir = _prepare_out(out, force)
    rows: list[dict[str, Any]] = []
    meshes_in = [read_mesh(p) for p in paths]
    norms = [
        cfg.normalization.apply(sample_surface(m, cfg.num_points, seed=cfg.seed, oversample=cfg.oversample).points)
        for m in meshes_in
    ]
    clouds = np.stack([n.points for n in norms])  # (B, P, 3)
    codes = codes_for_points(loaded.model, clouds)
    refined = None
    if refine is not None:

        def tick(n: int) -> None:
            for _ in range(n if progress is not None else 0):
                progress()

        refined = refine.run(loaded.model, clouds, codes, progress=tick, model_name=str(model_path))
        codes = refined.codes
    for i, (p, mesh, norm) in enumerate(zip(paths, meshes_in, norms, strict=True)):
        import torch

        code = codes[i]
        pts, nrm = decode_codes(loaded, code[None])
        cd = chamfer_distance(torch.from_numpy(pts), torch.from_numpy(norm.points[None]), reduction="none")
        row: dict[str, Any] = {"input": str(p), "center": norm.center.tolist(), "scale": norm.scale}
        row["chamfer_points"] = float(cd.loss[0])
        if refined is not None:
            row["refine"] = {
                "chamfer_before": float(refined.chamfer_before[i]),
                "chamfer_after": float(refined.chamfer_after[i]),
            }
        wanted = [chosen]
        if compare:
            wanted += [m for m in ("poisson", IMPLICIT) if m != chosen and (m != IMPLICIT or loaded.model.has_implicit)]
        meshes: dict[str, MeshResult] = {}
        for m in wanted:
            try:
                if m == IMPLICIT:
                    meshes[m] = mesh_from_code(loaded.model, code, points=pts[0], seed=seed)
                else:
                    n0 = nrm[0] if nrm is not None else None
                    meshes[m] = reconstruct_mesh(pts[0], n0, MeshingConfig(method=m), seed=seed)
            except ShapelatentError as exc:
                logger.info("%s: %s mesher failed: %s", p.name, m, exc)
                row.setdefault("mesh_errors", {})[m] = str(exc)
        if chosen in meshes:
            res = _to_input_frame(meshes[chosen], norm.center, norm.scale)
            target = out_dir / f"{p.stem}.{mesh_format}"
            save_mesh(target, res)
            row.update(mesh=target.name, mesher=chosen, triangles=res.num_triangles, watertight=res.watertight)
            row["mesh_seconds"] = round(float(res.seconds), 3)
        if draw is not None:
            items: list[Any] = [((np.asarray(mesh.vertices) - norm.center) / norm.scale, np.asarray(mesh.faces))]
            titles = [f"input {p.stem}"]
            items.append(pts[0])
            titles.append("decoded points")
            for m in ("poisson", IMPLICIT):
                if m in meshes:
                    items.append((meshes[m].vertices, meshes[m].faces))
                    titles.append(m)
            row["compare_png"] = draw(items, titles, out_dir / f"{p.stem}_compare.png", None).name
        rows.append(row)
        if progress is not None:
            progress()
    manifest: dict[str, Any] = {"kind": "reconstruction", "model": str(model_path), "mesher": chosen, "items": rows}
    record: dict[str, Any] = {"model": str(model_path), "files": [str(p) for p in paths], "mesher": chosen}
    if refined is not None:
        manifest["refine"] = record["refine"] = refined.summary()
    atomic_write_json(out_dir / "manifest.json", manifest)
    atomic_write_json(out_dir / "provenance.json", provenance(record, seed))
    return manifest
