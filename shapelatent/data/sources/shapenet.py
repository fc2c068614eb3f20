"""ShapeNetCore (v2, and v1) as a dataset.

Layout (as unpacked from the ShapeNetCore release; the user obtains it under the ShapeNet terms)::

    <root>/taxonomy.json                                   optional: synset id -> name
    <root>/<synset>/<model_id>/models/model_normalized.obj  ShapeNetCore v2
    <root>/<synset>/<model_id>/model.obj                    ShapeNetCore v1 (also accepted)

Orientation, as documented in the README of each release: v2 models are +Y up with the front facing -Z,
v1 models +Y up with the front facing +X. shapelatent's convention is +Y up, front +Z, so by default v2
models are turned 180 degrees about Y and v1 models -90 degrees about Y (``front="auto"``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapelatent.data.build import MAX_FACES_OPTION, BuildItem, BuildOptions, BuildResult, build_items
from shapelatent.data.sources.registry import DataSource, SourceOption, split_list

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

__all__ = [
    "FRONTS",
    "FRONT_OPTION",
    "SHAPENET_CREATOR",
    "SHAPENET_LICENSE",
    "SHAPENET_SYNSETS",
    "SOURCE",
    "ShapeNetItems",
    "build_shapenet",
    "front_rotation",
    "load_split_csv",
    "load_taxonomy",
    "shapenet_items",
]

SHAPENET_LICENSE = "ShapeNet terms of use (non-commercial research)"
SHAPENET_CREATOR = "ShapeNet"

#: The 55 ShapeNetCore v2 synsets with short names (the labels PyTorch3D uses for ShapeNetCore v2), plus the
#: two synsets only v1 has (02834778 bicycle, 02858304 boat). Used when a root has no ``taxonomy.json``.
SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02747177": "trash bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02834778": "bicycle",
    "02843684": "birdhouse",
    "02858304": "boat",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "display",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "loudspeaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorbike",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "flowerpot",
    "04004475": "printer",
    "04074963": "remote",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "watercraft",
    "04554684": "washer",
}

#: Accepted values for the source's front axis; "auto" picks the documented one per layout.
FRONTS = ("auto", "+z", "-z", "+x", "-x")
#: The ``--front`` option of the ShapeNet-derived sources.
FRONT_OPTION = SourceOption(
    "front",
    str,
    "Front axis of the source models: auto (as documented per release) | +z | -z | +x | -x. "
    "Models are turned about +Y so that it becomes +Z.",
    "auto",
)
#: Row-major rotations about +Y that turn the given front axis into +Z (up stays +Y).
_TO_FRONT_Z: dict[str, tuple[float, ...] | None] = {
    "+z": None,
    "-z": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0),  # 180 degrees about Y
    "+x": (0.0, 0.0, -1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0),  # -90 degrees about Y
    "-x": (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0),  # +90 degrees about Y
}
#: Front axis of each layout, from the ShapeNetCore README of that release.
_LAYOUT_FRONT = {"v2": "-z", "v1": "+x"}
_LAYOUT_FILES = (("v2", "models/model_normalized.obj"), ("v1", "model.obj"))
_SYNSET_RE = re.compile(r"^\d{8}$")
_SPLITS = {"train": "train", "val": "val", "test": "test"}


def front_rotation(front: str) -> tuple[float, ...] | None:
    """The rotation about +Y that turns a source front axis into shapelatent's +Z front.

    Args:
        front: ``+z``, ``-z``, ``+x`` or ``-x``.

    Returns:
        Row-major 3x3 as 9 floats, or None for ``+z`` (nothing to do).
    """
    if front not in _TO_FRONT_Z:
        raise ValueError(f"front must be one of {', '.join(_TO_FRONT_Z)}; got {front!r}")
    return _TO_FRONT_Z[front]


def load_taxonomy(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ShapeNet ``taxonomy.json``: a list of ``{"synsetId", "name", "children", ...}``.

    Returns:
        synset id -> the first comma-separated name (``"airplane,aeroplane,plane"`` -> ``"airplane"``).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such taxonomy file.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid JSON ({exc}); expected ShapeNet's taxonomy.json.") from exc
    if not isinstance(data, list):
        raise ValueError(f"{p}: expected a JSON list of {{'synsetId', 'name', ...}} entries (ShapeNet taxonomy.json).")
    names: dict[str, str] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "synsetId" not in entry or "name" not in entry:
            raise ValueError(f"{p}: entry {i} lacks 'synsetId' or 'name'; expected ShapeNet's taxonomy.json.")
        name = str(entry["name"]).split(",")[0].strip()
        names[str(entry["synsetId"]).zfill(8)] = name or str(entry["synsetId"])
    return names


def load_split_csv(path: str | os.PathLike[str]) -> dict[tuple[str, str], str]:
    """Read an official ShapeNet split CSV (``id,synsetId,subSynsetId,modelId,split``, e.g. ``all.csv``).

    Returns:
        ``(synset id zero-padded to 8 digits, model id) -> "train" | "val" | "test"``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such split CSV.")
    out: dict[tuple[str, str], str] = {}
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"synsetId", "modelId", "split"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ValueError(
                f"{p}: a split CSV needs the columns id,synsetId,subSynsetId,modelId,split "
                f"(as in ShapeNet's all.csv); found {reader.fieldnames}."
            )
        for row in reader:
            split = _SPLITS.get((row["split"] or "").strip().lower())
            if split is None:
                raise ValueError(
                    f"{p}: line {reader.line_num}: unknown split {row['split']!r}; expected train, val or test."
                )
            out[(row["synsetId"].strip().zfill(8), row["modelId"].strip())] = split
    return out


