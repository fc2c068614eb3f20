"""One watertight mesh from overlapping closed parts: a boolean union with manifold3d.

Procedural chairs are built from closed primitives that interpenetrate; concatenated, a fifth of their
surface can lie inside other parts. :func:`union_mesh` returns the true outer surface as one closed,
consistently wound, 2-manifold mesh, so surface samples lie on the outside and occupancy is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh
from numpy.typing import NDArray

__all__ = ["union_mesh"]

Part = tuple[NDArray[np.float64], NDArray[np.int64]]


def _manifold(vertices: NDArray[np.float64], faces: NDArray[np.int64], index: int):
    import manifold3d

    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.uint64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or not len(f):
        raise ValueError(
            f"part {index}: expected vertices (V, 3) and faces (F, 3) with F >= 1; got {v.shape}, {f.shape}"
        )
    if not np.isfinite(v).all():
        raise ValueError(f"part {index}: non-finite vertex coordinates")
    solid = manifold3d.Manifold(manifold3d.Mesh64(vert_properties=v, tri_verts=f))
    status = solid.status()
    if status != manifold3d.Error.NoError:
        raise ValueError(
            f"part {index}: not a closed 2-manifold solid ({status.name}); every part must be closed, "
            "with shared (merged) vertices and consistent outward winding"
        )
    return solid


def union_mesh(parts: Sequence[Part | trimesh.Trimesh]) -> trimesh.Trimesh:
    """The boolean union of closed parts as one watertight mesh.

    Args:
        parts: each a ``trimesh.Trimesh`` or a pair ``(vertices (V, 3) float64, faces (F, 3) int64)``; every part
            a closed, outward-wound 2-manifold (merged vertices).

    Returns:
        The union: vertices (V, 3) float64, faces (F, 3) int64, watertight and consistently wound outwards
        (positive volume). Its volume is the volume of the union of the parts.

    Raises:
        ValueError: no parts, a part that is not a closed 2-manifold (the message names its index), or an empty union.
    """
    if not len(parts):
        raise ValueError("union_mesh needs at least one part; got none")
    import manifold3d

    solids = []
    for i, p in enumerate(parts):
        v, f = (p.vertices, p.faces) if isinstance(p, trimesh.Trimesh) else p
        solids.append(_manifold(np.asarray(v), np.asarray(f), i))
    union = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add) if len(solids) > 1 else solids[0]
    out = union.to_mesh64()
    v = np.asarray(out.vert_properties, dtype=np.float64)[:, :3]
    f = np.asarray(out.tri_verts, dtype=np.int64)
    if not len(f):
        raise ValueError(f"the union of {len(parts)} parts is empty")
    return trimesh.Trimesh(v, f, process=False)
