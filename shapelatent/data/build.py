"""Generic dataset building: items in, a dataset folder out.

Every source (procedural chairs, a folder, Sweet Home 3D, ShapeNet, ModelNet, pre-sampled point sets)
turns its input into a list of :class:`BuildItem` and calls :func:`build_items`, which reads, samples and
normalises each item in a process pool and streams the results into the dataset format. An item that
cannot be used is skipped and recorded, with the reason, in ``build_report.json``; the build goes on.
Builders are library code: they report progress through a callback and never print.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from shapelatent.data.format import DatasetWriter
from shapelatent.data.normalize import Normalization
from shapelatent.data.sampling import SampledCloud, sample_surface
from shapelatent.data.sources.registry import SourceOption
from shapelatent.data.splits import check_split_method
from shapelatent.errors import MeshReadError, ShapelatentError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.io.meshes import POINT_READERS, read_mesh, read_points, supported_mesh_extensions
from shapelatent.provenance import provenance

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_FACES",
    "MAX_FACES_OPTION",
    "BuildItem",
    "BuildOptions",
    "BuildResult",
    "Progress",
    "SamplingConfig",
    "build_items",
    "estimate_normals",
    "parallel_map",
    "sample_file",
]

Progress = Callable[[int], None]
#: Meshes with more faces than this are skipped (reported), so one huge file cannot exhaust memory.
DEFAULT_MAX_FACES = 2_000_000
#: The ``--max-faces`` option of the sources that read meshes.
MAX_FACES_OPTION = SourceOption(
    "max_faces", int, "Skip (and report) meshes with more faces than this.", DEFAULT_MAX_FACES
)
KINDS = ("auto", "mesh", "points")


@dataclass(frozen=True)
class SamplingConfig:
    """How every shape is turned into a normalised point cloud (stored in ``dataset.json``).

    Attributes:
        num_points: P, points per shape.
        oversample: draw this many first and thin by farthest-point sampling (None: plain sampling).
        normalization: centring and scaling convention.
        seed: base seed; item i uses ``seed + i`` for its own sampler.
    """

    num_points: int = 2048
    oversample: int | None = None
    normalization: Normalization = field(default_factory=Normalization)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.num_points, bool) or not isinstance(self.num_points, int) or self.num_points <= 0:
            raise ValueError(f"num_points must be a positive integer; got {self.num_points!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored under ``sampling`` in ``dataset.json``."""
        return {
            "method": "area_weighted" + ("+fps" if self.oversample else ""),
            "num_points": self.num_points,
            "oversample": self.oversample,
            "seed": self.seed,
            "normalization": self.normalization.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(
            num_points=int(data["num_points"]),
            oversample=data.get("oversample"),
            normalization=Normalization.from_dict(data["normalization"]),
            seed=int(data.get("seed", 0)),
        )


@dataclass(frozen=True)
class BuildItem:
    """One shape to build.

    Attributes:
        id: unique id in the dataset.
        path: the mesh or point-cloud file.
        cls: class name.
        split: a fixed split (``train``/``val``/``test``, e.g. an official one), or None for the seeded split.
        license: licence of the item.
        creator: who made it.
        rotation: row-major 3x3 matrix applied as v' = M v before normalisation (e.g. Sweet Home 3D's
            ``modelRotation``), or None.
        kind: ``mesh`` (sample the surface), ``points`` (sub-sample a point set, no re-sampling) or
            ``auto`` (by extension; a face-less PLY is read as points).
        extra: anything else to keep (JSON-serialisable), stored in the metadata's ``extra`` column.
    """

    id: str
    path: str
    cls: str
    split: str | None = None
    license: str = ""
    creator: str = ""
    rotation: tuple[float, ...] | None = None
    kind: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"BuildItem.kind must be one of {KINDS}; got {self.kind!r}")
        if self.rotation is not None and len(self.rotation) != 9:
            raise ValueError(f"{self.path}: rotation must have 9 numbers (row-major 3x3); got {len(self.rotation)}")


@dataclass
class BuildResult:
    """What a build produced."""

    path: Path
    built: int
    skipped: list[dict[str, str]]


