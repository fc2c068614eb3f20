"""Occupancy supervision for the implicit head: a dataset's stored samples, drawn T per shape per step.

The samples are those of :mod:`shapelatent.data.occupancy` (``occupancy.json`` + ``occupancy_points.npy``
(N, Q, 3) float16, the first ``uniform`` (Q/2) uniform in the box and the rest near the surface, packed labels
(N, Q/8) uint8 and ``occupancy_valid.npy`` (N,) bool: False rows carry no supervision), added by
``shapelatent data build ... --occupancy Q`` or ``shapelatent data occupancy DATASET``.

Rows are read with positional reads (:class:`shapelatent.train.data.NpyRows`), so a dataset larger than RAM does
not grow the trainer's memory, and :class:`OccupancySource` pickles for ``DataLoader`` workers.

A step draws, for each shape, T/2 of its uniform queries and T/2 of its near-surface ones, without replacement,
from the generator it is handed (the loaders seed it with ``(seed, epoch, 2, step)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from shapelatent.data.occupancy import read_occupancy, unpack_labels
from shapelatent.errors import DatasetFormatError
from shapelatent.models.pointnet import PointCloudAutoencoder
from shapelatent.train.data import NpyRows

__all__ = [
    "OccupancyBatch",
    "OccupancySource",
    "decoded_points",
    "encode_rows",
    "masked_bce",
    "occupancy_iou",
]


class OccupancyBatch(NamedTuple):
    """T occupancy queries per shape.

    Attributes:
        queries: (b, T, 3) float32 points in the normalised frame.
        labels: (b, T) float32, 1 inside, 0 outside.
        valid: (b,) bool, False for shapes without supervision.
    """

    queries: np.ndarray
    labels: np.ndarray
    valid: np.ndarray


def _missing(root: Path) -> DatasetFormatError:
    return DatasetFormatError(
        f"{root}: the dataset has no occupancy samples (occupancy.json and its arrays), which the implicit head "
        f"learns from; add them in place with `shapelatent data occupancy {root}` (its points are kept), or build "
        "the dataset with `shapelatent data build ... --occupancy 8192`."
    )


class OccupancySource:
    """A dataset's stored occupancy samples, read row by row.

    Args:
        root: the dataset folder.
        num_shapes: N of the dataset (``len(ShapeDataset(root))``); the arrays must have as many rows.

    Attributes:
        queries: Q, stored queries per shape.
        uniform: how many of the Q come first and are uniform in the box.
        valid: (N,) bool.
        meta: the parsed ``occupancy.json``.

    Raises:
        DatasetFormatError: no occupancy samples (the message names the commands that add them), another format or
            a newer version, or arrays whose shapes disagree with the dataset or ``occupancy.json``.
    """

    def __init__(self, root: str | os.PathLike[str], num_shapes: int) -> None:
        self.root = Path(root)
        if not (self.root / "occupancy.json").exists():
            raise _missing(self.root)
        arrays = read_occupancy(self.root)  # checks the format, version and array shapes
        if len(arrays.valid) != num_shapes:
            raise DatasetFormatError(
                f"{self.root}: occupancy samples for {len(arrays.valid)} shapes but the dataset has {num_shapes}; "
                f"rebuild them with `shapelatent data occupancy {self.root} --force`."
            )
        self.meta: dict[str, Any] = dict(arrays.meta)
        self.queries = int(arrays.points.shape[1])
        self.uniform = int(self.meta.get("uniform", self.queries // 2))
        if not 0 < self.uniform < self.queries:
            raise DatasetFormatError(f"{self.root / 'occupancy.json'}: uniform = {self.uniform} not in (0, Q).")
        self.valid = np.array(arrays.valid, dtype=bool)  # (N,)
        del arrays  # rows are read positionally, not through the memory maps
        self.points = NpyRows(self.root / "occupancy_points.npy")  # (N, Q, 3) float16
        self.labels = NpyRows(self.root / "occupancy_labels.npy")  # (N, Q/8) uint8

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All Q queries of some shapes: indices (b,) -> points (b, Q, 3) float32, labels (b, Q) bool."""
        pts = self.points.read(indices).astype(np.float32)
        lab = unpack_labels(self.labels.read(indices), self.queries)
        return pts, lab

    def check_queries(self, queries: int, option: str = "queries") -> None:
        """Raise ValueError, naming ``option``, unless T = ``queries`` per step fits the stored samples."""
        most = 2 * min(self.uniform, self.queries - self.uniform)
        if queries % 2 or queries > most:
            raise ValueError(
                f"{option} = {queries} occupancy queries per shape per step: need an even number at most {most} "
                f"({self.root} stores {self.uniform} uniform and {self.queries - self.uniform} near-surface queries "
                "per shape)"
            )

    def draw(self, indices: np.ndarray, queries: int, rng: np.random.Generator) -> OccupancyBatch:
        """T = ``queries`` per shape, half uniform and half near the surface, without replacement.

        Args:
            indices: (b,) dataset rows.
            queries: T, even, at most twice the smaller of the two stored parts.
            rng: the step's generator.

        Raises:
            ValueError: T odd, or more than the stored samples allow.
        """
        self.check_queries(queries)
        half = queries // 2
        pts, lab = self.read(np.asarray(indices, dtype=np.int64))
        b = len(pts)
        uni = rng.random((b, self.uniform)).argsort(axis=1)[:, :half]  # (b, T/2) without replacement
        near = self.uniform + rng.random((b, self.queries - self.uniform)).argsort(axis=1)[:, :half]
        pick = np.concatenate([uni, near], axis=1)  # (b, T)
        rows = np.arange(b)[:, None]
        return OccupancyBatch(
            np.ascontiguousarray(pts[rows, pick]), lab[rows, pick].astype(np.float32), self.valid[indices]
        )


