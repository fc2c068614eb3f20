"""Nearest-neighbour retrieval over latent codes: exact (blocked torch matmul) or FAISS (flat, HNSW, IVF).

Build a :class:`NeighborIndex` once over a store's codes and query it many times::

    index = NeighborIndex(store.codes, metric="cosine", index="faiss-hnsw")
    hits = index.search(queries, k=10)          # hits.indices (M, K) int64, hits.distances (M, K) float32

Distances are ``"euclidean"``: the L2 distance ``||q - x||`` (not squared), and ``"cosine"``: ``1 - cos(q, x)``
in [0, 2]. Whatever the index, the distances of the K returned neighbours are recomputed directly from the
codes (``||q - x||`` rather than the faster ``||q||² - 2 q·x + ||x||²`` used to search, so a code's distance to
itself is exactly 0) and each row is sorted by (distance, index): ties go to the lower store index.

Indexes:

* ``exact``: plain torch, any device. The store is scanned in blocks (one ``(queries, block)`` distance matrix
  at a time, about 4 MiB), so a 1M x 128 store never needs an (M, N) matrix. The top K is exact: ties at the
  K-th place are resolved by index too, so results are deterministic.
* ``faiss-flat``: ``IndexFlatL2`` (``IndexFlatIP`` on unit-normalised codes for cosine); exact, like ``exact``.
* ``faiss-hnsw``: ``IndexHNSWFlat`` graph (``hnsw_m`` links per node, ``ef_search`` candidates per query);
  approximate, the fastest per query, the slowest and largest to build.
* ``faiss-ivf``: ``IndexIVFFlat`` with ``nlist`` k-means lists (default about ``4 sqrt(N)``, trained on a seeded
  sample) of which ``nprobe`` are scanned per query; approximate.

The exact search lives in ``retrieval_exact`` and the FAISS indexes in ``retrieval_faiss``; this module
validates input, dispatches, and holds the retrieval metrics. The FAISS indexes need the ``faiss`` extra
(``pip install 'shapelatent[faiss]'``). An approximate index can find fewer than K neighbours (an IVF
whose ``nprobe`` lists hold fewer than K codes); those slots hold index -1 and distance ``inf`` at the end
of the row, and a warning is logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from shapelatent.latent.retrieval_exact import exact_distances, exact_neighbours
from shapelatent.latent.retrieval_faiss import FaissIndex, default_nlist

__all__ = [
    "INDEXES",
    "METRICS",
    "NeighborIndex",
    "SearchResult",
    "knn_classify",
    "precision_at_k",
    "recall_at_k",
    "search",
]

logger = logging.getLogger(__name__)

METRICS = ("euclidean", "cosine")
INDEXES = ("exact", "faiss-flat", "faiss-hnsw", "faiss-ivf")


class SearchResult(NamedTuple):
    """The K nearest store items of each of M queries, nearest first.

    Attributes:
        indices: (M, K) int64 store indices (-1 where an approximate index found fewer than K).
        distances: (M, K) float32; euclidean: L2 distance (not squared); cosine: ``1 - cos``; ``inf`` where
            ``indices`` is -1.
    """

    indices: np.ndarray
    distances: np.ndarray


def _check_choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose from {allowed}")
    return value


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _nonfinite_rows(x: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isfinite(x).all(axis=1))


def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length, for cosine; zero rows are an error."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
        raise ValueError(
            f"{what} {zero[:5].tolist()} {'is' if len(zero) == 1 else 'are'} all zeros; cosine distance is "
            "undefined for a zero vector, use metric='euclidean'."
        )
    return np.ascontiguousarray(x / norms, dtype=np.float32)


class NeighborIndex:
    """A nearest-neighbour index over N latent codes, built once and queried many times.

    Args:
        codes: (N, Z) float array, finite, N >= 1. Kept by reference for ``exact`` on the CPU when it is
            already C-contiguous float32 (``metric="cosine"`` keeps a normalised copy); FAISS indexes hold
            their own copy.
        metric: ``"euclidean"`` or ``"cosine"`` (see the module docstring).
        index: one of ``INDEXES``.
        hnsw_m: links per node of ``faiss-hnsw`` (more: better recall, larger and slower to build).
        ef_construction: candidate list size while building ``faiss-hnsw``.
        ef_search: candidate list size per query of ``faiss-hnsw`` (raised to K when smaller).
        nlist: lists of ``faiss-ivf`` (default ``round(4 sqrt(N))``, capped at N / 40 so that every list gets
            the 40 training points FAISS asks for; at most N).
        nprobe: lists scanned per query of ``faiss-ivf`` (at most ``nlist``).
        seed: seeds the sample ``faiss-ivf`` is trained on and its k-means.
        device: torch device of ``exact`` (FAISS indexes here run on the CPU only).

    ``ef_search`` and ``nprobe`` are read at every search and may be changed between searches (attributes of
    the same names). ``faiss-hnsw`` built with several threads can differ slightly from build to build.

    Raises:
        ValueError: codes that are not (N, Z), empty, or not finite; an unknown metric or index; bad parameters.
        BackendUnavailableError: a FAISS index without FAISS installed.
    """

    def __init__(
        self,
        codes: np.ndarray,
        metric: str = "euclidean",
        index: str = "exact",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        nlist: int | None = None,
        nprobe: int = 16,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.metric = _check_choice(metric, "metric", METRICS)
        self.index = _check_choice(index, "index", INDEXES)
        x = np.asarray(codes)
        if x.ndim != 2:
            raise ValueError(f"codes must be an (N, Z) array; got shape {x.shape}")
        if len(x) == 0:
            raise ValueError("the store is empty (N=0): there is nothing to search; encode some shapes first.")
        if x.shape[1] == 0:
            raise ValueError("codes have Z=0; a latent code needs at least one number.")
        bad = _nonfinite_rows(x)
        if len(bad):
            raise ValueError(
                f"the store's codes contain NaN or inf in rows {bad[:5].tolist()} ({len(bad)} in all); "
                "re-encode those items."
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._raw = x  # (N, Z) for recomputing distances
        self._x = _unit_rows(x, "store codes") if self.metric == "cosine" else x  # (N, Z) what is searched
        self.num_items, self.latent_dim = x.shape
        self.device = torch.device(device)
        if self.index != "exact" and self.device.type != "cpu":
            raise ValueError(f"index {self.index!r} runs on the CPU here; use device='cpu', or index='exact'.")
        self.hnsw_m = _check_positive_int(hnsw_m, "hnsw_m")
        self.ef_construction = _check_positive_int(ef_construction, "ef_construction")
        self.ef_search = _check_positive_int(ef_search, "ef_search")
        self.nprobe = _check_positive_int(nprobe, "nprobe")
        self.seed = int(seed)
        if nlist is None:
            nlist = default_nlist(self.num_items)
        self.nlist = _check_positive_int(nlist, "nlist")
        if self.index == "faiss-ivf" and self.nlist > self.num_items:
            raise ValueError(
                f"nlist={self.nlist} is more lists than the store has codes ({self.num_items}); use nlist <= N."
            )
        self._faiss_index: FaissIndex | None = None
        if self.index == "exact":
            self._t = torch.from_numpy(self._x).to(self.device)  # (N, Z)
            # (N,) squared norms, without an (N, Z) temporary
            self._t_sq = torch.linalg.vector_norm(self._t, dim=1).square_() if self.metric == "euclidean" else None
        else:
            self._faiss_index = FaissIndex(
                self._x,
                self.metric,
                self.index,
                hnsw_m=self.hnsw_m,
                ef_construction=self.ef_construction,
                nlist=self.nlist,
                seed=self.seed,
            )

    # ------------------------------------------------------------------ searching
    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2:
            raise ValueError(f"queries must be a (Z,) code or an (M, Z) array; got shape {q.shape}")
        if q.shape[1] != self.latent_dim:
            raise ValueError(
                f"query has Z={q.shape[1]}, the store's codes have Z={self.latent_dim}; encode the query with the "
                "model that made the store."
            )
        bad = _nonfinite_rows(q)
        if len(bad):
            raise ValueError(f"queries {bad[:5].tolist()} contain NaN or inf; a query code must be finite.")
        q = np.ascontiguousarray(q, dtype=np.float32)
        return _unit_rows(q, "queries") if self.metric == "cosine" and len(q) else q

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude_self: bool = False,
        exclude: Sequence[int] | np.ndarray | None = None,
    ) -> SearchResult:
        """The k nearest store items of each query.

        Args:
            queries: (M, Z) (or one (Z,)) float array, finite.
            k: K, neighbours per query, 1 <= K <= N (N - 1 when excluding).
            exclude_self: the queries are the store's own codes in order (M = N); leave item m out of query m's
                neighbours (leave-one-out).
            exclude: (M,) int store index to leave out of each query's neighbours (-1: none), e.g. the item a
                query was taken from.

        Returns:
            :class:`SearchResult`, (M, K) each, nearest first, ties by lower index.

        Raises:
            ValueError: bad k, queries of another Z, NaN/inf queries, zero queries with cosine, bad ``exclude``.
        """
        k = _check_positive_int(k, "k")
        if exclude_self and exclude is not None:
            raise ValueError("pass either exclude_self=True or exclude=..., not both.")
        q = self._check_queries(queries)
        m = len(q)
        excl: np.ndarray | None = None
        if exclude_self:
            if m != self.num_items:
                raise ValueError(
                    f"exclude_self=True needs the store's own codes as queries (M=N={self.num_items}); got M={m}; "
                    "use exclude=[store index per query] for other queries."
                )
            excl = np.arange(m, dtype=np.int64)
        elif exclude is not None:
            excl = np.asarray(exclude, dtype=np.int64).reshape(-1)
            if excl.shape != (m,) or ((excl < -1) | (excl >= self.num_items)).any():
                raise ValueError(
                    f"exclude must hold one store index (0..{self.num_items - 1}, or -1 for none) per query "
                    f"(M={m}); got {np.asarray(exclude).tolist()[:5]}..."
                )
        available = self.num_items - (1 if excl is not None else 0)
        if k > available:
            less = " less the excluded query item" if excl is not None else ""
            raise ValueError(
                f"k={k} is larger than the store ({self.num_items} items){less}; ask for at most "
                f"{available} neighbour{'s' if available != 1 else ''}."
            )
        kk = k + (1 if excl is not None else 0)
        if m == 0:
            return SearchResult(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
        if self._faiss_index is None:
            idx = exact_neighbours(self._t, self._t_sq, q, kk)
        else:
            idx = self._faiss_index.search(q, kk, ef_search=self.ef_search, nprobe=self.nprobe)
        # exact distances and the (distance, index) order first, then the excluded entry goes: dropping the
        # K+1-th candidate of the search order instead could drop one of two tied items (duplicated codes
        # whose fast-formula distances differ in the last bit) and keep the higher index
        dist, idx = exact_distances(self._raw, self._x, q, idx, self.metric)
        if excl is not None:
            idx, dist = _drop_excluded(idx, excl, dist)
        found = (idx >= 0).all(axis=1)
        if not found.all():
            logger.warning(
                "%s found fewer than k=%d neighbours for %d of %d queries (index -1, distance inf); %s",
                self.index,
                k,
                int((~found).sum()),
                m,
                "raise nprobe" if self.index == "faiss-ivf" else "raise ef_search",
            )
        return SearchResult(idx, dist)


def _drop_excluded(idx: np.ndarray, excl: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's excluded index (or, when absent, its last entry) from ``idx`` and ``dist``: (M, K+1) ->
    (M, K) each; rows sorted nearest first stay sorted."""
    hit = idx == excl[:, None]  # (M, K+1)
    hit &= excl[:, None] >= 0
    none = ~hit.any(axis=1)
    hit[none, -1] = True
    first = np.argmax(hit, axis=1)  # one entry to drop per row
    keep = np.ones_like(hit)
    keep[np.arange(len(idx)), first] = False
    shape = (len(idx), idx.shape[1] - 1)
    return idx[keep].reshape(shape), dist[keep].reshape(shape)