class BuildOptions(TypedDict, total=False):
    """The options every source's build function takes besides its own, passed on to :func:`build_items`.

    Attributes:
        sampling: points per shape and normalisation (default: 2048 points, seeded by the build's seed).
        split_fractions: train/val/test fractions of the seeded split, for items without a fixed split
            (default 0.8/0.1/0.1).
        split_method: ``random`` (default: one seeded permutation of all shapes) or ``stratified`` (cut per class,
            so every class is in every split its size allows: :func:`shapelatent.data.splits.stratified_split`).
        max_faces: meshes with more faces are skipped and reported (default :data:`DEFAULT_MAX_FACES`).
        force: replace an existing dataset at ``out`` once the new one is complete (default False).
        workers: processes (default: all cores).
        on_start: called once, before the first ``progress`` call, with the number of items the build will
            count (a progress bar's total); input errors are raised before it.
        progress: called with the number of items done since the last call.
    """

    sampling: SamplingConfig | None
    split_fractions: dict[str, float] | None
    split_method: str
    max_faces: int
    force: bool
    workers: int | None
    on_start: Progress | None
    progress: Progress | None


def _check_options(options: Mapping[str, object]) -> None:
    unknown = sorted(set(options) - set(BuildOptions.__annotations__))
    if unknown:
        raise TypeError(f"unexpected build options {unknown}; expected some of {sorted(BuildOptions.__annotations__)}")
    check_split_method(str(options.get("split_method", "random")))


def estimate_normals(points: np.ndarray, k: int = 16) -> np.ndarray:
    """Unoriented PCA normals from the k nearest neighbours.

    Args:
        points: (P, 3) float array.

    Returns:
        (P, 3) float32 unit normals (sign arbitrary).
    """
    from scipy.spatial import cKDTree

    k = min(k, len(points))
    _, nbr = cKDTree(points).query(points, k=k)
    nb = points[nbr.reshape(len(points), -1)]  # (P, k, 3)
    nb = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("pki,pkj->pij", nb, nb)  # (P, 3, 3)
    _, vecs = np.linalg.eigh(cov)
    return vecs[:, :, 0].astype(np.float32)


def _rotate(cloud: SampledCloud, rotation: Sequence[float] | None) -> SampledCloud:
    if rotation is None:
        return cloud
    m = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    nrm = cloud.normals.astype(np.float64) @ np.linalg.inv(m)  # normals transform by the inverse transpose
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return SampledCloud((cloud.points.astype(np.float64) @ m.T).astype(np.float32), nrm.astype(np.float32))


def _subsample_points(path: Path, cfg: SamplingConfig, seed: int) -> tuple[SampledCloud, bool]:
    pc = read_points(path)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pc.points), cfg.num_points, replace=len(pc.points) < cfg.num_points)
    if pc.normals is not None:
        return SampledCloud(pc.points[idx], pc.normals[idx].astype(np.float32)), False
    return SampledCloud(pc.points[idx], estimate_normals(pc.points[idx])), True


def sample_file(
    path: str | os.PathLike[str],
    cfg: SamplingConfig,
    seed: int,
    *,
    kind: str = "auto",
    rotation: Sequence[float] | None = None,
    max_faces: int = DEFAULT_MAX_FACES,
) -> SampledCloud:
    """Read a mesh or point-cloud file and return its normalised P-point cloud.

    Meshes are sampled by area. Point files (XYZ, NPY, face-less PLY, or ``kind="points"``) are sub-sampled
    to P points without replacement (with replacement only when they have fewer), keeping their normals or
    estimating unoriented PCA normals when they have none.

    Args:
        rotation: row-major 3x3 applied as v' = M v before normalisation.
        max_faces: meshes with more faces are refused (MeshReadError).

    Returns:
        :class:`SampledCloud`, points normalised by ``cfg.normalization``; (P, 3) float32 each.
    """
    return _sample(Path(path), cfg, seed, kind, rotation, max_faces)[0]


def _sample(
    p: Path, cfg: SamplingConfig, seed: int, kind: str, rotation: Sequence[float] | None, max_faces: int
) -> tuple[SampledCloud, dict[str, Any]]:
    ext = p.suffix.lower()
    notes: dict[str, Any] = {}
    cloud = None
    if kind == "mesh" or (kind == "auto" and ext in supported_mesh_extensions()):
        try:
            mesh = read_mesh(p)
        except MeshReadError:
            if kind == "mesh" or ext not in POINT_READERS:
                raise
            mesh = None  # e.g. a PLY with vertices only: read it as points below
        if mesh is not None:
            if len(mesh.faces) > max_faces:
                raise MeshReadError(
                    f"{p}: {len(mesh.faces)} faces is more than the cap of {max_faces}; raise max_faces."
                )
            cloud = sample_surface(mesh, cfg.num_points, seed=seed, oversample=cfg.oversample)
    if cloud is None:
        cloud, estimated = _subsample_points(p, cfg, seed)
        notes["presampled"] = True
        if estimated:
            notes["normals_estimated"] = "PCA, unoriented"
    cloud = _rotate(cloud, rotation)
    norm = cfg.normalization.apply(cloud.points)
    return SampledCloud(norm.points, cloud.normals), notes


