"""Pictures made at the end of the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shapelatent.data.format import ShapeDataset
from shapelatent.models.load import load_model
from shapelatent.ops.chamfer import chamfer_distance
from shapelatent.viz.figures import plot_point_grid

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
    rows = [[p.numpy() for p in x], [p.numpy() for p in rec]]
    titles = [f"{ds.meta[i]['class']}\nCD={float(cd[k]):.4f}" for k, i in enumerate(chosen)]
    return plot_point_grid(
        rows,
        path,
        row_titles=["input (test split)", "reconstruction"],
        col_titles=titles,
        title="Autoencoder reconstructions on held-out chairs (Chamfer per shape)",
    )