@dataclass
class ShapeNetItems:
    """What :func:`shapenet_items` found.

    Attributes:
        items: one :class:`BuildItem` per model, sorted by synset then model id.
        skipped: model folders without a mesh (``{"source", "reason"}``), for the build report.
        synsets: synset id -> class name, for the synsets used.
        layouts: how many models of each layout (``v2``, ``v1``).
    """

    items: list[BuildItem]
    skipped: list[dict[str, str]] = field(default_factory=list)
    synsets: dict[str, str] = field(default_factory=dict)
    layouts: dict[str, int] = field(default_factory=dict)


def _find_synsets(root: Path) -> list[str]:
    found = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and _SYNSET_RE.match(child.name):
            found.append(child.name)
        elif child.is_dir():
            logger.info("ignoring %s: not a synset folder (8-digit WordNet offset)", child)
    return found


def _model_file(model_dir: Path) -> tuple[str, Path] | None:
    """``(layout, mesh path)`` of a model folder, v2 first; None when it has neither file."""
    for layout, rel in _LAYOUT_FILES:
        if (model_dir / rel).is_file():
            return layout, model_dir / rel
    return None


def _resolve(requested: Iterable[str], available: dict[str, str], root: Path) -> list[str]:
    by_name: dict[str, str] = {}
    for sid, name in available.items():
        by_name.setdefault(name.lower(), sid)
    chosen, unknown = [], []
    for s in requested:
        key = s.strip()
        if key in available:
            chosen.append(key)
        elif key.lower() in by_name:
            chosen.append(by_name[key.lower()])
        else:
            unknown.append(key)
    if unknown:
        listing = ", ".join(f"{sid} ({name})" for sid, name in sorted(available.items()))
        raise ValueError(f"{root}: unknown synsets {unknown}; available here: {listing}.")
    return sorted(set(chosen))


