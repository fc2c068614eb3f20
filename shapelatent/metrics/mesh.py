"""Mesh-to-mesh metrics of the Occupancy Networks protocol: volumetric IoU, Chamfer-L1, normal consistency, F-score.

Definitions (``pred`` is the output mesh, ``ref`` the reference):

* Points: ``n_points`` points sampled uniformly by area on each surface, with the normal of the face each lies
  on (Occupancy Networks, Mescheder et al. 2019, Sec. 4 and ``im2mesh/eval.py``: 100 000 points). Both meshes
  are sampled with the same ``seed`` (common random numbers): identical meshes give identical samples and score
  exactly Chamfer 0, F 1, NC 1.
* Accuracy: the mean Euclidean distance from each ``pred`` point to its nearest ``ref`` point; completeness: the
  same from ``ref`` to ``pred``; Chamfer-L1 = (accuracy + completeness) / 2, Chamfer-L2 = the same with squared
  distances (``im2mesh/eval.py``, ``MeshEvaluator.eval_pointcloud``).
* Normal consistency: the mean ``|n_p . n_q|`` between each point's unit normal and that of its nearest neighbour
  on the other surface, averaged over both directions (``im2mesh/eval.py``; the absolute value ignores the
  orientation).
* F-score at tau (Tatarchenko et al. 2019, "What Do Single-view 3D Reconstruction Networks Learn?", CVPR,
  Sec. 5): precision = share of ``pred`` points closer than tau to ``ref``, recall = share of ``ref`` points
  closer than tau to ``pred``, F = 2PR / (P + R) (0 when both are 0). tau is a fraction (``taus``, default 1%
  and 2%) of the diagonal of ``ref``'s axis-aligned bounding box.
* Volumetric IoU (Occupancy Networks Sec. 4): |inside pred and ref| / |inside pred or ref| over ``iou_points``
  points (ONet: 100 000) uniform in the union of the two bounding boxes, padded by 5% (IoU does not depend on the
  box once it holds both shapes; the box sets only the sampling noise). A point is inside a mesh when its
  generalized winding number (Jacobson et al. 2013, "Robust Inside-Outside Segmentation using Generalized
  Winding Numbers"; libigl's fast approximation, Barill et al. 2018) is above 0.5, which is exact for
  closed meshes and degrades gracefully for small holes. By default IoU is computed only when ``ref`` is closed
  (:func:`is_closed`: it has an inside); otherwise it is None.

Nearest neighbours come from scipy's ``cKDTree`` (all cores). An empty ``pred`` (no faces, or zero area) gets a
defined worst result instead of an error: accuracy, completeness and Chamfer-L1 equal the reference diagonal
(ONet uses its box diagonal), Chamfer-L2 its square, normal consistency, precision, recall, F and IoU 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "IOU_MODES",
    "FScore",
    "MeshMetrics",
    "chamfer_l1",
    "fscore",
    "inside_mesh",
    "is_closed",
    "mesh_metrics",
    "nearest_distances",
    "normal_consistency",
    "volume_iou",
]

logger = logging.getLogger(__name__)

IOU_MODES = ("auto", "always", "never")


class FScore(NamedTuple):
    """F-score at one distance threshold: ``fscore``, ``precision`` and ``recall``, each in [0, 1]."""

    fscore: float
    precision: float
    recall: float


@dataclass(frozen=True)
class MeshMetrics:
    """The metrics between a predicted and a reference mesh (module docstring for the definitions).

    Attributes:
        chamfer_l1: (accuracy + completeness) / 2, in the meshes' units.
        chamfer_l2: the same with squared distances.
        accuracy: mean distance pred -> ref.
        completeness: mean distance ref -> pred.
        normal_consistency: in [0, 1].
        fscore: tau fraction -> F-score, e.g. ``{0.01: 0.93, 0.02: 0.99}``.
        precision: tau fraction -> precision.
        recall: tau fraction -> recall.
        iou: volumetric IoU, or None when not computed (``iou="auto"`` and ``ref`` not closed).
        diagonal: the reference bounding-box diagonal that the taus scale.
        n_points: points sampled on each surface.
        empty: the predicted mesh had no faces or no area (the worst values above were assigned).
    """

    chamfer_l1: float
    chamfer_l2: float
    accuracy: float
    completeness: float
    normal_consistency: float
    fscore: dict[float, float]
    precision: dict[float, float]
    recall: dict[float, float]
    iou: float | None
    diagonal: float
    n_points: int
    empty: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready: ``iou``, ``chamfer_l1``, ..., ``fscore@1%``, ``precision@1%``, ``recall@1%``, ..."""
        out: dict[str, Any] = {
            "iou": self.iou,
            "chamfer_l1": self.chamfer_l1,
            "chamfer_l2": self.chamfer_l2,
            "accuracy": self.accuracy,
            "completeness": self.completeness,
            "normal_consistency": self.normal_consistency,
        }
        for name in ("fscore", "precision", "recall"):
            for tau, value in getattr(self, name).items():
                out[f"{name}@{tau * 100:g}%"] = value
        out.update(diagonal=self.diagonal, n_points=self.n_points, empty=self.empty)
        return out


