"""Exact nearest-neighbour search over latent codes: blocked torch matmul, any device.

The store is scanned in blocks (one ``(queries, block)`` score matrix at a time, about 4 MiB), so a
1M x 128 store never needs an (M, N) matrix. The top K is exact: ties at the K-th place are resolved by
the lower store index, so results are deterministic. ``exact_distances`` recomputes the distances of
chosen neighbours directly from the codes, for every index of ``shapelatent.latent.retrieval``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["exact_distances", "exact_neighbours"]

#: Bytes of one (queries, store block) score matrix of the exact search. On 2 CPU cores (N = 1M, Z = 128,
#: 1024 queries) a cache-sized 4 MiB block (1024 x 1024) searched 1.6x faster than 64 MiB (1024 x 16384).
_BLOCK_BYTES = 4 * 2**20
#: Query blocks at least this large fold ||x||^2 into the matmul (one more column) instead of adding it after.
_AUGMENT_MIN_QUERIES = 64
#: Queries per block of the exact search (at least this many share one pass over the store).
_QUERY_BLOCK = 1024
#: Neighbour rows gathered at a time when recomputing distances ((rows, Z) float32: 64 MiB at Z = 128).
_GATHER_ROWS = 2**17


def _sort_rows(dist: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (distance, index): by index first, then stably by distance."""
    order = torch.argsort(idx, dim=1)
    dist, idx = dist.gather(1, order), idx.gather(1, order)
    order = torch.sort(dist, dim=1, stable=True).indices
    return dist.gather(1, order), idx.gather(1, order)


def _block_topk(score: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest scores of each row, ties at the k-th place going to the lower column.

    Args:
        score: (M, N') float32, k <= N'.

    Returns:
        (M, k) scores and (M, k) int64 column indices.
    """
    n = score.shape[1]
    if k >= n:
        return score, torch.arange(n, device=score.device).expand(score.shape[0], n)
    vals, cols = torch.topk(score, k + 1, dim=1, largest=False, sorted=True)  # one extra to detect ties
    tied = vals[:, k] == vals[:, k - 1]  # (M,) equal scores straddle the k-th place: the set is ambiguous
    if bool(tied.any()):
        rows = torch.nonzero(tied)[:, 0]
        sub_vals, sub_cols = torch.sort(score[rows], dim=1, stable=True)  # stable: equal scores by column
        vals[rows], cols[rows] = sub_vals[:, : k + 1], sub_cols[:, : k + 1]
    return vals[:, :k], cols[:, :k]


@torch.no_grad()
def exact_neighbours(x: torch.Tensor, x_sq: torch.Tensor | None, q: np.ndarray, k: int) -> np.ndarray:
    """The k nearest store rows of each query, as a set (their order is fixed by ``exact_distances``).

    Args:
        x: (N, Z) float32 store codes (unit rows for cosine), N >= 1, on the search device.
        x_sq: (N,) float32 squared norms of ``x`` for euclidean; None for cosine (unit rows, ranked by -q.x).
        q: (M, Z) float32 queries (unit rows for cosine).
        k: 1 <= k <= N.

    Returns:
        (M, k) int64 store indices.
    """
    n = len(x)
    qt = torch.from_numpy(q).to(x.device)  # (M, Z)
    out = []
    for qs in range(0, len(qt), _QUERY_BLOCK):
        # Scores that rank like the distance, from one matmul per block: euclidean: [-2q, 1].[x, ||x||^2]
        # = ||x||^2 - 2 q.x (||q - x||^2 less ||q||^2, the same along a row); cosine on unit vectors: -q.x.
        # With few queries the matmul is memory-bound: add ||x||^2 to the small score matrix instead.
        qb = qt[qs : qs + _QUERY_BLOCK]
        augment = x_sq is not None and len(qb) >= _AUGMENT_MIN_QUERIES
        if augment:
            qb = torch.cat([-2.0 * qb, torch.ones_like(qb[:, :1])], dim=1)  # (m, Z + 1)
        else:
            qb = qb * (-2.0 if x_sq is not None else -1.0)
        rows = max(k, _BLOCK_BYTES // (4 * len(qb)))
        best: tuple[torch.Tensor, torch.Tensor] | None = None  # (m, k) scores and indices so far
        for s in range(0, n, rows):
            xb = x[s : s + rows]
            sq = x_sq[s : s + rows] if x_sq is not None else None
            if augment and sq is not None:
                xb = torch.cat([xb, sq[:, None]], dim=1)  # (rows, Z + 1), built per block
            score = torch.mm(qb, xb.T)  # (m, rows)
            if sq is not None and not augment:
                score.add_(sq)
            vals, cols = _block_topk(score, min(k, len(xb)))
            cols = cols + s
            if best is not None:
                vals, cols = _sort_rows(torch.cat([best[0], vals], 1), torch.cat([best[1], cols], 1))
            best = (vals[:, :k], cols[:, :k])
        assert best is not None  # n >= 1: at least one block
        out.append(best[1].cpu())
    return torch.cat(out).numpy().astype(np.int64, copy=False)


def exact_distances(
    raw: np.ndarray, x: np.ndarray, q: np.ndarray, idx: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Distances of the chosen neighbours computed directly, rows sorted by (distance, index).

    Args:
        raw: (N, Z) float32 store codes as given (for euclidean).
        x: (N, Z) float32 store codes as searched (unit rows for cosine).
        q: (M, Z) float32 queries (unit rows for cosine).
        idx: (M, K) int64 store indices, -1 for none.
        metric: ``"euclidean"`` (L2, not squared) or ``"cosine"`` (``1 - cos``).

    Returns:
        (M, K) float32 distances (``inf`` where ``idx`` is -1) and the (M, K) int64 indices, in the same order.
    """
    valid = idx >= 0  # (M, K)
    safe = np.where(valid, idx, 0)
    dist = np.empty(idx.shape, dtype=np.float32)
    step = max(1, _GATHER_ROWS // max(1, idx.shape[1]))  # queries per chunk: (chunk, K, Z) stays small
    for s in range(0, len(idx), step):
        rows = safe[s : s + step]
        if metric == "euclidean":
            diff = raw[rows] - q[s : s + step, None, :]  # (m, K, Z)
            dist[s : s + step] = np.sqrt(np.einsum("mkz,mkz->mk", diff, diff))
        else:
            dist[s : s + step] = np.clip(1.0 - np.einsum("mkz,mz->mk", x[rows], q[s : s + step]), 0.0, 2.0)
    dist[~valid] = np.inf
    order = np.lexsort((np.where(valid, idx, np.iinfo(np.int64).max), dist), axis=1)  # by dist, then index
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
