"""Parts of the procedural chairs: primitives, the mesh builder and the seeded parameter sampler.

The chair families (``procedural_families``) describe a chair as calls on a ``Builder`` (boxes,
bevelled boxes, rods, beams, tori, each a closed outward-facing solid placed by an optional 4x4
frame) with lengths drawn from a ``Sampler`` that records every parameter it draws.

Conventions are those of ``shapelatent.data.procedural``: Y up, front +Z, metres.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import trimesh
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import ConvexHull

__all__ = ["DISC_SECTIONS", "LEG_SECTIONS", "Builder", "Params", "Sampler", "rot_x", "translate"]

LEG_SECTIONS = 12  # thin cylinders: legs, rods, stretchers
DISC_SECTIONS = 16  # large round parts: seats, hubs, rings

Params = dict[str, float | int | str]


# --------------------------------------------------------------------------- transforms and primitives


def translate(x: float, y: float, z: float) -> NDArray[np.float64]:
    """(4, 4) homogeneous translation by (x, y, z)."""
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def rot_x(degrees: float) -> NDArray[np.float64]:
    """Rotation about +X (right-handed); a negative angle tips +Y towards -Z (backwards)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    m = np.eye(4)
    m[1:3, 1:3] = ((c, -s), (s, c))
    return m


def _axis_frame(direction: NDArray[np.float64], hint: ArrayLike | None = None) -> NDArray[np.float64]:
    """(3, 3) proper rotation taking local +Y to ``direction`` (unit) and local +X towards ``d x hint``."""
    if hint is None:
        hint = (1.0, 0.0, 0.0) if abs(direction[2]) > 0.9 else (0.0, 0.0, 1.0)
    side = np.cross(direction, np.asarray(hint, dtype=float))
    side /= np.linalg.norm(side)
    return np.column_stack((side, direction, np.cross(side, direction)))


@functools.cache
def _unit_box() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Unit cube centred at the origin: vertices (8, 3), faces (12, 3)."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return np.asarray(box.vertices, dtype=float), np.asarray(box.faces, dtype=np.int64)


