"""Low-dimensional maps of a latent store, and how well its classes separate in the full latent space.

A map is for looking; the separation figures are for judging. :func:`project_codes` projects codes to 2 or 3
dimensions (PCA by default; t-SNE from scikit-learn; UMAP when ``umap-learn`` is installed). :func:`class_separation`
measures class structure on the *full* Z-dimensional codes, never on the projection, so the figures do not depend
on the map method:

* class precision@k: leave-one-out, the fraction of each item's k nearest other items (Euclidean unless told) that
  share its class, averaged over items (:func:`shapelatent.latent.retrieval.precision_at_k`);
* silhouette score (Rousseeuw 1987, scikit-learn's ``silhouette_score``): mean over items of
  ``(b - a) / max(a, b)`` with ``a`` the mean distance to the item's own class and ``b`` the smallest mean distance
  to another class; in [-1, 1], higher is better separated.

Stores larger than ``max_points`` are subsampled uniformly without replacement with a stated seed; the chosen rows
are returned so pictures and figures can say what they show.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "Projection", "Separation", "class_separation", "fit_pca", "project_codes", "subsample"]

METHODS = ("pca", "tsne", "umap")


class Projection(NamedTuple):
    """A projected store.

    Attributes:
        coords: (N', D) float32 map coordinates, D = ``dims``.
        indices: (N',) int64 rows of the input codes that were projected (sorted; all rows when not subsampled).
        method: ``pca``, ``tsne`` or ``umap``.
        dims: 2 or 3.
        seed: the seed used for subsampling and for the method.
        explained_variance: (D,) float64 fraction of variance of each PCA axis (None for other methods).
    """

    coords: np.ndarray
    indices: np.ndarray
    method: str
    dims: int
    seed: int
    explained_variance: np.ndarray | None


class Separation(NamedTuple):
    """Class separation measured on the full latent codes.

    Attributes:
        precision_at_k: leave-one-out class precision@k in [0, 1].
        k: the k used.
        silhouette: silhouette score in [-1, 1] (None with fewer than 2 classes or a class of one item everywhere).
        n: number of items measured.
        num_classes: number of distinct classes among them.
        metric: ``euclidean`` or ``cosine``.
        seed: subsampling seed (only matters when ``n`` < the store size).
    """

    precision_at_k: float
    k: int
    silhouette: float | None
    n: int
    num_classes: int
    metric: str
    seed: int


def subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Rows to keep: all of ``range(n)`` or, when ``n > max_points``, ``max_points`` of them drawn with ``seed``.

    Returns:
        (M,) int64 sorted row indices.
    """
    if max_points is not None and (isinstance(max_points, bool) or int(max_points) < 1):
        raise ValueError(f"max_points must be a positive integer or None; got {max_points!r}")
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_points), replace=False)).astype(np.int64)


def _check_codes(codes: np.ndarray) -> np.ndarray:
    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"codes must be of shape (N, Z) with N >= 2; got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("codes contain NaN or inf; re-encode the store.")
    return x


def fit_pca(codes: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of codes, with the sign convention every map here uses (each axis's largest loading > 0).

    Args:
        codes: (N, Z) float codes, N >= 2, finite.
        dims: number of axes D.

    Returns:
        mean (Z,) float64; axes (D, Z) float64 orthonormal rows (zero rows when Z < D); explained (D,) float64
        fraction of the variance along each axis.
    """
    x = _check_codes(codes)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:dims]  # (<=D, Z)
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    var = s**2
    explained = var[:dims] / var.sum() if var.sum() > 0 else np.zeros(len(axes))
    pad = dims - len(axes)  # fewer latent dimensions than map dimensions
    return mean, np.pad(axes, ((0, pad), (0, 0))), np.pad(explained, (0, pad))


def project_codes(
    codes: np.ndarray,
    method: str = "pca",
    dims: int = 2,
    seed: int = 0,
    max_points: int | None = None,
    perplexity: float = 30.0,
) -> Projection:
    """Project latent codes to a 2-D or 3-D map.

    Args:
        codes: (N, Z) float codes, N >= 2.
        method: ``pca`` (exact, deterministic up to the sign convention: each axis's largest loading is positive),
            ``tsne`` (scikit-learn, PCA-initialised, perplexity capped at (N' - 1) / 3) or ``umap`` (needs
            ``pip install umap-learn``).
        dims: 2 or 3.
        seed: subsampling and method seed; the same seed gives the same map.
        max_points: project at most this many codes (uniform subsample with ``seed``); None keeps all.
        perplexity: t-SNE perplexity.

    Returns:
        A :class:`Projection`.

    Raises:
        ValueError: unknown method, dims not 2 or 3, codes not (N, Z) finite with N >= 2.
        ImportError: ``method="umap"`` without ``umap-learn`` installed.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3; got {dims!r}")
    x = _check_codes(codes)
    keep = subsample(len(x), max_points, seed)
    x = x[keep]
    explained = None
    if method == "pca":
        mean, axes, explained = fit_pca(x, dims)
        coords = (x - mean) @ axes.T  # (N', D)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(min(perplexity, max(1.0, (len(x) - 1) / 3.0)))
        coords = TSNE(n_components=dims, perplexity=perp, init="pca", random_state=seed).fit_transform(x)
    else:
        try:
            import umap
        except ImportError as exc:
            raise ImportError(
                "method 'umap' needs the umap-learn package: pip install umap-learn (or use --method pca or tsne)."
            ) from exc
        n_neighbors = int(min(15, len(x) - 1))
        coords = umap.UMAP(n_components=dims, random_state=seed, n_neighbors=max(2, n_neighbors)).fit_transform(x)
    logger.info("projected %d codes with %s to %dD", len(x), method, dims)
    return Projection(np.asarray(coords, dtype=np.float32), keep, method, dims, seed, explained)


def class_separation(
    codes: np.ndarray,
    classes: Sequence[str],
    k: int = 5,
    metric: str = "euclidean",
    max_points: int | None = None,
    seed: int = 0,
) -> Separation:
    """Class precision@k and silhouette score on the full latent codes.

    Args:
        codes: (N, Z) float codes.
        classes: N class names.
        k: neighbours for precision@k (capped at N' - 1).
        metric: ``euclidean`` or ``cosine``, used by both figures.
        max_points: measure on at most this many items (uniform subsample with ``seed``).
        seed: subsampling seed.

    Returns:
        A :class:`Separation`.
    """
    from sklearn.metrics import silhouette_score

    from shapelatent.latent.retrieval import precision_at_k

    x = _check_codes(codes)
    if len(classes) != len(x):
        raise ValueError(f"got {len(classes)} class labels for {len(x)} codes; they must match one to one.")
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine'; got {metric!r}")
    if isinstance(k, bool) or int(k) < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    keep = subsample(len(x), max_points, seed)
    x = x[keep]
    labels = np.asarray(classes, dtype=object)[keep]
    kk = int(min(int(k), len(x) - 1))
    prec = precision_at_k(x.astype(np.float32), list(labels), k=kk, metric=metric)
    distinct = np.unique(labels.astype(str))
    sil = None
    if 2 <= len(distinct) <= len(x) - 1:
        sil = float(silhouette_score(x, labels.astype(str), metric=metric))
    return Separation(float(prec), kk, sil, len(x), len(distinct), metric, seed)
