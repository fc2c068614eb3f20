"""Metrics of latent codes: linear-SVM classification accuracy, and retrieval precision@k.

``svm_accuracy`` follows Achlioptas et al. ("Learning Representations and Generative Models for 3D Point
Clouds", ICML 2018, section 5.1), who judged an autoencoder's codes by a linear SVM trained on the codes of
ModelNet's training shapes and tested on those of its test shapes: here scikit-learn's ``LinearSVC``
(one-vs-rest, squared hinge loss), on codes standardised with the training set's mean and standard deviation.

``precision_at_k`` is re-exported from :mod:`shapelatent.latent.retrieval`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from shapelatent.latent.retrieval import precision_at_k

__all__ = ["precision_at_k", "svm_accuracy"]

logger = logging.getLogger(__name__)


def _codes(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a non-empty (N, Z) array of numbers; got shape {arr.shape} {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; re-encode those shapes")
    return arr.astype(np.float64, copy=False)


def _labels(value: Sequence[Any] | np.ndarray, count: int, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != count:
        raise ValueError(f"{name} must hold one label per code (N={count}); got shape {arr.shape}")
    return arr


def svm_accuracy(
    train_codes: Any,
    train_labels: Sequence[Any] | np.ndarray,
    test_codes: Any,
    test_labels: Sequence[Any] | np.ndarray,
    *,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 10000,
) -> float:
    """Accuracy on the test codes of a linear SVM trained on the train codes.

    Args:
        train_codes: (N, Z) float codes.
        train_labels: N class labels (strings or integers), at least 2 distinct.
        test_codes: (M, Z) float codes of the same Z.
        test_labels: M labels; a test class never seen in training can only be misclassified.
        C: SVM regularisation (larger: less regularised).
        seed: seeds LinearSVC's coordinate descent; the same seed gives the same accuracy.
        max_iter: LinearSVC iterations; a ConvergenceWarning from scikit-learn means it needs more.

    Returns:
        Fraction of test codes whose predicted label equals ``test_labels``, in [0, 1].

    Raises:
        ValueError: bad shapes, fewer than 2 classes in training, Z mismatch, C <= 0.
    """
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    x_train = _codes(train_codes, "train_codes")
    x_test = _codes(test_codes, "test_codes")
    y_train = _labels(train_labels, len(x_train), "train_labels")
    y_test = _labels(test_labels, len(x_test), "test_labels")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"train codes have Z={x_train.shape[1]} but test codes Z={x_test.shape[1]}; encode both with one model"
        )
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise ValueError(f"the training labels hold {len(classes)} class ({classes.tolist()}); an SVM needs at least 2")
    if not C > 0:
        raise ValueError(f"C must be positive; got {C!r}")
    unseen = sorted(set(np.unique(y_test).tolist()) - set(classes.tolist()))
    if unseen:
        logger.warning("test classes %s never occur in training; their codes count as misclassified", unseen[:10])
    scaler = StandardScaler().fit(x_train)
    svm = LinearSVC(C=C, random_state=seed, max_iter=max_iter)
    svm.fit(scaler.transform(x_train), y_train)
    predicted = svm.predict(scaler.transform(x_test))
    return float(np.mean(predicted == y_test))
