"""A folder of meshes / point clouds; class from the sub-folder name or a CSV/JSON mapping."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapelatent.data.build import BuildItem, BuildOptions, BuildResult, build_items
from shapelatent.data.sources.registry import DataSource, SourceOption
from shapelatent.errors import MeshReadError
from shapelatent.io.meshes import supported_mesh_extensions, supported_point_extensions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SOURCE", "build_folder", "folder_items", "list_inputs", "load_class_map"]


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


def list_inputs(root: Path) -> list[Path]:
    """Every file under ``root`` with a mesh or point-cloud extension, sorted; symlinks are not followed."""
    exts = set(supported_mesh_extensions()) | set(supported_point_extensions())
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix.lower() in exts)


def folder_items(
    root: Path, class_map: dict[str, str] | None = None, license: str = "", creator: str = ""
) -> list[BuildItem]:
    """One item per file; class = first sub-folder (``unlabelled`` for files directly in ``root``)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder.")
    files = list_inputs(root)
    if not files:
        exts = sorted(set(supported_mesh_extensions()) | set(supported_point_extensions()))
        raise MeshReadError(f"{root}: no mesh or point-cloud files found; supported extensions: {', '.join(exts)}.")
    items = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        parts = rel.split("/")
        cls = (class_map or {}).get(rel) or (parts[0] if len(parts) > 1 else "unlabelled")
        items.append(BuildItem(id=rel, path=str(f), cls=cls, license=license, creator=creator))
    return items


def build_folder(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    class_map: dict[str, str] | None = None,
    license: str = "",
    creator: str = "",
    seed: int = 0,
    **options: Unpack[BuildOptions],
) -> BuildResult:
    """Build a dataset from every mesh / point-cloud file under a folder.

    Broken files are skipped and listed, with the reason, in ``build_report.json``.

    Args:
        root: the folder; class = first sub-folder name (``unlabelled`` for files directly in it).
        out: the dataset folder to create.
        class_map: relative path (forward slashes) -> class, overriding the sub-folder name.
        license: licence recorded for every item.
        creator: creator recorded for every item.
        seed: seeds sampling and the split.
        **options: :class:`~shapelatent.data.build.BuildOptions` (sampling, split fractions, force, workers, ...).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatasetFormatError: not one file could be used.
    """
    src = Path(root)
    items = folder_items(src, class_map, license, creator)
    source: dict[str, Any] = {"kind": "folder", "root": str(src.resolve()), "files": len(items)}
    return build_items(items, out, source=source, split_seed=seed, **options)


SOURCE = DataSource(
    name="folder",
    help="Build a dataset from every mesh (OBJ/OFF/PLY/STL/GLB/GLTF) and point file (PLY/XYZ/NPY) under PATH.",
    build=build_folder,
    options=(
        SourceOption(
            "path",
            Path,
            "Folder of meshes / point clouds; class = first sub-folder name.",
            argument=True,
            keyword="root",
        ),
        SourceOption(
            "class_map", Path | None, "CSV (file,class) or JSON {file: class} mapping.", None, convert=load_class_map
        ),
        SourceOption("license", str, "Licence recorded for every item.", ""),
        SourceOption("creator", str, "Creator recorded for every item.", ""),
    ),
)
