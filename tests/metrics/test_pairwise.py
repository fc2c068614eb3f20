"""Distance matrices against brute-force double loops."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from shapelatent.metrics.emd import emd
from shapelatent.metrics.pairwise import pairwise_chamfer, pairwise_emd


def _set(count: int, points: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, points, 3)).astype(np.float32)


def _chamfer_oracle(x: np.ndarray, y: np.ndarray) -> float:
    sq = ((x[:, None].astype(np.float64) - y[None].astype(np.float64)) ** 2).sum(-1)  # (P, P')
    return sq.min(axis=1).mean() + sq.min(axis=0).mean()


@pytest.mark.parametrize("backend", ["auto", "torch", "reference"])
def test_pairwise_chamfer_matches_double_loop(backend):
    a, b = _set(3, 16, 0), _set(4, 21, 1)
    oracle = np.array([[_chamfer_oracle(x, y) for y in b] for x in a])
    got = pairwise_chamfer(a, b, batch_size=5, backend=backend)
    assert got.shape == (3, 4) and got.dtype == np.float64
    np.testing.assert_allclose(got, oracle, rtol=1e-5)


def test_pairwise_chamfer_of_a_read_only_memmap_copies_it_silently(tmp_path):
    # a dataset's points.npy opens read-only; torch warns on non-writable arrays, and a run must print no warning
    np.save(tmp_path / "a.npy", _set(3, 16, 0))
    a = np.load(tmp_path / "a.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pairwise_chamfer(a, a[:2])
    np.testing.assert_allclose(got, [[_chamfer_oracle(x, y) for y in a[:2]] for x in a], rtol=1e-5)


def test_pairwise_chamfer_within_one_set_and_torch_input():
    a = _set(5, 12, 2)
    oracle = np.array([[_chamfer_oracle(x, y) for y in a] for x in a])
    got = pairwise_chamfer(torch.from_numpy(a), batch_size=3)
    np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-7)
    assert (np.diag(got) == 0).all() and (got == got.T).all()
    np.testing.assert_allclose(pairwise_chamfer(a.astype(np.float64), a.astype(np.float64)), oracle, rtol=1e-12)


def test_pairwise_emd_matches_double_loop():
    a, b = _set(3, 24, 3), _set(2, 24, 4)
    oracle = np.array([[emd(x, y)[0] for y in b] for x in a])
    np.testing.assert_allclose(pairwise_emd(a, b, method="exact"), oracle, rtol=1e-12)
    auction = pairwise_emd(a, b)
    assert (auction >= oracle - 1e-6).all() and (auction <= oracle * 1.01 + 1e-6).all()
    within = pairwise_emd(a)
    assert (np.diag(within) == 0).all() and (within == within.T).all()
    oracle_aa = np.array([[emd(x, y)[0] for y in a] for x in a])
    assert (within >= oracle_aa - 1e-6).all() and (within <= oracle_aa * 1.01 + 1e-6).all()


def test_progress_reaches_the_pair_count():
    a, b = _set(3, 8, 5), _set(4, 8, 6)
    for func, kwargs in ((pairwise_chamfer, {"batch_size": 5}), (pairwise_emd, {})):
        calls = []
        func(a, b, progress=lambda done, total, calls=calls: calls.append((done, total)), **kwargs)
        assert calls[-1] == (12, 12) and all(t == 12 for _, t in calls)
        calls.clear()
        func(a, progress=lambda done, total, calls=calls: calls.append((done, total)), **kwargs)
        assert calls[-1] == (3, 3)


def test_errors():
    a = _set(2, 8, 0)
    with pytest.raises(ValueError, match=r"P=8 points, b has P=9"):
        pairwise_emd(a, _set(2, 9, 1))
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        pairwise_chamfer(a[0], a)
    with pytest.raises(ValueError, match="empty"):
        pairwise_emd(a[:0], a)
    with pytest.raises(ValueError, match="NaN"):
        pairwise_chamfer(a, np.full((1, 4, 3), np.nan))
    with pytest.raises(ValueError, match="batch_size"):
        pairwise_chamfer(a, a, batch_size=0)
    with pytest.raises(ValueError, match="unknown EMD method"):
        pairwise_emd(a, a, method="fast")
    with pytest.raises(ValueError, match="method='exact' takes none"):
        pairwise_emd(a, a, method="exact", eps=0.1)