@functools.cache
def _unit_cylinder(sections: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Radius-1 cylinder along +Y from y = 0 to y = 1: vertices (2S+2, 3), faces (4S, 3)."""
    cyl = trimesh.creation.cylinder(radius=1.0, height=1.0, sections=sections)
    v = np.asarray(cyl.vertices, dtype=float)
    v = np.column_stack((v[:, 0], v[:, 2] + 0.5, -v[:, 1]))  # z-axis -> y-axis, a proper rotation
    return v, np.asarray(cyl.faces, dtype=np.int64)


@functools.cache
def _bevel_box_faces() -> NDArray[np.int64]:
    """Faces (44, 3) of the 24-vertex bevelled box laid out by ``_bevel_box_vertices``, outward-wound."""
    v = _bevel_box_vertices(np.ones(3), 0.3)
    faces = ConvexHull(v).simplices.astype(np.int64)
    tri = v[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("ij,ij->i", normals, tri.mean(axis=1)) < 0  # the box is centred on the origin
    faces[inward] = faces[inward][:, ::-1]
    return faces


def _bevel_box_vertices(half: NDArray[np.float64], bevel: float) -> NDArray[np.float64]:
    """Vertices (24, 3) of a box of half-extents ``half`` with edges and corners cut by ``bevel``."""
    signs = np.array([(sx, sy, sz) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    inner = half - bevel
    out = []
    for axis in range(3):
        corner = np.tile(inner, (8, 1))
        corner[:, axis] = half[axis]
        out.append(signs * corner)
    return np.concatenate(out)


class Builder:
    """Collects transformed primitives and concatenates them into one mesh."""

    def __init__(self) -> None:
        self._vertices: list[NDArray[np.float64]] = []
        self._faces: list[NDArray[np.int64]] = []
        self._count = 0

    def _add(self, v: NDArray[np.float64], f: NDArray[np.int64], frame: NDArray[np.float64] | None) -> None:
        if frame is not None:
            v = v @ frame[:3, :3].T + frame[:3, 3]
        self._vertices.append(v)
        self._faces.append(f + self._count)
        self._count += len(v)

    def box(
        self,
        center: ArrayLike,
        size: ArrayLike,
        frame: NDArray[np.float64] | None = None,
        bevel: float = 0.0,
        front_scale: float = 1.0,
    ) -> None:
        """Axis-aligned box (bevelled when ``bevel`` > 0), its +Z face widened by ``front_scale``."""
        size = np.asarray(size, dtype=float)
        if bevel > 0.0:
            v = _bevel_box_vertices(size / 2, min(bevel, 0.45 * float(size.min())))
            f = _bevel_box_faces()
        else:
            unit, f = _unit_box()
            v = unit * size
        if front_scale != 1.0:
            v = v.copy()
            v[v[:, 2] > 0, 0] *= front_scale
        self._add(v + np.asarray(center, dtype=float), f, frame)

    def rod(
        self,
        p0: ArrayLike,
        p1: ArrayLike,
        radius: float,
        taper: float = 1.0,
        sections: int = LEG_SECTIONS,
        frame: NDArray[np.float64] | None = None,
    ) -> None:
        """Cylinder from ``p0`` to ``p1``; the ``p1`` end has radius ``radius * taper``."""
        p0, d, length = self._segment(p0, p1)
        unit, f = _unit_cylinder(sections)
        v = unit * (radius, length, radius)
        if taper != 1.0:
            v[unit[:, 1] > 0.5, ::2] *= taper
        self._add(v @ _axis_frame(d).T + p0, f, frame)

    def bar(
        self,
        p0: ArrayLike,
        p1: ArrayLike,
        width: float,
        depth: float | None = None,
        taper: float = 1.0,
        hint: ArrayLike | None = None,
        frame: NDArray[np.float64] | None = None,
    ) -> None:
        """Box-section beam from ``p0`` to ``p1``; ``width`` is measured along ``(p1 - p0) x hint``."""
        p0, d, length = self._segment(p0, p1)
        unit, f = _unit_box()
        v = (unit + (0.0, 0.5, 0.0)) * (width, length, width if depth is None else depth)
        if taper != 1.0:
            v[unit[:, 1] > 0, ::2] *= taper
        self._add(v @ _axis_frame(d, hint).T + p0, f, frame)

    def leg(
        self,
        shape: str,
        p0: ArrayLike,
        p1: ArrayLike,
        thickness: float,
        taper: float = 1.0,
        frame: NDArray[np.float64] | None = None,
    ) -> None:
        """A round (cylinder) or square (beam) leg of the given thickness from ``p0`` to ``p1``."""
        if shape == "round":
            self.rod(p0, p1, thickness / 2, taper, frame=frame)
        else:
            self.bar(p0, p1, thickness, taper=taper, frame=frame)

    def ring(self, y: float, radius: float, tube: float) -> None:
        """Horizontal torus around the Y axis at height ``y``."""
        torus = trimesh.creation.torus(radius, tube, major_sections=2 * DISC_SECTIONS, minor_sections=8)
        v = np.asarray(torus.vertices, dtype=float)
        self._add(np.column_stack((v[:, 0], v[:, 2] + y, -v[:, 1])), np.asarray(torus.faces, np.int64), None)

    @staticmethod
    def _segment(p0: ArrayLike, p1: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        a, b = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
        length = float(np.linalg.norm(b - a))
        if length < 1e-9:
            raise ValueError(f"degenerate part: both ends at {a.tolist()}")
        return a, (b - a) / length, length

    def mesh(self) -> trimesh.Trimesh:
        """All parts concatenated (they interpenetrate), shifted so that the lowest vertex is on the floor (y = 0)."""
        v = np.concatenate(self._vertices)
        v[:, 1] -= v[:, 1].min()
        return trimesh.Trimesh(v, np.concatenate(self._faces), process=False)

    def parts(self) -> list[tuple[NDArray[np.float64], NDArray[np.int64]]]:
        """Each part as (vertices (V, 3), faces (F, 3)), shifted as :meth:`mesh` is (lowest vertex at y = 0)."""
        floor = min(float(v[:, 1].min()) for v in self._vertices)
        out, start = [], 0
        for v, f in zip(self._vertices, self._faces, strict=True):
            out.append((v - (0.0, floor, 0.0), f - start))
            start += len(v)
        return out


class Sampler:
    """Draws named parameters from a seeded generator and records them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.params: Params = {}

    def uniform(self, name: str, low: float, high: float) -> float:
        value = float(self.rng.uniform(low, high))
        self.params[name] = value
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        """Uniform integer in [low, high], both inclusive."""
        value = int(self.rng.integers(low, high + 1))
        self.params[name] = value
        return value

    def choice(self, name: str, options: Sequence[str]) -> str:
        value = str(options[int(self.rng.integers(len(options)))])
        self.params[name] = value
        return value

    def flag(self, name: str, probability: float) -> bool:
        value = bool(self.rng.random() < probability)
        self.params[name] = int(value)
        return value

    def set(self, name: str, value: float | int | str) -> None:
        self.params[name] = value
