"""Alpha shapes in 3-D: the boundary of the alpha complex of the Delaunay tetrahedralisation.

Open3D's ``create_from_point_cloud_alpha_shape`` keeps only the tetrahedra whose circumradius is below
alpha and returns their boundary, so anything thicker than about ``2 * alpha`` comes out hollow and
open, and a well-sampled sphere comes out nearly empty: its surface triangles belong to tetrahedra that
reach through the whole ball. The alpha complex (Edelsbrunner and Muecke 1994) also contains the
triangles that have an empty circumsphere smaller than alpha on their own (with no tetrahedron), which
are exactly the triangles of a densely sampled surface. This module computes that complex with
``scipy.spatial.Delaunay`` and returns its boundary: the complex's triangles that bound at most one of
its tetrahedra.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["alpha_shape"]

# The 4 faces of a tetrahedron (a, b, c, d), each with its opposite vertex last.
_TET_FACES = np.array([[1, 2, 3, 0], [0, 3, 2, 1], [0, 1, 3, 2], [0, 2, 1, 3]])


def _tet_circumradius(tets: NDArray[np.float64]) -> NDArray[np.float64]:
    """(T,) circumradius of tetrahedra (T, 4, 3); inf for flat ones."""
    edges = tets[:, 1:] - tets[:, :1]  # (T, 3, 3)
    rhs = (edges**2).sum(axis=2) / 2.0  # (T, 3)
    det = np.linalg.det(edges)
    scale = np.abs(edges).max(axis=(1, 2)) ** 3
    ok = np.abs(det) > 1e-12 * np.maximum(scale, 1e-300)
    radius = np.full(len(tets), np.inf)
    if ok.any():
        offset = np.linalg.solve(edges[ok], rhs[ok][..., None])[..., 0]  # (T', 3), centre minus vertex 0
        radius[ok] = np.linalg.norm(offset, axis=1)
    return radius


def _triangle_circles(tris: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Circumcentre (N, 3) and circumradius (N,) of triangles (N, 3, 3); inf radius for degenerate ones."""
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    ab, ac = b - a, c - a
    normal = np.cross(ab, ac)  # (N, 3)
    nn = (normal**2).sum(axis=1)
    ok = nn > 1e-24 * np.maximum(((ab**2).sum(1) * (ac**2).sum(1)), 1e-300)
    safe = np.where(ok, nn, 1.0)[:, None]
    offset = np.cross(normal, ab) * (ac**2).sum(1, keepdims=True) + np.cross(ac, normal) * (ab**2).sum(1, keepdims=True)
    offset = offset / (2.0 * safe)
    radius = np.where(ok, np.linalg.norm(offset, axis=1), np.inf)
    return a + offset, radius


def alpha_shape(
    points: NDArray[np.floating], alpha: float, normals: NDArray[np.floating] | None = None
) -> NDArray[np.int64]:
    """Boundary triangles of the alpha complex of a point cloud.

    A tetrahedron of the Delaunay tetrahedralisation is in the complex when its circumradius is below
    ``alpha``; a triangle when it bounds such a tetrahedron, or when its own circumradius is below
    ``alpha`` and its diametral sphere holds neither opposite vertex (it is "unattached"). The boundary
    is every triangle of the complex with at most one tetrahedron of the complex beside it. Triangles
    that bound a tetrahedron face away from it; the others ("sheets" one sample thick) face along the
    mean of their vertices' normals when ``normals`` is given.

    Args:
        points: (P, 3) float, finite, not all coplanar.
        alpha: the radius (> 0), in the units of ``points``.
        normals: (P, 3) float oriented normals, or None.

    Returns:
        (F, 3) int64 triangles indexing ``points``; F may be 0.

    Raises:
        scipy.spatial.QhullError: the tetrahedralisation failed (flat or degenerate input).
    """
    from scipy.spatial import Delaunay

    pts = np.asarray(points, dtype=np.float64)
    tets = Delaunay(pts).simplices.astype(np.int64)  # (T, 4)
    in_complex = _tet_circumradius(pts[tets]) < alpha  # (T,)

    faces = tets[:, _TET_FACES[:, :3]].reshape(-1, 3)  # (4T, 3), outward for positively oriented tets
    opposite = tets[:, _TET_FACES[:, 3]].reshape(-1)  # (4T,)
    owner_in = np.repeat(in_complex, 4)  # (4T,)
    _, first, inverse = np.unique(np.sort(faces, axis=1), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_faces = len(first)

    center, radius = _triangle_circles(pts[faces[first]])  # (N, 3), (N,)
    attached_pair = ((pts[opposite] - center[inverse]) ** 2).sum(axis=1) < radius[inverse] ** 2  # (4T,)
    attached = np.zeros(n_faces, dtype=bool)
    np.logical_or.at(attached, inverse, attached_pair)
    tets_in = np.bincount(inverse, weights=owner_in, minlength=n_faces)  # (N,) 0, 1 or 2
    in_face = (tets_in > 0) | ((radius < alpha) & ~attached)
    boundary = in_face & (tets_in < 2)

    # Orient: a regular boundary face takes the winding of the one tetrahedron of the complex it bounds.
    tri = faces[first].copy()  # (N, 3)
    pair_rows = np.flatnonzero(owner_in)
    tri[inverse[pair_rows]] = faces[pair_rows]
    signed = np.einsum(  # volume sign of (face, opposite vertex): make faces point away from their tetrahedron
        "ij,ij->i",
        np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]]),
        pts[opposite] - pts[faces[:, 0]],
    )
    flip_pair = signed > 0  # the face normal points towards its own tetrahedron
    regular = owner_in & flip_pair
    tri[inverse[regular]] = tri[inverse[regular]][:, [0, 2, 1]]
    sheet = boundary & (tets_in == 0)
    if normals is not None and sheet.any():
        nrm = np.asarray(normals, dtype=np.float64)
        s_tri = tri[sheet]
        face_n = np.cross(pts[s_tri[:, 1]] - pts[s_tri[:, 0]], pts[s_tri[:, 2]] - pts[s_tri[:, 0]])
        backwards = np.einsum("ij,ij->i", face_n, nrm[s_tri].sum(axis=1)) < 0
        s_tri[backwards] = s_tri[backwards][:, [0, 2, 1]]
        tri[sheet] = s_tri
    return tri[boundary]
