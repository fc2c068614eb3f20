"""The latent-space jobs behind the CLI: interpolate, sample (l-GMM), arithmetic.

Each writes into an output folder: decoded points (PLY), meshes, ``manifest.json`` (codes, files, mesh
statistics or errors), ``provenance.json`` and, when given a drawer (``draw``, see
:class:`shapelatent.viz.drawer.StripDrawer`; the CLI passes ``viewers.render.render_strip``), two pictures:
``<stem>_points.png`` (the decoded points) and ``<stem>_meshes.png`` (the meshes that were built).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shapelatent.errors import OutputExistsError, StoreError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.latent.decode import decode_codes, resolve_shape, store_for_model, write_shapes
from shapelatent.latent.encode import codes_for_points
from shapelatent.latent.generate import LatentGMM, evaluate_expression, parse_expression
from shapelatent.latent.implicit_mesh import resolve_mesher
from shapelatent.latent.interpolate import latent_path
from shapelatent.latent.refine import RefineSettings, load_for_refinement
from shapelatent.models.load import LoadedModel, load_model
from shapelatent.provenance import provenance
from shapelatent.viz.drawer import StripDrawer

logger = logging.getLogger(__name__)

__all__ = ["LabelledCodes", "classify_points", "run_arithmetic", "run_interpolation", "run_sampling"]


def _prepare_out(out: str | os.PathLike[str], force: bool) -> Path:
    p = Path(out)
    if p.exists() and any(p.iterdir()) and not force:
        raise OutputExistsError(f"{p}: already exists and is not empty; pass --force or choose another --out.")
    p.mkdir(parents=True, exist_ok=True)
    return p


def _pictures(
    draw: StripDrawer | None,
    out: Path,
    stem: str,
    points: np.ndarray,
    rows: list[dict[str, Any]],
    titles: Sequence[str],
    title: str,
) -> dict[str, str]:
    """``<stem>_points.png`` of the (B, P, 3) decoded points and ``<stem>_meshes.png`` of the meshes built (manifest
    keys ``points_png``, ``meshes_png``); nothing without a drawer."""
    if draw is None:
        return {}
    pics = {"points_png": draw(list(points), titles, out / f"{stem}_points.png", title).name}
    ok = [(out / r["mesh"], t) for r, t in zip(rows, titles, strict=True) if "mesh" in r]
    if ok:
        pics["meshes_png"] = draw([m for m, _ in ok], [t for _, t in ok], out / f"{stem}_meshes.png", None).name
    return pics


class LabelledCodes(Protocol):
    """Codes with a class each, such as a :class:`~shapelatent.latent.store.LatentStore`."""

    @property
    def codes(self) -> np.ndarray: ...  # (N, Z) float

    @property
    def classes(self) -> Sequence[str]: ...  # N class names, "" for none

    def __len__(self) -> int: ...


def classify_points(
    loaded: LoadedModel, store: LabelledCodes | None, points: np.ndarray, k: int = 5
) -> list[str] | None:
    """Class of each (B, P, 3) decoded cloud by re-encoding it and voting among its k nearest store codes
    (None when the store is missing or unlabelled)."""
    if store is None or not any(store.classes):
        return None
    from shapelatent.latent.retrieval import knn_classify

    codes = codes_for_points(loaded.model, points)
    return knn_classify(store.codes, store.classes, codes, k=min(k, len(store)))


def run_interpolation(
    model_path: str | os.PathLike[str],
    refs: Sequence[str],
    out: str | os.PathLike[str],
    *,
    steps: int = 8,
    method: str = "linear",
    store_path: str | os.PathLike[str] | None = None,
    mesher: str | None = "auto",
    mesh_format: str = "ply",
    force: bool = False,
    seed: int = 0,
    draw: StripDrawer | None = None,
    refine: RefineSettings | None = None,
) -> dict[str, Any]:
    """Interpolate between two or more shapes (store ids or files) and write every step as points and mesh.

    Steps 0 and S-1 of each segment are the endpoints' own reconstructions. With a store, each decoded
    step is re-encoded and classified by its nearest store codes; ``class_consistency`` is the share of
    steps whose class is the endpoints' (when both endpoints share a class). With ``draw``, the pictures
    ``strip_points.png`` and ``strip_meshes.png`` (module docstring). With ``refine``, the codes of the endpoints
    given as files are refined with the decoder frozen (:mod:`shapelatent.latent.refine`; store ids keep their
    stored codes); their manifest rows get ``refine`` (Chamfer before and after) and the manifest a ``refine``
    summary.

    Returns:
        the manifest (also written to ``out/manifest.json``).

    Raises:
        CheckpointError: ``refine`` asked of a model without decoder weights.
    """
    if len(refs) < 2:
        raise ValueError(f"interpolation needs at least two shapes (A B); got {len(refs)}")
    loaded = load_for_refinement(model_path, refine)
    mesher = resolve_mesher(mesher, loaded.model, str(model_path))
    store = store_for_model(store_path, loaded, str(model_path))
    shapes = [resolve_shape(r, loaded, store, str(model_path)) for r in refs]
    refined = _refine_files(loaded, shapes, refine, str(model_path))
    for a, b in zip(refs, refs[1:], strict=False):
        if a == b:
            raise ValueError(f"A and B are the same shape ({a!r}); choose two different shapes.")
    path = latent_path([s["code"] for s in shapes], steps, method)
    out_dir = _prepare_out(out, force)
    points, normals = decode_codes(loaded, path.codes)
    names = [f"step_{i:02d}" for i in range(len(path.codes))]
    rows = write_shapes(
        out_dir,
        names,
        points,
        normals,
        mesher=mesher,
        mesh_format=mesh_format,
        seed=seed,
        codes=path.codes,
        model=loaded.model,
    )
    predicted = classify_points(loaded, store, points)
    for i, row in enumerate(rows):
        row.update(step=i, segment=int(path.segment[i]), t=round(float(path.t[i]), 6), code=path.codes[i].tolist())
        if predicted is not None:
            row["nn_class"] = predicted[i]
    titles = [
        f"t={path.t[i]:.2f}" if i not in (0, len(rows) - 1) else shapes[0 if i == 0 else -1]["label"]
        for i in range(len(rows))
    ]
    manifest: dict[str, Any] = {
        "kind": "interpolation",
        "method": method,
        "steps_per_segment": steps,
        "shapes": [
            {"ref": s["ref"], "label": s["label"], "class": s["class"]}
            | ({"refine": s["refine"]} if "refine" in s else {})
            for s in shapes
        ],
        "mesher": mesher,
        "steps": rows,
    }
    end_classes = {s["class"] for s in shapes}
    if predicted is not None and len(end_classes) == 1 and "" not in end_classes:
        cls = end_classes.pop()
        manifest["class_consistency"] = sum(p == cls for p in predicted) / len(predicted)
    manifest["meshing"] = _mesh_summary(rows)
    manifest.update(_pictures(draw, out_dir, "strip", points, rows, titles, f"{method} interpolation"))
    record: dict[str, Any] = {"model": str(model_path), "refs": list(refs), "steps": steps, "method": method}
    record["mesher"] = mesher
    if refined is not None:
        manifest["refine"] = record["refine"] = refined
    atomic_write_json(out_dir / "manifest.json", manifest)
    atomic_write_json(out_dir / "provenance.json", provenance(record, seed))
    return manifest


def _refine_files(
    loaded: LoadedModel, shapes: Sequence[dict[str, Any]], refine: RefineSettings | None, model_name: str
) -> dict[str, Any] | None:
    """Refine, in one batch, the codes of the shapes that came from files (those with ``points``); each gets its
    refined ``code`` and ``refine`` (Chamfer before and after). Returns the summary, or None without ``refine``."""
    if refine is None:
        return None
    files = [s for s in shapes if "points" in s]
    if not files:
        return {"shapes": 0, "settings": refine.to_dict()}
    res = refine.run(
        loaded.model,
        np.stack([s["points"] for s in files]),
        np.stack([s["code"] for s in files]),
        model_name=model_name,
    )
    for i, s in enumerate(files):
        s["code"] = res.codes[i]
        s["refine"] = {"chamfer_before": float(res.chamfer_before[i]), "chamfer_after": float(res.chamfer_after[i])}
    return res.summary()


def _mesh_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    meshed = [r for r in rows if "mesh" in r]
    if not rows:
        return {}
    return {
        "meshed": len(meshed),
        "failed": len(rows) - len(meshed),
        "watertight_share": (sum(r["watertight"] for r in meshed) / len(meshed)) if meshed else None,
        "mean_chamfer_mesh_to_points": float(np.mean([r["chamfer_mesh_to_points"] for r in meshed]))
        if meshed
        else None,
        "mean_triangles": float(np.mean([r["triangles"] for r in meshed])) if meshed else None,
        "mean_seconds": float(np.mean([r["mesh_seconds"] for r in meshed])) if meshed else None,
    }


def run_sampling(
    model_path: str | os.PathLike[str],
    store_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    n: int = 16,
    components: int = 32,
    covariance: str = "full",
    cls: str | None = None,
    split: str | None = "train",
    mesher: str | None = "auto",
    mesh_format: str = "ply",
    force: bool = False,
    seed: int = 0,
    draw: StripDrawer | None = None,
) -> dict[str, Any]:
    """Fit the l-GMM on the store's (training) codes, optionally of one class, and decode n new shapes."""
    loaded = load_model(model_path)
    mesher = resolve_mesher(mesher, loaded.model, str(model_path))
    store = store_for_model(store_path, loaded, str(model_path))
    if store is None:
        raise ValueError("l-GMM sampling needs --store")
    mask = np.ones(len(store), dtype=bool)
    if split and any(it["split"] for it in store.items):
        mask &= np.array([it["split"] == split for it in store.items])
    if cls is not None:
        known = sorted(set(store.classes))
        if cls not in known:
            raise StoreError(f"{store.path}: no class {cls!r}; classes in the store: {', '.join(known)}")
        mask &= np.array([c == cls for c in store.classes])
    gmm = LatentGMM(components, covariance, seed).fit(store.codes[mask])
    codes = gmm.sample(n)
    out_dir = _prepare_out(out, force)
    points, normals = decode_codes(loaded, codes)
    names = [f"sample_{i:02d}" for i in range(n)]
    rows = write_shapes(
        out_dir,
        names,
        points,
        normals,
        mesher=mesher,
        mesh_format=mesh_format,
        seed=seed,
        codes=codes,
        model=loaded.model,
    )
    predicted = classify_points(loaded, store, points)
    for i, row in enumerate(rows):
        row.update(index=i, code=codes[i].tolist())
        if predicted is not None:
            row["nn_class"] = predicted[i]
    manifest: dict[str, Any] = {
        "kind": "l-gmm samples",
        "components": components,
        "covariance": covariance,
        "fitted_on": int(mask.sum()),
        "class": cls,
        "split": split,
        "samples": rows,
        "meshing": _mesh_summary(rows),
    }
    titles = [f"#{i}" + (f" ({predicted[i]})" if predicted else "") for i in range(n)]
    title = f"l-GMM samples ({components} components)"
    manifest.update(_pictures(draw, out_dir, "samples", points, rows, titles, title))
    atomic_write_json(out_dir / "manifest.json", manifest)
    atomic_write_json(
        out_dir / "provenance.json",
        provenance(
            {"model": str(model_path), "store": str(store_path), "n": n, "components": components, "class": cls}, seed
        ),
    )
    return manifest


