"""Mix several datasets into one for training (``train --data A --data B``, ``data merge``).

The autoencoder needs no labels, so any datasets sampled and normalised the same way can be trained on together
(e.g. every Sweet Home 3D item plus the procedural chairs). :func:`merge_datasets` writes one dataset folder:

* ``points.npy``/``normals.npy``: the sources' arrays one after the other (streamed; memory stays bounded);
* ``metadata.csv``: their rows in the same order, re-indexed; ids, classes, splits and licences are kept, so each
  source's own train/val/test split holds in the mix;
* ``dataset.json``: ``merged_from`` lists each source (path, shape count, first index, weight, classes);
* occupancy samples when every source has them with the same box and noise scales: each row keeps the first
  ``Q_min / 2`` of its uniform and of its near-surface queries, ``Q_min`` the smallest source's count (the
  queries of each half are i.i.d., so a prefix is a sample of the same law).

The contract checked before anything is written: the same ``num_points``, sampling method, normalisation
(centre and scale) and axis conventions in every source; any difference is an error naming both datasets and what
to rebuild. Ids are kept when they are unique across the sources; otherwise every id becomes
``<source folder name>/<id>`` (an error when two sources share a folder name too).

Weights: source ``d`` with weight ``w_d`` gets probability ``w_d / sum(w)`` per drawn shape, spread evenly over its
train shapes (:func:`shape_weights`); without weights every train shape is visited once per epoch as for one dataset.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.data.format import FORMAT_NAME, FORMAT_VERSION, METADATA_COLUMNS, SPLITS, ShapeDataset
from shapelatent.data.occupancy_format import FILES as OCC_FILES
from shapelatent.data.occupancy_format import META_FILE as OCC_META
from shapelatent.data.occupancy_format import has_occupancy, read_occupancy
from shapelatent.errors import DatasetFormatError, OutputExistsError
from shapelatent.io.atomic import atomic_write_json, atomic_write_text
from shapelatent.provenance import provenance

__all__ = [
    "check_compatible",
    "merge_datasets",
    "merged_attribution",
    "merged_matches",
    "parse_weights",
    "shape_weights",
]

_CHUNK = 256  # shapes copied per step


def parse_weights(text: str | None) -> list[float] | None:
    """``--weights`` as numbers: ``"1,0.5"`` -> [1.0, 0.5]; None or empty -> None.

    Raises:
        ValueError: not comma-separated numbers.
    """
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--weights must be comma-separated numbers, one per dataset; got {text!r}") from None


def _contract(ds: ShapeDataset) -> dict[str, Any]:
    s = ds.info.get("sampling") or {}
    return {
        "num_points": ds.num_points,
        "method": s.get("method"),
        "normalization": s.get("normalization"),
        "conventions": ds.info.get("conventions"),
        "has_normals": ds.info.get("has_normals", True),
    }


def check_compatible(datasets: Sequence[ShapeDataset]) -> None:
    """Raise unless every dataset was sampled and normalised like the first.

    Raises:
        DatasetFormatError: naming the two datasets, the differing setting and how to rebuild.
    """
    first = datasets[0]
    ref = _contract(first)
    for ds in datasets[1:]:
        got = _contract(ds)
        for key, value in ref.items():
            if got[key] != value:
                raise DatasetFormatError(
                    f"{ds.root}: {key} is {got[key]!r} but {first.root} has {value!r}; datasets trained together "
                    "must share one sampling and normalisation contract. Rebuild one of them with the other's "
                    "settings (`shapelatent data build ... --points N`, same normalisation)."
                )


def _occupancy_plan(datasets: Sequence[ShapeDataset]) -> tuple[dict[str, Any] | None, str]:
    """The merged occupancy meta (or None) and a one-line reason when the sources' samples are not merged."""
    missing = [str(ds.root) for ds in datasets if not has_occupancy(ds.root)]
    if missing:
        return None, f"not merged: {', '.join(missing)} has no occupancy samples"
    metas = [read_occupancy(ds.root).meta for ds in datasets]
    for key in ("box", "sigma"):
        if any(m.get(key) != metas[0].get(key) for m in metas):
            return None, f"not merged: the sources' occupancy {key} differ ({[m.get(key) for m in metas]})"
    q = min(int(m["queries"]) for m in metas)
    methods: Counter[str] = Counter()
    for m in metas:
        methods.update(m.get("label_methods") or {})
    merged = {
        **{k: v for k, v in metas[0].items() if k not in ("label_methods", "valid", "built", "seed")},
        "queries": q,
        "uniform": q // 2,
        "near_surface": q // 2,
        "label_methods": dict(methods),
        "valid": sum(int(m.get("valid", 0)) for m in metas),
        "built": sum(len(ds) for ds in datasets),
        "seeds": [m.get("seed") for m in metas],
    }
    return merged, ""


