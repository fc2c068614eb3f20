from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

import shapelatent.latent.retrieval_exact as retrieval_exact
from shapelatent.errors import BackendUnavailableError
from shapelatent.latent.retrieval import (
    INDEXES,
    METRICS,
    NeighborIndex,
    knn_classify,
    precision_at_k,
    recall_at_k,
    search,
)


def oracle(codes, queries, k, metric, exclude=None):
    """Brute force in float64: (M, K) indices sorted by (distance, index) and their distances."""
    x, q = np.asarray(codes, np.float64), np.asarray(queries, np.float64)
    if metric == "euclidean":
        d = np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))  # (M, N)
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1.0 - qn @ xn.T
    if exclude is not None:
        d[np.arange(len(q)), exclude] = np.inf
    cols = np.broadcast_to(np.arange(x.shape[0]), d.shape)
    order = np.lexsort((cols, d), axis=1)[:, :k]
    return order, np.take_along_axis(d, order, 1)


def clustered(n, dim, clusters, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 3 + 2
    return (centres[rng.integers(clusters, size=n)] + spread * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 12)).astype(np.float32), rng.normal(size=(70, 12)).astype(np.float32)


# ---------------------------------------------------------------------------- exact search
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 7, 300])
def test_exact_matches_oracle(data, metric, k):
    codes, queries = data
    res = NeighborIndex(codes, metric).search(queries, k)
    want_i, want_d = oracle(codes, queries, k, metric)
    assert res.indices.dtype == np.int64 and res.distances.dtype == np.float32
    assert res.indices.shape == res.distances.shape == (70, k)
    np.testing.assert_array_equal(res.indices, want_i)
    np.testing.assert_allclose(res.distances, want_d, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n_queries", [1, 5, 70])  # below and above the augmented-matmul threshold
def test_exact_blocked_merge_matches_oracle(data, metric, n_queries, monkeypatch):
    # tiny blocks: many store blocks (the last one partial) and several query blocks
    monkeypatch.setattr(retrieval_exact, "_BLOCK_BYTES", 4 * 64 * 37)
    monkeypatch.setattr(retrieval_exact, "_QUERY_BLOCK", 64)
    monkeypatch.setattr(retrieval_exact, "_AUGMENT_MIN_QUERIES", 4)
    monkeypatch.setattr(retrieval_exact, "_GATHER_ROWS", 20)  # distances recomputed a few queries at a time
    codes, queries = data
    res = NeighborIndex(codes, metric).search(queries[:n_queries], 9)
    want_i, want_d = oracle(codes, queries[:n_queries], 9, metric)
    np.testing.assert_array_equal(res.indices, want_i)
    np.testing.assert_allclose(res.distances, want_d, rtol=1e-5, atol=1e-5)


def test_exact_distance_to_itself_is_zero_and_euclidean_is_not_squared():
    codes = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], np.float32)
    res = NeighborIndex(codes).search(codes[1], 3)
    np.testing.assert_array_equal(res.indices, [[1, 0, 2]])
    np.testing.assert_array_equal(res.distances, [[0.0, 5.0, 5.0]])  # L2, ties by lower index
    cos = NeighborIndex(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]), "cosine").search(np.array([2.0, 0.0]), 3)
    np.testing.assert_array_equal(cos.indices, [[0, 2, 1]])
    np.testing.assert_allclose(cos.distances, [[0.0, 1 - 0.6, 1.0]], atol=1e-6)  # 1 - cos


