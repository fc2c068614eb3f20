"""New splits for a built dataset, without re-sampling: in place, or as a small view folder beside it.

* :func:`resplit_dataset` rewrites the ``split`` column of ``metadata.csv`` (and the ``split`` record of
  ``dataset.json``) in place: ``shapelatent data split DATASET --method stratified``. The arrays are not touched.
* :func:`write_split_view` writes a folder holding its own ``dataset.json`` and ``metadata.csv`` (the given split)
  and a symbolic link to every other file of the dataset (``points.npy``, ``normals.npy``, occupancy samples, ...):
  a dataset any command opens as usual (``shapelatent train --data VIEW``), a few bytes a shape on disk. The
  cross-validation of ``shapelatent evaluate --folds`` makes one per fold. The links are absolute: the view works
  wherever it is moved as long as the dataset stays where it was.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.data.format import SPLITS, ShapeDataset, split_codes
from shapelatent.data.splits import check_fractions, check_split_method, stratified_split
from shapelatent.errors import DatasetFormatError, OutputExistsError
from shapelatent.io.atomic import atomic_write, atomic_write_json

__all__ = ["resplit_dataset", "split_counts", "write_split_view"]

#: Files a view writes itself; every other entry of the dataset folder is linked.
_OWN = ("dataset.json", "metadata.csv")


def split_counts(codes: np.ndarray) -> dict[str, int]:
    """``{split: count}`` of (N,) uint8 split codes, splits with no shape left out (as ``dataset.json`` has it)."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(SPLITS))[: len(SPLITS)]
    return {name: int(c) for name, c in zip(SPLITS, counts, strict=True) if c}


def _write_metadata(src: Path, dst: Path, codes: np.ndarray) -> None:
    """Copy ``src`` (metadata.csv) to ``dst`` atomically with the split column replaced by ``SPLITS[codes]``."""

    def write(tmp: Path) -> None:
        with (
            open(src, newline="", encoding="utf-8") as fin,
            open(tmp, "w", newline="", encoding="utf-8") as fout,
        ):
            reader, writer = csv.reader(fin), csv.writer(fout, lineterminator="\n")
            header = next(reader)
            writer.writerow(header)
            col = header.index("split")
            n = 0
            for row in reader:
                if not row:
                    continue
                if n >= len(codes):
                    raise DatasetFormatError(f"{src}: more rows than the {len(codes)} shapes; rebuild the dataset.")
                row[col] = SPLITS[int(codes[n])]
                writer.writerow(row)
                n += 1
            if n != len(codes):
                raise DatasetFormatError(f"{src}: {n} rows, expected {len(codes)}; rebuild the dataset.")
            fout.flush()
            os.fsync(fout.fileno())

    atomic_write(dst, write)


def resplit_dataset(
    root: str | os.PathLike[str],
    method: str = "stratified",
    seed: int = 0,
    fractions: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Give a built dataset a new train/val/test split in place; points and normals are not rewritten.

    ``metadata.csv`` is rewritten atomically (a temporary file renamed over it), then ``dataset.json``'s ``split``
    record; the record it replaces is kept under ``split.previous``. Every row gets the new split, rows that had a
    fixed (official) split at build included. Runs already trained on the dataset keep their own record of the
    data, not of the split: retrain after re-splitting.

    Args:
        root: the dataset folder.
        method: :data:`~shapelatent.data.splits.SPLIT_METHODS` (``random``: as ``data build`` does by default;
            ``stratified``: :func:`~shapelatent.data.splits.stratified_split`).
        seed: seeds the split.
        fractions: ``{split: fraction}``; default: the fractions recorded in ``dataset.json`` (else 0.8/0.1/0.1).

    Returns:
        the new ``split`` record of ``dataset.json`` (``method``, ``seed``, ``fractions``, ``counts``, ``previous``).

    Raises:
        ValueError: an unknown method or bad fractions. DatasetFormatError: not a readable dataset.
    """
    check_split_method(method)
    ds = ShapeDataset(root)
    previous = dict(ds.info.get("split") or {})
    previous.pop("previous", None)  # one level of history is enough to see what changed
    fractions = check_fractions(dict(fractions or previous.get("fractions") or {"train": 0.8, "val": 0.1, "test": 0.1}))
    if method == "stratified":
        codes = stratified_split(ds.classes(), seed, fractions)
    else:
        codes = split_codes(len(ds), seed, fractions)
    _write_metadata(ds.root / "metadata.csv", ds.root / "metadata.csv", codes)
    record = {
        "method": method,
        "seed": seed,
        "fractions": fractions,
        "counts": split_counts(codes),
        "previous": previous,
    }
    atomic_write_json(ds.root / "dataset.json", {**ds.info, "split": record})
    return record


def write_split_view(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    codes: np.ndarray,
    split_record: dict[str, Any],
) -> Path:
    """A dataset folder at ``out`` with the split ``codes``, linking the arrays of the dataset at ``root``.

    An existing view at ``out`` with the same ``dataset.json`` and ``metadata.csv`` is kept as it is (so runs
    trained on it stay valid); one with anything else is refused.

    Args:
        root: the dataset folder.
        out: the view folder to create.
        codes: (N,) uint8 split codes, ``SPLITS[code]``.
        split_record: stored as ``split`` in the view's ``dataset.json`` (with ``parent``, the dataset's path).

    Returns:
        ``out``.

    Raises:
        OutputExistsError: ``out`` holds something other than this very view.
        ValueError: ``codes`` not one per shape, or not split codes.
    """
    ds = ShapeDataset(root)
    codes = np.asarray(codes)
    if codes.shape != (len(ds),) or (codes.size and (codes.min() < 0 or codes.max() >= len(SPLITS))):
        raise ValueError(f"codes must be ({len(ds)},) split codes in [0, {len(SPLITS)}); got shape {codes.shape}")
    codes = codes.astype(np.uint8)
    out = Path(out)
    src = ds.root.resolve()
    info = {**ds.info, "split": {**split_record, "counts": split_counts(codes), "parent": str(src)}}
    if out.exists():
        same = (out / "dataset.json").is_file() and json.loads((out / "dataset.json").read_text("utf-8")) == info
        if same and np.array_equal(ShapeDataset(out).meta.split_codes, codes):
            return out
        raise OutputExistsError(
            f"{out}: already holds a dataset view with another split or of another dataset; remove it (and the runs "
            "trained on it) or choose another output folder."
        )
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        for entry in tmp.iterdir():  # an interrupted view: links and two small files
            entry.unlink()
        tmp.rmdir()
    tmp.mkdir(parents=True)
    for entry in sorted(src.iterdir()):
        if entry.name not in _OWN:
            (tmp / entry.name).symlink_to(entry)
    _write_metadata(src / "metadata.csv", tmp / "metadata.csv", codes)
    atomic_write_json(tmp / "dataset.json", info)
    os.replace(tmp, out)
    return out
