"""Numba CPU kernels: exact nearest neighbours in both directions in one fused pass.

For every batch element the kernels visit each (i, j) pair of ``x`` and ``y`` points once and update
both the row minimum (nearest ``y`` of each ``x_i``) and the column minimum (nearest ``x`` of each
``y_j``) from the same squared distance. Layout choices that make the inner loop vectorise (measured on
a 2-core AVX-512 Xeon, B=32, P=Q=2048, float32: 147 ms for the naive branchy loop, 17 ms for this one):

* ``y`` is copied to structure-of-arrays ``(B, D, Q)`` so each coordinate is a contiguous stream;
* the row argmin is kept per SIMD lane (``_LANES`` running minima, merged after the row), so the loop
  over ``j`` has no loop-carried dependency and compiles to branch-free min/select;
* ``_TILE_ROWS`` rows of ``x`` share each load and store of the column minima (3-D kernel only).

Ties go to the lowest index in both directions, like ``torch.argmin``. Work is split over
``(batch element, block of rows)`` items so that a single large cloud still uses every thread; each item
keeps its own column minima, merged in row order afterwards.

``fastmath`` is the LLVM flag set without ``nnan``/``ninf``: the kernels start their minima at ``inf``,
which ``ninf`` would make undefined, and the full ``fastmath=True`` measured no faster.

This module imports numba at import time; ``shapelatent.ops.chamfer`` imports it lazily.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_LANES = 16
_TILE_ROWS = 4
_MIN_ROWS_PER_ITEM = 64


@njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
def _nn_fused_3d(x, yt, x_lengths, y_lengths, n_split, col_min, col_arg, idx_xy):  # pragma: no cover
    """D == 3 kernel with ``_TILE_ROWS`` rows per pass; see ``nn_fused`` for the arguments."""
    batch = x.shape[0]
    n_lanes = _LANES
    n_tile = _TILE_ROWS
    for item in prange(batch * n_split):
        b = item // n_split
        s = item % n_split
        n = x_lengths[b]
        m = y_lengths[b]
        lo = s * n // n_split
        hi = (s + 1) * n // n_split
        cmin = col_min[item]
        carg = col_arg[item]
        cmin[:] = np.inf
        carg[:] = 0
        y0 = yt[b, 0]
        y1 = yt[b, 1]
        y2 = yt[b, 2]
        lane_min = np.empty((n_tile, n_lanes), dtype=x.dtype)
        lane_arg = np.empty((n_tile, n_lanes), dtype=np.int32)
        a = np.empty((n_tile, 3), dtype=x.dtype)
        m_body = m - m % n_lanes
        for i0 in range(lo, hi, n_tile):
            rows = min(n_tile, hi - i0)
            for r in range(n_tile):
                # A partial tile repeats its last row; the copy never wins a tie (strict <).
                ir = min(i0 + r, hi - 1)
                a[r, 0] = x[b, ir, 0]
                a[r, 1] = x[b, ir, 1]
                a[r, 2] = x[b, ir, 2]
            lane_min[:] = np.inf
            lane_arg[:] = 0
            for jb in range(0, m_body, n_lanes):
                for w in range(n_lanes):
                    j = jb + w
                    q0 = y0[j]
                    q1 = y1[j]
                    q2 = y2[j]
                    cm = cmin[j]
                    ca = carg[j]
                    for r in range(n_tile):
                        t0 = a[r, 0] - q0
                        t1 = a[r, 1] - q1
                        t2 = a[r, 2] - q2
                        d = t0 * t0 + t1 * t1 + t2 * t2
                        ca = np.int32(i0 + r) if d < cm else ca
                        cm = min(d, cm)
                        lane_arg[r, w] = np.int32(j) if d < lane_min[r, w] else lane_arg[r, w]
                        lane_min[r, w] = min(d, lane_min[r, w])
                    cmin[j] = cm
                    carg[j] = ca
            for r in range(rows):
                best = np.inf
                best_j = 0
                for w in range(n_lanes):
                    v = lane_min[r, w]
                    if v < best or (v == best and lane_arg[r, w] < best_j):
                        best = v
                        best_j = lane_arg[r, w]
                for j in range(m_body, m):
                    t0 = a[r, 0] - y0[j]
                    t1 = a[r, 1] - y1[j]
                    t2 = a[r, 2] - y2[j]
                    d = t0 * t0 + t1 * t1 + t2 * t2
                    if d < cmin[j]:
                        cmin[j] = d
                        carg[j] = i0 + r
                    if d < best:
                        best = d
                        best_j = j
                idx_xy[b, i0 + r] = best_j


@njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
def _nn_fused_nd(x, yt, x_lengths, y_lengths, n_split, col_min, col_arg, idx_xy):  # pragma: no cover
    """Any-D kernel: one row at a time through a distance buffer; see ``nn_fused`` for the arguments."""
    batch, _, dim = x.shape
    n_lanes = _LANES
    for item in prange(batch * n_split):
        b = item // n_split
        s = item % n_split
        n = x_lengths[b]
        m = y_lengths[b]
        lo = s * n // n_split
        hi = (s + 1) * n // n_split
        cmin = col_min[item]
        carg = col_arg[item]
        cmin[:] = np.inf
        carg[:] = 0
        buf = np.empty(m, dtype=x.dtype)
        lane_min = np.empty(n_lanes, dtype=x.dtype)
        lane_arg = np.empty(n_lanes, dtype=np.int32)
        m_body = m - m % n_lanes
        for i in range(lo, hi):
            yk = yt[b, 0]
            xk = x[b, i, 0]
            for j in range(m):
                t = xk - yk[j]
                buf[j] = t * t
            for k in range(1, dim):
                yk = yt[b, k]
                xk = x[b, i, k]
                for j in range(m):
                    t = xk - yk[j]
                    buf[j] += t * t
            lane_min[:] = np.inf
            lane_arg[:] = 0
            ii = np.int32(i)
            for jb in range(0, m_body, n_lanes):
                for w in range(n_lanes):
                    j = jb + w
                    d = buf[j]
                    carg[j] = ii if d < cmin[j] else carg[j]
                    cmin[j] = min(d, cmin[j])
                    lane_arg[w] = np.int32(j) if d < lane_min[w] else lane_arg[w]
                    lane_min[w] = min(d, lane_min[w])
            best = np.inf
            best_j = 0
            for w in range(n_lanes):
                v = lane_min[w]
                if v < best or (v == best and lane_arg[w] < best_j):
                    best = v
                    best_j = lane_arg[w]
            for j in range(m_body, m):
                d = buf[j]
                if d < cmin[j]:
                    cmin[j] = d
                    carg[j] = i
                if d < best:
                    best = d
                    best_j = j
            idx_xy[b, i] = best_j


@njit(parallel=True, cache=True, nogil=True)
def _merge_columns(col_min, col_arg, y_lengths, n_split, idx_yx):  # pragma: no cover
    """Merge the per-item column minima of each batch element in row-block order (first index wins)."""
    batch = idx_yx.shape[0]
    for b in prange(batch):
        base = b * n_split
        for j in range(y_lengths[b]):
            best = col_min[base, j]
            best_i = col_arg[base, j]
            for s in range(1, n_split):
                if col_min[base + s, j] < best:
                    best = col_min[base + s, j]
                    best_i = col_arg[base + s, j]
            idx_yx[b, j] = best_i


def nn_fused(
    x: np.ndarray,
    y: np.ndarray,
    x_lengths: np.ndarray,
    y_lengths: np.ndarray,
    n_split: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest neighbours of ``x`` in ``y`` and of ``y`` in ``x`` (squared Euclidean).

    The caller validates the inputs (``shapelatent.ops.chamfer`` does).

    Args:
        x: (B, P, D) float32 or float64, C-contiguous.
        y: (B, Q, D), same dtype as ``x``.
        x_lengths: (B,) int64, valid points per cloud, each in [1, P]; later rows are ignored.
        y_lengths: (B,) int64, each in [1, Q].
        n_split: blocks of rows per batch element processed in parallel. ``None`` picks enough blocks
            for every numba thread to have work when B is smaller than the thread count.

    Returns:
        ``idx_xy`` (B, P) int64 index into ``y`` (-1 past ``x_lengths``) and ``idx_yx`` (B, Q) int64
        index into ``x`` (-1 past ``y_lengths``).
    """
    batch, n_points, dim = x.shape
    if n_split is None:
        threads = numba.get_num_threads()
        n_split = -(-threads // batch) if batch < threads else 1
        n_split = max(1, min(n_split, n_points // _MIN_ROWS_PER_ITEM))
    yt = np.ascontiguousarray(y.transpose(0, 2, 1))  # (B, D, Q)
    col_min = np.empty((batch * n_split, y.shape[1]), dtype=x.dtype)
    col_arg = np.empty((batch * n_split, y.shape[1]), dtype=np.int32)
    idx_xy = np.full((batch, n_points), -1, dtype=np.int64)
    idx_yx = np.full((batch, y.shape[1]), -1, dtype=np.int64)
    kernel = _nn_fused_3d if dim == 3 else _nn_fused_nd
    kernel(x, yt, x_lengths, y_lengths, n_split, col_min, col_arg, idx_xy)
    _merge_columns(col_min, col_arg, y_lengths, n_split, idx_yx)
    return idx_xy, idx_yx
