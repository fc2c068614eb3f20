"""Building a dataset from Sweet Home 3D libraries: item selection, the build, ``ATTRIBUTION.md``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapelatent.data.build import BuildItem, BuildOptions, BuildResult, build_items
from shapelatent.data.sources.registry import DataSource, SourceOption, split_list
from shapelatent.data.sources.sweethome3d.catalog import Catalog, CatalogItem, find_archives, read_catalog
from shapelatent.data.sources.sweethome3d.classes import CLASSES
from shapelatent.data.sources.sweethome3d.models import extract_models
from shapelatent.io.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SOURCE", "attribution_markdown", "build_sweethome3d", "select_items"]


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def attribution_markdown(catalogs: Sequence[Catalog], items: Sequence[tuple[Catalog, CatalogItem]]) -> str:
    """``ATTRIBUTION.md``: the libraries with their licences, every CC-BY creator, and every item.

    Args:
        catalogs: the libraries.
        items: the (library, item) pairs in the dataset.
    """
    lines = [
        "# Attribution",
        "",
        "The shapes of this dataset are sampled from 3D models of Sweet Home 3D furniture libraries.",
        "Models under a CC-BY licence require attribution to their creators when you share this dataset or",
        "work derived from it; CC0 models do not, but their creators are listed too.",
        "",
        "## Libraries",
        "",
        "| library | file | sha256 | licence | licence statement |",
        "|---|---|---|---|---|",
    ]
    for c in catalogs:
        lines.append(
            f"| {_md(c.name)} (`{c.id}`, v{_md(c.version)}) | `{c.path.name}` | `{c.sha256[:16]}…` | "
            f"{_md(c.license)} | {_md(c.license_text)} |"
        )
    by_creator: dict[tuple[str, str], list[str]] = {}
    for _, it in items:
        if it.license.startswith("CC-BY"):
            by_creator.setdefault((it.creator or "unknown", it.license), []).append(it.name)
    lines += ["", "## Creators to credit (CC-BY)", ""]
    for (creator, lic), names in sorted(by_creator.items(), key=lambda kv: kv[0][0].lower()):
        lines.append(f"- **{_md(creator)}** ({_md(lic)}): {_md(', '.join(sorted(set(names))))}")
    if not by_creator:
        lines.append("None: every item is CC0.")
    lines += ["", "## Items", "", "| id | name | creator | licence | licence source |", "|---|---|---|---|---|"]
    for c, it in items:
        lines.append(
            f"| `{c.id}/{it.id}` | {_md(it.name)} | {_md(it.creator)} | {_md(it.license)} | "
            f"{'library' if it.license_source == 'library' else '`' + it.license_source + '`'} |"
        )
    return "\n".join(lines) + "\n"


def select_items(
    catalogs: Sequence[Catalog], classes: Sequence[str] | None = None, include_other: bool = False
) -> tuple[list[tuple[Catalog, CatalogItem]], dict[str, int]]:
    """The items a build keeps, and how many of each class it leaves out.

    Args:
        catalogs: the libraries.
        classes: keep these classes (None: all but ``other``); ``other`` may be named.
        include_other: also keep ``other``.

    Returns:
        (library, item) pairs in catalogue order, and class -> number of items left out.

    Raises:
        ValueError: a class name not in :data:`CLASSES` (the message lists them).
    """
    if classes is not None:
        unknown = sorted(set(classes) - set(CLASSES))
        if unknown:
            raise ValueError(f"unknown Sweet Home 3D classes {unknown}; choose from {', '.join(CLASSES)}.")
    keep = set(classes) if classes is not None else set(CLASSES) - {"other"}
    if include_other:
        keep.add("other")
    chosen = [(c, it) for c in catalogs for it in c.items if it.cls in keep]
    excluded = Counter(it.cls for c in catalogs for it in c.items if it.cls not in keep)
    return chosen, dict(sorted(excluded.items()))


def build_sweethome3d(
    archives: Sequence[str | os.PathLike[str] | Catalog],
    out: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    include_other: bool = False,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Unpack[BuildOptions],
) -> BuildResult:
    """Build a dataset from Sweet Home 3D furniture libraries.

    Each library's needed OBJ/MTL files are extracted safely (geometry only) into a work folder, sampled
    by :func:`~shapelatent.data.build.build_items` and the work folder is removed. Items whose model is
    missing, refused, unreadable or has no faces are skipped and listed in ``build_report.json`` with the
    reason. ``ATTRIBUTION.md`` (every CC-BY creator, every item with its licence) is written into the
    dataset. Shape ids are ``<library id>/<item id>``; ``metadata.csv``'s ``source`` is
    ``<archive>!<model member>`` and ``extra`` holds the library, item id, name, category, tags and the
    catalogue sizes in cm.

    Args:
        archives: ``.sh3f`` files, folders of them, or catalogues already read with :func:`read_catalog`.
        out: the dataset folder.
        classes: keep only these classes (from :data:`CLASSES`; ``other`` may be named).
        include_other: also keep items of class ``other``.
        seed: split seed (and sampling seed when ``sampling`` is None).
        cache_dir: extract into ``cache_dir/<sha256 prefix>/`` and keep it (default: a temporary folder
            beside ``out``, removed at the end).
        **options: :class:`~shapelatent.data.build.BuildOptions` (sampling, split fractions, force, workers;
            ``on_start`` and ``progress`` count the selected items, skipped ones included).

    Raises:
        ValueError: no library, an unknown class name, or the same library given twice.
        FileNotFoundError, ArchiveError: an archive is missing or unreadable.
        DatasetFormatError: no item could be built.
    """
    catalogs: list[Catalog] = []
    for a in archives:
        catalogs += [a] if isinstance(a, Catalog) else [read_catalog(p) for p in find_archives([a])]
    if not catalogs:
        raise ValueError("no Sweet Home 3D library given; pass .sh3f files or folders holding them.")
    twice = [k for k, n in Counter(c.id for c in catalogs).items() if n > 1]
    if twice:
        raise ValueError(f"libraries given more than once: {twice}; pass each .sh3f file once.")
    chosen, excluded = select_items(catalogs, classes, include_other)
    progress, on_start = options.get("progress"), options.pop("on_start", None)
    out_p = Path(out)
    out_p.parent.mkdir(parents=True, exist_ok=True)
    work = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix=f".{out_p.name}.extract-", dir=out_p.parent))
    if on_start:
        on_start(len(chosen))
    try:
        build: list[BuildItem] = []
        pre_skipped = [dict(r) for c in catalogs for r in c.rejected]
        display: dict[str, str] = {}
        for c in catalogs:
            mine = [it for cc, it in chosen if cc is c]
            objs, missing = extract_models(c, mine, work / c.sha256[:16])
            for it in mine:
                if it.index in missing:
                    pre_skipped.append({"source": c.source(it.model), "reason": missing[it.index]})
                    if progress:
                        progress(1)
                    continue
                path = str(objs[it.index])
                display[path] = c.source(it.model)
                extra: dict[str, Any] = {
                    "source": c.source(it.model),
                    "library": c.id,
                    "item_id": it.id,
                    "name": it.name,
                    "category": it.category,
                    "tags": list(it.tags),
                    "width_cm": it.width,
                    "depth_cm": it.depth,
                    "height_cm": it.height,
                    "license_source": it.license_source,
                }
                build.append(
                    BuildItem(
                        id=f"{c.id}/{it.id}",
                        path=path,
                        cls=it.cls,
                        license=it.license,
                        creator=it.creator,
                        rotation=it.rotation,
                        kind="mesh",
                        extra=extra,
                    )
                )
        source = {
            "kind": "sweethome3d",
            "archives": [{"name": c.path.name, "sha256": c.sha256} for c in catalogs],
            "libraries": [
                {"id": c.id, "name": c.name, "version": c.version, "license": c.license, "license_text": c.license_text}
                for c in catalogs
            ],
            "classes": [
                k
                for k in CLASSES
                if (k in classes if classes is not None else k != "other") or (include_other and k == "other")
            ],
            "excluded_by_class": excluded,
        }
        result = build_items(build, out_p, source=source, split_seed=seed, pre_skipped=pre_skipped, **options)
    finally:
        if not cache_dir:
            shutil.rmtree(work, ignore_errors=True)
    result.skipped = [_display(s, display, work) for s in result.skipped]
    atomic_write_json(result.path / "build_report.json", {"built": result.built, "skipped": result.skipped})
    built_ids = set(_built_ids(result.path))
    in_dataset = [(c, it) for c, it in chosen if f"{c.id}/{it.id}" in built_ids]
    atomic_write_text(result.path / "ATTRIBUTION.md", attribution_markdown(catalogs, in_dataset))
    return result


def _display(skip: dict[str, str], display: dict[str, str], work: Path) -> dict[str, str]:
    """A skip record with the temporary extraction path replaced by ``archive!member``."""
    src = display.get(skip["source"], skip["source"])
    reason = skip["reason"].replace(skip["source"], src) if src != skip["source"] else skip["reason"]
    return {"source": src, "reason": reason.replace(str(work), "<extraction folder>")}


def _built_ids(root: Path) -> list[str]:
    import csv

    with open(root / "metadata.csv", newline="", encoding="utf-8") as fh:
        return [row["id"] for row in csv.DictReader(fh)]


SOURCE = DataSource(
    name="sweethome3d",
    help="Build a dataset from Sweet Home 3D furniture libraries (.sh3f), one shape per catalogue item.\n\n"
    "Models are extracted safely (geometry only), rotated by their modelRotation and classed from their\n"
    "English names; ATTRIBUTION.md in the dataset lists every creator and licence.",
    build=build_sweethome3d,
    options=(
        SourceOption(
            "paths",
            list[Path],
            "Sweet Home 3D furniture libraries (.sh3f), or folders holding them.",
            argument=True,
            keyword="archives",
            convert=lambda paths: [read_catalog(a) for a in find_archives(paths)],
        ),
        SourceOption(
            "classes",
            str | None,
            "Comma-separated subset of: chair, stool, armchair_sofa, bench, table, bed, lamp, cabinet_shelf, "
            "plant, sanitary, appliance, other (default: all but other).",
            None,
            convert=split_list,
        ),
        SourceOption(
            "include_other",
            bool,
            "Also keep items of class 'other' (vehicles, people, objects).",
            False,
            flags=("--include-other",),
        ),
    ),
)