def _as_vf(mesh: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) float64 vertices and (F, 3) int64 faces of a trimesh-like object or a (vertices, faces) pair."""
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        vertices, faces = mesh
    elif hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        vertices, faces = mesh.vertices, mesh.faces
    else:
        raise ValueError(f"{what} must be a trimesh.Trimesh or a (vertices, faces) pair; got {type(mesh).__name__}")
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"{what} vertices must be (V, 3); got shape {vertices.shape}")
    if faces.size == 0:
        return vertices, np.zeros((0, 3), dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"{what} faces must be (F, 3) integers; got shape {faces.shape} {faces.dtype}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"{what} faces index vertices outside 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all():
        raise ValueError(f"{what} has non-finite vertex coordinates")
    return vertices, faces.astype(np.int64)


def _area(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = vertices[faces]
    return float(0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum())


def _points(points: Any, what: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"{what} must be (N, 3) with N >= 1; got shape {points.shape}")
    return points


def nearest_distances(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each source point to its nearest target point (scipy ``cKDTree``, all cores).

    Args:
        source: (N, 3) float.
        target: (M, 3) float, M >= 1.

    Returns:
        distances (N,) float64 and the index (N,) int64 of the nearest target point.
    """
    from scipy.spatial import cKDTree

    source, target = _points(source, "source"), _points(target, "target")
    dist, idx = cKDTree(target).query(source, k=1, workers=-1)
    return dist, idx.astype(np.int64)


def chamfer_l1(pred_points: np.ndarray, ref_points: np.ndarray) -> float:
    """Occupancy Networks' Chamfer-L1: (mean pred -> ref distance + mean ref -> pred distance) / 2.

    Args:
        pred_points: (N, 3) float.
        ref_points: (M, 3) float.
    """
    accuracy = nearest_distances(pred_points, ref_points)[0].mean()
    completeness = nearest_distances(ref_points, pred_points)[0].mean()
    return 0.5 * float(accuracy + completeness)


def _unit(normals: Any, n: int, what: str) -> np.ndarray:
    normals = np.asarray(normals, dtype=np.float64)
    if normals.shape != (n, 3):
        raise ValueError(f"{what} must be ({n}, 3), one per point; got shape {normals.shape}")
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    if not (length > 0).all():
        raise ValueError(f"{what} holds {int((~(length > 0)).sum())} zero-length or non-finite normals")
    return normals / length


def normal_consistency(
    pred_points: np.ndarray, pred_normals: np.ndarray, ref_points: np.ndarray, ref_normals: np.ndarray
) -> float:
    """Occupancy Networks' normal consistency: mean ``|n_p . n_nn(p)|`` over both directions, in [0, 1].

    Args:
        pred_points: (N, 3) float; pred_normals: (N, 3) float, any non-zero length (normalised here).
        ref_points: (M, 3) float; ref_normals: (M, 3) float.
    """
    pred_points, ref_points = _points(pred_points, "pred_points"), _points(ref_points, "ref_points")
    pn, rn = _unit(pred_normals, len(pred_points), "pred_normals"), _unit(ref_normals, len(ref_points), "ref_normals")
    _, to_ref = nearest_distances(pred_points, ref_points)
    _, to_pred = nearest_distances(ref_points, pred_points)
    return _normal_consistency(pn, rn, to_ref, to_pred)


def _normal_consistency(pn: np.ndarray, rn: np.ndarray, to_ref: np.ndarray, to_pred: np.ndarray) -> float:
    accuracy_n = np.abs((pn * rn[to_ref]).sum(axis=1)).mean()
    completeness_n = np.abs((rn * pn[to_pred]).sum(axis=1)).mean()
    return float(0.5 * (accuracy_n + completeness_n))


