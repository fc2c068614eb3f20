"""Safe extraction of untrusted zip archives, and OBJ/MTL files that only reference what was extracted.

Sweet Home 3D libraries (``.sh3f``) and other downloaded model packs are zip archives made by strangers.
:func:`extract_zip` writes their entries under one folder and nowhere else:

- entry names that are absolute (``/x``, ``C:x``), contain ``..`` components, backslashes or control
  characters are refused and reported;
- symbolic links and other special entries (Unix mode in ``external_attr``) are refused, never created
  or followed; encrypted entries are refused;
- the number of files and the total uncompressed size are capped: the sizes the archive declares are
  checked before anything is written, and the bytes actually decompressed are counted while streaming,
  so an entry that decompresses to more than it declared is cut off and the archive refused;
- an entry whose declared uncompressed size is over ``max_ratio`` times its compressed size (and over
  1 MiB) is refused as a probable zip bomb;
- entries whose names appear twice (also after normalisation such as ``a//b`` = ``a/b``) are ambiguous
  and are not extracted; requested members that are missing are reported;
- every file is written atomically (a temporary file in its folder, then renamed), so an interrupted
  extraction never leaves a half-written file under its final name.

Problems with single entries are collected in :attr:`ExtractResult.problems`; an archive that cannot be read
at all (not a zip, truncated, corrupt data) or that is over the caps raises :class:`ArchiveError`.

:func:`sanitize_obj` then makes an extracted OBJ safe to hand to a mesh reader: ``mtllib`` references that
point outside the extraction folder are removed, and the referenced MTL files lose their texture statements
(geometry only) or, with ``keep_textures=True``, only those whose target is absolute or outside the folder.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shapelatent.errors import ArchiveError
from shapelatent.io.atomic import atomic_write, atomic_write_bytes

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_RATIO",
    "DEFAULT_MAX_TOTAL_BYTES",
    "ExtractResult",
    "copy_capped",
    "extract_zip",
    "safe_member_name",
    "sanitize_mtl_text",
    "sanitize_obj",
]

logger = logging.getLogger(__name__)

#: Default cap on the total uncompressed bytes one call may write (4 GiB).
DEFAULT_MAX_TOTAL_BYTES = 4 << 30
#: Default cap on the number of files one call may write.
DEFAULT_MAX_FILES = 100_000
#: Default cap on uncompressed / compressed size for entries over :data:`RATIO_MIN_BYTES`.
DEFAULT_MAX_RATIO = 200.0
#: Entries smaller than this are never refused for their compression ratio (they cannot be bombs).
RATIO_MIN_BYTES = 1 << 20
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class ExtractResult:
    """What :func:`extract_zip` wrote and what it refused.

    Attributes:
        root: the destination folder.
        extracted: archive member name -> path of the written file (inside ``root``).
        problems: one human-readable line per refused, ambiguous or missing entry.
        total_bytes: uncompressed bytes written.
    """

    root: Path
    extracted: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    total_bytes: int = 0


def safe_member_name(name: str) -> str | None:
    """The normalised relative path for an archive entry name, or None if it is not safe to write.

    Unsafe: absolute paths, drive letters, backslashes, control characters, ``..`` components. Empty and
    ``.`` components are dropped (``a//./b`` -> ``a/b``). A name that is empty after that is unsafe.
    """
    if not name or name.startswith("/") or "\\" in name or _DRIVE.match(name) or _CONTROL.search(name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _entry_kind(info: zipfile.ZipInfo) -> str:
    """``file``, ``dir``, ``symlink`` or ``special``, from the Unix mode in ``external_attr`` when present."""
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode):  # a file type is recorded (Python's writestr records permissions only)
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISDIR(mode):
            return "dir"
        if not stat.S_ISREG(mode):
            return "special"
    return "dir" if info.filename.endswith("/") else "file"


def copy_capped(src: IO[bytes], dst: IO[bytes], limit: int, what: str) -> int:
    """Copy a stream in chunks, refusing to write more than ``limit`` bytes.

    Args:
        src: readable binary stream.
        dst: writable binary stream.
        limit: most bytes allowed.
        what: names the stream in the error.

    Returns:
        the number of bytes copied.

    Raises:
        ArchiveError: ``src`` holds more than ``limit`` bytes (nothing past the limit is written).
    """
    done = 0
    while True:
        chunk = src.read(min(_CHUNK, limit - done + 1))
        if not chunk:
            return done
        if done + len(chunk) > limit:
            raise ArchiveError(
                f"{what}: decompresses to more than the {limit} bytes allowed (its declared size or the "
                "remaining max_total_bytes); the archive is corrupt or a zip bomb."
            )
        dst.write(chunk)
        done += len(chunk)


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if no existing component of it is a symlink and it stays under ``root``."""
    target = root.joinpath(*rel.split("/"))
    cur = root
    for part in rel.split("/"):
        cur = cur / part
        if cur.is_symlink():
            return None
    try:
        target.parent.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return target


def extract_zip(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    members: Iterable[str] | None = None,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> ExtractResult:
    """Extract the files of an untrusted zip archive under ``dest``, and nowhere else.

    Args:
        archive: the zip file.
        dest: destination folder (created if missing). Entry ``a/b.obj`` goes to ``dest/a/b.obj``.
        members: names of the entries to extract, exactly as stored in the archive (None: every file).
            Names not in the archive are reported in ``problems``.
        max_total_bytes: most uncompressed bytes to write, declared and actual.
        max_files: most files to write.
        max_ratio: refuse entries over 1 MiB whose declared size is more than this many times their
            compressed size.

    Returns:
        :class:`ExtractResult`: member -> written path, and one line per refused/duplicate/missing entry.

    Raises:
        FileNotFoundError: ``archive`` does not exist.
        ArchiveError: the archive is not a zip, is truncated or corrupt, or the selected entries declare
            more than ``max_files`` files or ``max_total_bytes`` bytes, or decompress to more than they
            declare.
    """
    src = Path(archive)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such archive.")
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    result = ExtractResult(root=root)
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{src}: not a readable zip archive, or truncated ({exc}); download it again.") from exc
    with zf:
        infos = zf.infolist()
        # Entries are ambiguous when two share a name, as stored or once normalised (a//b = a/b).
        names = Counter(safe_member_name(i.filename) or i.filename for i in infos if _entry_kind(i) != "dir")
        if members is None:
            chosen = infos
        else:
            wanted = set(members)
            present = {i.filename for i in infos}
            result.problems.extend(f"{name}: not in the archive" for name in sorted(wanted - present))
            chosen = [i for i in infos if i.filename in wanted]
        plan: list[tuple[zipfile.ZipInfo, str]] = []
        reported: set[str] = set()
        for info in chosen:
            name, kind = info.filename, _entry_kind(info)
            rel = safe_member_name(name)
            if kind == "dir":
                if members is not None:
                    result.problems.append(f"{name}: a folder entry, not a file")
            elif rel is None:
                result.problems.append(f"{name!r}: refused, the name is absolute or leaves the folder")
            elif kind != "file":
                result.problems.append(f"{name}: refused, a {kind} entry (only regular files are extracted)")
            elif names[rel] > 1:
                if rel not in reported:
                    reported.add(rel)
                    result.problems.append(
                        f"{name}: not extracted, the archive holds {names[rel]} entries with this name"
                    )
            elif info.flag_bits & 0x1:
                result.problems.append(f"{name}: refused, encrypted")
            elif info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
                result.problems.append(
                    f"{name}: refused, declares {info.file_size} bytes from {info.compress_size} compressed "
                    f"(ratio over max_ratio={max_ratio:g}; a probable zip bomb)"
                )
            else:
                plan.append((info, rel))
        if len(plan) > max_files:
            raise ArchiveError(
                f"{src}: {len(plan)} files to extract, more than max_files={max_files}; "
                "raise max_files if you trust this archive."
            )
        declared = sum(i.file_size for i, _ in plan)
        if declared > max_total_bytes:
            raise ArchiveError(
                f"{src}: the entries to extract declare {declared} bytes, more than max_total_bytes="
                f"{max_total_bytes}; raise max_total_bytes if you trust this archive."
            )
        for info, rel in plan:
            target = _inside(root, rel)
            if target is None:
                result.problems.append(f"{info.filename}: refused, its folder under {root} is a symbolic link")
                continue
            limit = min(info.file_size, max_total_bytes - result.total_bytes)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                result.problems.append(
                    f"{info.filename}: not extracted, a file of the archive is in its folder's place"
                )
                continue
            if target.is_dir():
                result.problems.append(f"{info.filename}: not extracted, a folder of the archive has that name")
                continue
            written = 0

            def write(tmp: Path, info: zipfile.ZipInfo = info, limit: int = limit) -> None:
                nonlocal written
                with zf.open(info) as fin, open(tmp, "wb") as fout:
                    written = copy_capped(fin, fout, limit, f"{src}!{info.filename}")

            try:
                atomic_write(target, write)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise ArchiveError(
                    f"{src}!{info.filename}: corrupt or truncated data ({exc}); download the archive again."
                ) from exc
            result.total_bytes += written
            result.extracted[info.filename] = target
    logger.debug("extracted %d files (%d bytes) from %s", len(result.extracted), result.total_bytes, src)
    return result


# ---------------------------------------------------------------------------------------------------------
# OBJ / MTL references

_MTLLIB = re.compile(rb"mtllib([^\r\n]*)")
_TEXTURE_KEYS = ("map_", "bump", "disp", "decal", "refl", "norm")


def _candidates(ref: str) -> list[str]:
    """The ways readers interpret a reference: the whole text (trimesh) and each word (others)."""
    ref = ref.strip()
    return list(dict.fromkeys([ref, *ref.split()])) if ref else []


def _reference_inside(ref: str, base: Path, root: Path) -> bool:
    """Whether every reading of a file reference (see :func:`_candidates`) is relative and stays in ``root``."""
    root_r = root.resolve()
    for cand in _candidates(ref):
        if cand.startswith(("/", "~")) or "\\" in cand or _DRIVE.match(cand) or _CONTROL.search(cand):
            return False
        try:
            (base / cand).resolve().relative_to(root_r)
        except ValueError:
            return False
    return True


def sanitize_mtl_text(text: str, base: Path, root: Path, *, keep_textures: bool = False) -> tuple[str, list[str]]:
    """Remove texture statements from MTL text: all of them, or those that point outside ``root``.

    Texture statements are the ``map_*``, ``bump``, ``disp``, ``decal``, ``refl`` and ``norm`` lines.

    Args:
        text: the MTL file's text.
        base: the folder the MTL is in (references are relative to it).
        root: the folder nothing may be read outside of.
        keep_textures: keep texture statements whose every reading resolves inside ``root``.

    Returns:
        the new text (colours and every other statement kept as they were) and the removed lines.
    """
    kept, dropped = [], []
    for line in text.splitlines(keepends=True):
        words = line.split(None, 1)
        key = words[0].lower() if words else ""
        if key.startswith(_TEXTURE_KEYS):
            ref = words[1] if len(words) > 1 else ""
            if not keep_textures or not _reference_inside(ref, base, root):
                dropped.append(line.rstrip("\r\n"))
                continue
        kept.append(line)
    return "".join(kept), dropped


def sanitize_obj(
    obj: str | os.PathLike[str], root: str | os.PathLike[str], *, keep_textures: bool = False
) -> list[str]:
    """Make an extracted OBJ read only files inside ``root``; rewrite it and its MTLs in place if needed.

    Every ``mtllib`` occurrence in the OBJ (also inside comments: trimesh looks for the bare word) whose
    file is absolute or leaves ``root`` is removed with its line. Each referenced MTL inside ``root`` is
    then cleaned by :func:`sanitize_mtl_text` (all texture statements removed unless ``keep_textures``).
    Files are read and written as Latin-1 (bytes kept as they are), atomically, and only when something
    changes.

    Args:
        obj: the OBJ file, inside ``root``.
        root: the extraction folder.
        keep_textures: keep texture maps that resolve inside ``root``.

    Returns:
        one line per removed reference (empty when nothing changed).

    Raises:
        ValueError: ``obj`` is not inside ``root``.
    """
    obj_p, root_p = Path(obj), Path(root)
    try:
        obj_p.resolve().relative_to(root_p.resolve())
    except ValueError as exc:
        raise ValueError(f"{obj_p}: not inside the extraction folder {root_p}.") from exc
    data = obj_p.read_bytes()
    notes: list[str] = []
    mtl_files: list[Path] = []
    bad_lines: list[tuple[int, int]] = []
    for m in _MTLLIB.finditer(data):
        ref = m.group(1).decode("latin-1").strip()
        if _reference_inside(ref, obj_p.parent, root_p):
            for cand in _candidates(ref):
                mtl = obj_p.parent / cand
                if mtl.is_file() and not mtl.is_symlink():
                    mtl_files.append(mtl.resolve())
            continue
        start = data.rfind(b"\n", 0, m.start()) + 1
        end = data.find(b"\n", m.end())
        bad_lines.append((start, len(data) if end < 0 else end + 1))
        notes.append(f"{obj_p.name}: removed the line with 'mtllib {ref}' (outside the extraction folder)")
    if bad_lines:
        out, pos = bytearray(), 0
        for start, end in sorted(set(bad_lines)):
            out += data[pos:start]
            pos = max(pos, end)
        out += data[pos:]
        atomic_write_bytes(obj_p, bytes(out))
    for mtl in dict.fromkeys(mtl_files):
        text = mtl.read_bytes().decode("latin-1")
        new, dropped = sanitize_mtl_text(text, mtl.parent, root_p, keep_textures=keep_textures)
        if dropped:
            atomic_write_bytes(mtl, new.encode("latin-1"))
            notes.extend(f"{mtl.name}: removed {line.strip()!r}" for line in dropped)
    return notes
