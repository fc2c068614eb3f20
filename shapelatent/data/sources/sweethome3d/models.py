"""Importing the models of a Sweet Home 3D library: safe extraction of each item's OBJ and MTL, geometry only."""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path

from shapelatent.data.sources.sweethome3d.catalog import Catalog, CatalogItem
from shapelatent.io.safezip import extract_zip, sanitize_obj

__all__ = ["extract_models"]

logger = logging.getLogger(__name__)

_FACE = re.compile(rb"(?:^|\n)[ \t]*f[ \t]")


def _has_faces(obj: Path) -> bool:
    """Whether an OBJ has at least one face statement (a fast byte scan, no parsing)."""
    return _FACE.search(obj.read_bytes()) is not None


def extract_models(
    catalog: Catalog, items: Sequence[CatalogItem], dest: str | os.PathLike[str]
) -> tuple[dict[int, Path], dict[int, str]]:
    """Safely extract the OBJ and the MTL files beside it for each item, geometry only.

    Textures are not extracted; the MTLs keep their colours and lose their texture statements, and
    ``mtllib`` references outside ``dest`` are removed (:func:`~shapelatent.io.safezip.sanitize_obj`).

    Args:
        catalog: the library.
        items: the items to extract.
        dest: the folder to extract into.

    Returns:
        item index -> extracted OBJ, and item index -> why its model is not usable (not in the archive,
        refused by the extraction, or an OBJ without any face statement).
    """
    root = Path(dest)
    mtls: dict[str, list[str]] = {}
    for m in catalog.members:
        if m.lower().endswith(".mtl"):
            mtls.setdefault(posixpath.dirname(m), []).append(m)
    wanted: set[str] = set()
    missing: dict[int, str] = {}
    for it in items:
        if it.model not in catalog.members:
            missing[it.index] = f"model {it.model} is not in the archive"
            continue
        wanted.add(it.model)
        wanted.update(mtls.get(posixpath.dirname(it.model), []))
    res = extract_zip(catalog.path, root, members=sorted(wanted))
    for line in res.problems:
        logger.warning("%s: %s", catalog.path, line)
    objs: dict[int, Path] = {}
    for it in items:
        if it.index in missing:
            continue
        obj = res.extracted.get(it.model)
        if obj is None:
            why = [p for p in res.problems if p.startswith((it.model, repr(it.model)))]
            missing[it.index] = f"model {it.model} not extracted: {'; '.join(why) or 'refused'}"
            continue
        for note in sanitize_obj(obj, root):
            logger.debug("%s: %s", catalog.source(it.model), note)
        if not _has_faces(obj):
            missing[it.index] = "the OBJ has no faces (only points or lines, e.g. a light marker); nothing to sample"
            continue
        objs[it.index] = obj
    return objs, missing
