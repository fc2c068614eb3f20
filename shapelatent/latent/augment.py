"""Enlarge a dataset with interpolated shapes: decoded in-betweens of same-class training pairs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.data.build import BuildResult, estimate_normals
from shapelatent.data.format import DatasetWriter, ShapeDataset
from shapelatent.errors import DatasetFormatError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.latent.decode import decode_codes
from shapelatent.latent.encode import codes_for_points, model_sampling
from shapelatent.latent.interpolate import interpolate_codes
from shapelatent.models.load import load_model
from shapelatent.provenance import provenance

__all__ = ["augment_dataset"]


def augment_dataset(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    pairs: int = 100,
    per_pair: int = 3,
    method: str = "linear",
    split: str = "train",
    seed: int = 0,
    force: bool = False,
) -> BuildResult:
    """Write a new dataset of interpolated shapes.

    ``pairs`` random pairs of distinct shapes of the same class are drawn (seeded) from ``split``; for each,
    the ``per_pair`` interior steps of a ``per_pair + 2``-step interpolation are decoded (endpoints excluded)
    and written with the pair's class, into split ``train`` of the new dataset. The new dataset has the
    source dataset's P and normalisation; decoded clouds are re-normalised with it.
    """
    if pairs < 1 or per_pair < 1:
        raise ValueError(f"pairs and per_pair must be >= 1; got {pairs}, {per_pair}")
    loaded = load_model(model_path)
    cfg = model_sampling(loaded)
    ds = ShapeDataset(data)
    if ds.num_points != cfg.num_points:
        raise DatasetFormatError(f"{ds.root}: P={ds.num_points} but the model decodes P={cfg.num_points} points.")
    idx = ds.indices(split)
    by_class: dict[str, list[int]] = {}
    for i in idx:
        by_class.setdefault(ds.meta[i]["class"], []).append(int(i))
    eligible = {c: v for c, v in by_class.items() if len(v) >= 2}
    if not eligible:
        raise DatasetFormatError(f"{ds.root}: no class has two shapes in split {split!r} to interpolate between.")
    rng = np.random.default_rng(seed)
    classes = sorted(eligible)
    chosen = []
    for _ in range(pairs):
        c = classes[rng.integers(len(classes))]
        a, b = rng.choice(eligible[c], size=2, replace=False)
        chosen.append((c, int(a), int(b)))
    with DatasetWriter(Path(out), ds.num_points, force=force) as writer:
        for p_i, (c, a, b) in enumerate(chosen):
            codes = codes_for_points(loaded.model, np.asarray(ds.points[[a, b]]))
            path = interpolate_codes(codes[0], codes[1], per_pair + 2, method)[1:-1]
            points, normals = decode_codes(loaded, path)
            for s in range(per_pair):
                norm = cfg.normalization.apply(points[s])
                nrm = normals[s] if normals is not None else estimate_normals(norm.points)
                t = (s + 1) / (per_pair + 1)
                meta: dict[str, Any] = {
                    "source": f"interpolated:{ds.meta[a]['id']}:{ds.meta[b]['id']}:{t:.3f}",
                    "class": c,
                    "license": ds.meta[a]["license"],
                    "split": "train",
                    "creator": "shapelatent augment",
                    "pair": [ds.meta[a]["id"], ds.meta[b]["id"]],
                    "t": t,
                }
                writer.add(f"aug_{p_i:05d}_{s}", norm.points, nrm, **meta)
        info = {
            "source": {
                "kind": "augment",
                "model": str(model_path),
                "data": str(ds.root),
                "pairs": pairs,
                "per_pair": per_pair,
                "method": method,
                "seed": seed,
            },
            "sampling": ds.info.get("sampling"),
        }
        atomic_write_json(writer.tmp / "provenance.json", provenance(info, seed))
        result = writer.finalize(info, split_seed=seed, fractions={"train": 1.0})
    return BuildResult(result, len(writer.rows), writer.skipped)
