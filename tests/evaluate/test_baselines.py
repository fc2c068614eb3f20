"""The baselines against brute-force oracles: nearest training shape, Chamfer barycentre."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shapelatent.evaluate.baselines import chamfer_barycenter, mean_chamfer_to, nearest_by_chamfer
from shapelatent.ops.chamfer import chamfer_reference


def _cd(a: np.ndarray, b: np.ndarray) -> float:
    """Chamfer of two (P, 3) clouds with the full-matrix oracle."""
    x = torch.from_numpy(np.asarray(a, dtype=np.float64))[None]
    y = torch.from_numpy(np.asarray(b, dtype=np.float64))[None]
    return float(chamfer_reference(x, y, reduction="none").loss[0])


def _clouds(n: int, p: int, seed: int) -> np.ndarray:
    """n noisy boxes of random proportions, (n, p, 3) float32."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        extent = rng.uniform(0.3, 1.0, size=3)
        pts = rng.uniform(-1, 1, size=(p, 3)) * extent
        face = rng.integers(0, 3, size=p)
        pts[np.arange(p), face] = np.sign(pts[np.arange(p), face]) * extent[face]  # on the box surface
        out.append(pts + rng.normal(0, 0.01, size=(p, 3)))
    return np.asarray(out, dtype=np.float32)


def test_nearest_train_equals_brute_force_loop():
    train = _clouds(13, 64, seed=1)
    queries = np.concatenate([_clouds(6, 64, seed=2), train[[4]]])  # the last one is a training shape itself
    res = nearest_by_chamfer(queries, train, query_block=4)  # blocks of 4: 2 pairwise calls
    brute = np.array([[_cd(q, t) for t in train] for q in queries])  # (M, N) direct loop
    np.testing.assert_array_equal(res.indices, brute.argmin(axis=1))
    np.testing.assert_allclose(res.chamfer, brute.min(axis=1), rtol=1e-5, atol=1e-7)
    assert res.indices[-1] == 4 and res.chamfer[-1] == pytest.approx(0.0, abs=1e-7)


def test_mean_chamfer_to_matches_oracle():
    clouds = _clouds(5, 48, seed=3)
    got = mean_chamfer_to(clouds[0], clouds, batch_size=2)
    np.testing.assert_allclose(got, [_cd(clouds[0], c) for c in clouds], rtol=1e-5, atol=1e-7)


def test_barycenter_lowers_mean_chamfer_and_starts_at_the_medoid():
    clouds = _clouds(16, 96, seed=4)
    bary = chamfer_barycenter(clouds, steps=60, lr=1e-2, batch_size=8, medoid_subset=10, seed=0)
    # the start is the medoid of the seeded subset, by a direct loop
    sub = bary.subset
    dist = np.array([[_cd(clouds[i], clouds[j]) for j in sub] for i in sub])
    assert bary.init_index == sub[dist.mean(axis=1).argmin()]
    np.testing.assert_array_equal(bary.init_points, clouds[bary.init_index])
    # reported means agree with the oracle, and the optimisation lowered the mean Chamfer to the set
    assert bary.mean_cd_init == pytest.approx(np.mean([_cd(bary.init_points, c) for c in clouds]), rel=1e-5)
    assert bary.mean_cd_final == pytest.approx(np.mean([_cd(bary.points, c) for c in clouds]), rel=1e-5)
    assert bary.mean_cd_final < 0.9 * bary.mean_cd_init
    assert bary.points.shape == (96, 3) and bary.points.dtype == np.float32
    again = chamfer_barycenter(clouds, steps=60, lr=1e-2, batch_size=8, medoid_subset=10, seed=0)
    np.testing.assert_array_equal(again.points, bary.points)  # same seed, same barycentre


def test_baseline_errors():
    with pytest.raises(ValueError, match=r"\(N, P, 3\) array"):
        nearest_by_chamfer(np.zeros((2, 5)), _clouds(3, 8, 0))
    with pytest.raises(ValueError, match="steps >= 0"):
        chamfer_barycenter(_clouds(3, 8, 0), steps=-1)
