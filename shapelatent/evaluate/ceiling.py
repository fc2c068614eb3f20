"""The geometry ceiling: class precision@k and kNN accuracy from Chamfer distances between the true shapes.

What the latent codes' neighbour figures should be compared with: the same figures, computed the same way, from
the pairwise Chamfer distances of the true point clouds (no model at all). Codes that score near this line order
the shapes as their geometry does; a class that geometry itself does not separate cannot be asked of the codes.

Both lines come from one function, :func:`neighbour_figures`, given a distance matrix: Euclidean distances
between codes (:func:`code_distances`, the ``euclidean`` metric of :mod:`shapelatent.latent.retrieval`) or
Chamfer distances between clouds (:func:`shapelatent.metrics.pairwise_chamfer`, the squared-L2 Chamfer of
:mod:`shapelatent.ops.chamfer`). The definitions are those of ``shapelatent evaluate``:

* class precision@k (leave-one-out, as :func:`shapelatent.evaluate.latent.class_precision`): for each shape of
  a set, the share of its k nearest *other* shapes of the set that have its class; the mean over the set.
  ``k`` is lowered to ``n - 1`` for a set of ``n``.
* kNN accuracy (the k-nearest-neighbour rule of Cover and Hart, "Nearest neighbor pattern classification",
  IEEE Trans. Inf. Theory 1967): each evaluated shape gets the majority class of its k nearest training shapes,
  a tie between classes going to the class ranked nearest (as :func:`shapelatent.latent.retrieval.knn_classify`);
  the share of evaluated shapes given their own class.

Neighbours are ranked by (distance, index): equal distances go to the lower index, as in the retrieval module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["NeighbourFigures", "code_distances", "knn_predict", "loo_precision", "neighbour_figures"]


class NeighbourFigures(NamedTuple):
    """Class precision@k and kNN accuracy of one distance matrix.

    Attributes:
        figures: ``{"precision_split", "precision_all", "knn_accuracy"}``, each ``{"value", "k", ...}`` or
            ``{"skipped": reason, ...}`` (the JSON record).
        precision: (M,) float64 leave-one-out precision@k of each evaluated shape among the evaluated shapes
            (empty when skipped).
        correct: (M,) bool, each evaluated shape given its own class by the kNN vote (empty when skipped).
    """

    figures: dict[str, Any]
    precision: np.ndarray
    correct: np.ndarray


def _order(dist: np.ndarray) -> np.ndarray:
    """(M, N) int64: each row's column indices sorted by (distance, index)."""
    return np.argsort(dist, axis=1, kind="stable")


def loo_precision(dist: np.ndarray, classes: Sequence[str], k: int) -> np.ndarray:
    """Leave-one-out class precision@k of each item of a set, from the set's distance matrix.

    Args:
        dist: (M, M) float distances within the set (the diagonal is ignored).
        classes: M class names.
        k: neighbours, 1 <= k <= M - 1.

    Returns:
        (M,) float64, the share of each item's k nearest other items that have its class.
    """
    d = np.array(dist, dtype=np.float64)
    m = len(classes)
    if d.shape != (m, m):
        raise ValueError(f"dist must be (M, M) with M = {m} classes; got {d.shape}")
    if not 1 <= k <= m - 1:
        raise ValueError(f"k must be in 1..{m - 1} for a set of {m}; got {k}")
    np.fill_diagonal(d, np.inf)  # leave the item itself out: it sorts last, past the k taken
    nearest = _order(d)[:, :k]  # (M, k)
    lab = np.asarray(classes, dtype=object)
    return (lab[nearest] == lab[:, None]).mean(axis=1).astype(np.float64)


def _vote(ranked: Sequence[str]) -> str:
    """Majority class of neighbour classes listed nearest first; a tie goes to the class ranked nearest."""
    counts = Counter(ranked)
    top = max(counts.values())
    return next(c for c in ranked if counts[c] == top)


