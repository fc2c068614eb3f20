"""Procedural chairs as a dataset (the built-in default source)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapelatent.data.build import (
    BuildResult,
    Progress,
    SamplingConfig,
    default_workers,
    parallel_map,
)
from shapelatent.data.format import DatasetWriter
from shapelatent.data.procedural import FAMILIES, chair_seed, generate_chair
from shapelatent.data.sampling import SampledCloud, sample_surface
from shapelatent.data.sources.registry import DataSource, SourceOption, split_list
from shapelatent.data.splits import check_split_method
from shapelatent.io.atomic import atomic_write_json
from shapelatent.provenance import provenance

__all__ = ["SOURCE", "build_procedural"]


@dataclass(frozen=True)
class _ChairTask:
    families: tuple[str, ...]
    cfg: SamplingConfig
    seed: int

    def __call__(self, index: int) -> tuple[str, SampledCloud, dict[str, Any]]:
        cseed = chair_seed(self.seed, index)
        chair = generate_chair(cseed, self.families[index % len(self.families)])
        cloud = sample_surface(
            chair.mesh, self.cfg.num_points, seed=self.cfg.seed + index, oversample=self.cfg.oversample
        )
        norm = self.cfg.normalization.apply(cloud.points)
        return chair.family, SampledCloud(norm.points, cloud.normals), {"chair_seed": cseed, "params": chair.params}


def build_procedural(
    out: str | os.PathLike[str],
    count: int,
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    families: Iterable[str] | None = None,
    split_fractions: dict[str, float] | None = None,
    split_method: str = "random",
    force: bool = False,
    workers: int | None = None,
    on_start: Progress | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Generate ``count`` procedural chairs and write them as a dataset.

    Args:
        out: the dataset folder to create.
        count: number of chairs (> 0); chair i has family ``families[i % len(families)]`` (balanced).
        sampling: points per shape and normalisation.
        seed: chair i is ``generate_chair(chair_seed(seed, i), family)``; also seeds the split.
        families: subset of ``shapelatent.data.procedural.FAMILIES`` (all when None).
        split_fractions: train/val/test fractions (default 0.8/0.1/0.1).
        split_method: ``random`` or ``stratified`` (per family; see :class:`~shapelatent.data.build.BuildOptions`).
        force: replace an existing dataset at ``out`` once the new one is complete.
        workers: processes used for generation and sampling (default: all cores).
        on_start: called once with ``count`` before the first shape is reported.
        progress: called with the number of shapes done since the last call.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    check_split_method(split_method)
    fams = tuple(families) if families is not None else FAMILIES
    unknown = sorted(set(fams) - set(FAMILIES))
    if unknown or not fams:
        raise ValueError(f"unknown chair families {unknown}; choose from {', '.join(FAMILIES)}")
    cfg = sampling or SamplingConfig(seed=seed)
    fractions = split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    with DatasetWriter(Path(out), cfg.num_points, force=force) as writer:
        if on_start:
            on_start(count)
        for i, (family, cloud, extra) in enumerate(
            parallel_map(_ChairTask(fams, cfg, seed), range(count), default_workers(workers))  # lazy tasks
        ):
            writer.add(
                f"chair_{i:06d}",
                cloud.points,
                cloud.normals,
                source=f"procedural:{extra['chair_seed']}",
                license="CC0-1.0",
                creator="shapelatent procedural generator",
                **{"class": family},
                **extra,
            )
            if progress:
                progress(1)
        info = {
            "source": {"kind": "procedural", "count": count, "seed": seed, "families": list(fams)},
            "sampling": cfg.to_dict(),
        }
        atomic_write_json(writer.tmp / "provenance.json", provenance(info, seed))
        path = writer.finalize(info, split_seed=seed, fractions=fractions, split_method=split_method)
    return BuildResult(path, len(writer.rows), writer.skipped)


SOURCE = DataSource(
    name="procedural",
    help="Generate procedural chairs (four_legged, stool, armchair, office, bench, sofa) as a dataset.",
    build=build_procedural,
    options=(
        SourceOption("count", int, "Number of chairs.", 1000),
        SourceOption("families", str | None, "Comma-separated subset of chair families.", None, convert=split_list),
    ),
    unit="chairs",
    seed_help="Seed for chairs, sampling and split.",
)