@pytest.mark.parametrize("block_bytes", [4 * 64 * 5, retrieval_exact._BLOCK_BYTES])
def test_ties_break_by_index_across_blocks(block_bytes, monkeypatch):
    monkeypatch.setattr(retrieval_exact, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(3)
    # small integers: distances are exact in float32, so equal codes give bit-equal distances
    base = rng.integers(-2, 3, size=(6, 4)).astype(np.float32)
    codes = base[rng.integers(6, size=90)]  # many duplicates spread over the blocks
    queries = base[:4] + np.float32(0.5)
    for k in (1, 4, 13, 40):
        res = NeighborIndex(codes).search(queries, k)
        want_i, want_d = oracle(codes, queries, k, "euclidean")
        np.testing.assert_array_equal(res.indices, want_i)
        np.testing.assert_allclose(res.distances, want_d, rtol=1e-6)


def test_a_tie_the_search_order_broke_the_wrong_way_still_goes_to_the_lower_index(data, monkeypatch):
    # duplicated codes tie exactly, but the search's fast ||q||^2 - 2 q.x + ||x||^2 can order them by the last bit
    # (GEMM blocking); simulate it: the K+1 candidates come back with the duplicate pair swapped at the end
    codes, _ = data
    dup = np.concatenate([codes[:50], codes[:5]])  # 54 duplicates 4
    want_i, want_d = oracle(dup, dup[[10]], 5, "euclidean")
    assert 4 in want_i[0] and 54 not in want_i[0]  # the pair sits at the K-th place for this query
    six, _ = oracle(dup, dup[[10]], 6, "euclidean")
    assert list(six[0, 4:]) == [4, 54]
    swapped = six[:, [0, 1, 2, 3, 5, 4]]
    index = NeighborIndex(dup)
    monkeypatch.setattr(sys.modules["shapelatent.latent.retrieval"], "exact_neighbours", lambda *a: swapped)
    res = index.search(dup[[10]], 5, exclude=[-1])
    np.testing.assert_array_equal(res.indices, want_i)
    np.testing.assert_allclose(res.distances, want_d, rtol=1e-6)


def test_exclude_self_and_exclude(data):
    codes, _ = data
    dup = np.concatenate([codes[:50], codes[:5]])  # items 50..54 duplicate 0..4
    res = NeighborIndex(dup).search(dup, 4, exclude_self=True)
    want_i, _ = oracle(dup, dup, 4, "euclidean", exclude=np.arange(len(dup)))
    np.testing.assert_array_equal(res.indices, want_i)
    assert res.indices[0, 0] == 50 and res.distances[0, 0] == 0.0  # the duplicate stays, the item itself goes
    assert res.indices[50, 0] == 0
    part = NeighborIndex(dup).search(dup[[3, 10]], 5, exclude=[3, -1])
    np.testing.assert_array_equal(part.indices[0], oracle(dup, dup[[3]], 5, "euclidean", exclude=[3])[0][0])
    np.testing.assert_array_equal(part.indices[1], oracle(dup, dup[[10]], 5, "euclidean")[0][0])
    assert part.indices[1, 0] == 10


def test_single_query_vector_and_empty_batch(data):
    codes, queries = data
    index = NeighborIndex(codes)
    np.testing.assert_array_equal(index.search(queries[0], 3).indices, index.search(queries[:1], 3).indices)
    empty = index.search(np.zeros((0, 12), np.float32), 3)
    assert empty.indices.shape == (0, 3) and empty.distances.shape == (0, 3)


def test_search_function(data):
    codes, queries = data
    np.testing.assert_array_equal(search(codes, queries, 4).indices, oracle(codes, queries, 4, "euclidean")[0])


# ---------------------------------------------------------------------------- FAISS
@pytest.mark.parametrize("metric", METRICS)
def test_faiss_flat_equals_exact(data, metric):
    pytest.importorskip("faiss")
    codes, queries = data
    exact = NeighborIndex(codes, metric).search(queries, 10)
    flat = NeighborIndex(codes, metric, "faiss-flat").search(queries, 10)
    np.testing.assert_array_equal(flat.indices, exact.indices)
    np.testing.assert_allclose(flat.distances, exact.distances, rtol=1e-6, atol=1e-6)
    loo = NeighborIndex(codes, metric, "faiss-flat").search(codes, 5, exclude_self=True)
    np.testing.assert_array_equal(loo.indices, NeighborIndex(codes, metric).search(codes, 5, exclude_self=True).indices)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index", ["faiss-hnsw", "faiss-ivf"])
def test_approximate_indexes_reach_recall(metric, index):
    pytest.importorskip("faiss")
    codes = clustered(3000, 16, 30, seed=1)
    queries = clustered(200, 16, 30, seed=1)[::-1].copy() + np.float32(0.05)
    exact = NeighborIndex(codes, metric).search(queries, 10)
    approx = NeighborIndex(codes, metric, index, seed=0).search(queries, 10)
    assert recall_at_k(approx.indices, exact.indices) >= 0.9
    ok = approx.indices >= 0
    assert ok.all()
    assert np.all(np.diff(approx.distances, axis=1) >= 0)  # sorted, distances recomputed exactly
    same = approx.indices == exact.indices
    np.testing.assert_allclose(approx.distances[same], exact.distances[same], rtol=1e-6)


def test_ivf_is_seeded():
    pytest.importorskip("faiss")
    codes = clustered(2000, 8, 10, seed=2)
    a = NeighborIndex(codes, index="faiss-ivf", nprobe=1, seed=4).search(codes[:50], 5)
    b = NeighborIndex(codes, index="faiss-ivf", nprobe=1, seed=4).search(codes[:50], 5)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_ivf_that_finds_too_few_pads_and_warns(caplog):
    pytest.importorskip("faiss")
    codes = clustered(400, 8, 40, seed=3, spread=0.01)
    with caplog.at_level(logging.WARNING, logger="shapelatent.latent.retrieval"):
        res = NeighborIndex(codes, index="faiss-ivf", nlist=40, nprobe=1).search(codes[:20], 30)
    missing = res.indices < 0
    assert missing.any()
    assert np.isinf(res.distances[missing]).all()
    assert (np.sort(missing, axis=1) == missing).all()  # the -1 slots come last
    assert "found fewer than k=30 neighbours" in caplog.text and "raise nprobe" in caplog.text


# ---------------------------------------------------------------------------- recall, classification, precision
def test_recall_at_k_hand_values():
    approx = np.array([[1, 2, 3], [4, 5, -1]])
    exact = np.array([[3, 2, 9], [4, 5, 6]])
    assert recall_at_k(approx, exact) == pytest.approx(4 / 6)
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.zeros((0, 3)), np.zeros((0, 3))) == 1.0


