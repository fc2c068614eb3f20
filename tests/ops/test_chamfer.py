"""Chamfer distance: every backend against the full-matrix oracle and scipy's cKDTree."""

from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from shapelatent.errors import BackendUnavailableError
from shapelatent.ops import chamfer
from shapelatent.ops.chamfer import (
    BACKENDS,
    ChamferResult,
    available_backends,
    chamfer_distance,
    chamfer_reference,
    nearest_neighbors,
)

_MISSING = {
    "pytorch3d": "pytorch3d is not importable: no PyPI wheel for Linux/py3.11, it needs a CUDA source build",
    "keops": "pykeops is not importable: pip install 'shapelatent[keops]'",
    "numba": "numba is not importable",
}
_MODULES = {"pytorch3d": "pytorch3d", "keops": "pykeops", "numba": "numba"}


def _backend_param(name: str):
    module = _MODULES.get(name)
    missing = module is not None and importlib.util.find_spec(module) is None
    return pytest.param(name, marks=pytest.mark.skipif(missing, reason=_MISSING.get(name, "")), id=name)


ALL_BACKENDS = [_backend_param(name) for name in BACKENDS]
# Backends whose float64 and D != 3 paths are cheap to exercise here (KeOps compiles each variant).
FAST_BACKENDS = [_backend_param(name) for name in ("numba", "torch", "reference")]