def shapenet_items(
    root: str | os.PathLike[str],
    *,
    synsets: Sequence[str] | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    front: str = "auto",
) -> ShapeNetItems:
    """List the models of a ShapeNetCore folder as build items.

    Args:
        root: the ShapeNetCore folder (holding the synset folders and, optionally, ``taxonomy.json``).
        synsets: restrict to these synsets, by id (``03001627``) or class name (``chair``); None: all.
        split_csv: official split CSV (columns ``id,synsetId,subSynsetId,modelId,split``); models get its
            split, and models it does not list are skipped (reported). None: the build splits them seeded.
        front: the models' front axis (``+z``, ``-z``, ``+x``, ``-x``), or ``auto``: ``-z`` for v2 and ``+x``
            for v1 files, as the ShapeNetCore READMEs document. Models are turned about +Y so that the front
            becomes +Z.

    Raises:
        FileNotFoundError: ``root`` (or the split CSV) does not exist.
        ValueError: no synset folders, an unknown synset, a bad ``front``, a malformed taxonomy or split CSV.
    """
    src = Path(root)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder; expected a ShapeNetCore folder with synset sub-folders.")
    if front not in FRONTS:
        raise ValueError(f"front must be one of {', '.join(FRONTS)}; got {front!r}")
    present = _find_synsets(src)
    if not present:
        raise ValueError(
            f"{src}: no synset folders (8-digit WordNet offsets such as 03001627) found; expected "
            "<root>/<synset>/<model_id>/models/model_normalized.obj (ShapeNetCore v2)."
        )
    taxonomy_path = src / "taxonomy.json"
    taxonomy = load_taxonomy(taxonomy_path) if taxonomy_path.exists() else {}
    names = {sid: taxonomy.get(sid) or SHAPENET_SYNSETS.get(sid) or sid for sid in present}
    chosen = _resolve(synsets, names, src) if synsets else present
    splits = load_split_csv(split_csv) if split_csv is not None else None

    result = ShapeNetItems(items=[], synsets={sid: names[sid] for sid in chosen})
    layouts: Counter[str] = Counter()
    for sid in chosen:
        for model_dir in sorted(d for d in (src / sid).iterdir() if d.is_dir()):
            found = _model_file(model_dir)
            if found is None:
                result.skipped.append(
                    {
                        "source": str(model_dir),
                        "reason": "no models/model_normalized.obj (ShapeNetCore v2) or model.obj (v1) in the folder",
                    }
                )
                continue
            layout, mesh = found
            split = None
            if splits is not None:
                split = splits.get((sid, model_dir.name))
                if split is None:
                    result.skipped.append({"source": str(mesh), "reason": f"not listed in the split CSV {split_csv}"})
                    continue
            layouts[layout] += 1
            result.items.append(
                BuildItem(
                    id=f"{sid}/{model_dir.name}",
                    path=str(mesh),
                    cls=names[sid],
                    split=split,
                    license=SHAPENET_LICENSE,
                    creator=SHAPENET_CREATOR,
                    rotation=front_rotation(_LAYOUT_FRONT[layout] if front == "auto" else front),
                    kind="mesh",
                    extra={"synset": sid, "model_id": model_dir.name, "layout": layout},
                )
            )
    result.layouts = dict(layouts)
    return result


def build_shapenet(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    synsets: Sequence[str] | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    front: str = "auto",
    seed: int = 0,
    **options: Unpack[BuildOptions],
) -> BuildResult:
    """Build a dataset from a ShapeNetCore folder (see :func:`shapenet_items` for the arguments).

    Args:
        seed: seeds sampling and the split of models without an official one.
        **options: :class:`~shapelatent.data.build.BuildOptions` (sampling, split fractions, max faces, ...).

    Raises:
        FileNotFoundError, ValueError: see :func:`shapenet_items`.
        OutputExistsError: ``out`` exists and ``force`` is False.
        DatasetFormatError: no model could be built.
    """
    listing = shapenet_items(root, synsets=synsets, split_csv=split_csv, front=front)
    source: dict[str, Any] = {
        "kind": "shapenet",
        "root": str(Path(root).resolve()),
        "synsets": listing.synsets,
        "layouts": listing.layouts,
        "front": front,
        "split_csv": str(Path(split_csv).resolve()) if split_csv is not None else None,
        "license": SHAPENET_LICENSE,
    }
    return build_items(listing.items, out, source=source, split_seed=seed, pre_skipped=listing.skipped, **options)


SOURCE = DataSource(
    name="shapenet",
    help="Build a dataset from ShapeNetCore v2 (or v1); the data is yours to obtain under the ShapeNet terms.",
    build=build_shapenet,
    options=(
        SourceOption("root", Path, "ShapeNetCore folder: <root>/<synset>/<model_id>/models/...", argument=True),
        SourceOption(
            "synsets",
            str | None,
            "Comma-separated synset ids or names, e.g. 03001627,04379243 or chair,table.",
            None,
            convert=split_list,
        ),
        SourceOption(
            "split_csv", Path | None, "Official split CSV (id,synsetId,subSynsetId,modelId,split), e.g. all.csv.", None
        ),
        FRONT_OPTION,
        MAX_FACES_OPTION,
    ),
    seed_help="Seed for sampling and the seeded split.",
)
