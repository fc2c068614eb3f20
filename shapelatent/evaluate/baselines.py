"""Baselines a learned latent space should beat: the mean training shape and the nearest training shape.

* :func:`chamfer_barycenter`: one P-point cloud minimising the mean Chamfer distance to the training clouds.
  It starts at the Chamfer medoid of a seeded subset of the training clouds and moves the points with Adam,
  each step on a seeded mini-batch of training clouds, using the differentiable
  :func:`shapelatent.ops.chamfer.chamfer_distance`. A model that reconstructs no better than this single
  shape has learned nothing shape-specific.
* :func:`nearest_by_chamfer`: for each query cloud, the training cloud with the smallest Chamfer distance
  (an oracle that only memorises: it sees the query, which an autoencoder's decoder never does; a useful
  latent space comes close to it, or beats it, with Z numbers instead of the whole training set).

Chamfer is ours throughout: squared L2, mean over the points of each cloud, the two directions summed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from shapelatent.ops.chamfer import chamfer_distance

__all__ = ["Barycenter", "NearestTrain", "chamfer_barycenter", "mean_chamfer_to", "nearest_by_chamfer"]

logger = logging.getLogger(__name__)

#: ``progress(done, total)`` callback of the long loops here.
Progress = Callable[[int, int], None]


class Barycenter(NamedTuple):
    """The Chamfer barycentre of a set of clouds and how it was found.

    Attributes:
        points: (P, 3) float32, the optimised cloud.
        init_points: (P, 3) float32, the medoid it started from.
        init_index: index (into the clouds given) of that medoid.
        subset: (S,) int64 indices of the seeded subset the medoid was chosen from.
        mean_cd_init: mean Chamfer of ``init_points`` to all the clouds.
        mean_cd_final: mean Chamfer of ``points`` to all the clouds.
        steps: Adam steps taken.
        lr: Adam learning rate.
        batch_size: training clouds per step.
    """

    points: np.ndarray
    init_points: np.ndarray
    init_index: int
    subset: np.ndarray
    mean_cd_init: float
    mean_cd_final: float
    steps: int
    lr: float
    batch_size: int


class NearestTrain(NamedTuple):
    """The nearest training cloud of each query.

    Attributes:
        indices: (M,) int64 index into the training clouds (ties: the lowest index).
        chamfer: (M,) float64 Chamfer distance to it.
    """

    indices: np.ndarray
    chamfer: np.ndarray


def _check_clouds(clouds: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(clouds)
    if arr.ndim != 3 or arr.shape[2] != 3 or len(arr) == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, P, 3) array of point clouds; got shape {arr.shape}")
    return arr


def mean_chamfer_to(
    cloud: np.ndarray,
    clouds: np.ndarray,
    *,
    batch_size: int = 256,
    backend: str = "auto",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Chamfer distance from one cloud to each of many.

    Args:
        cloud: (P, 3) float.
        clouds: (N, Q, 3) float (a memmap is read in batches).

    Returns:
        (N,) float64.
    """
    clouds = _check_clouds(clouds, "clouds")
    x = torch.as_tensor(np.asarray(cloud, dtype=np.float32), device=device)[None]  # (1, P, 3)
    out = []
    with torch.no_grad():
        for start in range(0, len(clouds), batch_size):
            y = torch.as_tensor(np.array(clouds[start : start + batch_size], dtype=np.float32), device=device)
            res = chamfer_distance(x.expand(len(y), -1, -1), y, reduction="none", backend=backend)
            out.append(res.loss.double().cpu().numpy())
    return np.concatenate(out)