@torch.no_grad()
@torch.no_grad()
def decoded_points(model: PointCloudAutoencoder, codes: torch.Tensor, chunk: int = 256) -> torch.Tensor | None:
    """The point decoder's clouds of ``codes`` (M, Z) -> (M, P, 3) float32, or None when the model's head does
    not read them (``implicit.local`` = 0)."""
    if model.implicit is None or not model.implicit.needs_points:
        return None
    model.eval()
    out = [model.decode(codes[s : s + chunk]).points.float() for s in range(0, len(codes), chunk)]
    return torch.cat(out) if out else torch.zeros(0, model.config.num_points, 3, device=codes.device)


def encode_rows(
    model: PointCloudAutoencoder, root: str | os.PathLike[str], indices: np.ndarray, chunk: int = 64
) -> torch.Tensor:
    """The codes the occupancy head is conditioned on: the encoder in eval mode on ``points.npy``'s rows.

    Args:
        model: the autoencoder (its ``encode``); put in eval mode.
        root: the dataset folder.
        indices: (M,) rows.

    Returns:
        (M, Z) float32 on the model's device, in ``indices`` order.
    """
    model.eval()
    device = next(model.parameters()).device
    reader = NpyRows(Path(root) / "points.npy")
    idx = np.asarray(indices, dtype=np.int64)
    out = [
        model.encode(torch.from_numpy(reader.read(idx[s : s + chunk])).to(device)) for s in range(0, len(idx), chunk)
    ]
    reader.close()
    return torch.cat(out) if out else torch.zeros(0, model.config.latent_dim, device=device)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over the queries of the valid shapes.

    Args:
        logits: (b, T) float32.
        labels: (b, T) float32 0/1.
        valid: (b,) bool.

    Returns:
        float32 scalar: per shape the mean over its T queries, then the mean over valid shapes (0 when none is).
    """
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1)  # (b,)
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp_min(1.0)


@torch.no_grad()
def occupancy_iou(
    head: torch.nn.Module,
    codes: torch.Tensor,
    source: OccupancySource,
    indices: np.ndarray,
    chunk: int = 16,
    points: torch.Tensor | None = None,
) -> np.ndarray:
    """Occupancy Networks' volumetric IoU on the stored uniform queries: predicted (logit > 0) vs stored inside.

    Args:
        head: the occupancy head f(codes (b, Z), queries (b, T, 3)) -> (b, T); put in eval mode.
        codes: (M, Z) float32, the codes of ``indices`` in that order.
        source: the stored samples.
        indices: (M,) dataset rows.
        points: (M, P, 3) the codes' decoded points, for a head that reads them (``implicit.local`` > 0).

    Returns:
        (M',) float64, one per valid shape among ``indices`` (an empty prediction and label counts as IoU 1).
    """
    head.eval()
    device = next(head.parameters()).device
    idx = np.asarray(indices, dtype=np.int64)
    if len(codes) != len(idx):
        raise ValueError(f"codes must have one row per index: {len(codes)} codes for {len(idx)} indices")
    rows = np.arange(len(idx))
    keep = source.valid[idx]
    idx, rows = idx[keep], rows[keep]
    ious: list[float] = []
    for start in range(0, len(idx), chunk):
        pts, lab = source.read(idx[start : start + chunk])
        u = source.uniform
        x = torch.from_numpy(np.ascontiguousarray(pts[:, :u])).to(device)
        r = rows[start : start + chunk]
        pts_r = points[r].to(device) if points is not None else None
        pred = (head(codes[r].to(device), x, pts_r) > 0).cpu().numpy()  # (b, U)
        true = lab[:, :u]
        inter, union = (pred & true).sum(1), (pred | true).sum(1)
        ious.extend(np.where(union > 0, inter / np.maximum(union, 1), 1.0).tolist())
    return np.asarray(ious, dtype=np.float64)