def search(
    codes: np.ndarray, queries: np.ndarray, k: int, metric: str = "euclidean", index: str = "exact"
) -> SearchResult:
    """One-off search: build a :class:`NeighborIndex` over ``codes`` (N, Z) and query it with (M, Z) ``queries``.

    Returns:
        :class:`SearchResult`, (M, K) each.
    """
    return NeighborIndex(codes, metric, index).search(queries, k)


def recall_at_k(approx_indices: np.ndarray, exact_indices: np.ndarray) -> float:
    """Fraction of the exact K neighbours that the approximate search found, averaged over queries.

    Args:
        approx_indices: (M, K) int, -1 for not found.
        exact_indices: (M, K) int.

    Returns:
        Recall@K in [0, 1] (1.0 for M = 0).
    """
    a, e = np.asarray(approx_indices), np.asarray(exact_indices)
    if a.ndim != 2 or a.shape != e.shape:
        raise ValueError(f"approx_indices and exact_indices must both be (M, K); got {a.shape} and {e.shape}")
    if a.shape[0] == 0:
        return 1.0
    if a.shape[1] == 0:
        raise ValueError("recall@K needs K >= 1; got (M, 0) indices")
    hits = (a[:, :, None] == e[:, None, :]) & (a[:, :, None] >= 0)  # (M, K, K)
    return float(hits.any(axis=1).sum() / e.size)


