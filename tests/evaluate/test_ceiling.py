"""The geometry ceiling against brute-force loops, and the codes' line against the evaluation's own figures."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from shapelatent.evaluate.ceiling import code_distances, knn_predict, loo_precision, neighbour_figures
from shapelatent.latent.retrieval import knn_classify, precision_at_k
from shapelatent.metrics import pairwise_chamfer
from shapelatent.ops.chamfer import chamfer_reference


@pytest.fixture(scope="module")
def clouds():
    """12 seeded clouds of 64 points in 3 classes (blobs of different sizes, so geometry mostly separates them)."""
    rng = np.random.default_rng(7)
    classes = ["small", "mid", "large"] * 4
    scale = {"small": 0.3, "mid": 0.6, "large": 1.0}
    pts = np.stack([rng.normal(size=(64, 3)) * scale[c] * rng.uniform(0.7, 1.3) for c in classes]).astype(np.float32)
    return pts, classes


def _brute_chamfer(pts: np.ndarray) -> np.ndarray:
    n = len(pts)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            a, b = torch.from_numpy(pts[i : i + 1]).double(), torch.from_numpy(pts[j : j + 1]).double()
            d[i, j] = float(chamfer_reference(a, b, reduction="none").loss[0])
    return d


def _brute_ranked(d_row: list[float], candidates: list[int]) -> list[int]:
    return sorted(candidates, key=lambda j: (d_row[j], j))


def _brute_precision(d: np.ndarray, classes: list[str], items: list[int], k: int) -> list[float]:
    out = []
    for i in items:
        near = _brute_ranked(d[i].tolist(), [j for j in items if j != i])[:k]
        out.append(sum(classes[j] == classes[i] for j in near) / k)
    return out


def _brute_knn(d: np.ndarray, classes: list[str], queries: list[int], refs: list[int], k: int) -> list[str]:
    out = []
    for i in queries:
        near = [classes[j] for j in _brute_ranked(d[i].tolist(), refs)[:k]]
        counts = Counter(near)
        best = max(counts.values())
        out.append(next(c for c in near if counts[c] == best))  # a tie: the class ranked nearest
    return out


def test_ceiling_matches_brute_force_chamfer_ranking(clouds):
    pts, classes = clouds
    brute = _brute_chamfer(pts.astype(np.float64))
    dist = pairwise_chamfer(pts)
    np.testing.assert_allclose(dist, brute, rtol=1e-5, atol=1e-7)
    ev, tr = np.array([0, 1, 2, 3, 4, 5]), np.array([6, 7, 8, 9, 10, 11])
    for k in (1, 3, 5):
        fig = neighbour_figures(dist, classes, ev, tr, k)
        want_split = _brute_precision(brute, classes, ev.tolist(), k)
        want_all = _brute_precision(brute, classes, list(range(12)), k)
        want_knn = _brute_knn(brute, classes, ev.tolist(), tr.tolist(), k)
        np.testing.assert_allclose(fig.precision, want_split, atol=1e-12)
        assert fig.figures["precision_split"]["value"] == pytest.approx(np.mean(want_split), abs=1e-12)
        assert fig.figures["precision_all"]["value"] == pytest.approx(np.mean(want_all), abs=1e-12)
        correct = [p == classes[i] for p, i in zip(want_knn, ev.tolist(), strict=True)]
        assert fig.correct.tolist() == correct
        assert fig.figures["knn_accuracy"]["value"] == pytest.approx(np.mean(correct), abs=1e-12)
    fig = neighbour_figures(dist, classes, ev, tr, 9)  # k lowered to what each set holds, and recorded
    assert fig.figures["precision_split"]["k"] == 5 and fig.figures["knn_accuracy"]["k"] == 6


def test_ties_go_to_the_lower_index_and_the_nearer_class():
    d = np.array([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 2.0, 2.0], [1.0, 2.0, 0.0, 2.0], [1.0, 2.0, 2.0, 0.0]])
    # item 0 is equally far from 1, 2 and 3: the lower indices come first
    assert loo_precision(d, ["a", "a", "b", "b"], 1)[0] == 1.0
    assert loo_precision(d, ["a", "b", "a", "a"], 1)[0] == 0.0
    # a 1-1 vote between classes: the class ranked nearest wins
    assert knn_predict(np.array([[0.5, 0.2]]), ["x", "y"], 2) == ["y"]
    assert knn_predict(np.array([[0.2, 0.2]]), ["x", "y"], 2) == ["x"]


def test_codes_line_is_the_retrieval_modules_definition():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(30, 8)).astype(np.float32)
    classes = [str(c) for c in rng.choice(["a", "b", "c"], 30)]
    ev, tr = np.arange(0, 12), np.arange(12, 30)
    fig = neighbour_figures(code_distances(codes), classes, ev, tr, 5)
    assert fig.figures["precision_all"]["value"] == pytest.approx(precision_at_k(codes, classes, 5), abs=1e-12)
    assert fig.figures["precision_split"]["value"] == pytest.approx(
        precision_at_k(codes[ev], [classes[i] for i in ev], 5), abs=1e-12
    )
    predicted = knn_classify(codes[tr], [classes[i] for i in tr], codes[ev], k=5)
    assert fig.figures["knn_accuracy"]["value"] == pytest.approx(
        np.mean([p == classes[i] for p, i in zip(predicted, ev, strict=True)]), abs=1e-12
    )


def test_unlabelled_or_too_small_sets_are_skipped_with_the_reason():
    d = np.ones((3, 3)) - np.eye(3)
    fig = neighbour_figures(d, ["a", "", "a"], np.array([0, 1]), np.array([2]), 5)
    assert fig.figures["precision_split"]["skipped"] == "some shapes have no class label"
    assert fig.figures["knn_accuracy"]["skipped"] == "some shapes have no class label"
    fig = neighbour_figures(d, ["a", "b", "a"], np.array([0]), np.array([]), 5)
    assert "needs at least 2" in fig.figures["precision_split"]["skipped"]
    assert "no evaluated or no reference" in fig.figures["knn_accuracy"]["skipped"]
    with pytest.raises(ValueError, match=r"dist must be \(N, N\) with N = 2"):
        neighbour_figures(d, ["a", "b"], np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="k must be in 1..2"):
        loo_precision(d, ["a", "b", "a"], 3)