def _item_task(args: tuple[BuildItem, int, SamplingConfig, int]) -> tuple[BuildItem, SampledCloud | None, Any]:
    item, index, cfg, max_faces = args
    try:
        cloud, notes = _sample(Path(item.path), cfg, cfg.seed + index, item.kind, item.rotation, max_faces)
        return item, cloud, notes
    except (ShapelatentError, ValueError, OSError, MemoryError) as exc:
        return item, None, str(exc)


def _run_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [fn(t) for t in chunk]


def parallel_map(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int) -> Iterator[Any]:
    """``map`` in a process pool (in order); inline when ``workers <= 1`` or there are few tasks.

    Streaming: tasks are taken from ``tasks`` and submitted a few chunks ahead of the consumer (at most
    ``4 * workers`` chunks in flight), so a slow consumer never lets results pile up in memory, and
    ``tasks`` may be a lazy sequence such as a ``range``.
    """
    if workers <= 1 or len(tasks) < 8:
        yield from map(fn, tasks)
        return
    chunksize = max(1, min(16, len(tasks) // (workers * 8)))
    chunks = (list(tasks[i : i + chunksize]) for i in range(0, len(tasks), chunksize))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[Any]]] = deque(
            pool.submit(_run_chunk, fn, c) for c in itertools.islice(chunks, 4 * workers)
        )
        try:
            while pending:
                done = pending.popleft().result()
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.append(pool.submit(_run_chunk, fn, nxt))
                yield from done
        finally:
            for fut in pending:  # the consumer stopped early (an error, Ctrl-C): drop what has not started
                fut.cancel()


def default_workers(workers: int | None) -> int:
    """``workers`` or, when None, all cores."""
    return workers if workers is not None else max(1, os.cpu_count() or 1)


def build_items(
    items: Sequence[BuildItem],
    out: str | os.PathLike[str],
    *,
    source: dict[str, Any],
    split_seed: int = 0,
    pre_skipped: Sequence[dict[str, str]] = (),
    **options: Unpack[BuildOptions],
) -> BuildResult:
    """Sample every item and write a dataset folder.

    Args:
        items: the shapes, in dataset order.
        out: the dataset folder (written into ``out.partial`` and renamed when complete). A build stopped by
            an exception (Ctrl-C included) removes its ``.partial`` folder; one killed outright leaves it, and
            the next run replaces it. Either way ``out`` is never half-written.
        source: what the items came from, stored under ``source`` in ``dataset.json``.
        split_seed: seeds the split of items without a fixed one (and the sampling when ``sampling`` is
            not given).
        pre_skipped: inputs the source already rejected (``{"source", "reason"}``), kept in the report.
        **options: :class:`BuildOptions` (sampling, split fractions, max faces, force, workers, on_start with
            ``len(items)``, progress).

    Raises:
        OutputExistsError: ``out`` exists and ``force`` is False.
        DatasetFormatError: not one item could be built (the report in ``out.partial`` lists why).
        TypeError: an option that :class:`BuildOptions` does not name.
    """
    _check_options(options)
    cfg = options.get("sampling") or SamplingConfig(seed=split_seed)
    fractions = options.get("split_fractions") or {"train": 0.8, "val": 0.1, "test": 0.1}
    max_faces = options.get("max_faces", DEFAULT_MAX_FACES)
    progress = options.get("progress")
    tasks = [(item, i, cfg, max_faces) for i, item in enumerate(items)]
    with DatasetWriter(Path(out), cfg.num_points, force=options.get("force", False)) as writer:
        if on_start := options.get("on_start"):
            on_start(len(items))
        for s in pre_skipped:
            writer.skip(s["source"], s["reason"])
        for item, cloud, result in parallel_map(_item_task, tasks, default_workers(options.get("workers"))):
            if cloud is None:
                logger.warning("skipped %s: %s", item.path, result)
                writer.skip(item.path, result)
            else:
                meta: dict[str, Any] = {"source": item.path, "class": item.cls, "license": item.license}
                meta.update(creator=item.creator, split=item.split or "", **item.extra, **result)
                writer.add(item.id, cloud.points, cloud.normals, **meta)
            if progress:
                progress(1)
        info = {"source": source, "sampling": cfg.to_dict()}
        atomic_write_json(writer.tmp / "provenance.json", provenance(info, split_seed))
        split_method = options.get("split_method", "random")
        path = writer.finalize(info, split_seed=split_seed, fractions=fractions, split_method=split_method)
    return BuildResult(path, len(writer.rows), writer.skipped)
