"""The on-disk occupancy format (see :mod:`shapelatent.data.occupancy` for the layout); reading and writing it.

Writing is atomic per dataset: arrays go to hidden ``.occupancy_*.partial`` names and are renamed only when
every row is written; ``occupancy.json`` is written last, so :func:`has_occupancy` never sees a half-written set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shapelatent.data.format import NpyAppender
from shapelatent.errors import DatasetFormatError, OutputExistsError
from shapelatent.io.atomic import atomic_write_json

__all__ = [
    "BOX",
    "OCCUPANCY_FORMAT",
    "OCCUPANCY_VERSION",
    "OccupancyArrays",
    "OccupancyWriter",
    "has_occupancy",
    "pack_labels",
    "read_occupancy",
    "unpack_labels",
    "write_occupancy",
]

OCCUPANCY_FORMAT = "shapelatent-occupancy"
OCCUPANCY_VERSION = 1
BOX = 1.1  #: queries live in [-BOX, BOX]^3, a padded box around the unit sphere
FILES = {"points": "occupancy_points.npy", "labels": "occupancy_labels.npy", "valid": "occupancy_valid.npy"}
META_FILE = "occupancy.json"


class OccupancyArrays(NamedTuple):
    """A dataset's occupancy supervision, memory-mapped read-only.

    Attributes:
        points: (N, Q, 3) float16 query points, normalised frame.
        labels: (N, Q // 8) uint8 packed labels (:func:`unpack_labels` gives (N, Q) bool, True = inside).
        valid: (N,) bool, False where the row carries no supervision.
        meta: the parsed ``occupancy.json``.
    """

    points: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    meta: dict[str, Any]


def pack_labels(labels: np.ndarray) -> np.ndarray:
    """Pack boolean labels 8 to a byte along the last axis (little bit order).

    Args:
        labels: (..., Q) bool, Q a multiple of 8.

    Returns:
        (..., Q // 8) uint8.
    """
    lab = np.asarray(labels, dtype=bool)
    if lab.ndim < 1 or lab.shape[-1] % 8:
        raise ValueError(f"labels must have a last axis Q that is a multiple of 8; got shape {lab.shape}")
    return np.packbits(lab, axis=-1, bitorder="little")


def unpack_labels(packed: np.ndarray, queries: int) -> np.ndarray:
    """Inverse of :func:`pack_labels`.

    Args:
        packed: (..., Q // 8) uint8 (a memmap slice is fine).
        queries: Q.

    Returns:
        (..., Q) bool, True = inside.
    """
    arr = np.asarray(packed)
    if arr.dtype != np.uint8 or arr.ndim < 1 or arr.shape[-1] * 8 != queries:
        raise ValueError(
            f"packed labels must be uint8 (..., {queries // 8}) for Q = {queries}; got {arr.dtype} {arr.shape}"
        )
    return np.unpackbits(arr, axis=-1, count=queries, bitorder="little").astype(bool)


def _check_queries(queries: int) -> int:
    if isinstance(queries, bool) or not isinstance(queries, (int, np.integer)) or queries <= 0 or queries % 8:
        raise ValueError(f"queries must be a positive multiple of 8; got {queries!r}")
    return int(queries)


def has_occupancy(dataset_dir: str | os.PathLike[str]) -> bool:
    """Whether the dataset folder holds a complete occupancy set of this format version."""
    root = Path(dataset_dir)
    try:
        meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    ok = meta.get("format") == OCCUPANCY_FORMAT and meta.get("version") == OCCUPANCY_VERSION
    return bool(ok) and all((root / name).is_file() for name in FILES.values())


def read_occupancy(dataset_dir: str | os.PathLike[str]) -> OccupancyArrays:
    """Open a dataset's occupancy supervision, memory-mapped.

    Raises:
        DatasetFormatError: no occupancy set (the message names ``--occupancy`` and ``data add-occupancy``),
            another format or version, or arrays whose shapes disagree with ``occupancy.json``.
    """
    root = Path(dataset_dir)
    path = root / META_FILE
    if not path.is_file():
        raise DatasetFormatError(
            f"{root}: the dataset has no occupancy samples ({META_FILE} missing); add them in place with "
            f"`shapelatent data occupancy {root}` (its points are kept), or build the dataset with "
            "`shapelatent data build ... --occupancy 8192`."
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: not valid JSON ({exc}).") from exc
    if meta.get("format") != OCCUPANCY_FORMAT or meta.get("version") != OCCUPANCY_VERSION:
        raise DatasetFormatError(
            f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}; this shapelatent reads "
            f"{OCCUPANCY_FORMAT!r} version {OCCUPANCY_VERSION}. Rebuild the occupancy samples."
        )
    try:
        arrays = {k: np.load(root / name, mmap_mode="r", allow_pickle=False) for k, name in FILES.items()}
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{root}: occupancy arrays missing or unreadable ({exc}).") from exc
    n, q = int(meta.get("built", arrays["valid"].shape[0])), int(meta["queries"])
    expected = {"points": ((n, q, 3), np.float16), "labels": ((n, q // 8), np.uint8), "valid": ((n,), np.bool_)}
    for k, (shape, dtype) in expected.items():
        if arrays[k].shape != shape or arrays[k].dtype != dtype:
            raise DatasetFormatError(
                f"{root / FILES[k]}: {arrays[k].shape} {arrays[k].dtype}, {META_FILE} says {shape} "
                f"{np.dtype(dtype).name}; the occupancy set is truncated or corrupt, rebuild it."
            )
    return OccupancyArrays(arrays["points"], arrays["labels"], arrays["valid"], meta)


@dataclass
class OccupancyWriter:
    """Streams occupancy rows into a dataset folder, atomically.

    Rows go to hidden ``.occupancy_*.partial`` files; :meth:`finalize` renames them over the final names and
    writes ``occupancy.json`` last. :meth:`abort` (or an exception inside ``with``) removes the partial files
    and leaves any existing occupancy set untouched.

    Attributes:
        root: the dataset folder (must exist).
        queries: Q per shape, a multiple of 8.
        info: the rest of ``occupancy.json`` (uniform, near_surface, sigma, box, label_method, shell_eps, seed, ...).
        force: replace an existing occupancy set.
    """

    root: Path
    queries: int
    info: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.queries = _check_queries(self.queries)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such dataset folder")
        if has_occupancy(self.root) and not self.force:
            raise OutputExistsError(
                f"{self.root}: already has occupancy samples; pass --force (force=True) to replace them."
            )
        self._tmp = {k: self.root / f".{name}.partial" for k, name in FILES.items()}
        q = self.queries
        self._points = NpyAppender(self._tmp["points"], (q, 3), "<f2")
        self._labels = NpyAppender(self._tmp["labels"], (q // 8,), "|u1")
        self._valid = NpyAppender(self._tmp["valid"], (), "|b1")

    def add(self, points: np.ndarray | None, labels: np.ndarray | None, valid: bool = True) -> None:
        """Append one row.

        Args:
            points: (Q, 3) query points (stored as float16).
            labels: (Q,) bool, or already packed (Q // 8,) uint8.
            valid: False for a row without supervision (its points and labels, may be None, are stored as zeros).
        """
        q = self.queries
        if not valid or points is None or labels is None:
            points, labels, valid = np.zeros((q, 3), np.float16), np.zeros(q // 8, np.uint8), False
        lab = np.asarray(labels)
        packed = lab if lab.dtype == np.uint8 else pack_labels(lab)
        if np.shape(points) != (q, 3) or packed.shape != (q // 8,):
            raise ValueError(f"row must be points ({q}, 3) and labels ({q},); got {np.shape(points)}, {lab.shape}")
        self._points.append(np.asarray(points, dtype=np.float16))
        self._labels.append(packed)
        self._valid.append(np.array(bool(valid)))
        self.count += 1

    def _close(self) -> None:
        for app in (self._points, self._labels, self._valid):
            app.close()

    def abort(self) -> None:
        """Drop the partial files; an existing occupancy set is kept."""
        self._close()
        for p in self._tmp.values():
            p.unlink(missing_ok=True)

    def finalize(self, expected_rows: int | None = None) -> Path:
        """Rename the partial files into place and write ``occupancy.json``.

        Args:
            expected_rows: N of the dataset; a mismatch aborts (nothing is replaced).
        """
        self._close()
        if expected_rows is not None and self.count != expected_rows:
            self.abort()
            raise DatasetFormatError(
                f"{self.root}: {self.count} occupancy rows written, the dataset has {expected_rows}."
            )
        (self.root / META_FILE).unlink(missing_ok=True)  # readers see no set while the arrays are swapped
        for k, name in FILES.items():
            os.replace(self._tmp[k], self.root / name)
        meta = {"format": OCCUPANCY_FORMAT, "version": OCCUPANCY_VERSION, "queries": self.queries, **self.info}
        meta["built"] = self.count
        atomic_write_json(self.root / META_FILE, meta)
        return self.root

    def __enter__(self) -> OccupancyWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def write_occupancy(
    dataset_dir: str | os.PathLike[str],
    points: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray | Sequence[bool] | None = None,
    *,
    uniform: int,
    near_surface: int,
    sigma: Sequence[float],
    label_method: str,
    shell_eps: float,
    seed: int,
    box: float = BOX,
    force: bool = False,
    **extra: Any,
) -> Path:
    """Write a whole occupancy set into a dataset folder (atomically; see :class:`OccupancyWriter`).

    Args:
        dataset_dir: the dataset folder.
        points: (N, Q, 3) float query points in the normalised frame of ``points.npy``.
        labels: (N, Q) bool (True = inside) or packed (N, Q // 8) uint8.
        valid: (N,) bool (default all True).
        uniform, near_surface: U and S, U + S = Q.
        sigma: the near-surface noise scales.
        label_method, shell_eps, seed, box: recorded in ``occupancy.json``; ``extra`` too.
        force: replace an existing set.
    """
    pts = np.asarray(points)
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise ValueError(f"points must be (N, Q, 3); got {pts.shape}")
    n, q = pts.shape[:2]
    if uniform + near_surface != q:
        raise ValueError(f"uniform ({uniform}) + near_surface ({near_surface}) must equal Q ({q})")
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, dtype=bool)
    lab = np.asarray(labels)
    if len(lab) != n or len(ok) != n:
        raise ValueError(f"points, labels and valid must have the same N; got {n}, {len(lab)}, {len(ok)}")
    info = {
        "uniform": int(uniform),
        "near_surface": int(near_surface),
        "sigma": [float(s) for s in sigma],
        "box": float(box),
        "label_method": label_method,
        "shell_eps": float(shell_eps),
        "seed": int(seed),
        **extra,
    }
    with OccupancyWriter(Path(dataset_dir), q, info, force=force) as writer:
        for i in range(n):
            writer.add(pts[i], lab[i], bool(ok[i]))
        return writer.finalize(n)
