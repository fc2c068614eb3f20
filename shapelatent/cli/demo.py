"""Pictures made at the end of the demo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shapelatent.data.format import ShapeDataset
from shapelatent.models.load import load_model
from shapelatent.ops.chamfer import chamfer_distance
from viewers.render import render_folder, render_strip, render_views

__all__ = ["reconstruction_figure"]


def reconstruction_figure(run: Path, data: Path, path: Path, per_class: int = 1) -> Path:
    """Input vs reconstruction for a few test shapes, one (or ``per_class``) per class, with each one's Chamfer."""
    ds = ShapeDataset(data)
    loaded = load_model(run)
    test = ds.indices("test")
    chosen: list[int] = []
    seen: dict[str, int] = {}
    for i in test:
        c = ds.meta[i]["class"]
        if seen.get(c, 0) < per_class:
            seen[c] = seen.get(c, 0) + 1
            chosen.append(int(i))
    x = torch.from_numpy(np.asarray(ds.points[np.sort(chosen)]))
    chosen = sorted(chosen)
    with torch.no_grad():
        rec = loaded.model(x).points
        cd = chamfer_distance(rec, x, reduction="none").loss
    items = [p.numpy() for p in x] + [p.numpy() for p in rec]
    titles = [f"input: {ds.meta[i]['class']}" for i in chosen] + [
        f"decoded: CD={float(cd[k]):.4f}" for k in range(len(chosen))
    ]
    return render_views(items, path, titles=titles, ncols=len(chosen), size=(256, 256), mode="points")


def latent_tour(
    run: Path, data: Path, seed: int = 0, progress: Callable[[], None] | None = None, model_run: Path | None = None
) -> dict[str, Any]:
    """The demo's second half: encode every shape, find neighbours of a test chair, interpolate two test chairs.

    ``model_run`` (default ``run``) makes the interpolation meshes: the run with the occupancy head, whose encoder is
    ``run``'s (same fingerprint, so ``run/store`` serves it).

    Writes ``run/store`` (codes), ``run/map.png`` (+ ``map.json``), ``run/neighbors.png`` and ``run/interpolation/``.
    """
    from shapelatent.cli.latent_map import make_map
    from shapelatent.latent.encode import encode_to_store
    from shapelatent.latent.retrieval import NeighborIndex, precision_at_k
    from shapelatent.latent.runs import run_interpolation

    tick = progress or (lambda: None)
    store, _ = encode_to_store(run, [data], run / "store", force=True)
    tick()
    ds = ShapeDataset(data)
    test = [int(i) for i in ds.indices("test")]
    query = test[0]
    index = NeighborIndex(store.codes, metric="euclidean")
    res = index.search(store.codes[query : query + 1], 5, exclude=[query])
    nbrs = [int(i) for i in res.indices[0]]
    clouds = [np.asarray(ds.points[i]) for i in [query, *nbrs]]
    titles = [f"query: {ds.meta[query]['class']}"] + [
        f"#{r + 1} {ds.meta[i]['class']} d={float(res.distances[0][r]):.2f}" for r, i in enumerate(nbrs)
    ]
    gallery = render_views(clouds, run / "neighbors.png", titles=titles, size=(256, 256), mode="points")
    p_at_5 = precision_at_k(store.codes, store.classes, 5)
    make_map(run / "store", run / "map.png", dataset=data, force=True)  # the latent map (+ map.json)
    tick()
    cls = ds.meta[query]["class"]
    same = [i for i in test[1:] if ds.meta[i]["class"] == cls] or [
        i for i in range(len(ds)) if i != query and ds.meta[i]["class"] == cls
    ]
    other = same[0]
    interp = run_interpolation(
        model_run or run,
        [ds.meta[query]["id"], ds.meta[other]["id"]],
        run / "interpolation",
        steps=8,
        store_path=run / "store",
        force=True,
        seed=seed,
        draw=render_strip,
    )
    renders = render_folder(run / "interpolation")
    tick()
    return {
        "store": str(run / "store"),
        "codes": len(store),
        "precision_at_5": p_at_5,
        "map": str(run / "map.png"),
        "query": ds.meta[query]["id"],
        "neighbors": [f"{ds.meta[i]['id']} ({ds.meta[i]['class']})" for i in nbrs],
        "gallery": str(gallery),
        "interpolation": {
            "from": ds.meta[query]["id"],
            "to": ds.meta[other]["id"],
            "class": cls,
            "class_consistency": interp.get("class_consistency", float("nan")),
            "meshed": interp["meshing"]["meshed"],
            "dir": str(run / "interpolation"),
            "render_png": str(renders.sheet),
            "render_gif": str(renders.gif),
            "points_png": str(run / "interpolation" / interp["points_png"]),
            "meshes_png": str(run / "interpolation" / interp.get("meshes_png", "")),
        },
    }
