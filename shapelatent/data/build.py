"""Dataset builders: procedural chairs and folders of meshes, streamed into the dataset format.

Builders are library code: they report progress through a callback and never print. A model that
fails to load or sample is skipped and recorded in ``build_report.json`` with the reason.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.data.format import DatasetWriter
from shapelatent.data.normalize import Normalization
from shapelatent.data.sampling import SampledCloud, sample_surface
from shapelatent.errors import MeshReadError, ShapelatentError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.io.meshes import (
    POINT_READERS,
    read_mesh,
    read_points,
    supported_mesh_extensions,
    supported_point_extensions,
)
from shapelatent.provenance import provenance

logger = logging.getLogger(__name__)

__all__ = [
    "BuildResult",
    "SamplingConfig",
    "build_folder",
    "build_procedural",
    "load_class_map",
    "sample_file",
]

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SamplingConfig:
    """How every shape is turned into a normalised point cloud (stored in ``dataset.json``).

    Attributes:
        num_points: P, points per shape.
        oversample: draw this many first and thin by farthest-point sampling (None: plain sampling).
        normalization: centring and scaling convention.
        seed: base seed; shape i uses ``seed + i`` for its own sampler.
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


@dataclass
class BuildResult:
    """What a build produced."""

    path: Path
    built: int
    skipped: list[dict[str, str]]


def _normalise(cloud: SampledCloud, cfg: SamplingConfig) -> SampledCloud:
    norm = cfg.normalization.apply(cloud.points)
    return SampledCloud(norm.points, cloud.normals)


def _estimate_normals(points: np.ndarray, k: int = 16) -> np.ndarray:
    """PCA normals from k nearest neighbours (unoriented). (P, 3) -> (P, 3) float32."""
    from scipy.spatial import cKDTree

    k = min(k, len(points))
    _, nbr = cKDTree(points).query(points, k=k)
    nb = points[nbr.reshape(len(points), -1)]  # (P, k, 3)
    nb = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("pki,pkj->pij", nb, nb)  # (P, 3, 3)
    _, vecs = np.linalg.eigh(cov)
    return vecs[:, :, 0].astype(np.float32)


def sample_file(path: str | os.PathLike[str], cfg: SamplingConfig, seed: int) -> SampledCloud:
    """Read a mesh or point-cloud file and return its normalised P-point cloud.

    Meshes are sampled by area. Point files (XYZ, NPY, face-less PLY) are sub-sampled to P points
    without replacement (with replacement only when they have fewer), keeping their normals, or
    estimating unoriented PCA normals when they have none.

    Returns:
        :class:`SampledCloud`, points normalised by ``cfg.normalization``; (P, 3) float32 each.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext in supported_mesh_extensions():
        try:
            mesh = read_mesh(p)
        except MeshReadError:
            if ext not in POINT_READERS:
                raise
            mesh = None  # e.g. a PLY with vertices only: read it as points below
        if mesh is not None:
            cloud = sample_surface(mesh, cfg.num_points, seed=seed, oversample=cfg.oversample)
            return _normalise(cloud, cfg)
    pc = read_points(p)
    rng = np.random.default_rng(seed)
    replace = len(pc.points) < cfg.num_points
    idx = rng.choice(len(pc.points), cfg.num_points, replace=replace)
    normals = pc.normals[idx] if pc.normals is not None else _estimate_normals(pc.points)[idx]
    return _normalise(SampledCloud(pc.points[idx], normals.astype(np.float32)), cfg)


def _file_task(args: tuple[str, int, SamplingConfig]) -> tuple[str, SampledCloud | None, str]:
    path, index, cfg = args
    try:
        return path, sample_file(path, cfg, seed=cfg.seed + index), ""
    except (ShapelatentError, ValueError, OSError) as exc:
        return path, None, str(exc)


def _parallel_map(fn: Callable[[Any], Any], tasks: list[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(tasks) < 8:
        yield from map(fn, tasks)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, tasks, chunksize=max(1, min(64, len(tasks) // (workers * 8))))


def _default_workers(workers: int | None) -> int:
    return workers if workers is not None else max(1, os.cpu_count() or 1)


def build_procedural(
    out: str | os.PathLike[str],
    count: int,
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    families: Iterable[str] | None = None,
    split_fractions: dict[str, float] | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Generate ``count`` procedural chairs and write them as a dataset.

    Args:
        out: the dataset folder to create.
        count: number of chairs (> 0), balanced over ``families``.
        sampling: points per shape and normalisation.
        seed: chair i is ``generate_chair(chair_seed(seed, i))``; also seeds the split.
        families: subset of ``shapelatent.data.procedural.FAMILIES`` (all when None).
        split_fractions: train/val/test fractions (default 0.8/0.1/0.1).
        force: replace an existing dataset at ``out`` once the new one is complete.
        workers: processes used for generation and sampling (default: all cores).
        progress: called with the number of shapes done since the last call.
    """
    from shapelatent.data.procedural import FAMILIES, chair_seed

    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    fams = tuple(families) if families is not None else FAMILIES
    unknown = sorted(set(fams) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown chair families {unknown}; choose from {', '.join(FAMILIES)}")
    cfg = sampling or SamplingConfig(seed=seed)
    fractions = split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    # Chair i's family is fixed by its index (round-robin), so classes are balanced.
    tasks = []
    for i in range(count):
        tasks.append((i, chair_seed(seed, i), cfg))
    with DatasetWriter(Path(out), cfg.num_points, force=force) as writer:
        for i, (family, cloud, extra) in enumerate(
            _parallel_map(_procedural_task_for(fams), tasks, _default_workers(workers))
        ):
            writer.add(
                f"chair_{i:06d}",
                cloud.points,
                cloud.normals,
                source=f"procedural:{extra['chair_seed']}",
                **{"class": family},
                license="CC0-1.0",
                creator="shapelatent procedural generator",
                **extra,
            )
            if progress:
                progress(1)
        info = {
            "source": {"kind": "procedural", "count": count, "seed": seed, "families": list(fams)},
            "sampling": cfg.to_dict(),
        }
        atomic_write_json(writer.tmp / "provenance.json", provenance(info, seed))
        path = writer.finalize(info, split_seed=seed, fractions=fractions)
    return BuildResult(path, len(writer.rows), writer.skipped)


@dataclass(frozen=True)
class _FamilyTask:
    families: tuple[str, ...]

    def __call__(self, args: tuple[int, int, SamplingConfig]) -> tuple[str, SampledCloud, dict[str, Any]]:
        from shapelatent.data.procedural import generate_chair

        index, cseed, cfg = args
        family = self.families[index % len(self.families)]
        chair = generate_chair(cseed, family)
        cloud = sample_surface(chair.mesh, cfg.num_points, seed=cfg.seed + index, oversample=cfg.oversample)
        return chair.family, _normalise(cloud, cfg), {"chair_seed": cseed, "params": chair.params}


def _procedural_task_for(families: tuple[str, ...]) -> _FamilyTask:
    return _FamilyTask(families)


def load_class_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a CSV (columns ``file,class``) or JSON (``{"file": "class"}``) class mapping.

    File keys are paths relative to the input folder, with forward slashes.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such class-map file.")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not valid JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a JSON object mapping file -> class.")
        return {str(k): str(v) for k, v in data.items()}
    if p.suffix.lower() == ".csv":
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"file", "class"} <= set(reader.fieldnames):
                raise ValueError(
                    f"{p}: a class-map CSV needs the columns 'file' and 'class'; found {reader.fieldnames}."
                )
            return {row["file"]: row["class"] for row in reader}
    raise ValueError(f"{p}: class map must be .csv (columns file,class) or .json; got {p.suffix!r}.")


