"""A strict, forgiving reader for Object File Format (OFF) meshes.

Forgiving where real files are known to differ from the format: the header keyword may share its line with
the counts (``OFF490 518 0``, as in many ModelNet files) or be left out, ``#`` comments and blank lines may
appear anywhere, the edge count may be missing, vertex lines may carry colours or normals after x y z
(``COFF``, ``NOFF``, ``CNOFF``, ``STOFF``), and faces may be polygons (split into triangle fans).

Strict about everything else: the counts, every index and every number are checked, and an error names
the file and the line.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from shapelatent.errors import MeshReadError

logger = logging.getLogger(__name__)

__all__ = ["read_off"]

# Optional prefixes of the Geomview OFF keyword: ST (texture coords), C (colours), N (normals),
# 4 (homogeneous coordinates), n (dimension given in the file). 4 and n change the vertex layout.
_KEYWORD = re.compile(r"^(ST)?(C)?(N)?(4)?(n)?OFF(?![A-Za-z])")


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines with comments stripped, as ``(1-based line number, text)``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MeshReadError(f"{path}: could not be read ({exc}).") from exc
    text = raw.decode("latin-1")  # never fails; a binary file is caught by the parser below
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = (line.split("#", 1)[0] if "#" in line else line).strip()
        if body:
            out.append((number, body))
    return out


def _ints(path: Path, number: int, tokens: list[str], what: str) -> list[int]:
    try:
        return [int(t) for t in tokens]
    except ValueError:
        raise MeshReadError(
            f"{path}: line {number}: expected integers for the {what}, found {' '.join(tokens)!r}."
        ) from None


def _header(path: Path, lines: list[tuple[int, str]]) -> tuple[int, int, int]:
    """Parse the keyword and the counts; return ``(V, F, index of the first vertex line)``."""
    if not lines:
        raise MeshReadError(f"{path}: the file is empty; expected an OFF header ('OFF' then 'V F E').")
    number, first = lines[0]
    match = _KEYWORD.match(first)
    if match is None:
        tokens = first.split()
        if len(tokens) in (2, 3) and all(t.isdigit() for t in tokens):
            rest, pos = tokens, 1  # the keyword is optional in the format; the counts come first
        else:
            raise MeshReadError(
                f"{path}: line {number}: not an OFF file; the first line should be 'OFF' (or 'OFF V F E'), "
                f"found {first[:40]!r}."
            )
    else:
        if match.group(4) or match.group(5):
            raise MeshReadError(
                f"{path}: line {number}: {first.split()[0]!r} (4D or n-dimensional OFF) is not supported; "
                "convert the file to a 3D OFF, OBJ or PLY."
            )
        rest = first[match.end() :].split()
        if rest and rest[0].upper() == "BINARY":
            raise MeshReadError(
                f"{path}: line {number}: binary OFF is not supported; convert the file to ASCII OFF, OBJ or PLY."
            )
        pos = 1
        if not rest:  # the counts are on the next line
            if len(lines) < 2:
                raise MeshReadError(f"{path}: the file ends after the 'OFF' keyword; expected the counts 'V F E'.")
            number, counts_line = lines[1]
            rest, pos = counts_line.split(), 2
    if len(rest) not in (2, 3):
        raise MeshReadError(
            f"{path}: line {number}: expected the counts 'V F E' (vertices, faces, edges), found {' '.join(rest)!r}."
        )
    counts = _ints(path, number, rest, "counts 'V F E'")
    if any(c < 0 for c in counts):
        raise MeshReadError(f"{path}: line {number}: the counts 'V F E' must not be negative, found {counts}.")
    return counts[0], counts[1], pos


def _vertices(path: Path, block: list[tuple[int, str]]) -> np.ndarray:
    """Parse V vertex lines into (V, 3) float64, checking each line."""
    rows = [text.split() for _, text in block]
    width = len(rows[0]) if rows else 3
    if rows and width >= 3 and all(len(r) == width for r in rows):
        try:  # fast path: one conversion for the whole block
            flat = np.array(" ".join(text for _, text in block).split(), dtype=np.float64)
            return flat.reshape(len(rows), width)[:, :3].copy()  # (V, 3)
        except ValueError:
            pass  # find and report the offending line below
    out = np.empty((len(rows), 3), dtype=np.float64)
    for i, ((number, text), tokens) in enumerate(zip(block, rows, strict=True)):
        if len(tokens) < 3:
            raise MeshReadError(f"{path}: line {number}: a vertex needs 3 coordinates 'x y z', found {text!r}.")
        try:
            out[i] = [float(t) for t in tokens[:3]]
        except ValueError:
            raise MeshReadError(f"{path}: line {number}: vertex coordinates are not numbers: {text!r}.") from None
    return out


def _faces(path: Path, block: list[tuple[int, str]], num_vertices: int) -> np.ndarray:
    """Parse face lines ``n i1 .. in [colour]`` into (F', 3) int64 triangles (polygons as fans)."""
    rows = [text.split() for _, text in block]
    if rows and all(len(r) == len(rows[0]) and r[0] == "3" for r in rows):
        try:  # fast path: all triangles with the same trailing columns (the usual case)
            flat = np.array(" ".join(text for _, text in block).split(), dtype=np.int64)
            tri = flat.reshape(len(rows), len(rows[0]))[:, 1:4].copy()  # (F, 3)
        except ValueError:
            tri = None  # find and report the offending line below
        if tri is not None and (len(tri) == 0 or (tri.min() >= 0 and tri.max() < num_vertices)):
            return tri
    tris: list[list[int]] = []
    for (number, _), tokens in zip(block, rows, strict=True):
        try:
            n = int(tokens[0])
        except ValueError:
            raise MeshReadError(
                f"{path}: line {number}: a face starts with its vertex count, found {tokens[0]!r}."
            ) from None
        if n < 3:
            raise MeshReadError(f"{path}: line {number}: a face needs at least 3 vertices, found {n}.")
        if len(tokens) < n + 1:
            raise MeshReadError(f"{path}: line {number}: the face lists {len(tokens) - 1} of its {n} vertex indices.")
        idx = _ints(path, number, tokens[1 : n + 1], "face's vertex indices")
        bad = [i for i in idx if i < 0 or i >= num_vertices]
        if bad:
            raise MeshReadError(
                f"{path}: line {number}: vertex index {bad[0]} is out of range; the file has {num_vertices} "
                f"vertices (indices 0..{num_vertices - 1})."
            )
        tris.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, n - 1))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def read_off(path: str | os.PathLike[str]):  # -> trimesh.Trimesh
    """Read an ASCII OFF mesh, including ModelNet's ``OFFV F E`` headers.

    Args:
        path: the ``.off`` file.

    Returns:
        A ``trimesh.Trimesh`` (not processed: vertices and faces as in the file) with vertices (V, 3) float64
        and faces (F, 3) int64; polygons are split into triangle fans, so F can exceed the face count in the
        header. Emptiness and zero area are left to :func:`shapelatent.io.meshes.validate_mesh`.

    Raises:
        FileNotFoundError: the file does not exist.
        MeshReadError: not an OFF file, binary or 4D OFF, counts that do not match the file, a malformed
            vertex or face line, a face index out of range, or a NaN/infinite coordinate; the message names
            the file and the line.
    """
    import trimesh

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file.")
    lines = _lines(p)
    num_vertices, num_faces, pos = _header(p, lines)
    available = len(lines) - pos
    if available < num_vertices + num_faces:
        got_v = min(available, num_vertices)
        got_f = max(0, available - num_vertices)
        raise MeshReadError(
            f"{p}: the header promises {num_vertices} vertices and {num_faces} faces, but the file ends after "
            f"{got_v} vertices and {got_f} faces (line {lines[-1][0]}); the file is truncated or the counts are wrong."
        )
    vertex_block = lines[pos : pos + num_vertices]
    face_block = lines[pos + num_vertices : pos + num_vertices + num_faces]
    extra = lines[pos + num_vertices + num_faces :]
    if extra:
        raise MeshReadError(
            f"{p}: line {extra[0][0]}: {len(extra)} more line(s) after the {num_faces} faces the header promises; "
            "the counts 'V F E' are probably wrong."
        )
    vertices = _vertices(p, vertex_block)
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        number = vertex_block[int(np.argmin(finite))][0]
        raise MeshReadError(
            f"{p}: line {number}: a vertex has NaN or infinite coordinates; repair or re-export the mesh."
        )
    faces = _faces(p, face_block, num_vertices)
    logger.debug("read %s: %d vertices, %d faces -> %d triangles", p, num_vertices, num_faces, len(faces))
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