def _fscore(d_pred: np.ndarray, d_ref: np.ndarray, tau: float) -> FScore:
    precision = float((d_pred < tau).mean())
    recall = float((d_ref < tau).mean())
    f = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return FScore(f, precision, recall)


def fscore(pred_points: np.ndarray, ref_points: np.ndarray, tau: float) -> FScore:
    """F-score at an absolute distance tau (Tatarchenko et al. 2019): harmonic mean of precision and recall.

    Args:
        pred_points: (N, 3) float; precision is the share of them closer than tau to ``ref_points``.
        ref_points: (M, 3) float; recall is the share of them closer than tau to ``pred_points``.
        tau: distance threshold (> 0), in the points' units.
    """
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive distance; got {tau!r}")
    return _fscore(nearest_distances(pred_points, ref_points)[0], nearest_distances(ref_points, pred_points)[0], tau)


def inside_mesh(mesh: Any, points: np.ndarray) -> np.ndarray:
    """Which points are inside a mesh: generalized winding number > 0.5 (libigl's fast winding number).

    Args:
        mesh: a ``trimesh.Trimesh`` or a (vertices (V, 3), faces (F, 3)) pair; a mesh without faces has no inside.
        points: (N, 3) float.

    Returns:
        (N,) bool.
    """
    vertices, faces = _as_vf(mesh, "mesh")
    points = _points(points, "points")
    if len(faces) == 0:
        return np.zeros(len(points), dtype=bool)
    try:
        import igl
    except ImportError as exc:
        from shapelatent.errors import BackendUnavailableError

        raise BackendUnavailableError("inside_mesh needs libigl: pip install libigl") from exc
    winding = igl.fast_winding_number(vertices, faces, np.ascontiguousarray(points))
    return winding > 0.5


def is_closed(mesh: Any) -> bool:
    """Whether a mesh bounds a volume: after merging vertices at identical positions, every edge is used as often
    from a to b as from b to a (a closed, consistently oriented surface, possibly touching itself), so that its
    winding number is an integer everywhere off the surface and "inside" is well defined.

    Unlike ``trimesh.Trimesh.is_watertight`` this accepts shells that touch along an edge or at a vertex (a union
    of parts that meet face to face) and OBJ-style meshes whose vertices are split along seams.

    Args:
        mesh: a ``trimesh.Trimesh`` or a (vertices (V, 3), faces (F, 3)) pair.
    """
    vertices, faces = _as_vf(mesh, "mesh")
    if len(faces) == 0:
        return False
    _, merged = np.unique(vertices, axis=0, return_inverse=True)
    f = merged.reshape(-1)[faces]  # (F, 3)
    a, b = f.reshape(-1), f[:, [1, 2, 0]].reshape(-1)  # directed edges
    keep = a != b  # edges collapsed by the merge carry no boundary
    a, b = a[keep], b[keep]
    n = int(f.max()) + 1
    forward = np.unique(a * n + b, return_counts=True)
    backward = np.unique(b * n + a, return_counts=True)
    return bool(np.array_equal(forward[0], backward[0]) and np.array_equal(forward[1], backward[1]))


