"""The occupancy head: shapes, per-shape decoding, config round trip, old configs, the fingerprint."""

from __future__ import annotations

import pytest
import torch

from shapelatent.latent.store import model_fingerprint
from shapelatent.models import ModelConfig, PointCloudAutoencoder
from shapelatent.models.implicit import IMPLICIT_KINDS, ImplicitConfig, build_implicit, implicit_fn
from shapelatent.models.load import load_model
from shapelatent.train.checkpoint import save_checkpoint


@pytest.mark.parametrize("kind", IMPLICIT_KINDS)
def test_forward_shapes_and_one_shape_alone_equals_the_batch(kind):
    torch.manual_seed(0)
    head = build_implicit(16, ImplicitConfig(kind=kind, hidden=32, blocks=2, fourier=2))
    z, x = torch.randn(3, 16), torch.rand(3, 50, 3) * 2.2 - 1.1
    head.train()
    out = head(z, x)  # (B, T)
    assert out.shape == (3, 50) and out.dtype == torch.float32
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())
    head.eval()
    out = head(z, x)
    fn = implicit_fn(head, z[1], batch_points=7)  # chunks of 7 queries
    assert torch.allclose(fn(x[1]), out[1], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        head(z, x[:2])


def test_implicit_fn_takes_the_autoencoder_and_needs_a_head():
    torch.manual_seed(0)
    cfg = ModelConfig(num_points=32, latent_dim=8, implicit=ImplicitConfig(kind="concat", hidden=16, blocks=2))
    model = PointCloudAutoencoder(cfg)
    code = torch.randn(8)
    x = torch.rand(100, 3)
    assert implicit_fn(model, code)(x).shape == (100,)
    assert torch.equal(implicit_fn(model, code)(x), implicit_fn(model.implicit, code)(x))
    bare = PointCloudAutoencoder(ModelConfig(num_points=32, latent_dim=8))
    with pytest.raises(ValueError, match="no implicit .occupancy. head; add one with `shapelatent train-implicit"):
        implicit_fn(bare, code)
    with pytest.raises(ValueError, match="train-implicit"):
        bare.occupancy(torch.zeros(1, 8), torch.zeros(1, 4, 3))


def test_config_defaults_round_trip_and_errors():
    assert ImplicitConfig() == ImplicitConfig(kind="cbn", hidden=128, blocks=3, fourier=4)  # bench/implicit_head.py
    assert (ImplicitConfig(kind="concat").hidden, ImplicitConfig(kind="film").blocks) == (256, 4)
    c = ModelConfig(num_points=64, implicit={"kind": "concat", "hidden": 32, "blocks": 3, "fourier": 0})
    assert isinstance(c.implicit, ImplicitConfig)
    assert ModelConfig.from_dict(c.to_dict()) == c
    assert "implicit" not in ModelConfig(num_points=64).to_dict()  # configs without a head read as before
    with pytest.raises(ValueError, match="implicit.kind must be one of"):
        ImplicitConfig(kind="cbm")
    with pytest.raises(ValueError, match="implicit.hidden must be a positive integer"):
        ImplicitConfig(hidden=0)
    with pytest.raises(ValueError, match="unknown implicit config keys"):
        ModelConfig(implicit={"kind": "cbn", "width": 3})
    with pytest.raises(ValueError, match="model.implicit must be a table"):
        ModelConfig(implicit="cbn")


def test_old_checkpoint_without_head_loads_unchanged(tmp_path):
    """A checkpoint written before the head existed (its model config has no `implicit` key) loads as before."""
    torch.manual_seed(0)
    model = PointCloudAutoencoder(ModelConfig(num_points=32, latent_dim=8))
    old_model_cfg = {
        "num_points": 32,
        "latent_dim": 8,
        "encoder_channels": [64, 128, 128, 256],
        "decoder_hidden": [256, 256],
        "predict_normals": False,
    }
    save_checkpoint(tmp_path / "model.safetensors", model, {"run": {"model": old_model_cfg}}, {"epoch": 1})
    loaded = load_model(tmp_path).model
    assert not loaded.has_implicit and loaded.implicit is None
    assert loaded.config.to_dict() == old_model_cfg
    assert model_fingerprint(loaded) == model_fingerprint(model)
    assert all(not k.startswith("implicit") for k in loaded.state_dict())


@pytest.mark.parametrize("kind", IMPLICIT_KINDS)
def test_fingerprint_ignores_the_head(kind):
    torch.manual_seed(0)
    base = PointCloudAutoencoder(ModelConfig(num_points=64, latent_dim=16))
    cfg = ModelConfig(num_points=64, latent_dim=16, implicit=ImplicitConfig(kind=kind, hidden=16, blocks=1))
    withhead = PointCloudAutoencoder(cfg)
    missing = withhead.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("implicit.") for k in missing)
    assert model_fingerprint(base) == model_fingerprint(withhead)
    with torch.no_grad():
        next(withhead.encoder.parameters()).add_(1e-3)
    assert model_fingerprint(base) != model_fingerprint(withhead)  # the encoder is covered


