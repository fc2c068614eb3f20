"""Stratified splits and folds: every class spread over the splits (or folds) in proportion.

Two functions, both seeded and both pure (no files; :mod:`shapelatent.data.resplit` writes them to disk):

* :func:`stratified_split` -> split codes like :func:`shapelatent.data.format.split_codes`, but cut per class, so
  that a class of 7 shapes does not end up with no test shape by chance. ``shapelatent data build --split
  stratified`` and ``shapelatent data split`` use it.
* :func:`stratified_folds` -> a fold index per shape for K-fold cross-validation stratified by class (Kohavi,
  "A study of cross-validation and bootstrap for accuracy estimation and model selection", IJCAI 1995, which
  recommends stratified folds): ``shapelatent evaluate --folds K``.

Unlabelled shapes (class ``""``) are one class of their own, ``""``, here; nothing is an error because of them
(the class-based metrics of an evaluation say ``skipped`` for them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shapelatent.data.metadata import SPLITS

__all__ = [
    "SPLIT_METHODS",
    "check_fractions",
    "check_split_method",
    "class_members",
    "stratified_folds",
    "stratified_split",
]

#: ``--split`` of ``data build`` and ``--method`` of ``data split``: ``random`` is one seeded permutation of all
#: shapes cut by the fractions (:func:`shapelatent.data.format.split_codes`); ``stratified`` cuts each class.
SPLIT_METHODS = ("random", "stratified")
#: Order in which a class too small for every split gets its shapes: the model must see the class, then it
#: should be tested on it; validation comes last.
_SMALL_CLASS_ORDER = ("train", "test", "val")


def check_split_method(method: str) -> str:
    """``method`` if it is one of :data:`SPLIT_METHODS` (ValueError naming them if not)."""
    if method not in SPLIT_METHODS:
        raise ValueError(f"split method must be one of {', '.join(SPLIT_METHODS)}; got {method!r}")
    return method


def check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    """``fractions`` if its names are in :data:`SPLITS` and its values are >= 0 and sum to 1 (ValueError if not)."""
    if not fractions or set(fractions) - set(SPLITS):
        raise ValueError(f"split fractions must use the names {SPLITS}; got {sorted(fractions)}")
    total = sum(fractions.values())
    if any(not f >= 0 for f in fractions.values()) or not abs(total - 1.0) < 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1; got {fractions}")
    return fractions


def class_members(classes: Sequence[str]) -> dict[str, np.ndarray]:
    """``{class: (n_c,) int64 indices}`` of each class, classes sorted by name (``""`` first when present)."""
    labels = np.asarray([str(c) for c in classes], dtype=object)
    return {c: np.flatnonzero(labels == c).astype(np.int64) for c in sorted(set(labels.tolist()))}


def _class_counts(n: int, fractions: dict[str, float]) -> list[int]:
    """Shapes of a class of ``n`` per split (in :data:`SPLITS` order); see :func:`stratified_split`."""
    wanted = [fractions.get(s, 0.0) for s in SPLITS]
    used = [i for i, f in enumerate(wanted) if f > 0]
    if n < len(used):  # too small for every split: one each, in _SMALL_CLASS_ORDER
        counts = [0] * len(SPLITS)
        order = [SPLITS.index(s) for s in _SMALL_CLASS_ORDER if SPLITS.index(s) in used]
        for i in order[:n]:
            counts[i] = 1
        return counts
    exact = [f * n for f in wanted]
    counts = [int(np.floor(x)) for x in exact]
    # largest remainder (Hamilton): the shapes left go to the largest fractional parts, ties in SPLITS order
    for i in sorted(range(len(SPLITS)), key=lambda i: (-(exact[i] - counts[i]), i))[: n - sum(counts)]:
        counts[i] += 1
    for i in used:  # every split the fractions ask for gets at least one shape, taken from the largest
        if counts[i] == 0:
            counts[max(range(len(SPLITS)), key=lambda j: (counts[j], -j))] -= 1
            counts[i] = 1
    return counts


def stratified_split(classes: Sequence[str], seed: int, fractions: dict[str, float]) -> np.ndarray:
    """Model-level split cut per class: each class's shapes, in a seeded order, cut by the fractions.

    Rounding, per class of n_c shapes: split s first gets ``floor(f_s * n_c)`` shapes; the shapes left go one each
    to the splits with the largest fractional parts ``f_s * n_c - floor(f_s * n_c)`` (largest-remainder rounding;
    ties in :data:`SPLITS` order). Then every split with ``f_s > 0`` that got none takes one shape from the
    split holding the most, so each class is in each asked-for split whenever ``n_c`` is at least the number of
    such splits. A smaller class puts one shape in train, then test, then val (as far as it goes). The overall
    counts can therefore differ by a few shapes from ``f_s * N``.

    Args:
        classes: N class names (``""``, unlabelled, is a class of its own).
        seed: seeds the order within each class (classes are visited sorted by name); the same seed gives the
            same split.
        fractions: ``{split: fraction}``, names in :data:`SPLITS`, >= 0, summing to 1.

    Returns:
        (N,) uint8 codes, ``SPLITS[code]`` the split of each shape (as :func:`shapelatent.data.format.split_codes`).

    Raises:
        ValueError: bad fraction names or values.
    """
    check_fractions(fractions)
    rng = np.random.default_rng(seed)
    codes = np.zeros(len(classes), dtype=np.uint8)
    for members in class_members(classes).values():
        order = members[rng.permutation(len(members))]
        start = 0
        for code, count in enumerate(_class_counts(len(members), fractions)):
            codes[order[start : start + count]] = code
            start += count
    return codes


def stratified_folds(classes: Sequence[str], k: int, seed: int) -> np.ndarray:
    """K folds stratified by class: each shape in exactly one fold, each class spread evenly over the folds.

    The shapes are dealt like cards: class by class (sorted by name), each class in a seeded order, shape j of the
    whole deal going to fold ``j mod K``. So every class has ``floor(n_c / K)`` or ``ceil(n_c / K)`` shapes in
    each fold, and the folds' sizes differ by at most one.

    Args:
        classes: N class names (``""``, unlabelled, is a class of its own).
        k: K, the number of folds, 2 <= K <= the smallest class's count.
        seed: seeds the order within each class; the same seed gives the same folds.

    Returns:
        (N,) int64 fold index in [0, K).

    Raises:
        ValueError: K < 2, or K larger than a class's count (a fold would hold no shape of that class: the error
            names the classes and the largest K that works).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise ValueError(f"--folds must be an integer >= 2; got {k!r}")
    members = class_members(classes)
    small = {c: len(m) for c, m in members.items() if len(m) < k}
    if small:
        smallest = min(len(m) for m in members.values())
        named = ", ".join(f"{c or '(unlabelled)'!s} ({n})" for c, n in sorted(small.items(), key=lambda x: x[1]))
        fix = (
            f"use --folds {smallest} or fewer"
            if smallest >= 2
            else "drop those classes from the dataset (a class of one shape cannot be tested and trained on)"
        )
        raise ValueError(
            f"--folds {k} is more than the shapes of the classes {named}: some fold would hold no shape of them; {fix}."
        )
    rng = np.random.default_rng(seed)
    folds = np.empty(len(classes), dtype=np.int64)
    dealt = 0
    for m in members.values():
        order = m[rng.permutation(len(m))]
        folds[order] = (dealt + np.arange(len(m))) % k
        dealt += len(m)
    return folds
