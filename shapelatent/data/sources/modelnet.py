"""ModelNet10 / ModelNet40 (Princeton) as a dataset, keeping the official train/test split.

Layout (as unpacked from ModelNet10.zip / ModelNet40.zip)::

    <root>/<class>/train/<class>_NNNN.off
    <root>/<class>/test/<class>_NNNN.off

OFF files are read with :func:`shapelatent.io.off.read_off`, which accepts the malformed ``OFFV F E``
headers many ModelNet files have. ModelNet models are +Z up with arbitrary scale; by default (``up="z"``)
they are turned -90 degrees about X so that +Z becomes shapelatent's +Y up (and -Y becomes +Z, the front).
macOS archive debris (``__MACOSX/``, ``._*`` files, hidden folders) is ignored.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shapelatent.data.build import MAX_FACES_OPTION, BuildItem, BuildOptions, BuildResult, build_items
from shapelatent.data.sources.registry import DataSource, SourceOption, split_list

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

__all__ = [
    "MODELNET_CREATOR",
    "MODELNET_LICENSE",
    "SOURCE",
    "UP_AXES",
    "ModelNetItems",
    "build_modelnet",
    "modelnet_items",
    "up_rotation",
]

MODELNET_LICENSE = "Princeton ModelNet (academic research use only)"
MODELNET_CREATOR = "Princeton ModelNet"
OFFICIAL_SPLITS = ("train", "test")
UP_AXES = ("z", "y")
#: Row-major rotations that turn the source's up axis into +Y.
_TO_Y_UP: dict[str, tuple[float, ...] | None] = {
    "z": (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0),  # -90 degrees about X: (x, y, z) -> (x, z, -y)
    "y": None,
}


def up_rotation(up: str) -> tuple[float, ...] | None:
    """Row-major 3x3 (9 floats) turning the source up axis (``z`` or ``y``) into +Y; None for ``y``."""
    if up not in _TO_Y_UP:
        raise ValueError(f"up must be one of {', '.join(UP_AXES)}; got {up!r}")
    return _TO_Y_UP[up]


@dataclass
class ModelNetItems:
    """What :func:`modelnet_items` found.

    Attributes:
        items: one :class:`BuildItem` per OFF file, split ``train``/``val``/``test`` fixed.
        classes: the classes used, sorted.
        counts: split name -> number of items.
    """

    items: list[BuildItem]
    classes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _debris(path: Path) -> bool:
    return path.name.startswith(".") or path.name.startswith("__MACOSX")


def _class_dirs(root: Path) -> list[Path]:
    out = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or _debris(child):
            continue
        if any((child / s).is_dir() for s in OFFICIAL_SPLITS):
            out.append(child)
        else:
            logger.info("ignoring %s: no train/ or test/ folder in it", child)
    return out


def modelnet_items(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    up: str = "z",
    val_fraction: float = 0.0,
    seed: int = 0,
) -> ModelNetItems:
    """List a ModelNet10/40 folder as build items with the official split.

    Args:
        root: the ModelNet folder (holding one folder per class).
        classes: restrict to these class folder names; None: all.
        up: the models' up axis, ``z`` (ModelNet's, the default) or ``y`` (already converted data).
        val_fraction: carve this fraction of each class's official train models into ``val`` (seeded by
            ``seed``, 0 <= f < 1); the official test split is never touched.
        seed: seeds the val carve-out.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no class folders with train/test, an unknown class, a bad ``up`` or ``val_fraction``,
            or two files that would get the same id.
    """
    src = Path(root)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder; expected a ModelNet folder with one folder per class.")
    rotation = up_rotation(up)
    if isinstance(val_fraction, bool) or not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction!r}")
    dirs = _class_dirs(src)
    if not dirs:
        raise ValueError(
            f"{src}: no class folders with train/ or test/ inside; expected <root>/<class>/train/<class>_0001.off "
            "(the ModelNet10/ModelNet40 layout)."
        )
    available = [d.name for d in dirs]
    if classes:
        unknown = sorted(set(classes) - set(available))
        if unknown:
            raise ValueError(f"{src}: unknown classes {unknown}; available here: {', '.join(available)}.")
        dirs = [d for d in dirs if d.name in set(classes)]

    items: list[BuildItem] = []
    for cdir in dirs:
        per_split: dict[str, list[Path]] = {}
        for split in OFFICIAL_SPLITS:
            sdir = cdir / split
            files = (
                sorted(f for f in sdir.glob("*") if f.suffix.lower() == ".off" and f.is_file() and not _debris(f))
                if sdir.is_dir()
                else []
            )
            per_split[split] = files
        train = per_split["train"]
        n_val = round(float(val_fraction) * len(train))
        rng = np.random.default_rng([seed, zlib.crc32(cdir.name.encode())])  # per class: stable under --classes
        val_idx = set(rng.permutation(len(train))[:n_val].tolist()) if n_val else set()
        for split, files in per_split.items():
            for i, f in enumerate(files):
                final = "val" if split == "train" and i in val_idx else split
                items.append(
                    BuildItem(
                        id=f"{cdir.name}/{f.stem}",
                        path=str(f),
                        cls=cdir.name,
                        split=final,
                        license=MODELNET_LICENSE,
                        creator=MODELNET_CREATOR,
                        rotation=rotation,
                        kind="mesh",
                        extra={"official_split": split},
                    )
                )
    dupes = [k for k, v in Counter(it.id for it in items).items() if v > 1]
    if dupes:
        raise ValueError(
            f"{src}: the same file name appears in both train/ and test/ for {dupes[:5]}; ids must be unique."
        )
    counts = Counter(it.split or "" for it in items)
    return ModelNetItems(items=items, classes=[d.name for d in dirs], counts=dict(sorted(counts.items())))


def build_modelnet(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    up: str = "z",
    val_fraction: float = 0.0,
    seed: int = 0,
    **options: Unpack[BuildOptions],
) -> BuildResult:
    """Build a dataset from a ModelNet10/40 folder (see :func:`modelnet_items` for the listing arguments).

    Args:
        seed: seeds sampling and the val carve-out.
        **options: :class:`~shapelatent.data.build.BuildOptions` (sampling, max faces, force, workers, ...).

    Raises:
        FileNotFoundError, ValueError: see :func:`modelnet_items`.
        OutputExistsError: ``out`` exists and ``force`` is False.
        DatasetFormatError: no model could be built.
    """
    listing = modelnet_items(root, classes=classes, up=up, val_fraction=val_fraction, seed=seed)
    source: dict[str, Any] = {
        "kind": "modelnet",
        "root": str(Path(root).resolve()),
        "classes": listing.classes,
        "up": up,
        "val_fraction": val_fraction,
        "split": "official train/test" + (f", val carved from train (seed {seed})" if val_fraction else ""),
        "license": MODELNET_LICENSE,
    }
    return build_items(listing.items, out, source=source, split_seed=seed, **options)


SOURCE = DataSource(
    name="modelnet",
    help="Build a dataset from ModelNet10 or ModelNet40, keeping the official train/test split.",
    build=build_modelnet,
    options=(
        SourceOption("root", Path, "ModelNet10/40 folder: <root>/<class>/{train,test}/<class>_NNNN.off", argument=True),
        SourceOption("classes", str | None, "Comma-separated subset of class folders.", None, convert=split_list),
        SourceOption("up", str, "Up axis of the models: z (ModelNet's) | y.", "z"),
        SourceOption(
            "val_fraction", float, "Fraction of each class's official train models moved to val (seeded).", 0.0
        ),
        MAX_FACES_OPTION,
    ),
    seed_help="Seed for sampling and the seeded split.",
)