def knn_predict(dist: np.ndarray, ref_classes: Sequence[str], k: int) -> list[str]:
    """Class of each query by majority vote of its k nearest references (ties: the class ranked nearest).

    Args:
        dist: (M, N) float distances, queries x references.
        ref_classes: N class names of the references.
        k: neighbours, 1 <= k <= N.

    Returns:
        M predicted class names.
    """
    d = np.asarray(dist, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != len(ref_classes):
        raise ValueError(f"dist must be (M, N) with N = {len(ref_classes)} reference classes; got {d.shape}")
    if not 1 <= k <= d.shape[1]:
        raise ValueError(f"k must be in 1..{d.shape[1]}; got {k}")
    ref = [str(c) for c in ref_classes]
    return [_vote([ref[j] for j in row]) for row in _order(d)[:, :k].tolist()]


def code_distances(codes: np.ndarray) -> np.ndarray:
    """Euclidean distances between latent codes, from their differences (a code's distance to itself is 0).

    Args:
        codes: (N, Z) float.

    Returns:
        (N, N) float64.
    """
    from scipy.spatial.distance import cdist

    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"codes must be (N, Z); got shape {x.shape}")
    return cdist(x, x, "euclidean")


def _precision_entry(dist: np.ndarray, classes: list[str], k: int, what: str) -> tuple[dict[str, Any], np.ndarray]:
    n = len(classes)
    out: dict[str, Any] = {"among": what, "n": n, "k_requested": k}
    if n < 2:
        return {**out, "skipped": f"needs at least 2 shapes, got {n}"}, np.zeros(0)
    if any(not c for c in classes):
        return {**out, "skipped": "some shapes have no class label"}, np.zeros(0)
    per = loo_precision(dist, classes, min(k, n - 1))
    return {**out, "k": min(k, n - 1), "value": float(per.mean())}, per


def neighbour_figures(
    dist: np.ndarray,
    classes: Sequence[str],
    evaluated: np.ndarray,
    reference: np.ndarray,
    k: int = 5,
    *,
    split: str = "test",
) -> NeighbourFigures:
    """Class precision@k (within the evaluated shapes, and among all) and kNN accuracy (evaluated vs reference).

    Args:
        dist: (N, N) float distances between all N shapes (Chamfer of the clouds, or Euclidean of the codes).
        classes: N class names.
        evaluated: (M,) int indices of the evaluated shapes (a test split or fold).
        reference: (R,) int indices of the shapes that vote (the training split).
        k: neighbours of both figures (lowered to what a set holds, and recorded).
        split: the evaluated set's name, recorded as ``among``.

    Returns:
        :class:`NeighbourFigures`.
    """
    d = np.asarray(dist, dtype=np.float64)
    labels = [str(c) for c in classes]
    if d.shape != (len(labels), len(labels)):
        raise ValueError(f"dist must be (N, N) with N = {len(labels)} classes; got {d.shape}")
    ev, ref = np.asarray(evaluated, dtype=np.int64), np.asarray(reference, dtype=np.int64)
    ev_labels, ref_labels = [labels[i] for i in ev], [labels[i] for i in ref]
    split_entry, per = _precision_entry(d[np.ix_(ev, ev)], ev_labels, k, f"{split} split")
    all_entry, _ = _precision_entry(d, labels, k, "all shapes")
    knn: dict[str, Any] = {"k_requested": k, "n": len(ev), "n_reference": len(ref)}
    correct = np.zeros(0, dtype=bool)
    if not len(ev) or not len(ref):
        knn["skipped"] = "no evaluated or no reference shapes"
    elif any(not c for c in ev_labels + ref_labels):
        knn["skipped"] = "some shapes have no class label"
    else:
        knn["k"] = min(k, len(ref))
        predicted = knn_predict(d[np.ix_(ev, ref)], ref_labels, knn["k"])
        correct = np.array([p == c for p, c in zip(predicted, ev_labels, strict=True)], dtype=bool)
        knn["value"] = float(correct.mean())
    return NeighbourFigures(
        {"precision_split": split_entry, "precision_all": all_entry, "knn_accuracy": knn}, per, correct
    )
