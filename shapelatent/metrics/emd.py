"""Earth mover's distance (EMD) between equal-size point clouds: exact, or a fast auction approximation.

For clouds ``x`` and ``y`` of P points each::

    emd(x, y) = (1 / P) * min over bijections phi of sum_i ||x_i - y_phi(i)||_2

Euclidean (not squared) distances, divided by P: latent_3d_points' and PointFlow's ``match_cost / P``
convention (Achlioptas et al., "Learning Representations and Generative Models for 3D Point Clouds",
ICML 2018; Yang et al., "PointFlow", ICCV 2019), but solved to optimality (or within a stated bound)
instead of their approximate ``approxmatch`` CUDA kernel, whose result is not a bound either way.

Methods (``EMD_METHODS``):

* ``exact``: ``scipy.optimize.linear_sum_assignment`` on the float64 distance matrix; the reference.
  0.6-3.3 s per pair at P = 2048 (it depends on the clouds; ``bench/emd.py`` on the shared 2-core Xeon).
* ``auction``: Bertsekas' auction with epsilon-scaling, JIT-compiled with numba and parallel over the batch
  (``_auction_numba``). The value returned is the cost of a true bijection, recomputed in float64, so it is
  an upper bound on the exact EMD, and at most ``eps`` (per point, coordinate units) above it:
  ``exact <= auction <= exact + eps``, up to float32 rounding of the distances (about 1e-7 relative).
  With ``eps=None`` each pair gets ``eps = rtol * LB``, where ``LB = max(mean_i min_j ||x_i - y_j||,
  mean_j min_i ||x_i - y_j||) <= exact`` (a bijection pays at least every point's nearest-neighbour
  distance), so ``auction <= (1 + rtol) * exact``: within 1% by default. Measured at P = 2048: 33-48 ms of
  CPU per pair, mean relative error 1e-4 to 1e-3 (``bench/emd.py``). Below P = 256 the exact solver is as fast.

Either method takes ``(P, 3)`` or ``(B, P, 3)`` arrays or tensors and returns ``(B,)`` float64.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["EMD_METHODS", "AuctionResult", "emd", "emd_auction", "emd_matching"]

logger = logging.getLogger(__name__)

EMD_METHODS = ("exact", "auction")

#: eps is divided by this between auction phases (any of 3 to 12 took 18-30 bids per point at P = 2048).
_THETA = 8.0
#: Default relative tolerance of the auction (see the module docstring).
DEFAULT_RTOL = 0.01


class AuctionResult(NamedTuple):
    """What the auction found for each of B cloud pairs.

    Attributes:
        emd: (B,) float64 cost per point of ``assignment``, recomputed in float64: an upper bound on the EMD.
        lower: (B,) float64 certified lower bound on the EMD (the dual value of the final prices, per point).
        eps: (B,) float64 the bound used: ``emd - exact <= eps`` for converged pairs.
        assignment: (B, P) int64, ``y`` index matched to each ``x`` point (a permutation per row).
        bids: (B,) int64 bids made (one bid scans one row of the cost matrix).
        converged: (B,) bool; False where ``max_iter`` bids ran out (the rest was matched greedily, so
            ``emd`` is still an upper bound but not within ``eps``).
    """

    emd: np.ndarray
    lower: np.ndarray
    eps: np.ndarray
    assignment: np.ndarray
    bids: np.ndarray
    converged: np.ndarray


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    return arr


def _check_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate two clouds or batches; return (B, P, 3) float64 arrays."""
    a, b = _as_array(x, "x"), _as_array(y, "y")
    if a.ndim not in (2, 3) or a.shape[-1] != 3 or b.ndim not in (2, 3) or b.shape[-1] != 3:
        raise ValueError(f"x and y must both be (P, 3) or (B, P, 3); got x {a.shape} and y {b.shape}")
    if a.ndim != b.ndim:
        raise ValueError(
            f"x is {a.shape} and y is {b.shape}: pass two clouds (P, 3) or two batches (B, P, 3), not one of each"
        )
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"EMD needs clouds of equal size: x has P={a.shape[1]} points, y has P={b.shape[1]}; resample one "
            "to the other's size (e.g. shapelatent.data.sampling.farthest_point_sample)"
        )
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"x has B={a.shape[0]} clouds and y has B={b.shape[0]}; pass the same number")
    if a.shape[1] == 0:
        raise ValueError("the clouds are empty (P=0); EMD needs at least one point")
    for name, arr in (("x", a), ("y", b)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf; EMD needs finite coordinates")
    return a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)


