"""Parsing a Sweet Home 3D furniture library (``.sh3f``): its catalogue, items and licences; nothing is extracted.

A ``.sh3f`` file is a zip archive holding ``PluginFurnitureCatalog.properties`` (a Java properties file:
library keys ``id``, ``name``, ``description``, ``version``, ``license``, ``provider`` and, per item ``N``,
``id#N``, ``name#N``, ``category#N``, ``tags#N``, ``model#N``, ``width#N``/``depth#N``/``height#N`` in
centimetres, ``creator#N`` and sometimes ``modelRotation#N``) and one folder per model: an OBJ with its
MTL and textures, and for Blend Swap models a licence file (:mod:`.licenses`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shapelatent.data.sources.sweethome3d.classes import classify
from shapelatent.data.sources.sweethome3d.licenses import license_from_text
from shapelatent.errors import ArchiveError
from shapelatent.io.javaprops import read_properties

__all__ = ["CATALOG_MEMBER", "Catalog", "CatalogItem", "find_archives", "read_catalog"]

logger = logging.getLogger(__name__)

CATALOG_MEMBER = "PluginFurnitureCatalog.properties"


@dataclass(frozen=True)
class CatalogItem:
    """One piece of furniture of a library.

    Attributes:
        index: its ``N`` in the catalogue keys (``name#N``).
        id: the catalogue's ``id#N`` (e.g. ``Blend Swap CC-0#deckChair``).
        name: English name.
        category: English category (``Living room``, ``Lights``, ...).
        tags: the tags.
        model: the OBJ's member name in the archive (no leading slash).
        rotation: ``modelRotation`` as 9 row-major numbers (v' = M v), or None.
        creator: the model's author.
        width: X size in cm after rotation, as the catalogue states it (None if missing).
        depth: Z size in cm.
        height: Y size in cm.
        license: SPDX-like licence id.
        license_source: ``library`` or the member name of the item's own licence file.
        cls: the class from :func:`classify`.
    """

    index: int
    id: str
    name: str
    category: str
    tags: tuple[str, ...]
    model: str
    rotation: tuple[float, ...] | None
    creator: str
    width: float | None
    depth: float | None
    height: float | None
    license: str
    license_source: str
    cls: str


@dataclass
class Catalog:
    """A Sweet Home 3D furniture library.

    Attributes:
        path: the ``.sh3f`` file.
        sha256: its SHA-256 (hex).
        id, name, description, version, provider: the library keys.
        license_text: the library's ``license`` value as written.
        license: its SPDX-like id (or ``license_text`` when not recognised).
        items: the usable items, by index.
        rejected: catalogue entries that are not usable, as ``{"source", "reason"}``.
        problems: other remarks (licence files not understood, duplicate ids).
        members: every member name of the archive.
    """

    path: Path
    sha256: str
    id: str
    name: str
    description: str
    version: str
    provider: str
    license_text: str
    license: str
    items: list[CatalogItem] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    members: frozenset[str] = frozenset()

    def source(self, member: str) -> str:
        """How a member of this archive is named in reports: ``archive.sh3f!member``."""
        return f"{self.path.name}!{member}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _license_files(members: Iterable[str]) -> dict[str, list[str]]:
    """Folder -> licence files in it (not at the archive root, where the library's LICENSE.TXT is)."""
    out: dict[str, list[str]] = {}
    for m in members:
        folder, base = posixpath.split(m)
        if folder and "licen" in base.lower() and base.lower().endswith((".txt", ".html", ".htm")):
            out.setdefault(folder, []).append(m)
    return out


def read_catalog(sh3f_path: str | os.PathLike[str]) -> Catalog:
    """Read the catalogue of a ``.sh3f`` library (nothing is extracted).

    Args:
        sh3f_path: the library file.

    Returns:
        :class:`Catalog` with one :class:`CatalogItem` per usable entry (``index >= 1`` with a name and a
        model); unusable entries are listed in ``rejected`` with the reason.

    Raises:
        FileNotFoundError: no such file.
        ArchiveError: not a zip archive, truncated, or without ``PluginFurnitureCatalog.properties``.
        ValueError: the properties file has a malformed ``\\uXXXX`` escape.
    """
    path = Path(sh3f_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Sweet Home 3D library (.sh3f file).")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a Sweet Home 3D library (not a readable zip archive: {exc}).") from exc
    with zf:
        members = frozenset(zf.namelist())
        if CATALOG_MEMBER not in members:
            raise ArchiveError(
                f"{path}: no {CATALOG_MEMBER} in the archive; is it a furniture library (.sh3f) and not a "
                "home (.sh3d) or textures library (.sh3t)?"
            )
        try:
            props = read_properties(zf.read(CATALOG_MEMBER), f"{path}!{CATALOG_MEMBER}")
            lic_texts = {
                m: zf.read(m).decode("utf-8", "replace") for files in _license_files(members).values() for m in files
            }
            root_license = zf.read("LICENSE.TXT").decode("utf-8", "replace") if "LICENSE.TXT" in members else ""
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ArchiveError(f"{path}: corrupt or truncated archive ({exc}); download it again.") from exc
    license_text = props.get("license", "")
    from_file, from_key = license_from_text(root_license), license_from_text(license_text)
    lib_license = from_file or from_key or license_text or "unknown"
    problems = []
    if from_file and from_key and from_file != from_key:
        lib_license = from_key if from_file == "CC0-1.0" else from_file  # the stricter one
        problems.append(
            f"{path}: LICENSE.TXT says {from_file}, the catalogue's license key {from_key}; using {lib_license}"
        )
        logger.warning(problems[-1])
    cat = Catalog(
        path=path,
        sha256=_sha256(path),
        id=props.get("id", path.stem),
        name=props.get("name", path.stem),
        description=props.get("description", ""),
        version=props.get("version", ""),
        provider=props.get("provider", ""),
        license_text=license_text,
        license=lib_license,
        members=members,
        problems=problems,
    )
    fields: dict[int, dict[str, str]] = {}
    for key, value in props.items():
        m = re.fullmatch(r"(.+)#(-?\d+)", key)
        if m:
            fields.setdefault(int(m.group(2)), {})[m.group(1)] = value
    lic_by_folder = _license_files(members)
    seen: Counter[str] = Counter()
    for index in sorted(fields):
        f = fields[index]
        where = f"{path.name}!{CATALOG_MEMBER} item #{index}"
        if index <= 0:
            logger.debug("%s: ignored (indices start at 1): %s", where, sorted(f))
            continue
        if not f.get("name") or not f.get("model"):
            cat.rejected.append({"source": where, "reason": "no name#N or model#N key; not a furniture item"})
            continue
        model = f["model"].lstrip("/")
        if "://" in f["model"] or not model:
            cat.rejected.append({"source": where, "reason": f"model {f['model']!r} is not a path inside the archive"})
            continue
        rotation = None
        if f.get("modelRotation"):
            values = f["modelRotation"].split()
            if len(values) != 9 or any(_float(v) is None for v in values):
                cat.rejected.append(
                    {"source": where, "reason": f"modelRotation {f['modelRotation']!r} is not 9 numbers"}
                )
                continue
            rotation = tuple(float(v) for v in values)
        item_id = f.get("id") or f"{cat.id}#{index}"
        seen[item_id] += 1
        if seen[item_id] > 1:
            cat.problems.append(f"{where}: id {item_id!r} is used twice; this one is {item_id}@{index}")
            item_id = f"{item_id}@{index}"
        license, license_source = lib_license, "library"
        files = lic_by_folder.get(posixpath.dirname(model), [])
        found = {m: license_from_text(lic_texts[m]) for m in files}
        known = {v for v in found.values() if v}
        if len(known) == 1:
            license = known.pop()
            license_source = next(m for m, v in found.items() if v)
        elif files:
            msg = (
                f"{where}: licence file(s) {files} not understood ({found}); the library licence {lib_license} is kept"
            )
            logger.warning(msg)
            cat.problems.append(msg)
        tags = tuple(t.strip() for t in f.get("tags", "").split(",") if t.strip())
        cat.items.append(
            CatalogItem(
                index=index,
                id=item_id,
                name=f["name"],
                category=f.get("category", ""),
                tags=tags,
                model=model,
                rotation=rotation,
                creator=f.get("creator", ""),
                width=_float(f.get("width")),
                depth=_float(f.get("depth")),
                height=_float(f.get("height")),
                license=license,
                license_source=license_source,
                cls=classify(f["name"], f.get("category", ""), tags),
            )
        )
    return cat


def find_archives(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into ``.sh3f`` files (a folder gives its ``*.sh3f``, sorted).

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no ``.sh3f`` file.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.glob("*.sh3f") if q.is_file())
            if not found:
                raise FileNotFoundError(f"{p}: no .sh3f furniture library in this folder.")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such .sh3f file or folder.")
    return out
