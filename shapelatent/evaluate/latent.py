"""Latent-space metrics of an evaluation: class precision@k, linear-SVM accuracy, interpolation class consistency.

Each metric that cannot be computed on the data at hand (no class labels, a single class, too few shapes)
is recorded as ``{"skipped": reason}`` instead of a number, never silently left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from shapelatent.latent.decode import decode_codes
from shapelatent.latent.interpolate import latent_path
from shapelatent.models.load import LoadedModel

__all__ = ["class_precision", "interpolation_consistency", "linear_svm", "same_class_pairs", "sample_titles"]

logger = logging.getLogger(__name__)


class _CodeSet:
    """Codes and classes shaped like a :class:`~shapelatent.latent.store.LatentStore` for ``runs.classify_points``."""

    def __init__(self, codes: np.ndarray, classes: Sequence[str]) -> None:
        self.codes = np.asarray(codes, dtype=np.float32)
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.classes)


def _unlabelled(classes: Sequence[str]) -> bool:
    return any(not c for c in classes)


def class_precision(codes: np.ndarray, classes: Sequence[str], k: int, what: str) -> dict[str, Any]:
    """Leave-one-out class precision@k of ``codes`` among themselves.

    Args:
        codes: (N, Z) float.
        classes: N class names.
        k: neighbours; lowered to N - 1 when there are fewer codes (the k used is recorded).
        what: which codes these are, e.g. ``"test split"`` (recorded as ``among``).

    Returns:
        ``{"k", "n", "among", "value"}`` or ``{"skipped": reason, ...}``.
    """
    from shapelatent.metrics import precision_at_k

    n = len(classes)
    out: dict[str, Any] = {"among": what, "n": n, "k_requested": k}
    if n < 2:
        return {**out, "skipped": f"needs at least 2 codes, got {n}"}
    if _unlabelled(classes):
        return {**out, "skipped": "some shapes have no class label"}
    k_used = min(k, n - 1)
    return {**out, "k": k_used, "value": float(precision_at_k(np.asarray(codes), list(classes), k=k_used))}


def linear_svm(
    train_codes: np.ndarray,
    train_classes: Sequence[str],
    test_codes: np.ndarray,
    test_classes: Sequence[str],
    *,
    seed: int = 0,
    c: float = 1.0,
) -> dict[str, Any]:
    """Linear-SVM class accuracy: fit on training codes, score on the evaluated codes.

    Args:
        train_codes: (N, Z) float. test_codes: (M, Z) float.

    Returns:
        ``{"value", "C", "n_train", "n_test", "classes"}`` or ``{"skipped": reason, ...}``.
    """
    from shapelatent.metrics import svm_accuracy

    n_classes = len(set(train_classes))
    out: dict[str, Any] = {"C": c, "n_train": len(train_classes), "n_test": len(test_classes), "classes": n_classes}
    if _unlabelled(train_classes) or _unlabelled(test_classes):
        return {**out, "skipped": "some shapes have no class label"}
    if n_classes < 2:
        return {**out, "skipped": f"the training codes hold {n_classes} class; a classifier needs at least 2"}
    if not len(test_classes):
        return {**out, "skipped": "no evaluated shapes"}
    value = svm_accuracy(
        np.asarray(train_codes), list(train_classes), np.asarray(test_codes), list(test_classes), C=c, seed=seed
    )
    return {**out, "value": float(value)}


def same_class_pairs(classes: Sequence[str], n_pairs: int, seed: int = 0) -> list[tuple[int, int]]:
    """Up to ``n_pairs`` distinct seeded pairs ``(i, j)``, ``i < j``, of items with the same (non-empty) class.

    Fewer when fewer exist. The same seed gives the same pairs.
    """
    by_class: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        if c:
            by_class.setdefault(c, []).append(i)
    pools = [v for _, v in sorted(by_class.items()) if len(v) >= 2]
    available = sum(len(v) * (len(v) - 1) // 2 for v in pools)
    want = min(n_pairs, available)
    rng = np.random.default_rng(seed)
    weights = np.array([len(v) for v in pools], dtype=np.float64)
    chosen: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while len(chosen) < want and attempts < 100 * want + 100:
        attempts += 1
        pool = pools[int(rng.choice(len(pools), p=weights / weights.sum()))]
        a, b = rng.choice(len(pool), 2, replace=False)
        pair = (min(pool[a], pool[b]), max(pool[a], pool[b]))
        if pair not in seen:
            seen.add(pair)
            chosen.append(pair)
    if len(chosen) < want:  # a tiny, crowded space: enumerate what is left, in order
        rest = [(p[i], p[j]) for p in pools for i in range(len(p)) for j in range(i + 1, len(p))]
        chosen += [q for q in rest if q not in seen][: want - len(chosen)]
    return chosen


def interpolation_consistency(
    loaded: LoadedModel,
    codes: np.ndarray,
    classes: Sequence[str],
    ref_codes: np.ndarray,
    ref_classes: Sequence[str],
    *,
    n_pairs: int = 10,
    steps: int = 8,
    k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Interpolation class consistency over seeded same-class pairs of the evaluated shapes.

    For each pair, the linear path of ``steps`` codes (endpoints included) is decoded, re-encoded and classified
    by a vote of its k nearest reference codes, exactly as ``shapelatent interpolate --store`` does
    (:func:`shapelatent.latent.runs.classify_points`); the pair's consistency is the share of steps given the
    endpoints' class.

    Args:
        codes: (M, Z) float codes of the evaluated shapes; classes: their M classes.
        ref_codes: (N, Z) float reference codes (the training codes); ref_classes: their N classes.

    Returns:
        ``{"value" (mean over pairs), "pairs", "steps", "k", "per_pair": [{"a", "b", "class", "consistency"}]}``
        or ``{"skipped": reason, ...}``.
    """
    from shapelatent.latent.runs import classify_points

    out: dict[str, Any] = {"steps": steps, "k": k, "reference": f"{len(ref_classes)} training codes"}
    if _unlabelled(classes) or _unlabelled(ref_classes):
        return {**out, "skipped": "some shapes have no class label"}
    if len(set(ref_classes)) < 2:
        return {**out, "skipped": "the reference codes hold fewer than 2 classes; every step would agree"}
    pairs = [(a, b) for a, b in same_class_pairs(classes, n_pairs, seed) if not np.array_equal(codes[a], codes[b])]
    if not pairs:
        return {**out, "skipped": "no two evaluated shapes share a class"}
    ref = _CodeSet(ref_codes, ref_classes)
    rows = []
    for a, b in pairs:
        path = latent_path([codes[a], codes[b]], steps)
        points, _ = decode_codes(loaded, path.codes)
        predicted = classify_points(loaded, ref, points, k=k)
        assert predicted is not None  # None only for an unlabelled reference, skipped above
        share = sum(p == classes[a] for p in predicted) / len(predicted)
        rows.append({"a": int(a), "b": int(b), "class": classes[a], "consistency": float(share)})
    return {**out, "pairs": len(rows), "value": float(np.mean([r["consistency"] for r in rows])), "per_pair": rows}


def sample_titles(
    loaded: LoadedModel, clouds: np.ndarray, codes: np.ndarray, classes: Sequence[str], k: int = 5
) -> list[str]:
    """Picture titles ``#i (class)`` of decoded clouds, the class voted by their k nearest reference codes.

    Args:
        clouds: (S, P, 3) float decoded clouds.
        codes: (N, Z) float reference (training) codes; classes: their N classes.

    Returns:
        S titles; ``#i`` alone when the reference shapes are unlabelled.
    """
    from shapelatent.latent.runs import classify_points

    if not len(clouds) or _unlabelled(classes):
        return [f"#{i}" for i in range(len(clouds))]
    predicted = classify_points(loaded, _CodeSet(codes, classes), clouds, k=k) or [""] * len(clouds)
    return [f"#{i} ({c})" for i, c in enumerate(predicted)]