def _check_auction_args(eps: float | None, rtol: float, max_iter: int | None, points: int) -> tuple[float, int]:
    if eps is not None and not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number (per-point EMD units) or None; got {eps!r}")
    if not (isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a positive number, e.g. 0.01 for 1%; got {rtol!r}")
    if max_iter is None:
        max_iter = 1000 * points  # ~20 P bids are typical; this only stops a runaway
    elif isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer (bids per cloud pair) or None; got {max_iter!r}")
    return (0.0 if eps is None else float(eps)), int(max_iter)


def _matched_cost(a: np.ndarray, b: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """(B,) float64 mean Euclidean distance of a (B, P) matching."""
    matched = np.take_along_axis(b, assignment[..., None], axis=1)  # (B, P, 3)
    return np.linalg.norm(a - matched, axis=-1).mean(axis=-1)


def _auction_arrays(a: np.ndarray, b: np.ndarray, eps: float, rtol: float, max_iter: int) -> AuctionResult:
    """Run the auction on validated (B, P, 3) float64 arrays."""
    from shapelatent.metrics import _auction_numba

    batch, points = a.shape[:2]
    # Centre each pair before the float32 cast, so that a large common offset costs no precision.
    center = (a.mean(axis=1, keepdims=True) + b.mean(axis=1, keepdims=True)) / 2  # (B, 1, 3)
    x32 = np.ascontiguousarray(a - center, dtype=np.float32)
    y32 = np.ascontiguousarray(b - center, dtype=np.float32)
    assignment = np.empty((batch, points), dtype=np.int64)
    eps_used = np.empty(batch)
    lower = np.empty(batch)
    bids = np.empty(batch, dtype=np.int64)
    status = np.empty(batch, dtype=np.int64)
    _auction_numba.auction_batch(x32, y32, eps, rtol, _THETA, max_iter, assignment, eps_used, lower, bids, status)
    converged = status == _auction_numba.CONVERGED
    if not converged.all():
        bad = np.flatnonzero(~converged)
        logger.warning(
            "EMD auction ran out of bids (max_iter=%d) on %d of %d pairs (first: %s); their rest was matched "
            "greedily, so their EMD is an upper bound but not within eps. Raise max_iter or eps.",
            max_iter, len(bad), batch, bad[:5].tolist(),
        )  # fmt: skip
    cost = _matched_cost(a, b, assignment)
    return AuctionResult(cost, np.minimum(lower, cost), eps_used, assignment, bids, converged)


def emd_auction(
    x: Any, y: Any, *, eps: float | None = None, rtol: float = DEFAULT_RTOL, max_iter: int | None = None
) -> AuctionResult:
    """The auction EMD with its certificate: bounds, matching and work per pair.

    Args:
        x: (B, P, 3) or (P, 3) float, np.ndarray or torch.Tensor, finite.
        y: same shape as ``x``.
        eps: per-point tolerance in coordinate units (``emd <= exact + eps``); None: ``rtol`` times each
            pair's nearest-neighbour lower bound. Values below ``1e-6`` times the largest distance of a
            pair are raised to it (the resolution of the float32 prices).
        rtol: relative tolerance used when ``eps`` is None (``emd <= (1 + rtol) * exact``).
        max_iter: bids allowed per cloud pair (default ``1000 * P``; about ``20 * P`` are typical).

    Returns:
        :class:`AuctionResult`; B = 1 for (P, 3) inputs.

    Raises:
        ValueError: bad shapes (unequal P names both sizes), non-finite points, bad eps/rtol/max_iter.
    """
    a, b = _check_pair(x, y)
    eps_abs, max_bids = _check_auction_args(eps, rtol, max_iter, a.shape[1])
    return _auction_arrays(a, b, eps_abs, float(rtol), max_bids)


def _exact(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    cost = np.empty(len(a))
    assignment = np.empty(a.shape[:2], dtype=np.int64)
    for k in range(len(a)):
        dist = cdist(a[k], b[k])  # (P, P) float64
        rows, cols = linear_sum_assignment(dist)
        assignment[k, rows] = cols
        cost[k] = dist[rows, cols].mean()
    return cost, assignment


def _check_method(method: str) -> str:
    if method not in EMD_METHODS:
        raise ValueError(f"unknown EMD method {method!r}; choose from {EMD_METHODS}")
    return method


def emd(
    x: Any,
    y: Any,
    method: str = "exact",
    *,
    eps: float | None = None,
    max_iter: int | None = None,
    rtol: float = DEFAULT_RTOL,
) -> np.ndarray:
    """Earth mover's distance per point between equal-size clouds (see the module docstring).

    Args:
        x: (B, P, 3) or (P, 3) float, np.ndarray or torch.Tensor, finite.
        y: same shape as ``x``.
        method: ``"exact"`` (scipy ``linear_sum_assignment``) or ``"auction"`` (numba, parallel over B).
        eps: auction only. Per-point tolerance in coordinate units: the result is an upper bound within
            ``P * eps`` of the optimal total cost, i.e. ``exact <= emd <= exact + eps``. None: ``rtol``
            times each pair's nearest-neighbour lower bound, so that ``emd <= (1 + rtol) * exact``.
        max_iter: auction only. Bids allowed per cloud pair (default ``1000 * P``); past it the rest is
            matched greedily and a warning is logged.
        rtol: auction only, used when ``eps`` is None (default 0.01: within 1%).

    Returns:
        (B,) float64, ``(1 / P) * min_phi sum_i ||x_i - y_phi(i)||_2``; shape (1,) for (P, 3) inputs.

    Raises:
        ValueError: an unknown method; shapes that are not (P, 3)/(B, P, 3) or differ (unequal P names both
            sizes); non-finite points; auction options passed with ``method="exact"``; bad option values.
    """
    _check_method(method)
    a, b = _check_pair(x, y)
    if method == "exact":
        if eps is not None or max_iter is not None or rtol != DEFAULT_RTOL:
            raise ValueError("eps, max_iter and rtol tune method='auction'; method='exact' takes none of them")
        return _exact(a, b)[0]
    eps_abs, max_bids = _check_auction_args(eps, rtol, max_iter, a.shape[1])
    return _auction_arrays(a, b, eps_abs, float(rtol), max_bids).emd


def emd_matching(x: Any, y: Any, method: str = "exact", **auction_options: Any) -> np.ndarray:
    """The point matching behind :func:`emd`: ``y[b, m[b, i]]`` is matched to ``x[b, i]``.

    Args:
        x: (B, P, 3) or (P, 3) float, np.ndarray or torch.Tensor.
        y: same shape as ``x``.
        method: ``"exact"`` (an optimal matching) or ``"auction"`` (one within the auction's bound).
        **auction_options: ``eps``, ``rtol``, ``max_iter`` of :func:`emd_auction`.

    Returns:
        (B, P) int64, a permutation of ``range(P)`` per row; B = 1 for (P, 3) inputs.
    """
    _check_method(method)
    if method == "exact":
        if auction_options:
            raise ValueError(f"{sorted(auction_options)} tune method='auction'; method='exact' takes none of them")
        return _exact(*_check_pair(x, y))[1]
    return emd_auction(x, y, **auction_options).assignment