def _list_inputs(root: Path) -> list[Path]:
    exts = set(supported_mesh_extensions()) | set(supported_point_extensions())
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def build_folder(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    sampling: SamplingConfig | None = None,
    class_map: dict[str, str] | None = None,
    seed: int = 0,
    split_fractions: dict[str, float] | None = None,
    license: str = "",
    creator: str = "",
    force: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build a dataset from every mesh / point-cloud file under a folder.

    The class of a file is its first sub-folder under ``root`` (``root/chair/a.obj`` -> ``chair``;
    files directly in ``root`` get class ``unlabelled``), unless ``class_map`` gives it. Broken files
    are skipped and listed, with the reason, in ``build_report.json``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatasetFormatError: not one file could be used.
    """
    src = Path(root)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder.")
    files = _list_inputs(src)
    if not files:
        raise MeshReadError(
            f"{src}: no mesh or point-cloud files found; supported extensions: "
            f"{', '.join(sorted(set(supported_mesh_extensions()) | set(supported_point_extensions())))}."
        )
    cfg = sampling or SamplingConfig(seed=seed)
    fractions = split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    tasks = [(str(f), i, cfg) for i, f in enumerate(files)]
    with DatasetWriter(Path(out), cfg.num_points, force=force) as writer:
        for path_str, cloud, error in _parallel_map(_file_task, tasks, _default_workers(workers)):
            rel = Path(path_str).relative_to(src).as_posix()
            if cloud is None:
                logger.warning("skipped %s: %s", path_str, error)
                writer.skip(path_str, error)
            else:
                parts = rel.split("/")
                cls = (class_map or {}).get(rel) or (parts[0] if len(parts) > 1 else "unlabelled")
                writer.add(
                    rel,
                    cloud.points,
                    cloud.normals,
                    source=path_str,
                    license=license,
                    creator=creator,
                    **{"class": cls},
                )
            if progress:
                progress(1)
        info = {
            "source": {"kind": "folder", "root": str(src.resolve()), "files": len(files)},
            "sampling": cfg.to_dict(),
        }
        atomic_write_json(writer.tmp / "provenance.json", provenance(info, seed))
        path = writer.finalize(info, split_seed=seed, fractions=fractions)
    return BuildResult(path, len(writer.rows), writer.skipped)