def _clouds(batch, n_x, n_y, dim=3, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, n_x, dim, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.rand(batch, n_y, dim, generator=gen, dtype=torch.float64).to(dtype)
    return x, y


def _uneven(x, y, seed=0):
    """Lengths [P, 1, random...] / [Q, random, 1...] with NaN padding, which must never be read."""
    gen = torch.Generator().manual_seed(seed)
    batch, n_x, n_y = x.shape[0], x.shape[1], y.shape[1]
    x_lengths = torch.randint(1, n_x + 1, (batch,), generator=gen)
    y_lengths = torch.randint(1, n_y + 1, (batch,), generator=gen)
    x_lengths[0], y_lengths[0] = n_x, n_y
    x_lengths[1], y_lengths[-1] = 1, 1
    x, y = x.clone(), y.clone()
    x[torch.arange(n_x) >= x_lengths[:, None]] = float("nan")
    y[torch.arange(n_y) >= y_lengths[:, None]] = float("nan")
    return x, y, x_lengths, y_lengths


def _grid_cloud(side, jitter, seed=0):
    """(1, side**3, 3) float64 jittered grid, spacing 1: nearest neighbours are far from ties."""
    gen = torch.Generator().manual_seed(seed)
    axis = torch.arange(side, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(1, -1, 3)
    return grid + jitter * (2 * torch.rand(grid.shape, generator=gen, dtype=torch.float64) - 1)


def _assert_neighbours(idx, x, y, x_lengths, y_lengths, rtol=1e-5):
    """Each valid idx reaches a true nearest neighbour (float64 oracle); ties may pick either index."""
    x, y = x.double(), y.double()
    for b in range(x.shape[0]):
        n, m = int(x_lengths[b]), int(y_lengths[b])
        sq = ((x[b, :n, None] - y[b, None, :m]) ** 2).sum(-1)  # (n, m)
        assert (idx[b, n:] == -1).all()
        assert ((idx[b, :n] >= 0) & (idx[b, :n] < m)).all()
        reached = sq.gather(1, idx[b, :n, None])[:, 0]
        torch.testing.assert_close(reached, sq.min(1).values, rtol=rtol, atol=1e-7)


def _assert_matches(result: ChamferResult, oracle: ChamferResult, x, y, x_lengths, y_lengths, rtol):
    _assert_neighbours(result.idx_xy, x, y, x_lengths, y_lengths)
    _assert_neighbours(result.idx_yx, y, x, y_lengths, x_lengths)
    assert (result.idx_xy == oracle.idx_xy).float().mean() > 0.99
    for got, want in zip(result[:3], oracle[:3], strict=True):
        torch.testing.assert_close(got, want, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_matches_reference_float32(backend, padded):
    x, y = _clouds(4, 300, 200)
    x_lengths = y_lengths = None
    if padded:
        x, y, x_lengths, y_lengths = _uneven(x, y)
    x.requires_grad_(True)
    y.requires_grad_(True)
    got = chamfer_distance(x, y, x_lengths, y_lengths, reduction="none", backend=backend)
    want = chamfer_reference(x, y, x_lengths, y_lengths, reduction="none")
    lx = got.idx_xy.new_full((4,), 300) if x_lengths is None else x_lengths
    ly = got.idx_yx.new_full((4,), 200) if y_lengths is None else y_lengths
    with torch.no_grad():
        _assert_matches(got, want, x.nan_to_num(), y.nan_to_num(), lx, ly, rtol=1e-5)
    weights = torch.linspace(0.5, 2.0, 4)
    grad_got = torch.autograd.grad((got.loss * weights).sum(), (x, y))
    grad_want = torch.autograd.grad((want.loss * weights).sum(), (x, y))
    for g_got, g_want in zip(grad_got, grad_want, strict=True):
        assert torch.isfinite(g_got).all()
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_matches_reference_float64_any_dim(backend, dim):
    x, y, x_lengths, y_lengths = _uneven(*_clouds(3, 257, 190, dim=dim, dtype=torch.float64, seed=dim))
    got = chamfer_distance(x, y, x_lengths, y_lengths, reduction="none", backend=backend)
    want = chamfer_reference(x, y, x_lengths, y_lengths, reduction="none")
    _assert_matches(got, want, x.nan_to_num(), y.nan_to_num(), x_lengths, y_lengths, rtol=1e-10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_matches_kdtree(backend):
    x, y, x_lengths, y_lengths = _uneven(*_clouds(3, 400, 333, seed=3), seed=3)
    result = chamfer_distance(x, y, x_lengths, y_lengths, reduction="none", backend=backend)
    for b in range(3):
        n, m = int(x_lengths[b]), int(y_lengths[b])
        xb, yb = x[b, :n].double().numpy(), y[b, :m].double().numpy()
        for src, tree_pts, dist, idx in (
            (xb, yb, result.dist_xy[b], result.idx_xy[b]),
            (yb, xb, result.dist_yx[b], result.idx_yx[b]),
        ):
            tree_dist, tree_idx = cKDTree(tree_pts).query(src, k=1)
            valid = len(src)
            np.testing.assert_allclose(dist[:valid].numpy(), tree_dist**2, rtol=1e-5, atol=1e-7)
            assert (dist[valid:] == 0).all() and (idx[valid:] == -1).all()
            assert (idx[:valid].numpy() == tree_idx).mean() > 0.99
        expected = result.dist_xy[b, :n].mean() + result.dist_yx[b, :m].mean()
        torch.testing.assert_close(result.loss[b], expected)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_hand_checkable_cases(backend):
    # B = 2 throughout: KeOps compiles B = 1 separately, and its compiles dominate a cold test run.
    cloud = torch.cat([_grid_cloud(4, jitter=0.1, seed=s) for s in (0, 1)]).float()  # (2, 64, 3)
    same = chamfer_distance(cloud, cloud.clone(), backend=backend)  # neighbours >= 0.8 apart
    assert same.loss.item() == 0.0
    assert (same.idx_xy == torch.arange(64)).all() and (same.idx_yx == torch.arange(64)).all()

    shift = torch.tensor([0.03, -0.02, 0.05])
    moved = chamfer_distance(cloud, cloud + shift, backend=backend)
    torch.testing.assert_close(moved.loss, 2 * shift.square().sum(), rtol=1e-4, atol=0)
    assert (moved.idx_xy == torch.arange(64)).all()

    a = torch.tensor([[[1.0, 2.0, 3.0]], [[0.0, 0.0, 0.0]]], requires_grad=True)  # (2, 1, 3)
    b = torch.tensor([[[2.0, 0.0, 3.5]], [[0.0, 3.0, 4.0]]], requires_grad=True)
    single = chamfer_distance(a, b, backend=backend, reduction="none")
    assert single.loss.tolist() == pytest.approx([2 * (1 + 4 + 0.25), 2 * 25])
    single.loss.sum().backward()
    torch.testing.assert_close(a.grad, 4 * (a - b).detach())
    torch.testing.assert_close(b.grad, -4 * (a - b).detach())


def test_reductions():
    x, y, x_lengths, y_lengths = _uneven(*_clouds(4, 64, 50, seed=5), seed=5)
    per_cloud = chamfer_distance(x, y, x_lengths, y_lengths, reduction="none").loss
    assert per_cloud.shape == (4,)
    by_hand = torch.stack(
        [
            ((x[b, :n, None] - y[b, None, :m]) ** 2).sum(-1).min(1).values.mean()
            + ((x[b, :n, None] - y[b, None, :m]) ** 2).sum(-1).min(0).values.mean()
            for b, (n, m) in enumerate(zip(x_lengths.tolist(), y_lengths.tolist(), strict=True))
        ]
    )
    torch.testing.assert_close(per_cloud, by_hand)
    mean = chamfer_distance(x, y, x_lengths, y_lengths, reduction="mean").loss
    total = chamfer_distance(x, y, x_lengths, y_lengths, reduction="sum").loss
    assert mean.shape == () and total.shape == ()
    torch.testing.assert_close(mean, per_cloud.mean())
    torch.testing.assert_close(total, per_cloud.sum())


def test_custom_function_gradcheck_float64():
    x = _grid_cloud(3, jitter=0.2, seed=1).repeat(2, 1, 1)[:, :20].clone()  # (2, 20, 3)
    y = x[:, :13].flip(1) + 0.1  # (2, 13, 3): every point has a clear nearest neighbour
    idx_xy, idx_yx = nearest_neighbors(x, y, torch.tensor([20, 7]), torch.tensor([13, 13]))
    assert (idx_xy[1, 7:] == -1).all()
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: chamfer._GatheredSquaredDistance.apply(a, b, idx_xy, idx_yx), (x, y))


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_chamfer_distance_gradcheck_float64(backend):
    x = _grid_cloud(3, jitter=0.2, seed=2)[:, :15].requires_grad_(True)  # (1, 15, 3)
    y = (_grid_cloud(3, jitter=0.2, seed=3)[:, :11] + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, backend=backend)[:3], (x, y))


def test_memory_saves_no_pairwise_matrix():
    x, y = _clouds(2, 300, 200)
    x.requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        chamfer_distance(x, y, backend="torch").loss.backward()
    assert saved and max(saved) <= 2 * 300 * 3


@pytest.mark.parametrize("n_split", [1, 3, 7])
def test_numba_row_blocks_merge_in_order(n_split):
    pytest.importorskip("numba", reason=_MISSING["numba"])
    from shapelatent.ops._nn_numba import nn_fused

    x, y, x_lengths, y_lengths = _uneven(*_clouds(2, 301, 77, seed=7), seed=7)
    y[0, 40] = y[0, 3]  # exact ties: the lower index must win, as in torch.argmin,
    x[0, 250] = x[0, 10]  # also across row blocks
    idx_xy, idx_yx = nn_fused(x.numpy(), y.numpy(), x_lengths.numpy(), y_lengths.numpy(), n_split)
    want = chamfer_reference(x, y, x_lengths, y_lengths)
    assert (torch.from_numpy(idx_xy) == want.idx_xy).all()
    assert (torch.from_numpy(idx_yx) == want.idx_yx).all()


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_searched_in_float32(backend, dtype):
    x, y = _clouds(2, 100, 80, dtype=dtype, seed=9)
    got = chamfer_distance(x, y, backend=backend, reduction="none")
    assert got.loss.dtype == dtype
    want = chamfer_reference(x.float(), y.float(), reduction="none")
    torch.testing.assert_close(got.loss.float(), want.loss, rtol=2e-2, atol=1e-4)


def test_torch_backend_blocks_merge_in_order(monkeypatch):
    x, y, x_lengths, y_lengths = _uneven(*_clouds(3, 100, 60, seed=8), seed=8)
    monkeypatch.setattr(chamfer, "_TORCH_BLOCK_BYTES", {"cpu": 3 * 60 * 4 * 7})  # 7 rows per block
    got = chamfer_distance(x, y, x_lengths, y_lengths, backend="torch", reduction="none")
    want = chamfer_reference(x, y, x_lengths, y_lengths, reduction="none")
    _assert_matches(got, want, x.nan_to_num(), y.nan_to_num(), x_lengths, y_lengths, rtol=1e-5)


def test_torch_backend_far_from_origin():
    cloud = (_grid_cloud(4, jitter=0.1) + 1000.0).float()
    idx_xy, idx_yx = nearest_neighbors(cloud, cloud + 0.01, backend="torch")
    assert (idx_xy == torch.arange(64)).all() and (idx_yx == torch.arange(64)).all()


def test_nearest_neighbors_matches_chamfer_and_has_no_grad():
    x, y = _clouds(2, 90, 70, seed=11)
    x.requires_grad_(True)
    idx_xy, idx_yx = nearest_neighbors(x, y)
    assert idx_xy.dtype == torch.int64 and idx_xy.shape == (2, 90) and idx_yx.shape == (2, 70)
    assert not idx_xy.requires_grad
    result = chamfer_distance(x, y)
    assert (result.idx_xy == idx_xy).all() and (result.idx_yx == idx_yx).all()


def test_auto_logs_its_choice_once(monkeypatch, caplog):
    monkeypatch.setattr(chamfer, "_logged_choices", set())
    x, y = _clouds(1, 10, 10)
    with caplog.at_level(logging.INFO, logger=chamfer.__name__):
        chamfer_distance(x, y)
        chamfer_distance(x, y)
    records = [r for r in caplog.records if "auto" in r.getMessage()]
    assert len(records) == 1
    assert ("'numba'" if "numba" in available_backends() else "'torch'") in records[0].getMessage()


def test_available_backends():
    names = available_backends()
    assert {"torch", "reference"} <= set(names) and set(names) <= set(BACKENDS)


@pytest.mark.parametrize(
    ("backend", "module", "hint"),
    [
        ("pytorch3d", "pytorch3d", "from source with a CUDA toolchain"),
        ("keops", "pykeops", "pip install 'shapelatent[keops]'"),
        ("numba", "numba", "pip install"),
    ],
)
def test_missing_backend_names_what_to_install(monkeypatch, backend, module, hint):
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] + [module]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import module` raise ImportError
    chamfer._backend_import_error.cache_clear()
    try:
        x, y = _clouds(1, 5, 5)
        with pytest.raises(BackendUnavailableError, match=f"'{backend}' is unavailable") as info:
            chamfer_distance(x, y, backend=backend)
        assert hint in str(info.value)
        assert isinstance(info.value, ImportError)
        with pytest.raises(BackendUnavailableError):
            nearest_neighbors(x, y, backend=backend)
        assert backend not in available_backends()
    finally:
        chamfer._backend_import_error.cache_clear()


def test_auto_without_numba_falls_back_loudly(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.setattr(chamfer, "_logged_choices", set())
    chamfer._backend_import_error.cache_clear()
    try:
        x, y = _clouds(1, 5, 5)
        with caplog.at_level(logging.INFO, logger=chamfer.__name__):
            result = chamfer_distance(x, y)
        torch.testing.assert_close(result.loss, chamfer_reference(x, y).loss)
        assert any(r.levelno == logging.WARNING and "numba" in r.getMessage() for r in caplog.records)
    finally:
        chamfer._backend_import_error.cache_clear()


_X, _Y = _clouds(2, 6, 5)
_META = torch.zeros(2, 6, 3, device="meta")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": _X.numpy()}, TypeError, r"x must be a \(B, P, D\) floating-point tensor, got ndarray"),
        ({"x": _X[0]}, ValueError, r"x must be a 3-D tensor \(B, P, D\), got shape \(6, 3\)"),
        ({"y": _Y[..., 0]}, ValueError, r"y must be a 3-D tensor \(B, Q, D\), got shape \(2, 5\)"),
        ({"x": _X[:1]}, ValueError, r"must agree in B and D, got \(1, 6, 3\) and \(2, 5, 3\)"),
        ({"y": _Y[..., :2]}, ValueError, r"must agree in B and D, got \(2, 6, 3\) and \(2, 5, 2\)"),
        ({"x": _X.long()}, ValueError, "x must have a floating dtype, got torch.int64"),
        ({"y": _Y.double()}, ValueError, "same dtype, got torch.float32 and torch.float64"),
        ({"x": _X[:, :0]}, ValueError, r"x \(B, P, D\) needs P, Q, D >= 1, got shape \(2, 0, 3\)"),
        ({"x": _META}, ValueError, "same device, got meta and cpu"),
        ({"x_lengths": [6, 6]}, TypeError, r"x_lengths must be a \(B,\) int64 tensor, got list"),
        ({"x_lengths": torch.tensor([6])}, ValueError, r"x_lengths must be a \(B,\) = \(2,\) integer tensor"),
        ({"y_lengths": torch.tensor([5.0, 5.0])}, ValueError, "y_lengths .* dtype torch.float32"),
        (
            {"x_lengths": torch.tensor([0, 6])},
            ValueError,
            r"x_lengths must lie in \[1, P\] = \[1, 6\], got .*\[0, 6\]",
        ),
        (
            {"y_lengths": torch.tensor([5, 6])},
            ValueError,
            r"y_lengths must lie in \[1, Q\] = \[1, 5\], got .*\[5, 6\]",
        ),
        (
            {"reduction": "avg"},
            ValueError,
            r"unknown reduction 'avg'; expected one of \('mean', 'sum', 'none'\)",
        ),
        ({"backend": "faiss"}, ValueError, r"unknown backend 'faiss'; expected 'auto' or one of \('numba'"),
    ],
)
def test_input_errors(kwargs, error, match):
    args = {"x": _X, "y": _Y, **kwargs}
    with pytest.raises(error, match=match):
        chamfer_distance(**args)
    if "reduction" not in kwargs:
        with pytest.raises(error, match=match):
            nearest_neighbors(**args)
    if "backend" not in kwargs:
        with pytest.raises(error, match=match):
            chamfer_reference(**args)


def test_lengths_on_another_device():
    with pytest.raises(ValueError, match="x_lengths is on meta but the clouds are on cpu"):
        chamfer_distance(_X, _Y, torch.tensor([6, 6], device="meta"))


def test_numba_backend_needs_cpu_tensors():
    pytest.importorskip("numba", reason=_MISSING["numba"])
    meta_y = torch.zeros(2, 5, 3, device="meta")
    with pytest.raises(ValueError, match="backend 'numba' needs CPU tensors, got meta"):
        chamfer_distance(_META, meta_y, backend="numba")