def test_knn_classify_hand_values():
    codes = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]], np.float32)
    classes = ["a", "b", "b", "a", "c"]
    queries = np.array([[0.1], [9.0], [2.4], [1.6]], np.float32)
    assert knn_classify(codes, classes, queries[:1], k=3) == ["b"]  # a, b, b
    assert knn_classify(codes, classes, queries[1:2], k=1) == ["c"]
    assert knn_classify(codes, classes, queries[2:3], k=2) == ["b"]  # b (0.4), a (0.6): tie, the nearer wins
    assert knn_classify(codes, classes, queries[3:], k=4) == ["b"]  # b, b, a, a: tie, the nearest is b
    assert knn_classify(codes, classes, queries, k=1) == ["a", "c", "b", "b"]


def test_precision_at_k_hand_values():
    codes = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]], np.float32)
    classes = ["a", "a", "b", "c", "c"]
    # k=1: 0->1 (a), 1->0 (tie with 2, lower index: a), 2->1 (a, miss), 10->11, 11->10: 4 of 5
    assert precision_at_k(codes, classes, k=1) == pytest.approx(0.8)
    # k=2: 0->{1,2}: 1/2; 1->{0,2}: 1/2; 2->{1,0}: 0; 3->{4,2}: 1/2; 4->{3,2}: 1/2
    assert precision_at_k(codes, classes, k=2) == pytest.approx(0.4)


