"""Pre-sampled ShapeNet point-cloud sets as datasets (no re-sampling: each cloud is sub-sampled to P).

Two layouts::

    latent_3d_points   <root>/<synset>/<model_id>.ply              PLY vertices x y z, no faces (2048 each)
    pc15k              <root>/<synset>/{train,val,test}/<model_id>.npy  float arrays (15000, 3), as PointFlow uses

The class is the synset's name (``taxonomy.json`` in ``root`` when present, else the built-in
:data:`~shapelatent.data.sources.shapenet.SHAPENET_SYNSETS`, else the synset id). PC15k keeps its split;
latent_3d_points has none, so the build splits it seeded. Both sets are +Y up. Their front axis follows the
ShapeNetCore release they were sampled from: latent_3d_points has the 57 synsets of ShapeNetCore v1
(front +X), ShapeNetCore.v2.PC15k is from v2 (front -Z); ``front="auto"`` turns them to shapelatent's +Z.
Neither set documents its orientation itself: pass ``front`` explicitly if your copy differs.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapelatent.data.build import BuildItem, BuildOptions, BuildResult, build_items
from shapelatent.data.sources.registry import DataSource, SourceOption, split_list
from shapelatent.data.sources.shapenet import (
    FRONT_OPTION,
    FRONTS,
    SHAPENET_CREATOR,
    SHAPENET_LICENSE,
    SHAPENET_SYNSETS,
    front_rotation,
    load_taxonomy,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

__all__ = ["POINTSET_LAYOUTS", "SOURCE", "PointSetItems", "build_pointset", "detect_layout", "pointset_items"]

POINTSET_LAYOUTS = ("latent_3d_points", "pc15k")
_FILE_EXT = {"latent_3d_points": ".ply", "pc15k": ".npy"}
_AUTO_FRONT = {"latent_3d_points": "+x", "pc15k": "-z"}
_PC15K_SPLITS = ("train", "val", "test")


@dataclass
class PointSetItems:
    """What :func:`pointset_items` found.

    Attributes:
        items: one :class:`BuildItem` (``kind="points"``) per point file.
        layout: ``latent_3d_points`` or ``pc15k``.
        synsets: synset folder -> class name, for the synsets used.
        counts: split name (``""`` for seeded) -> number of items.
    """

    items: list[BuildItem]
    layout: str
    synsets: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _synset_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def detect_layout(root: str | os.PathLike[str]) -> str:
    """``pc15k`` when a synset folder holds ``train``/``val``/``test`` folders, ``latent_3d_points`` when it
    holds ``.ply`` files.

    Raises:
        ValueError: neither layout is recognisable.
    """
    src = Path(root)
    for d in _synset_dirs(src):
        if any((d / s).is_dir() for s in _PC15K_SPLITS):
            return "pc15k"
        if any(f.suffix.lower() == ".ply" for f in d.iterdir()):
            return "latent_3d_points"
    raise ValueError(
        f"{src}: cannot tell the layout; expected <root>/<synset>/<model_id>.ply (latent_3d_points) or "
        "<root>/<synset>/{train,val,test}/<model_id>.npy (pc15k). Pass layout explicitly."
    )


def _files(layout: str, sdir: Path) -> list[tuple[str | None, Path]]:
    ext = _FILE_EXT[layout]
    if layout == "latent_3d_points":
        return [(None, f) for f in sorted(sdir.iterdir()) if f.is_file() and f.suffix.lower() == ext]
    out: list[tuple[str | None, Path]] = []
    for split in _PC15K_SPLITS:
        if (sdir / split).is_dir():
            out.extend((split, f) for f in sorted((sdir / split).iterdir()) if f.is_file() and f.suffix.lower() == ext)
    return out


def pointset_items(
    root: str | os.PathLike[str],
    *,
    layout: str = "auto",
    synsets: Sequence[str] | None = None,
    front: str = "auto",
) -> PointSetItems:
    """List a pre-sampled point-cloud set as build items.

    Args:
        root: the set's folder (one sub-folder per synset).
        layout: ``latent_3d_points``, ``pc15k`` or ``auto`` (:func:`detect_layout`).
        synsets: restrict to these synset folders, by id or class name; None: all.
        front: the clouds' front axis (``+z``, ``-z``, ``+x``, ``-x``) or ``auto`` (``+x`` for
            latent_3d_points, ``-z`` for pc15k); clouds are turned about +Y so that the front becomes +Z.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: unknown layout/front/synset, or no point files in the layout's places.
    """
    src = Path(root)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder; expected one sub-folder per ShapeNet synset.")
    if layout not in (*POINTSET_LAYOUTS, "auto"):
        raise ValueError(f"layout must be one of auto, {', '.join(POINTSET_LAYOUTS)}; got {layout!r}")
    if front not in FRONTS:
        raise ValueError(f"front must be one of {', '.join(FRONTS)}; got {front!r}")
    kind = detect_layout(src) if layout == "auto" else layout
    rotation = front_rotation(_AUTO_FRONT[kind] if front == "auto" else front)
    taxonomy_path = src / "taxonomy.json"
    taxonomy = load_taxonomy(taxonomy_path) if taxonomy_path.exists() else {}
    dirs = _synset_dirs(src)
    names = {d.name: taxonomy.get(d.name) or SHAPENET_SYNSETS.get(d.name) or d.name for d in dirs}
    if synsets:
        by_name = {n.lower(): s for s, n in names.items()}
        picked = {s if s in names else by_name.get(s.lower(), "") for s in synsets}
        unknown = [s for s in synsets if s not in names and s.lower() not in by_name]
        if unknown:
            listing = ", ".join(f"{s} ({n})" for s, n in sorted(names.items()))
            raise ValueError(f"{src}: unknown synsets {unknown}; available here: {listing}.")
        dirs = [d for d in dirs if d.name in picked]

    items: list[BuildItem] = []
    for d in dirs:
        for split, f in _files(kind, d):
            items.append(
                BuildItem(
                    id=f"{d.name}/{f.stem}",
                    path=str(f),
                    cls=names[d.name],
                    split=split,
                    license=SHAPENET_LICENSE,
                    creator=SHAPENET_CREATOR,
                    rotation=rotation,
                    kind="points",
                    extra={"synset": d.name, "model_id": f.stem, "pointset": kind},
                )
            )
    if not items:
        where = "<synset>/<model_id>.ply" if kind == "latent_3d_points" else "<synset>/{train,val,test}/<model_id>.npy"
        raise ValueError(f"{src}: no point files found at {where} (layout {kind}).")
    counts = Counter(it.split or "" for it in items)
    used = {d.name: names[d.name] for d in dirs}
    return PointSetItems(items=items, layout=kind, synsets=used, counts=dict(sorted(counts.items())))


def build_pointset(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    layout: str = "auto",
    synsets: Sequence[str] | None = None,
    front: str = "auto",
    seed: int = 0,
    **options: Unpack[BuildOptions],
) -> BuildResult:
    """Build a dataset from a pre-sampled point-cloud set (see :func:`pointset_items` for the listing).

    Each cloud is sub-sampled to P points (seeded; without replacement when it has at least P) and
    normalised; normals are estimated by PCA (unoriented) since neither set stores any.

    Args:
        seed: seeds the sub-sampling and, for latent_3d_points, the split.
        **options: :class:`~shapelatent.data.build.BuildOptions` (sampling, split fractions, force, workers, ...).

    Raises:
        FileNotFoundError, ValueError: see :func:`pointset_items`.
        OutputExistsError: ``out`` exists and ``force`` is False.
        DatasetFormatError: no cloud could be used.
    """
    listing = pointset_items(root, layout=layout, synsets=synsets, front=front)
    source: dict[str, Any] = {
        "kind": "pointset",
        "layout": listing.layout,
        "root": str(Path(root).resolve()),
        "synsets": listing.synsets,
        "front": front,
        "split": "official (pc15k)" if listing.layout == "pc15k" else "seeded",
        "license": SHAPENET_LICENSE,
    }
    return build_items(listing.items, out, source=source, split_seed=seed, **options)


SOURCE = DataSource(
    name="pointset",
    help="Build a dataset from pre-sampled point clouds (latent_3d_points PLYs or PointFlow's PC15k), no re-sampling.",
    build=build_pointset,
    options=(
        SourceOption("root", Path, "Pre-sampled ShapeNet point clouds, one folder per synset.", argument=True),
        SourceOption(
            "layout", str, "auto | latent_3d_points (<synset>/<id>.ply) | pc15k (<synset>/<split>/<id>.npy).", "auto"
        ),
        SourceOption("synsets", str | None, "Comma-separated synset ids or names.", None, convert=split_list),
        FRONT_OPTION,
    ),
    unit="clouds",
    seed_help="Seed for sampling and the seeded split.",
    oversample=False,
)