def _write_rows(out: Path, name: str, sources: Sequence[np.ndarray], row_shape: tuple[int, ...], dtype) -> None:
    total = sum(len(a) for a in sources)
    arr = np.lib.format.open_memmap(out / name, mode="w+", dtype=dtype, shape=(total, *row_shape))
    at = 0
    for src in sources:
        for start in range(0, len(src), _CHUNK):
            block = np.asarray(src[start : start + _CHUNK])
            arr[at : at + len(block)] = block
            at += len(block)
    arr.flush()
    del arr


def _occupancy_rows(root: Path, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A source's occupancy arrays cut to ``q`` queries: the first q/2 uniform and the first q/2 near-surface."""
    occ = read_occupancy(root)
    qs, h = int(occ.meta["queries"]), q // 2
    if qs == q:
        return occ.points, occ.labels, occ.valid
    half = qs // 2
    keep = np.concatenate([np.arange(h), half + np.arange(h)])  # (q,)
    points = np.concatenate([occ.points[:, :h], occ.points[:, half : half + h]], axis=1)
    bits = np.unpackbits(np.asarray(occ.labels), axis=-1, bitorder="little")[:, :qs]
    labels = np.packbits(bits[:, keep], axis=-1, bitorder="little")
    return points, labels, occ.valid


def _id_prefixes(datasets: Sequence[ShapeDataset]) -> bool:
    """Whether ids must be prefixed with their source folder's name: False when they are unique across sources.

    Raises:
        DatasetFormatError: shared ids and two sources with the same folder name (prefixes would not help).
    """
    seen: dict[str, Path] = {}
    clash = None
    for ds in datasets:
        for row in ds.meta:
            if row["id"] in seen and clash is None:
                clash = (row["id"], seen[row["id"]], ds.root)
            seen.setdefault(row["id"], ds.root)
    if clash is None:
        return False
    names = [ds.root.name for ds in datasets]
    if len(set(names)) < len(names):
        raise DatasetFormatError(
            f"{clash[2]}: shape id {clash[0]!r} is also in {clash[1]}, and the sources' folder names {names} do not "
            "tell them apart; ids must be unique across the datasets: rename one dataset folder."
        )
    return True


def merged_matches(out: str | os.PathLike[str], sources: Sequence[str | os.PathLike[str]], weights) -> bool:
    """Whether ``out`` already holds the merge of exactly these sources (paths and sizes) with these weights."""
    path = Path(out) / "dataset.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    entries = info.get("merged_from") or []
    if len(entries) != len(sources):
        return False
    ws = list(weights) if weights is not None else [None] * len(sources)
    for entry, src, w in zip(entries, sources, ws, strict=True):
        try:
            n = json.loads((Path(src) / "dataset.json").read_text(encoding="utf-8"))["num_shapes"]
        except (OSError, KeyError, json.JSONDecodeError, UnicodeDecodeError):
            return False
        if entry.get("path") != str(Path(src).resolve()) or entry.get("num_shapes") != n:
            return False
        if entry.get("weight") != (None if w is None else float(w)):
            return False
    return True


def merge_datasets(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    weights: Sequence[float] | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the datasets ``sources`` one after the other into a new dataset folder ``out`` (see the module doc).

    Args:
        sources: two or more dataset folders.
        out: the new folder (written under a hidden temporary name, moved into place when complete).
        weights: one positive weight per source (sampling probability of each source in training), or None.
        force: replace an existing ``out``.
        progress: called with (sources done, sources) as the copy goes.

    Raises:
        DatasetFormatError: a source that is not a dataset, a broken contract, duplicate ids.
        OutputExistsError: ``out`` exists and ``force`` is False.
        ValueError: fewer than two sources, or weights that do not match them.
    """
    if len(sources) < 2:
        raise ValueError(f"merging needs two or more datasets; got {len(sources)}")
    if weights is not None:
        if len(weights) != len(sources):
            raise ValueError(f"--weights gives {len(weights)} numbers for {len(sources)} datasets; give one each.")
        if not all(float(w) > 0 for w in weights):
            raise ValueError(f"--weights must all be > 0; got {list(weights)}")
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: already exists; pass --force to replace it, or choose another --out.")
    datasets = [ShapeDataset(s) for s in sources]
    if len({ds.root.resolve() for ds in datasets}) < len(datasets):
        raise DatasetFormatError(f"the same dataset is given twice: {[str(s) for s in sources]}")
    check_compatible(datasets)
    prefix = _id_prefixes(datasets)
    occ_meta, occ_reason = _occupancy_plan(datasets)
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        p = datasets[0].num_points
        _write_rows(tmp, "points.npy", [ds.points for ds in datasets], (p, 3), np.float32)
        _write_rows(tmp, "normals.npy", [ds.normals for ds in datasets], (p, 3), np.float32)
        entries: list[dict[str, Any]] = []
        classes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as dst:
            writer = csv.writer(dst, lineterminator="\n")
            writer.writerow(METADATA_COLUMNS)
            at = 0
            for k, ds in enumerate(datasets):
                with open(ds.root / "metadata.csv", newline="", encoding="utf-8") as src:
                    reader = csv.reader(src)
                    header = next(reader)
                    if tuple(header) != METADATA_COLUMNS:
                        raise DatasetFormatError(f"{ds.root / 'metadata.csv'}: unexpected columns {header}.")
                    for j, row in enumerate(reader):
                        row[0] = str(at + j)
                        if prefix:
                            row[1] = f"{ds.root.name}/{row[1]}"
                        writer.writerow(row)
                        counts[row[METADATA_COLUMNS.index("split")]] += 1
                ds_classes = {str(c): int(n) for c, n in (ds.info.get("classes") or {}).items()}
                classes.update(ds_classes)
                entries.append(
                    {
                        "path": str(ds.root.resolve()),
                        "num_shapes": len(ds),
                        "start": at,
                        "weight": None if weights is None else float(weights[k]),
                        "classes": ds_classes,
                        "source": ds.info.get("source"),
                    }
                )
                at += len(ds)
                if progress is not None:
                    progress(k + 1, len(datasets))
            dst.flush()
            os.fsync(dst.fileno())
        if occ_meta is not None:
            q = int(occ_meta["queries"])
            rows = [_occupancy_rows(ds.root, q) for ds in datasets]
            _write_rows(tmp, OCC_FILES["points"], [r[0] for r in rows], (q, 3), np.float16)
            _write_rows(tmp, OCC_FILES["labels"], [r[1] for r in rows], (q // 8,), np.uint8)
            _write_rows(tmp, OCC_FILES["valid"], [r[2] for r in rows], (), np.bool_)
            atomic_write_json(tmp / OCC_META, occ_meta)
        first = datasets[0].info
        info = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "num_shapes": sum(len(ds) for ds in datasets),
            "num_points": p,
            "conventions": first.get("conventions"),
            "source": {"kind": "merged", "datasets": [e["path"] for e in entries]},
            "sampling": first.get("sampling"),
            "split": {"method": "kept from each source", "counts": {s: counts[s] for s in SPLITS if counts[s]}},
            "classes": dict(sorted(classes.items())),
            "skipped": 0,
            "merged_from": entries,
            "ids": "prefixed with the source folder's name (the sources share ids)" if prefix else "kept",
            "occupancy": "merged" if occ_meta is not None else occ_reason,
        }
        if "has_normals" in first:
            info["has_normals"] = first["has_normals"]
        atomic_write_json(tmp / "dataset.json", info)
        atomic_write_json(tmp / "provenance.json", provenance({"merged_from": entries}, 0))
        attribution = merged_attribution(datasets)
        if attribution is not None:
            atomic_write_text(tmp / "ATTRIBUTION.md", attribution)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def merged_attribution(datasets: Sequence[ShapeDataset]) -> str | None:
    """One ``ATTRIBUTION.md`` for a merged dataset: each source's own file, in order, under its folder's name.

    Licences such as CC-BY require the credits to travel with the data and with work derived from it, so a merge
    keeps every source's list whole (its headings moved two levels down, under one section per source). None when
    no source has the file.
    """
    parts: list[str] = []
    found = False
    for ds in datasets:
        path = ds.root / "ATTRIBUTION.md"
        if not path.is_file():
            parts.append(f"## {ds.root.name}\n\nNo ATTRIBUTION.md in `{ds.root}`.\n")
            continue
        found = True
        text = path.read_text(encoding="utf-8")
        body = "\n".join(("##" + line) if line.startswith("#") else line for line in text.splitlines())
        parts.append(f"## {ds.root.name} ({len(ds)} shapes)\n\n{body.strip()}\n")
    if not found:
        return None
    head = (
        "# Attribution\n\nThis dataset merges "
        + ", ".join(f"`{ds.root.name}`" for ds in datasets)
        + " (`shapelatent data merge` / `train --data A --data B`); the attribution of each source follows, whole.\n"
    )
    return head + "\n" + "\n".join(parts)


def shape_weights(ds: ShapeDataset, train_idx: np.ndarray) -> np.ndarray | None:
    """Per-train-shape sampling probabilities of a merged dataset with weights, else None.

    Args:
        train_idx: (M,) indices of the train shapes.

    Returns:
        (M,) float64 summing to 1: source d's weight share ``w_d / sum(w)`` spread evenly over its train shapes
        (sources without train shapes drop out and the others are renormalised), or None without weights.
    """
    entries = ds.info.get("merged_from") or []
    if not entries or any(e.get("weight") is None for e in entries):
        return None
    starts = np.array([e["start"] for e in entries] + [len(ds)], dtype=np.int64)
    src = np.searchsorted(starts, np.asarray(train_idx), side="right") - 1  # (M,) source of each train shape
    w = np.array([float(e["weight"]) for e in entries], dtype=np.float64)
    per = np.bincount(src, minlength=len(entries)).astype(np.float64)  # train shapes per source
    w = np.where(per > 0, w, 0.0)
    if w.sum() <= 0:
        return None
    out = w[src] / w.sum() / per[src]
    return out / out.sum()
