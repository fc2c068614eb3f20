"""EMD: the exact solver and the auction against a brute-force oracle, hand cases and their documented bounds."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch

from shapelatent.metrics import emd as emd_module
from shapelatent.metrics.emd import EMD_METHODS, emd, emd_auction, emd_matching


def _clouds(batch: int, points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((batch, points, 3)), rng.random((batch, points, 3))


def _brute_force(x: np.ndarray, y: np.ndarray) -> float:
    """Min over all P! bijections of the mean Euclidean distance (P <= 7)."""
    dist = np.linalg.norm(x[:, None] - y[None], axis=-1)  # (P, P)
    rows = np.arange(len(x))
    return min(dist[rows, list(perm)].mean() for perm in itertools.permutations(range(len(x))))


@pytest.mark.parametrize("seed", range(4))
def test_exact_and_auction_match_brute_force(seed):
    x, y = _clouds(3, 6, seed)
    oracle = np.array([_brute_force(x[b], y[b]) for b in range(3)])
    np.testing.assert_allclose(emd(x, y), oracle, rtol=1e-12)
    res = emd_auction(x, y)
    assert (res.emd >= oracle - 1e-7).all()
    assert (res.emd <= oracle + res.eps + 1e-6).all()


@pytest.mark.parametrize("method", EMD_METHODS)
def test_identical_clouds_give_zero(method):
    x, _ = _clouds(2, 128)
    np.testing.assert_array_equal(emd(x, x.copy(), method), [0.0, 0.0])


@pytest.mark.parametrize("method", EMD_METHODS)
def test_permuted_cloud_gives_zero_and_the_inverse_matching(method):
    x, _ = _clouds(1, 200, seed=3)
    perm = np.random.default_rng(1).permutation(200)
    assert emd(x, x[:, perm], method)[0] == pytest.approx(0.0, abs=1e-12)
    matching = emd_matching(x, x[:, perm], method)
    np.testing.assert_array_equal(perm[matching[0]], np.arange(200))


def test_shift_gives_the_shift_length():
    x, _ = _clouds(1, 150, seed=5)
    t = np.array([0.3, -0.4, 1.2])  # |t| = 1.3
    assert emd(x, x + t)[0] == pytest.approx(1.3, rel=1e-12)
    res = emd_auction(x, x + t)
    assert 1.3 - 1e-7 <= res.emd[0] <= 1.3 + res.eps[0] + 1e-6


@pytest.mark.parametrize(("points", "seed"), [(64, 0), (100, 1), (128, 2), (256, 3)])
def test_auction_within_documented_bound_of_exact(points, seed):
    x, y = _clouds(3, points, seed)
    exact = emd(x, y)
    res = emd_auction(x, y)
    assert res.converged.all()
    assert (res.emd >= exact - 1e-7).all()  # a true bijection: an upper bound
    assert (res.emd <= exact + res.eps + 1e-6).all()  # within eps per point (P * eps in total)
    assert (res.emd <= exact * (1 + 0.01) + 1e-6).all()  # default rtol: within 1%
    assert (res.lower <= exact + 1e-6).all()  # the dual certificate is a lower bound
    np.testing.assert_array_equal(emd(x, y, "auction"), res.emd)


@pytest.mark.parametrize("eps", [0.05, 1e-3])
def test_auction_with_explicit_eps(eps):
    x, y = _clouds(2, 96, seed=7)
    exact = emd(x, y)
    res = emd_auction(x, y, eps=eps)
    np.testing.assert_allclose(res.eps, eps)
    assert (res.emd >= exact - 1e-7).all() and (res.emd <= exact + eps + 1e-6).all()


def test_chair_like_clouds_with_a_large_offset():
    """Centring before the float32 cast keeps the bound for clouds far from the origin."""
    x, y = _clouds(2, 128, seed=11)
    x, y = x * 0.1 + 1e4, y * 0.1 + 1e4
    exact = emd(x, y)
    res = emd_auction(x, y)
    assert (res.emd >= exact - 1e-7).all() and (res.emd <= exact * 1.01 + 1e-6).all()


def test_single_point_and_repeated_points():
    assert emd(np.zeros((1, 3)), np.ones((1, 3)), "auction")[0] == pytest.approx(np.sqrt(3))
    same = np.zeros((1, 20, 3))
    assert emd(same, same + [0.0, 0.0, 2.0], "auction")[0] == pytest.approx(2.0)
    x = np.repeat(np.eye(3)[None], 4, axis=1)  # 12 points, each of 3 places 4 times
    y = x[:, ::-1].copy()
    assert emd(x, y, "auction")[0] == pytest.approx(0.0, abs=1e-7)


def test_shapes_and_input_types():
    x, y = _clouds(3, 32)
    expected = emd(x, y)
    assert expected.shape == (3,) and expected.dtype == np.float64
    single = emd(x[0], y[0])
    assert single.shape == (1,)
    assert single[0] == pytest.approx(expected[0])
    for method in EMD_METHODS:
        from_torch = emd(torch.from_numpy(x), torch.from_numpy(y).float(), method)
        assert from_torch.shape == (3,)
        np.testing.assert_allclose(from_torch, expected, rtol=0.011)
        assert emd(x[0].astype(np.float32), y[0].astype(np.float32), method).shape == (1,)
    matching = emd_matching(x, y)
    assert matching.shape == (3, 32) and matching.dtype == np.int64
    assert (np.sort(matching, axis=1) == np.arange(32)).all()
    np.testing.assert_allclose(np.linalg.norm(x - np.take_along_axis(y, matching[..., None], 1), axis=-1).mean(1),
                               expected)  # fmt: skip


def test_unequal_sizes_name_both():
    x, y = np.zeros((2, 64, 3)), np.zeros((2, 65, 3))
    for method in EMD_METHODS:
        with pytest.raises(ValueError, match=r"P=64.*P=65"):
            emd(x, y, method)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (np.zeros((4, 3)), np.zeros((1, 4, 3)), {}, "not one of each"),
        (np.zeros((2, 4, 3)), np.zeros((3, 4, 3)), {}, "B=2 clouds and y has B=3"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {}, r"\(P, 3\) or \(B, P, 3\)"),
        (np.zeros((0, 3)), np.zeros((0, 3)), {}, "P=0"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), {}, "x contains NaN"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"method": "sinkhorn"}, "unknown EMD method"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"eps": 0.1}, "method='exact' takes none"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"method": "auction", "eps": -1.0}, "eps must be a positive"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"method": "auction", "rtol": 0}, "rtol must be a positive"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"method": "auction", "max_iter": 0}, "max_iter must be"),
        (np.array([["a"] * 3]), np.zeros((1, 3)), {}, "real numbers"),
    ],
)
def test_errors(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        emd(x, y, **kwargs)


def test_matching_errors():
    with pytest.raises(ValueError, match="unknown EMD method"):
        emd_matching(np.zeros((3, 3)), np.zeros((3, 3)), "greedy")
    with pytest.raises(ValueError, match="method='exact' takes none"):
        emd_matching(np.zeros((3, 3)), np.zeros((3, 3)), eps=0.1)


def test_out_of_bids_warns_and_stays_an_upper_bound(caplog):
    x, y = _clouds(2, 64, seed=4)
    exact = emd(x, y)
    with caplog.at_level(logging.WARNING, logger=emd_module.__name__):
        res = emd_auction(x, y, max_iter=10)
    assert not res.converged.any()
    assert "ran out of bids" in caplog.text and "max_iter=10" in caplog.text
    assert (np.sort(res.assignment, axis=1) == np.arange(64)).all()
    assert (res.emd >= exact - 1e-7).all()
