"""A fast, geometry-only Wavefront OBJ reader.

Reads ``v`` and ``f`` records (faces of any size, fan-triangulated; ``v/vt/vn`` index forms; negative
relative indices) with vectorised numpy parsing, ignoring materials, textures and groups. That is all
sampling needs, and it never opens an MTL or texture file. It is several times faster than trimesh's
generic loader on the mixed triangle/quad files furniture libraries ship.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from shapelatent.errors import MeshReadError

__all__ = ["read_obj"]

_SLASH = re.compile(rb"/[^\s]*")
_V_LINE = re.compile(rb"^v[ \t]+([^\r\n]*)", re.M)
_F_LINE = re.compile(rb"^f[ \t]+([^\r\n]*)", re.M)


def _parse_numbers(text: bytes, dtype: type) -> np.ndarray | None:
    """All whitespace-separated numbers in ``text`` (C speed), or None if any token is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns (and stops early) on a non-number: treat it as a failure
        try:
            return np.fromstring(text.decode("latin-1"), dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def _floats(lines: list[bytes], path: Path) -> np.ndarray:
    """(V, 3) float64 from the text after ``v`` of each vertex line (``x y z [w | r g b]``)."""
    if not lines:
        return np.zeros((0, 3))
    flat = _parse_numbers(b" ".join(lines), np.float64)
    if flat is not None and len(flat) == 3 * len(lines):  # "v x y z" everywhere (the common case)
        return flat.reshape(-1, 3)
    out = np.empty((len(lines), 3))
    for i, line in enumerate(lines):  # extra columns, or a bad number: line by line, naming the culprit
        parts = line.split()[:3]
        try:
            if len(parts) != 3:
                raise ValueError(f"{len(parts)} coordinates")
            out[i] = [float(t) for t in parts]
        except ValueError as exc:
            text = line.decode("latin-1")[:60]
            raise MeshReadError(f"{path}: a vertex line is not three numbers: {text!r} ({exc}).") from exc
    return out


def read_obj(path: str | os.PathLike[str]):  # -> trimesh.Trimesh
    """Read the geometry of an OBJ file as one triangle mesh.

    Returns:
        ``trimesh.Trimesh`` with vertices (V, 3) and faces (F, 3) int64 (``process=False``; not validated here:
        :func:`shapelatent.io.meshes.read_mesh` validates).

    Raises:
        MeshReadError: unreadable numbers, or face indices outside the vertex list.
    """
    import trimesh

    p = Path(path)
    data = p.read_bytes()
    vlines = _V_LINE.findall(data)
    vertices = _floats(vlines, p)
    n = len(vertices)
    flines = _F_LINE.findall(data)
    if not flines:
        return trimesh.Trimesh(vertices=vertices, faces=np.zeros((0, 3), dtype=np.int64), process=False)
    # keep only the vertex index of "v/vt/vn", then find every token and the line it is on, vectorised
    text = _SLASH.sub(b"", b"\n".join(flines)) + b"\n"
    buf = np.frombuffer(text, dtype=np.uint8)
    space = (buf == 32) | (buf == 9) | (buf == 10) | (buf == 13)
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))  # first byte of each token
    line_of = np.searchsorted(np.flatnonzero(buf == 10), starts)  # (T,) line index of each token
    counts = np.bincount(line_of, minlength=len(flines))  # vertices per face
    tokens = _parse_numbers(text, np.int64)
    if tokens is None or len(tokens) != len(starts):
        raise MeshReadError(f"{p}: a face line has an index that is not an integer.")
    if (tokens < 0).any():
        if data.find(b"\nv ", data.find(b"\nf ")) != -1:
            # vertices after faces with relative indices: resolve them exactly with trimesh
            return trimesh.load(str(p), file_type="obj", process=False, force="mesh")
        tokens = np.where(tokens < 0, tokens + n, tokens - 1)
    else:
        tokens = tokens - 1
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tris = []
    for k in np.unique(counts[counts >= 3]):
        first = offsets[counts == k]  # (F_k,)
        idx = tokens[first[:, None] + np.arange(k)]  # (F_k, k)
        fan = np.stack([np.repeat(idx[:, :1], k - 2, axis=1), idx[:, 1:-1], idx[:, 2:]], axis=2)  # (F_k, k-2, 3)
        tris.append(fan.reshape(-1, 3))
    faces = np.concatenate(tris) if tris else np.zeros((0, 3), dtype=np.int64)
    if len(faces) and (faces.min() < 0 or faces.max() >= n):
        raise MeshReadError(f"{p}: face indices refer to vertices that do not exist ({n} vertices).")
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
