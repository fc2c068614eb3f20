"""Training batches read with positional file reads, in worker processes, reproducible for any worker count.

Why not index the ``np.memmap``: every page a memory map touches stays mapped, so reading a dataset larger
than RAM through ``ShapeDataset.points`` makes the trainer's ``RssFile`` grow to the size of the file
(the kernel may reclaim those pages, but they are charged to the process and its cgroup). :class:`NpyRows`
instead reads the rows of a batch with ``os.preadv`` straight into a fresh array: the page cache still helps,
nothing is mapped, and the process holds one batch (``RssAnon`` grows by the batch, ``RssFile`` not at all).
Indices are sorted and runs of consecutive rows are read with one system call each.

A batch is a pure function of ``(seed, epoch, step)`` and the process's ``(rank, world_size)``:

* epoch ``e`` visits the train split in the order ``np.random.default_rng([seed, e]).permutation(train)``;
* step ``s`` takes the global batch ``order[s * B : (s + 1) * B]`` (the last one may be shorter);
* augmentation parameters (rotation angle, scale) are drawn for the whole global batch from
  ``np.random.default_rng([seed, e, 1, s])``, so shape ``i`` of the batch gets the same augmentation whichever
  process or worker reads it;
* for a model with an occupancy head, each shape's T occupancy queries are drawn from
  ``np.random.default_rng([seed, e, 2, s])`` (:mod:`shapelatent.train.occupancy`) and get their shape's augmentation;
* rank ``r`` of ``W`` processes takes the contiguous slice :func:`split_batch` of the global batch.

So ``workers=0`` (read in the training process) and ``workers=N`` give identical batches, a run resumed at any
epoch sees the same data as an uninterrupted one, and ``W`` processes together see exactly the batches of one.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from shapelatent.errors import DatasetFormatError

if TYPE_CHECKING:  # occupancy.py imports NpyRows from here
    from shapelatent.train.occupancy import OccupancySource

__all__ = ["LocalBatch", "NpyRows", "TrainLoader", "augment", "split_batch"]


logger = logging.getLogger(__name__)

_AUGMENT_STREAM = 1  # third entropy word of the augmentation generator; keeps it apart from the permutation's
_OCCUPANCY_STREAM = 2  # third entropy word of the occupancy-query generator
_IOV_MAX = 1024  # buffers per preadv call (Linux IOV_MAX)


class NpyRows:
    """Row reader for a C-ordered ``.npy`` file of shape ``(N, *row_shape)`` using positional reads.

    Picklable (the file descriptor is not pickled; each process opens its own), so it can go to
    ``DataLoader`` worker processes.

    Raises:
        FileNotFoundError: no such file.
        DatasetFormatError: not a readable ``.npy`` array, Fortran-ordered, or shorter than its header says.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd: int | None = None
        self._pid = -1
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such array file.")
        try:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                self.offset = fh.tell()
        except ValueError as exc:
            raise DatasetFormatError(f"{self.path}: not a readable .npy array ({exc}).") from exc
        if fortran or dtype.hasobject or len(shape) < 1:
            raise DatasetFormatError(
                f"{self.path}: need a C-ordered numeric array of shape (N, ...); got shape {shape}, "
                f"fortran_order={fortran}, dtype {dtype}. Rebuild the dataset."
            )
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        size = self.path.stat().st_size
        if size < self.offset + self.shape[0] * self.row_bytes:
            raise DatasetFormatError(
                f"{self.path}: {size} bytes, the header promises {self.offset + self.shape[0] * self.row_bytes}; "
                "the file is truncated, rebuild the dataset."
            )

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fd"], state["_pid"] = None, -1
        return state

    def _fileno(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        """Close this process's file descriptor (reopened on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``indices`` in the order given, as a new array.

        Args:
            indices: (M,) row numbers in ``[0, N)``; repeats allowed.

        Returns:
            (M, *row_shape) array of the file's dtype (e.g. (M, P, 3) float32).

        Raises:
            IndexError: an index outside ``[0, N)``.
            DatasetFormatError: the file became shorter while reading.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        if len(idx) == 0:
            return out
        if idx.min() < 0 or idx.max() >= self.shape[0]:
            bad = idx[(idx < 0) | (idx >= self.shape[0])][0]
            raise IndexError(f"{self.path}: row {bad} out of range [0, {self.shape[0]}).")
        order = np.argsort(idx, kind="stable")
        srt = idx[order]
        # runs of consecutive rows: one preadv each, scattering straight into the output rows
        breaks = np.flatnonzero(np.diff(srt) != 1) + 1
        flat = out.reshape(len(idx), -1).view(np.uint8)  # (M, row_bytes)
        fd = self._fileno()
        for run in np.split(np.arange(len(idx)), breaks):
            for start in range(0, len(run), _IOV_MAX):
                part = run[start : start + _IOV_MAX]
                self._read_into(fd, int(srt[part[0]]), [flat[order[j]] for j in part])
        return out

    def _read_into(self, fd: int, row: int, buffers: list[np.ndarray]) -> None:
        pos = self.offset + row * self.row_bytes
        want = self.row_bytes * len(buffers)
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [b.data for b in buffers], pos)  # writable memoryviews of the rows
        else:  # macOS < 11 and others without preadv: one pread per row (same bytes)
            got = 0
            for b in buffers:
                chunk = os.pread(fd, self.row_bytes, pos + got)
                b[: len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                got += len(chunk)
        if got != want:
            raise DatasetFormatError(
                f"{self.path}: short read at row {row} ({got} of {want} bytes); the file changed while training."
            )


def split_batch(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The ``[lo, hi)`` slice of a global batch of ``n`` shapes that process ``rank`` of ``world_size`` takes.

    Contiguous, sizes differ by at most one (``np.array_split``); equal when ``world_size`` divides ``n``.
    """
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def augment(
    points: np.ndarray,
    normals: np.ndarray | None,
    theta: np.ndarray | None,
    scale: np.ndarray | None,
    mirror: np.ndarray | None = None,
    aniso: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per shape: mirror x -> -x, rotate about +Y by ``theta``, scale by ``scale`` and then per axis by ``aniso``.

    The whole map is the linear ``A = diag(aniso) * scale * R_y(theta) * M`` applied to points; normals get
    ``A^-T`` and are renormalised (the transform that keeps them perpendicular to the surface), so a mirror or an
    anisotropic scale leaves them unit length and outward.

    Args:
        points: (B, P, 3) float32.
        normals: (B, P, 3) float32 or None.
        theta: (B,) angles in radians, or None for no rotation.
        scale: (B,) isotropic factors, or None.
        mirror: (B,) bool, True flips the shape left-right (x -> -x; furniture is left-right symmetric in
            kind, so the mirror image is a valid shape of the same class), or None.
        aniso: (B, 3) per-axis factors (x, y, z), or None.

    Returns:
        (points, normals), new float32 arrays (or the inputs when nothing applies).
    """
    if theta is not None or mirror is not None:
        if mirror is not None:
            flip = np.where(np.asarray(mirror, dtype=bool), -1.0, 1.0).astype(np.float32)  # (B,)
            points = points * np.stack([flip, np.ones_like(flip), np.ones_like(flip)], 1)[:, None, :]
            if normals is not None:
                normals = normals * np.stack([flip, np.ones_like(flip), np.ones_like(flip)], 1)[:, None, :]
        if theta is not None:
            c, s = np.cos(theta), np.sin(theta)
            rot = np.zeros((len(points), 3, 3), dtype=np.float32)
            rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1.0, -s, c
            points = np.einsum("bij,bpj->bpi", rot, points).astype(np.float32)
            if normals is not None:
                normals = np.einsum("bij,bpj->bpi", rot, normals).astype(np.float32)
    if scale is not None:
        points = points * scale.astype(np.float32).reshape(-1, 1, 1)
    if aniso is not None:
        a = np.asarray(aniso, dtype=np.float32).reshape(-1, 1, 3)
        points = (points * a).astype(np.float32)
        if normals is not None:
            n = normals / a  # inverse transpose of a diagonal map
            normals = (n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
    return points, normals


class LocalBatch(NamedTuple):
    """This process's part of one global batch.

    Attributes:
        points: (b, P, 3) float32, b = this rank's share.
        normals: (b, P, 3) float32, or None when normals are not needed.
        global_size: shapes in the whole global batch (all ranks).
        queries: (b, T, 3) float32 occupancy queries (augmented like the points), or None without occupancy.
        occupancy: (b, T) float32 0/1 labels of ``queries``, or None.
        occupancy_valid: (b,) bool, False for shapes whose labels could not be made, or None.
    """

    points: torch.Tensor
    normals: torch.Tensor | None
    global_size: int
    queries: torch.Tensor | None = None
    occupancy: torch.Tensor | None = None
    occupancy_valid: torch.Tensor | None = None


class _BatchSource(torch.utils.data.Dataset):
    """Map-style dataset whose items are ``(epoch, step)`` pairs and whose values are :class:`LocalBatch`."""

    def __init__(self, loader: TrainLoader) -> None:
        self.points, self.normals = loader.points, loader.normals
        self.train_idx, self.batch_size, self.seed = loader.train_idx, loader.batch_size, loader.seed
        self.rotate, self.scale = loader.rotate, loader.scale
        self.mirror, self.aniso, self.weights = loader.mirror, loader.aniso, loader.weights
        self.rank, self.world_size = loader.rank, loader.world_size
        self.occupancy, self.occupancy_queries = loader.occupancy, loader.occupancy_queries
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:  # not used for sampling; the sampler yields (epoch, step)
        return math.ceil(len(self.train_idx) / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            if self.weights is None:
                order = rng.permutation(self.train_idx)
            else:  # weighted datasets: M draws with replacement, shape i with probability weights[i]
                order = rng.choice(self.train_idx, size=len(self.train_idx), replace=True, p=self.weights)
            self._order = (epoch, order)
        return self._order[1]

    def __getitem__(self, item: tuple[int, int]) -> LocalBatch:
        epoch, step = item
        glob = self.order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]
        n = len(glob)
        rng = np.random.default_rng([self.seed, epoch, _AUGMENT_STREAM, step])
        theta = rng.uniform(0.0, 2.0 * math.pi, size=n) if self.rotate else None
        scale = rng.uniform(self.scale[0], self.scale[1], size=n) if self.scale is not None else None
        # drawn after theta and scale, so runs without these augmentations keep their batches bit for bit
        mirror = rng.random(n) < 0.5 if self.mirror else None
        aniso = rng.uniform(self.aniso[0], self.aniso[1], size=(n, 3)) if self.aniso is not None else None
        lo, hi = split_batch(n, self.rank, self.world_size)
        pts = self.points.read(glob[lo:hi])
        nrm = self.normals.read(glob[lo:hi]) if self.normals is not None else None
        th, sc = None if theta is None else theta[lo:hi], None if scale is None else scale[lo:hi]
        mi, an = None if mirror is None else mirror[lo:hi], None if aniso is None else aniso[lo:hi]
        pts, nrm = augment(pts, nrm, th, sc, mi, an)
        batch = LocalBatch(torch.from_numpy(pts), None if nrm is None else torch.from_numpy(nrm), n)
        if self.occupancy is None:
            return batch
        q, lab, valid = self.occupancy.draw(
            glob[lo:hi], self.occupancy_queries, np.random.default_rng([self.seed, epoch, _OCCUPANCY_STREAM, step])
        )
        q, _ = augment(q, None, th, sc, mi, an)  # the same map as the shape: labels stay true
        return batch._replace(
            queries=torch.from_numpy(q), occupancy=torch.from_numpy(lab), occupancy_valid=torch.from_numpy(valid)
        )


class _StepSampler(torch.utils.data.Sampler):
    def __init__(self, steps: int) -> None:
        self.steps, self.epoch = steps, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, s) for s in range(self.steps)])

    def __len__(self) -> int:
        return self.steps


class TrainLoader:
    """Per-epoch batches of the train split for one process of ``world_size`` (see the module docstring).

    Args:
        root: the dataset folder (``points.npy``, ``normals.npy``).
        train_idx: (M,) int64 indices of the train split.
        batch_size: B, the global batch (all ranks together).
        seed: run seed.
        rotate: random rotation about +Y.
        scale: (low, high) random isotropic scale, or None.
        mirror: flip each shape left-right (x -> -x) with probability 1/2.
        aniso: (low, high) range of a random per-axis scale (three factors per shape), or None.
        weights: (M,) probabilities of the ``train_idx`` shapes, summing to 1 (datasets mixed with weights): each
            epoch draws M shapes with replacement from them; None visits every shape once in a seeded order.
        with_normals: also read (and rotate) the normals.
        rank: this process's rank.
        world_size: number of processes; the last global batch is dropped when it has fewer shapes than this.
        workers: reader processes (0: read in this process).
        pin_memory: page-lock batches for faster copies to a GPU.
        occupancy: a dataset's stored occupancy samples (``shapelatent.train.occupancy.OccupancySource``): each
            batch also carries ``occupancy_queries`` (T) of them per shape, drawn from ``(seed, epoch, 2, step)``
            and rotated and scaled with their shape.
        occupancy_queries: T.

    Attributes:
        steps: batches per epoch.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        train_idx: np.ndarray,
        batch_size: int,
        seed: int,
        *,
        rotate: bool = False,
        scale: tuple[float, float] | None = None,
        mirror: bool = False,
        aniso: tuple[float, float] | None = None,
        weights: np.ndarray | None = None,
        with_normals: bool = False,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        pin_memory: bool = False,
        occupancy: OccupancySource | None = None,
        occupancy_queries: int = 2048,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0; got {workers}")
        root = Path(root)
        self.points = NpyRows(root / "points.npy")
        self.normals = NpyRows(root / "normals.npy") if with_normals else None
        self.train_idx = np.asarray(train_idx, dtype=np.int64)
        self.batch_size, self.seed, self.rotate, self.scale = batch_size, seed, rotate, scale
        self.mirror, self.aniso = mirror, aniso
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != self.train_idx.shape or not np.all(w >= 0) or not np.isclose(w.sum(), 1.0):
                raise ValueError(f"weights must be {self.train_idx.shape} probabilities summing to 1; got {w.shape}")
            self.weights = w / w.sum()
        self.rank, self.world_size = rank, world_size
        self.occupancy, self.occupancy_queries = occupancy, occupancy_queries
        self.steps = math.ceil(len(self.train_idx) / batch_size)
        last = len(self.train_idx) - (self.steps - 1) * batch_size
        if 0 < last < world_size:
            if rank == 0:
                logger.warning(
                    "the last batch of each epoch has %d shapes, fewer than the %d processes; it is skipped",
                    last,
                    world_size,
                )
            self.steps -= 1
        self._sampler = _StepSampler(self.steps)
        self._loader = torch.utils.data.DataLoader(
            _BatchSource(self),
            batch_size=None,
            sampler=self._sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin_memory,
        )

    def epoch(self, epoch: int) -> Iterator[LocalBatch]:
        """The batches of ``epoch`` (0-based), in step order."""
        self._sampler.epoch = epoch
        return iter(self._loader)