def volume_iou(pred_mesh: Any, ref_mesh: Any, *, n_points: int = 100_000, seed: int = 0) -> float:
    """Volumetric IoU of two meshes by winding-number occupancy of uniform points in their joint bounding box.

    Args:
        pred_mesh, ref_mesh: ``trimesh.Trimesh`` or (vertices (V, 3), faces (F, 3)) pairs.
        n_points: uniform points in the union of the bounding boxes, padded by 5%.
        seed: seeds the points.

    Returns:
        IoU in [0, 1]; 0 when neither mesh has an inside point among the samples.
    """
    pv, pf = _as_vf(pred_mesh, "pred_mesh")
    rv, rf = _as_vf(ref_mesh, "ref_mesh")
    _check_count("n_points", n_points)
    corners = np.concatenate([v[np.unique(f)] for v, f in ((pv, pf), (rv, rf)) if len(f)] or [np.zeros((1, 3))])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    pad = 0.05 * max(float((hi - lo).max()), 1e-12)
    points = np.random.default_rng(seed).uniform(lo - pad, hi + pad, size=(n_points, 3))
    occ_pred, occ_ref = inside_mesh((pv, pf), points), inside_mesh((rv, rf), points)
    union = int((occ_pred | occ_ref).sum())
    return float((occ_pred & occ_ref).sum() / union) if union else 0.0


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def mesh_metrics(
    pred_mesh: Any,
    ref_mesh: Any,
    *,
    n_points: int = 100_000,
    taus: tuple[float, ...] = (0.01, 0.02),
    iou: str = "auto",
    iou_points: int = 100_000,
    seed: int = 0,
) -> MeshMetrics:
    """All metrics of the Occupancy Networks protocol between a predicted and a reference mesh.

    Args:
        pred_mesh: ``trimesh.Trimesh`` or (vertices (V, 3), faces (F, 3)); may be empty (module docstring).
        ref_mesh: the same, with at least one face of positive area.
        n_points: points sampled on each surface (ONet: 100 000).
        taus: F-score thresholds as fractions of the reference bounding-box diagonal (1% and 2%).
        iou: ``"auto"`` (only when ``ref_mesh`` is closed, :func:`is_closed`), ``"always"`` or ``"never"``.
        iou_points: uniform points for the IoU.
        seed: seeds the surface samples (the same for both meshes) and the IoU points.

    Returns:
        :class:`MeshMetrics`.

    Raises:
        ValueError: a malformed mesh, a reference without area, non-positive ``taus``, or an unknown ``iou``.
    """
    from shapelatent.data.sampling import sample_surface

    _check_count("n_points", n_points)
    _check_count("iou_points", iou_points)
    taus = tuple(float(t) for t in taus)
    if not taus or not all(np.isfinite(t) and t > 0 for t in taus):
        raise ValueError(f"taus must be positive fractions of the bounding-box diagonal, e.g. (0.01, 0.02); got {taus}")
    if iou not in IOU_MODES:
        raise ValueError(f"iou must be one of {', '.join(IOU_MODES)}; got {iou!r}")
    pv, pf = _as_vf(pred_mesh, "pred_mesh")
    rv, rf = _as_vf(ref_mesh, "ref_mesh")
    if len(rf) == 0 or not _area(rv, rf) > 0:
        raise ValueError("ref_mesh has no faces of positive area; the metrics need a reference surface")
    used = rv[np.unique(rf)]
    diagonal = float(np.linalg.norm(used.max(axis=0) - used.min(axis=0)))
    empty = len(pf) == 0 or not _area(pv, pf) > 0

    iou_value: float | None = None
    if iou == "always" or (iou == "auto" and is_closed((rv, rf))):
        iou_value = 0.0 if empty else volume_iou((pv, pf), (rv, rf), n_points=iou_points, seed=seed)

    if empty:
        logger.info("the predicted mesh is empty: worst-case metrics")
        zeros = {t: 0.0 for t in taus}
        return MeshMetrics(diagonal, diagonal**2, diagonal, diagonal, 0.0, zeros, dict(zeros), dict(zeros),
                           iou_value, diagonal, n_points, empty=True)  # fmt: skip

    import trimesh

    pred = sample_surface(trimesh.Trimesh(pv, pf, process=False), n_points, seed=seed)
    ref = sample_surface(trimesh.Trimesh(rv, rf, process=False), n_points, seed=seed)
    d_pred, to_ref = nearest_distances(pred.points, ref.points)  # accuracy side
    d_ref, to_pred = nearest_distances(ref.points, pred.points)  # completeness side
    nc = _normal_consistency(
        _unit(pred.normals, n_points, "pred normals"), _unit(ref.normals, n_points, "ref normals"), to_ref, to_pred
    )
    scores = {t: _fscore(d_pred, d_ref, t * diagonal) for t in taus}
    accuracy, completeness = float(d_pred.mean()), float(d_ref.mean())
    return MeshMetrics(
        chamfer_l1=0.5 * (accuracy + completeness),
        chamfer_l2=0.5 * float((d_pred**2).mean() + (d_ref**2).mean()),
        accuracy=accuracy,
        completeness=completeness,
        normal_consistency=nc,
        fscore={t: s.fscore for t, s in scores.items()},
        precision={t: s.precision for t, s in scores.items()},
        recall={t: s.recall for t, s in scores.items()},
        iou=iou_value,
        diagonal=diagonal,
        n_points=n_points,
    )