def run_arithmetic(
    model_path: str | os.PathLike[str],
    expression: str,
    out: str | os.PathLike[str],
    *,
    store_path: str | os.PathLike[str] | None = None,
    mesher: str | None = "auto",
    mesh_format: str = "ply",
    force: bool = False,
    seed: int = 0,
    draw: StripDrawer | None = None,
) -> dict[str, Any]:
    """Decode ``A - B + C`` where terms are store ids, mesh files or ``mean:CLASS`` (mean code of a class)."""
    loaded = load_model(model_path)
    mesher = resolve_mesher(mesher, loaded.model, str(model_path))
    store = store_for_model(store_path, loaded, str(model_path))
    terms = parse_expression(expression)

    def lookup(name: str) -> np.ndarray:
        if name.startswith("mean:"):
            if store is None:
                raise ValueError(f"{name}: class means need --store")
            cls = name[len("mean:") :]
            mask = np.array([c == cls for c in store.classes])
            if not mask.any():
                raise StoreError(f"{store.path}: no class {cls!r}; classes: {', '.join(sorted(set(store.classes)))}")
            return store.codes[mask].mean(axis=0)
        return resolve_shape(name, loaded, store, str(model_path))["code"]

    codes = np.stack([lookup(t.name) for t in terms] + [evaluate_expression(terms, lookup)])
    out_dir = _prepare_out(out, force)
    points, normals = decode_codes(loaded, codes)
    names = [f"term_{i}" for i in range(len(terms))] + ["result"]
    rows = write_shapes(
        out_dir,
        names,
        points,
        normals,
        mesher=mesher,
        mesh_format=mesh_format,
        seed=seed,
        codes=codes,
        model=loaded.model,
    )
    titles = [("−" if t.sign < 0 else "+" if i else "") + t.name for i, t in enumerate(terms)] + ["= result"]
    predicted = classify_points(loaded, store, points)
    for i, row in enumerate(rows):
        row["code"] = codes[i].tolist()
        if predicted is not None:
            row["nn_class"] = predicted[i]
    manifest: dict[str, Any] = {
        "kind": "arithmetic",
        "expression": expression,
        "shapes": rows,
        "meshing": _mesh_summary(rows),
    }
    manifest.update(_pictures(draw, out_dir, "arithmetic", points, rows, titles, expression))
    atomic_write_json(out_dir / "manifest.json", manifest)
    atomic_write_json(
        out_dir / "provenance.json", provenance({"model": str(model_path), "expression": expression}, seed)
    )
    return manifest
