"""Clean-up of triangle meshes given as arrays: vertices (V, 3) and faces (F, 3) int64.

Marching cubes (inside Poisson reconstruction) leaves three kinds of debris: degenerate triangles,
"fins" (one triangle present with both windings, a zero-thickness sheet whose edges then have four
faces) and pinches, where two sheets of the surface touch at a vertex or along an edge (which then has
four faces). Each is removed or split here without moving any vertex.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "drop_unreferenced",
    "is_watertight",
    "remove_degenerate",
    "remove_fins",
    "split_pinches",
]


def _edges(faces: NDArray[np.int64]) -> NDArray[np.int64]:
    """(3F, 2) directed edges, edge ``k`` of face ``f`` at row ``k * F + f``."""
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def is_watertight(faces: NDArray[np.int64]) -> bool:
    """Whether every undirected edge has exactly two faces, which use it in opposite directions.

    Args:
        faces: (F, 3) int vertex indices.
    """
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        return False
    directed = _edges(faces)
    if len(np.unique(directed, axis=0)) != len(directed):
        return False  # a directed edge used twice: inconsistent winding or more than two faces
    _, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    return bool((counts == 2).all())


def remove_degenerate(vertices: NDArray[np.floating], faces: NDArray[np.int64]) -> NDArray[np.int64]:
    """(F', 3) the faces with three distinct vertices and non-zero area."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    tri = np.asarray(vertices, dtype=np.float64)[faces]  # (F, 3, 3)
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)  # (F,)
    return faces[distinct & (area2 > 0)]


def _winding_parity(faces: NDArray[np.int64]) -> NDArray[np.int64]:
    """(F,) +1 where (a, b, c) is a cyclic rotation of its sorted indices, -1 where it is reversed."""
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    even = ((a < b) & (b < c)) | ((b < c) & (c < a)) | ((c < a) & (a < b))
    return np.where(even, 1, -1)


def remove_fins(faces: NDArray[np.int64]) -> NDArray[np.int64]:
    """Drop repeated triangles: windings that cancel go, of a repeated winding one copy stays.

    Args:
        faces: (F, 3) int vertex indices.

    Returns:
        (F', 3) the remaining faces, in their original order.
    """
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    _, group, counts = np.unique(np.sort(faces, axis=1), axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)  # (F,) index of each face's vertex set
    if (counts == 1).all():
        return faces
    parity = _winding_parity(faces)
    net = np.zeros(len(counts), dtype=np.int64)
    np.add.at(net, group, parity)  # per vertex set: faces of one winding minus faces of the other
    keep = counts[group] == 1
    candidates = np.flatnonzero(~keep & (parity == np.sign(net[group])))
    _, first = np.unique(group[candidates], return_index=True)
    keep[candidates[first]] = True
    return faces[keep]


def split_pinches(
    vertices: NDArray[np.floating], faces: NDArray[np.int64]
) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """Make the surface a 2-manifold where it pinches, by giving each sheet its own copy of the vertices.

    Two corners (face, vertex) stay the same vertex when their faces share an edge through that vertex
    that has exactly two faces; a vertex whose faces fall into several such groups (two sheets touching
    at a point, or along an edge with four faces) becomes one vertex per group. Nothing moves and no face
    is removed, so a closed surface that pinched is afterwards watertight.

    Args:
        vertices: (V, 3) float.
        faces: (F, 3) int vertex indices.

    Returns:
        (V', 3) vertices (V' >= V; unused input vertices are dropped) and (F, 3) int64 faces.
    """
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n_faces = len(faces)
    if n_faces == 0:
        return np.asarray(vertices)[:0], faces
    directed = _edges(faces)  # (3F, 2), row k * F + f is edge k of face f: corners k and (k + 1) % 3
    _, edge_id, counts = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True, return_counts=True)
    edge_id = edge_id.reshape(-1)
    manifold = np.flatnonzero(counts[edge_id] == 2)
    rows = manifold[np.argsort(edge_id[manifold], kind="stable")].reshape(-1, 2)  # each manifold edge's 2 rows
    face, k = rows % n_faces, rows // n_faces  # (M, 2) each

    def corner(f: NDArray[np.int64], j: NDArray[np.int64]) -> NDArray[np.int64]:
        return j * n_faces + f  # corner j of face f, as a node id in [0, 3F)

    # the edge's first vertex is corner k of one face; in the other face it is corner k or (k + 1) % 3
    u0, w0 = corner(face[:, 0], k[:, 0]), corner(face[:, 0], (k[:, 0] + 1) % 3)
    same = directed[rows[:, 0], 0] == directed[rows[:, 1], 0]
    u1 = np.where(same, corner(face[:, 1], k[:, 1]), corner(face[:, 1], (k[:, 1] + 1) % 3))
    w1 = np.where(same, corner(face[:, 1], (k[:, 1] + 1) % 3), corner(face[:, 1], k[:, 1]))
    src, dst = np.concatenate([u0, w0]), np.concatenate([u1, w1])
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(3 * n_faces, 3 * n_faces))
    _, labels = connected_components(graph, directed=False)  # (3F,) one label per new vertex
    corner_vertex = faces.T.reshape(-1)  # (3F,) original vertex of each corner, same order as the nodes
    _, first = np.unique(labels, return_index=True)
    _, new_id = np.unique(labels, return_inverse=True)
    new_vertices = np.asarray(vertices)[corner_vertex[first]]
    return new_vertices, new_id.reshape(3, n_faces).T.astype(np.int64)


def drop_unreferenced(
    vertices: NDArray[np.floating], faces: NDArray[np.int64]
) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """Remove vertices no face uses and renumber the faces: (V', 3) vertices and (F, 3) faces."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    used, inverse = np.unique(faces, return_inverse=True)
    return np.asarray(vertices)[used], inverse.reshape(-1, 3).astype(np.int64)
