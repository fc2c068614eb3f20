"""Sweet Home 3D furniture libraries (``.sh3f``) as datasets.

A ``.sh3f`` file is a zip archive holding ``PluginFurnitureCatalog.properties`` (a Java properties file:
library keys ``id``, ``name``, ``description``, ``version``, ``license``, ``provider`` and, per item ``N``,
``id#N``, ``name#N``, ``category#N``, ``tags#N``, ``model#N``, ``width#N``/``depth#N``/``height#N`` in
centimetres, ``creator#N`` and sometimes ``modelRotation#N``) and one folder per model: an OBJ with its
MTL and textures, and for Blend Swap models a licence file.

Licences: the library's ``LICENSE.TXT`` (or its ``license`` key; the stricter one if they disagree) applies
to every item, except that a licence file in an item's own model folder (``BLENDSWAP_LICENSE.txt``,
``NNNNN - LICENSE.html``) overrides it. Both are normalised to SPDX-like ids (``CC0-1.0``, ``CC-BY-3.0``,
``CC-BY-3.0-US``); a licence text that cannot be recognised keeps the library licence and is reported.

Orientation: Sweet Home 3D models are Y up with their front towards +Z once ``modelRotation`` (row-major
3x3, applied as v' = M v) is applied, which is the project's convention. Sizes are centimetres.

Classes come from the English item name (:func:`classify`), see :data:`CLASSES`.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapelatent.data.build import BuildItem, BuildResult, Progress, SamplingConfig, build_items
from shapelatent.errors import ArchiveError
from shapelatent.io.atomic import atomic_write_json, atomic_write_text
from shapelatent.io.javaprops import read_properties
from shapelatent.io.safezip import extract_zip, sanitize_obj

__all__ = [
    "CATALOG_MEMBER",
    "CLASSES",
    "Catalog",
    "CatalogItem",
    "attribution_markdown",
    "build_sweethome3d",
    "classify",
    "extract_models",
    "find_archives",
    "license_from_text",
    "read_catalog",
    "select_items",
]

logger = logging.getLogger(__name__)

CATALOG_MEMBER = "PluginFurnitureCatalog.properties"
#: The classes :func:`classify` assigns; ``other`` is everything else (vehicles, people, doors, small objects).
CLASSES = (
    "chair",
    "stool",
    "armchair_sofa",
    "bench",
    "table",
    "bed",
    "lamp",
    "cabinet_shelf",
    "plant",
    "sanitary",
    "appliance",
    "other",
)

# --------------------------------------------------------------------------------------------------------
# Classification


def _words(*groups: tuple[str, str]) -> dict[str, str]:
    return {w: cls for cls, words in groups for w in words.split()}


#: Noun -> class. The class of a name is that of its right-most noun found here (the head noun in English:
#: "desk lamp" is a lamp, "sink cabinet" a cabinet). Nouns mapped to ``other`` stop the search, so that
#: "table fan" is not a table.
_NOUNS = _words(
    ("chair", "chair chairs seat lounge lounger highchair recliner"),
    ("stool", "stool stools puff pouf footstool ottoman"),
    ("armchair_sofa", "armchair armchairs sofa sofas couch couches loveseat settee"),
    ("bench", "bench benches bank"),  # "bank": Scopia's literal translation of the French "banc"
    ("table", "table tables desk desks workbench"),
    ("bed", "bed beds crib cot futon"),  # not "mattress": the only one is an inflatable pool float
    ("lamp", "lamp lamps light lights lamppost chandelier lantern spotlight sconce"),
    (
        "cabinet_shelf",
        "cabinet cabinets cupboard cupboards shelf shelves bookcase bookshelf wardrobe dresser drawers "
        "chest locker sideboard closet nightstand island",
    ),
    (
        "plant",
        "plant plants flower flowers tulips orchids lily cactus yucca spathiphyllum bamboo ficus bonsai tree "
        "bush hedge acacia pine beech cypress maple poplar palm blossom shrub fern succulent",
    ),
    (
        "sanitary",
        "toilet toilets wc sink bath bathtub shower washbasin basin lavatory bidet urinal vanity",
    ),
    (
        "appliance",
        "fridge refrigerator freezer oven microwave cooker cooktop hob stove dishwasher dryer hood heater "
        "furnace radiator tv television",  # not "boiler": Blend Swap's "Boiler" is a kettle
    ),
    ("other", "fan tennis remote flashlight candle candles brush dispenser door curtain potty"),
)

#: Phrases checked before the head noun, first match wins.
_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(pool|football|billiards?|ping pong) table\b"), "other"),
    (re.compile(r"\b(bedside|dressing|changing|night) table\b|\bnight ?stand\b|\btv stand\b"), "cabinet_shelf"),
    (re.compile(r"\babdominal bench\b|\bweight bench\b|\bstone lantern\b"), "other"),
    (re.compile(r"\barmchair\b"), "armchair_sofa"),  # "Armchair ottoman"
    (re.compile(r"\b(washing|dish ?washing) machine\b|\bair conditioning\b|\bwater heater\b"), "appliance"),
]
#: Categories whose items are never furniture of the classes above ("Seat Leon" is a car).
_OTHER_CATEGORIES = {"vehicles", "characters", "doors and windows", "staircases"}
_CUT = re.compile(r"\b(with|under|on|and|for|of|in)\b|[0-9]")


def classify(name: str, category: str = "", tags: Iterable[str] = ()) -> str:
    """The class of a furniture item from its English name, category and tags.

    Rules, in order: categories ``Vehicles``, ``Characters``, ``Doors and windows`` and ``Staircases`` are
    ``other``; a few phrases (:data:`_PHRASES`: "pool table" is ``other``, "bedside table" is
    ``cabinet_shelf``, anything with "armchair" is ``armchair_sofa``); then the right-most known noun
    of the name before any "with/under/on/and/..." or digit (the English head noun); then fall-backs:
    category ``Lights`` -> ``lamp``, tag ``Tree`` -> ``plant`` (both only when the name has no known noun).
    A chair tagged ``Armchair`` is an ``armchair_sofa``. Anything else is ``other``.

    Args:
        name: the item's English name, e.g. ``"Bar stool"``.
        category: its Sweet Home 3D category, e.g. ``"Kitchen"``.
        tags: its tags.

    Returns:
        one of :data:`CLASSES`.
    """
    if category.strip().lower() in _OTHER_CATEGORIES:
        return "other"
    text = " ".join(re.findall(r"[a-z]+|[0-9]+", name.lower().replace("'s", "")))
    tagset = {t.strip().lower() for t in tags}
    for pattern, cls in _PHRASES:
        if pattern.search(text):
            return cls
    head = _CUT.split(text, maxsplit=1)[0].split()
    for word in reversed(head):
        if word in _NOUNS:
            cls = _NOUNS[word]
            return "armchair_sofa" if cls == "chair" and "armchair" in tagset else cls
    words = set(text.split())
    if not words & set(_NOUNS) and category.strip().lower() == "lights":
        return "lamp"
    if not words & set(_NOUNS) and tagset & {"tree"}:
        return "plant"
    return "other"


# --------------------------------------------------------------------------------------------------------
# Licences

_CC0 = re.compile(r"creative commons zero|\bcc-?0\b|\bcc[- ]?zero\b|\bpublic domain\b", re.I)
_BY_NC = re.compile(r"attribution[- ]non[- ]?commercial(?P<sa>[- ]share[- ]?alike)?(?:\s+(?P<v>\d\.\d))?", re.I)
_BY_SA = re.compile(r"attribution[- ]share[- ]?alike(?:\s+(?P<v>\d\.\d))?", re.I)
_BY = re.compile(
    r"(?:creative commons\s+(?:\d\.\d\s+)?attribution|\bcc[- ]by)(?![- ](?:share|non|no))"
    r"(?:[\s-]+(?P<v>\d\.\d))?(?P<us>\s+(?:united states|us)\b)?",
    re.I,
)
_STATEMENT = re.compile(r"(?:released under|following licen[sc]e:?|(?:is|are) under the)\s+(?:the\s+)?(.{0,160})", re.I)


def _licenses_in(text: str) -> list[tuple[int, str]]:
    found = []
    for m in _CC0.finditer(text):
        found.append((m.start(), "CC0-1.0"))
    for m in _BY_NC.finditer(text):
        found.append((m.start(), "CC-BY-NC" + ("-SA" if m.group("sa") else "") + (f"-{m['v']}" if m["v"] else "")))
    for m in _BY_SA.finditer(text):
        found.append((m.start(), "CC-BY-SA" + (f"-{m['v']}" if m["v"] else "")))
    for m in _BY.finditer(text):
        found.append((m.start(), "CC-BY" + (f"-{m['v']}" if m["v"] else "") + ("-US" if m["us"] else "")))
    return sorted(found)


def license_from_text(text: str) -> str | None:
    """Recognise a licence in a licence file or statement (plain text or HTML).

    The sentence that states the licence ("Released under ...", "... following license: ...", "... are
    under the ...") decides; without one, the text must name exactly one licence.

    Returns:
        an SPDX-like id (``CC0-1.0``, ``CC-BY-3.0``, ``CC-BY-3.0-US``, ``CC-BY-SA-4.0``, ...) or None.
    """
    plain = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.I | re.S)
    plain = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", plain)).split())
    statement = _STATEMENT.search(plain)
    if statement:
        found = _licenses_in(statement.group(1))
        if found:
            return found[0][1]
    names = {name for _, name in _licenses_in(plain)}
    return names.pop() if len(names) == 1 else None


# --------------------------------------------------------------------------------------------------------
# Catalogue


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


# --------------------------------------------------------------------------------------------------------
# Extraction

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


# --------------------------------------------------------------------------------------------------------
# Attribution


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


# --------------------------------------------------------------------------------------------------------
# Build


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
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    split_fractions: dict[str, float] | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
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
        sampling: points per shape and normalisation.
        seed: split seed (and sampling seed when ``sampling`` is None).
        split_fractions: train/val/test fractions.
        force: replace an existing dataset.
        workers: processes (default: all cores).
        progress: called with the number of items done.
        cache_dir: extract into ``cache_dir/<sha256 prefix>/`` and keep it (default: a temporary folder
            beside ``out``, removed at the end).

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
    out_p = Path(out)
    out_p.parent.mkdir(parents=True, exist_ok=True)
    work = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix=f".{out_p.name}.extract-", dir=out_p.parent))
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
        result = build_items(
            build,
            out_p,
            source=source,
            sampling=sampling or SamplingConfig(seed=seed),
            split_seed=seed,
            split_fractions=split_fractions,
            pre_skipped=pre_skipped,
            force=force,
            workers=workers,
            progress=progress,
        )
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