# ---------------------------------------------------------------------------- errors
def test_errors_name_the_problem(data):
    codes, queries = data
    with pytest.raises(ValueError, match=r"unknown metric 'manhattan'; choose from \('euclidean', 'cosine'\)"):
        NeighborIndex(codes, "manhattan")
    with pytest.raises(ValueError, match=r"unknown index 'annoy'; choose from \('exact', 'faiss-flat'"):
        NeighborIndex(codes, index="annoy")
    with pytest.raises(ValueError, match=r"codes must be an \(N, Z\) array; got shape \(300,\)"):
        NeighborIndex(codes[:, 0])
    with pytest.raises(ValueError, match=r"the store is empty \(N=0\)"):
        NeighborIndex(np.zeros((0, 12), np.float32))
    bad = codes.copy()
    bad[[4, 9], 2] = np.nan
    with pytest.raises(ValueError, match=r"the store's codes contain NaN or inf in rows \[4, 9\]"):
        NeighborIndex(bad)
    index = NeighborIndex(codes)
    with pytest.raises(ValueError, match="query has Z=3, the store's codes have Z=12"):
        index.search(np.zeros((2, 3), np.float32), 1)
    with pytest.raises(ValueError, match=r"queries must be a \(Z,\) code or an \(M, Z\) array"):
        index.search(np.zeros((2, 3, 12), np.float32), 1)
    nan_q = queries[:3].copy()
    nan_q[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"queries \[1\] contain NaN or inf"):
        index.search(nan_q, 1)
    with pytest.raises(ValueError, match=r"k=301 is larger than the store \(300 items\); ask for at most 300"):
        index.search(queries, 301)
    with pytest.raises(ValueError, match=r"k=300 is larger than the store \(300 items\) less the excluded query"):
        index.search(codes, 300, exclude_self=True)
    with pytest.raises(ValueError, match="k must be a positive integer; got 0"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match=r"exclude_self=True needs the store's own codes as queries \(M=N=300\)"):
        index.search(queries, 3, exclude_self=True)
    with pytest.raises(ValueError, match=r"exclude must hold one store index \(0..299, or -1 for none\) per query"):
        index.search(queries[:2], 3, exclude=[1, 300])
    with pytest.raises(ValueError, match="either exclude_self=True or exclude"):
        index.search(codes, 3, exclude_self=True, exclude=np.arange(300))
    zeros = codes.copy()
    zeros[7] = 0
    with pytest.raises(ValueError, match=r"store codes \[7\] is all zeros; cosine distance is undefined"):
        NeighborIndex(zeros, "cosine")
    with pytest.raises(ValueError, match=r"queries \[0\] is all zeros"):
        NeighborIndex(codes, "cosine").search(np.zeros((1, 12), np.float32), 1)
    with pytest.raises(ValueError, match="nlist=400 is more lists than the store has codes"):
        NeighborIndex(codes, index="faiss-ivf", nlist=400)
    with pytest.raises(ValueError, match="hnsw_m must be a positive integer"):
        NeighborIndex(codes, index="faiss-hnsw", hnsw_m=0)
    with pytest.raises(ValueError, match="index 'faiss-flat' runs on the CPU here"):
        NeighborIndex(codes, index="faiss-flat", device="cuda")
    with pytest.raises(ValueError, match=r"approx_indices and exact_indices must both be \(M, K\)"):
        recall_at_k(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="classes has 2 entries, the store has 300 codes"):
        knn_classify(codes, ["a", "b"], queries)
    with pytest.raises(ValueError, match=r"items \[1\] have no class"):
        precision_at_k(codes[:3], ["a", "", "b"], k=1)


@pytest.mark.parametrize("index", [i for i in INDEXES if i.startswith("faiss")])
def test_missing_faiss_names_the_extra(data, index, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install 'shapelatent\[faiss\]'"):
        NeighborIndex(data[0], index=index)
    NeighborIndex(data[0]).search(data[1], 2)  # exact needs no FAISS
