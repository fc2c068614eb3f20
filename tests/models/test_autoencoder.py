from __future__ import annotations

import pytest
import torch

from shapelatent.models import ModelConfig, PointCloudAutoencoder


def test_shapes_and_layers():
    cfg = ModelConfig(num_points=64, latent_dim=16)
    model = PointCloudAutoencoder(cfg)
    out = model(torch.randn(4, 64, 3))
    assert out.points.shape == (4, 64, 3) and out.codes.shape == (4, 16) and out.normals is None
    shared = [m for m in model.encoder.net if isinstance(m, torch.nn.Linear)]
    assert [c.out_features for c in shared] == [64, 128, 128, 256, 16]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.encoder.net) == 5
    linears = [m for m in model.decoder.net if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [256, 256, 64 * 3]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.decoder.net)


def test_normals_are_unit():
    model = PointCloudAutoencoder(ModelConfig(num_points=32, latent_dim=8, predict_normals=True))
    out = model(torch.randn(2, 32, 3))
    assert out.normals.shape == (2, 32, 3)
    torch.testing.assert_close(out.normals.norm(dim=-1), torch.ones(2, 32))


def test_shared_layers_equal_1x1_convolutions():
    model = PointCloudAutoencoder(ModelConfig(num_points=32, latent_dim=8)).eval()
    x = torch.randn(2, 50, 3)
    h = x.transpose(1, 2)  # (B, 3, P)
    for m in model.encoder.net:
        if isinstance(m, torch.nn.Linear):
            h = torch.nn.functional.conv1d(h, m.weight[:, :, None], m.bias)
        else:
            h = m(h)
    torch.testing.assert_close(model.encode(x), h.amax(dim=2), rtol=1e-5, atol=1e-5)


def test_encoder_is_permutation_invariant_and_any_size():
    model = PointCloudAutoencoder(ModelConfig(num_points=32, latent_dim=8)).eval()
    x = torch.randn(2, 100, 3)
    perm = torch.randperm(100)
    torch.testing.assert_close(model.encode(x), model.encode(x[:, perm]))


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="model.latent_dim must be a positive integer"):
        ModelConfig(latent_dim=0)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"latent": 3})
    model = PointCloudAutoencoder(ModelConfig(num_points=16, latent_dim=8))
    with pytest.raises(ValueError, match=r"points must have shape \(B, P, 3\)"):
        model.encode(torch.randn(16, 3))
    with pytest.raises(ValueError, match=r"codes must have shape \(B, 8\)"):
        model.decode(torch.randn(2, 9))