def test_cbn_normalises_like_onets_batch_norm_and_gradchecks():
    """cbn folds batch norm into the code's scale and shift: same outputs and running statistics as BatchNorm1d."""
    from shapelatent.models.implicit import _batch_stats

    torch.manual_seed(0)
    x = torch.randn(2, 50, 8) * 3 + 1  # (B, T, H)
    ours, ref = torch.nn.BatchNorm1d(8, affine=False), torch.nn.BatchNorm1d(8, affine=False)
    for _ in range(2):
        mean, var = _batch_stats(x, ours)
        expected = ref(x.reshape(-1, 8)).view(2, 50, 8)
        assert torch.allclose((x - mean) * torch.rsqrt(var + ours.eps), expected, atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.allclose(getattr(ours, name).float(), getattr(ref, name).float(), atol=1e-6), name
    head = build_implicit(6, ImplicitConfig(kind="cbn", hidden=8, blocks=2, fourier=1)).double()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.3)  # away from the zero initialisation, so every path carries gradient
    z = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    q = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
    for mode in (head.train, head.eval):
        mode()
        assert torch.autograd.gradcheck(head, (z, q))


def test_nearest_points_match_brute_force_on_both_paths():
    from shapelatent.models.implicit import nearest_points, nearest_points_blocked

    g = torch.Generator().manual_seed(0)
    pts, qs = torch.rand(3, 40, 3, generator=g), torch.rand(3, 25, 3, generator=g) * 2 - 0.5
    d = ((qs[:, :, None] - pts[:, None]) ** 2).sum(-1)  # (B, T, P) brute force
    want = d.sort(dim=-1).values[..., :5]
    for fn in (nearest_points, nearest_points_blocked):
        idx = fn(pts, qs, 5)
        assert idx.shape == (3, 25, 5) and idx.dtype == torch.int64
        got = torch.gather(d, 2, idx)  # the distances of the returned points, nearest first
        assert torch.allclose(got, want, atol=1e-6), fn.__name__
    with pytest.raises(ValueError, match="asked for, but the cloud has 40"):
        nearest_points(pts, qs, 41)


def test_a_local_head_reads_the_decoded_points():
    torch.manual_seed(0)
    cfg = ModelConfig(num_points=32, latent_dim=8, implicit=ImplicitConfig(hidden=16, blocks=2, fourier=2, local=4))
    model = PointCloudAutoencoder(cfg).eval()
    head = model.implicit
    assert head is not None and head.needs_points
    z, x = torch.randn(2, 8), torch.rand(2, 30, 3) * 2.2 - 1.1
    with torch.no_grad():
        cloud = model.decode(z).points  # (2, 32, 3)
        out = model.occupancy(z, x)  # decodes the points itself
        assert torch.equal(out, head(z, x, cloud))
        assert torch.allclose(out[1], implicit_fn(model, z[1], batch_points=7)(x[1]), atol=1e-5)  # alone = batch
        assert torch.allclose(out[1], implicit_fn(head, z[1], points=cloud[1])(x[1]), atol=1e-5)
        moved = head(z, x, cloud + torch.tensor([0.3, 0.0, 0.0]))
    assert not torch.allclose(moved, out)  # the function depends on where the decoded points are
    with pytest.raises(ValueError, match="reads the 4 nearest decoded points"):
        head(z, x)
    with pytest.raises(ValueError, match="pass the autoencoder, or the decoded points"):
        implicit_fn(head, z[0])
    head.train()
    model.occupancy(z, x).sum().backward()
    assert all(p.grad is not None for p in head.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())  # the points enter detached
    assert ImplicitConfig.from_dict({"kind": "cbn", "hidden": 8, "blocks": 1, "fourier": 0}).local == 0  # old configs
    with pytest.raises(ValueError, match="implicit.local must be an integer in 0..64"):
        ImplicitConfig(local=-1)