def _check_classes(classes: Sequence[str], n: int) -> list[str]:
    labels = [str(c) for c in classes]
    if len(labels) != n:
        raise ValueError(f"classes has {len(labels)} entries, the store has {n} codes; give one class per code.")
    missing = [i for i, c in enumerate(labels) if c == ""]
    if missing:
        raise ValueError(
            f"items {missing[:5]} have no class ('', {len(missing)} in all); class-based retrieval metrics need "
            "every item labelled."
        )
    return labels


def _vote(neighbour_classes: Sequence[str]) -> str:
    """Majority class, nearest first: among classes with the most votes, the one ranked nearest wins."""
    if not neighbour_classes:
        return ""
    counts = Counter(neighbour_classes)
    top = max(counts.values())
    return next(c for c in neighbour_classes if counts[c] == top)


def knn_classify(
    codes: np.ndarray,
    classes: Sequence[str],
    queries: np.ndarray,
    k: int = 5,
    metric: str = "euclidean",
    index: str = "exact",
) -> list[str]:
    """Predict a class per query by majority vote of its k nearest store items (ties: the nearer class).

    Args:
        codes: (N, Z) float store codes.
        classes: N class names, none empty.
        queries: (M, Z) float codes.

    Returns:
        M predicted class names ('' for a query an approximate index found no neighbour for).
    """
    labels = _check_classes(classes, len(np.asarray(codes)))
    hits = NeighborIndex(codes, metric, index).search(queries, k)
    return [_vote([labels[i] for i in row if i >= 0]) for row in hits.indices]


def precision_at_k(
    codes: np.ndarray, classes: Sequence[str], k: int = 5, metric: str = "euclidean", index: str = "exact"
) -> float:
    """Leave-one-out class precision@k: for every item, the fraction of its k nearest *other* items of its class.

    Args:
        codes: (N, Z) float store codes, N >= 2.
        classes: N class names, none empty.
        k: 1 <= K <= N - 1.

    Returns:
        The mean over items, in [0, 1].
    """
    labels = _check_classes(classes, len(np.asarray(codes)))
    hits = NeighborIndex(codes, metric, index).search(codes, k, exclude_self=True)
    lab = np.asarray(labels, dtype=object)
    same = (lab[hits.indices] == lab[:, None]) & (hits.indices >= 0)  # (N, K)
    return float(same.mean())
