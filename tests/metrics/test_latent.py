"""Latent-code metrics: linear-SVM accuracy and the re-exported precision@k."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from shapelatent.latent import retrieval
from shapelatent.metrics import latent
from shapelatent.metrics.latent import precision_at_k, svm_accuracy


def _blobs(per_class: int, seed: int, offset: float = 4.0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [offset, 0.0, 0.0, 0.0], [0.0, offset, 0.0, 0.0]])
    codes = np.concatenate([c + rng.normal(size=(per_class, 4)) for c in centers])
    labels = np.repeat(["chair", "sofa", "stool"], per_class)
    return codes * 100.0 + 5.0, labels  # large scale and offset: the standardisation must handle it


def test_separable_classes_give_full_accuracy():
    train, train_y = _blobs(30, 0, offset=12.0)
    test, test_y = _blobs(10, 1, offset=12.0)
    assert svm_accuracy(train, train_y, test, test_y) == 1.0


def test_accuracy_matches_a_manual_pipeline_and_is_seeded():
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    train, train_y = _blobs(40, 2, offset=2.0)
    test, test_y = _blobs(20, 3, offset=2.0)
    acc = svm_accuracy(train, list(train_y), test, test_y, C=0.5, seed=3)
    scaler = StandardScaler().fit(train)
    manual = LinearSVC(C=0.5, random_state=3, max_iter=10000).fit(scaler.transform(train), train_y)
    assert acc == pytest.approx(np.mean(manual.predict(scaler.transform(test)) == test_y))
    assert 0.5 < acc < 1.0
    assert svm_accuracy(train, train_y, test, test_y, C=0.5, seed=3) == acc


def test_unseen_test_class_is_logged_and_counts_wrong(caplog):
    train, train_y = _blobs(20, 4, offset=12.0)
    test, test_y = _blobs(5, 5, offset=12.0)
    test_y = test_y.copy()
    test_y[:5] = "table"
    with caplog.at_level(logging.WARNING, logger=latent.__name__):
        acc = svm_accuracy(train, train_y, test, test_y)
    assert "['table'] never occur in training" in caplog.text
    assert acc == pytest.approx(10 / 15)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((4, 2)), ["a"] * 4, np.zeros((2, 2)), ["a", "a"]), r"hold 1 class \(\['a'\]\)"),
        ((np.zeros((4, 2)), ["a", "b"], np.zeros((2, 2)), ["a", "b"]), "one label per code"),
        ((np.zeros((4, 2)), list("abab"), np.zeros((2, 3)), ["a", "b"]), "Z=2 but test codes Z=3"),
        ((np.zeros(4), list("abab"), np.zeros((2, 2)), ["a", "b"]), r"train_codes must be a non-empty \(N, Z\)"),
        ((np.full((4, 2), np.nan), list("abab"), np.zeros((2, 2)), ["a", "b"]), "contains NaN"),
    ],
)
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        svm_accuracy(*args)


def test_precision_at_k_is_the_retrieval_function():
    assert precision_at_k is retrieval.precision_at_k
