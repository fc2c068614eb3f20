"""Every public path that takes a device gives on CUDA what it gives on the CPU.

Chamfer (every backend that runs on CUDA, against the float64 CPU reference), nearest neighbours, encoding
(codes within 1e-4 of the CPU codes), decoding, latent neighbour search and pairwise Chamfer metrics. The
model is a seeded, untrained one: device agreement does not depend on the weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.latent.decode import decode_codes
from shapelatent.latent.encode import codes_for_points, encode_to_store
from shapelatent.latent.retrieval import NeighborIndex
from shapelatent.latent.store import LatentStore
from shapelatent.models.load import load_model
from shapelatent.models.pointnet import ModelConfig, PointCloudAutoencoder
from shapelatent.ops.chamfer import available_backends, chamfer_distance, chamfer_reference, nearest_neighbors
from shapelatent.train.checkpoint import save_checkpoint
from shapelatent.train.config import RunConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

DEVICE = "cuda"
CUDA_BACKENDS = [b for b in ("torch", "pytorch3d", "keops", "reference") if b in available_backends()]
P = 128


def _clouds(seed: int, batch: int = 3, p: int = 200, q: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, p, 3, generator=g, dtype=torch.float64)
    return x, torch.rand(batch, q, 3, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """A run folder with a seeded untrained model (P=128, Z=16, decoded normals) and a dataset it can encode."""
    root = tmp_path_factory.mktemp("gpu")
    sampling = SamplingConfig(num_points=P)
    build_procedural(root / "data", 12, sampling=sampling, seed=0, workers=1)
    torch.manual_seed(0)
    model = PointCloudAutoencoder(ModelConfig(num_points=P, latent_dim=16, decoder_hidden=(32,), predict_normals=True))
    config = {"run": RunConfig(model=model.config).to_dict(), "data": {"sampling": sampling.to_dict()}}
    save_checkpoint(root / "run" / "model.safetensors", model, config, {"epoch": 0})
    return root / "run", root / "data"


@pytest.mark.parametrize("backend", [*CUDA_BACKENDS, "auto"])
def test_chamfer_on_cuda_matches_cpu_reference(backend):
    x, y = _clouds(0)
    x_len, y_len = torch.tensor([200, 117, 1]), torch.tensor([150, 150, 40])
    ref = chamfer_reference(x.requires_grad_(), y.requires_grad_(), x_len, y_len, reduction="sum")
    ref.loss.backward()
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        xc = x.detach().to(DEVICE, dtype).requires_grad_()
        yc = y.detach().to(DEVICE, dtype).requires_grad_()
        got = chamfer_distance(xc, yc, x_len.to(DEVICE), y_len.to(DEVICE), reduction="sum", backend=backend)
        assert got.loss.device.type == "cuda" and got.idx_xy.device.type == "cuda"
        got.loss.backward()
        torch.testing.assert_close(got.loss.double().cpu(), ref.loss.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(got.dist_xy.double().cpu(), ref.dist_xy.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(got.dist_yx.double().cpu(), ref.dist_yx.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(xc.grad.double().cpu(), x.grad, rtol=tol * 10, atol=tol * 10)
        torch.testing.assert_close(yc.grad.double().cpu(), y.grad, rtol=tol * 10, atol=tol * 10)


def test_numba_refuses_cuda_tensors():
    x, y = (t.to(DEVICE) for t in _clouds(1))
    with pytest.raises(ValueError, match="backend 'numba' needs CPU tensors, got cuda; use 'torch' or 'auto'"):
        chamfer_distance(x, y, backend="numba")


@pytest.mark.parametrize("backend", [*CUDA_BACKENDS, "auto"])
def test_nearest_neighbors_on_cuda(backend):
    x, y = _clouds(2)
    idx_xy, idx_yx = nearest_neighbors(x.to(DEVICE), y.to(DEVICE), backend=backend)
    assert idx_xy.device.type == "cuda"
    sq = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)  # (B, P, Q) brute force
    # compare distances, not indices: equidistant neighbours may tie differently
    torch.testing.assert_close(sq.gather(2, idx_xy.cpu()[..., None])[..., 0], sq.min(2).values)
    torch.testing.assert_close(sq.gather(1, idx_yx.cpu()[:, None])[:, 0], sq.min(1).values)


def test_encode_on_cuda_matches_cpu(model_run):
    run, data = model_run
    loaded = load_model(run)
    pts = np.random.default_rng(0).random((10, P, 3), dtype=np.float32) * 2 - 1
    cpu = codes_for_points(loaded.model, pts, batch_size=4)
    cuda = codes_for_points(loaded.model.to(DEVICE), pts, batch_size=4)  # the default device is the model's
    np.testing.assert_allclose(cuda, cpu, atol=1e-4, rtol=0)
    store_cpu, _ = encode_to_store(run, [data], run.parent / "s_cpu", workers=1)
    store_gpu, _ = encode_to_store(run, [data], run.parent / "s_gpu", workers=1, device=DEVICE)
    np.testing.assert_allclose(LatentStore.open(store_gpu.path).codes, store_cpu.codes, atol=1e-4, rtol=0)


def test_decode_on_cuda_matches_cpu(model_run):
    run, _ = model_run
    codes = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    pts_cpu, nrm_cpu = decode_codes(load_model(run), codes)
    loaded = load_model(run)
    loaded.model.to(DEVICE)
    pts_gpu, nrm_gpu = decode_codes(loaded, codes)
    assert isinstance(pts_gpu, np.ndarray) and pts_gpu.shape == (5, P, 3)
    np.testing.assert_allclose(pts_gpu, pts_cpu, atol=1e-4, rtol=0)
    np.testing.assert_allclose(nrm_gpu, nrm_cpu, atol=1e-4, rtol=0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbor_index_on_cuda_matches_cpu(metric):
    rng = np.random.default_rng(2)
    codes, queries = rng.standard_normal((3000, 16)), rng.standard_normal((40, 16))
    cpu = NeighborIndex(codes, metric).search(queries, 7)
    gpu = NeighborIndex(codes, metric, device=DEVICE).search(queries, 7)
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_allclose(gpu.distances, cpu.distances, atol=1e-5)
    with pytest.raises(ValueError, match="runs on the CPU here; use device='cpu', or index='exact'"):
        NeighborIndex(codes, metric, index="faiss-flat", device=DEVICE)


def test_pairwise_chamfer_on_cuda_matches_cpu():
    from shapelatent.metrics.pairwise import pairwise_chamfer

    a = np.random.default_rng(3).random((5, 64, 3)).astype(np.float32)
    b = np.random.default_rng(4).random((4, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(
        pairwise_chamfer(a, b, batch_size=7, device=DEVICE), pairwise_chamfer(a, b, batch_size=7), rtol=1e-5
    )
    sym = pairwise_chamfer(torch.from_numpy(a).to(DEVICE), device=DEVICE)  # CUDA tensors in, numpy out
    np.testing.assert_allclose(sym, pairwise_chamfer(a), rtol=1e-5)


@pytest.mark.parametrize("local", [0, 8])
def test_occupancy_head_on_cuda_matches_cpu(local):
    """The occupancy head (and, with ``local``, its nearest-decoded-point search) on CUDA vs the CPU."""
    from shapelatent.models.implicit import ImplicitConfig, implicit_fn, nearest_points

    torch.manual_seed(0)
    cfg = ModelConfig(num_points=P, latent_dim=16, decoder_hidden=(32,), implicit=ImplicitConfig(local=local))
    model = PointCloudAutoencoder(cfg).eval()
    z, x = torch.randn(2, 16), torch.rand(2, 300, 3) * 2.2 - 1.1
    with torch.no_grad():
        cpu = model.occupancy(z, x)
        gpu = model.to(DEVICE).occupancy(z.to(DEVICE), x.to(DEVICE)).cpu()
        assert torch.allclose(gpu, cpu, atol=1e-4)
        assert torch.allclose(implicit_fn(model, z[1].to(DEVICE))(x[1].to(DEVICE)).cpu(), cpu[1], atol=1e-4)
    pts = torch.rand(2, P, 3)
    d = ((x[:, :, None] - pts[:, None]) ** 2).sum(-1)
    got = torch.gather(d, 2, nearest_points(pts.to(DEVICE), x.to(DEVICE), 8).cpu())
    assert torch.allclose(got, d.sort(-1).values[..., :8], atol=1e-5)