def chamfer_barycenter(
    clouds: np.ndarray,
    *,
    steps: int = 200,
    lr: float = 5e-3,
    batch_size: int = 64,
    medoid_subset: int = 64,
    seed: int = 0,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> Barycenter:
    """A single cloud minimising the mean Chamfer distance to ``clouds`` (the "mean training shape").

    Args:
        clouds: (N, P, 3) float training clouds (a memmap is fine; only mini-batches are copied).
        steps: Adam steps (0 returns the medoid).
        lr: Adam learning rate, in the clouds' units (they are normalised to about [-1, 1]).
        batch_size: training clouds per step (all of them when N is smaller).
        medoid_subset: size S of the seeded subset the starting medoid is chosen from (S^2 Chamfer pairs).
        seed: seeds the subset and the mini-batches; the same seed gives the same barycentre.

    Returns:
        :class:`Barycenter`.

    Raises:
        ValueError: clouds not (N, P, 3), or non-positive steps/batch sizes.
    """
    from shapelatent.metrics import pairwise_chamfer

    clouds = _check_clouds(clouds, "clouds")
    if steps < 0 or batch_size < 1 or medoid_subset < 1 or not lr > 0:
        raise ValueError(
            f"need steps >= 0, batch_size >= 1, medoid_subset >= 1 and lr > 0; got steps={steps}, "
            f"batch_size={batch_size}, medoid_subset={medoid_subset}, lr={lr}"
        )
    n = len(clouds)
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(n, min(n, medoid_subset), replace=False)).astype(np.int64)
    sub = np.asarray(clouds[subset], dtype=np.float32)
    dist = pairwise_chamfer(sub, sub, backend=backend, device=str(device))  # (S, S)
    init_index = int(subset[int(np.argmin(dist.mean(axis=1)))])
    init = np.array(clouds[init_index], dtype=np.float32)  # (P, 3)

    x = torch.tensor(init, device=device)[None].requires_grad_(True)  # (1, P, 3)
    opt = torch.optim.Adam([x], lr=lr)
    batch = min(batch_size, n)
    for step in range(steps):
        idx = np.arange(n) if batch == n else np.sort(rng.choice(n, batch, replace=False))
        y = torch.as_tensor(np.asarray(clouds[idx], dtype=np.float32), device=device)
        loss = chamfer_distance(x.expand(len(idx), -1, -1), y, reduction="mean", backend=backend).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, steps)
    points = x.detach()[0].cpu().numpy().astype(np.float32)
    cd_init = float(mean_chamfer_to(init, clouds, backend=backend, device=device).mean())
    cd_final = float(mean_chamfer_to(points, clouds, backend=backend, device=device).mean())
    logger.info(
        "Chamfer barycentre of %d clouds: mean Chamfer %.6g at the medoid (#%d), %.6g after %d Adam steps",
        n,
        cd_init,
        init_index,
        cd_final,
        steps,
    )
    return Barycenter(points, init, init_index, subset, cd_init, cd_final, steps, lr, batch)


def nearest_by_chamfer(
    queries: np.ndarray,
    train: np.ndarray,
    *,
    query_block: int = 64,
    batch_size: int = 256,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> NearestTrain:
    """The training cloud nearest to each query by Chamfer distance (exhaustive, M x N pairs).

    Args:
        queries: (M, P, 3) float.
        train: (N, Q, 3) float.
        query_block: queries per :func:`shapelatent.metrics.pairwise_chamfer` call (memory O(block * N)).
        batch_size: pairs per Chamfer batch inside it.

    Returns:
        :class:`NearestTrain` with (M,) indices and distances.
    """
    from shapelatent.metrics import pairwise_chamfer

    queries = _check_clouds(queries, "queries")
    train = _check_clouds(train, "train")
    train_arr = np.asarray(train, dtype=np.float32)
    indices, dists = [], []
    m = len(queries)
    for start in range(0, m, query_block):
        q = np.asarray(queries[start : start + query_block], dtype=np.float32)
        d = pairwise_chamfer(q, train_arr, batch_size=batch_size, backend=backend, device=str(device))  # (m', N)
        best = np.argmin(d, axis=1)  # first minimum: ties go to the lowest index
        indices.append(best.astype(np.int64))
        dists.append(d[np.arange(len(q)), best].astype(np.float64))
        if progress is not None:
            progress(min(start + query_block, m), m)
    return NearestTrain(np.concatenate(indices), np.concatenate(dists))
