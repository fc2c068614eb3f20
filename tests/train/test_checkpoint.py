from __future__ import annotations

import pickle

import pytest
import torch

from shapelatent.errors import CheckpointError
from shapelatent.models import ModelConfig, PointCloudAutoencoder
from shapelatent.train.checkpoint import load_checkpoint, save_checkpoint


def _model():
    return PointCloudAutoencoder(ModelConfig(num_points=16, latent_dim=8))


def test_roundtrip_with_optimizer(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(3, 16, 3)).points.sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.safetensors", model, {"run": {"x": 1}}, {"epoch": 3}, opt)
    ck = load_checkpoint(path)
    assert ck.state == {"epoch": 3} and ck.config == {"run": {"x": 1}}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ck.model_state[k], v)
    opt2 = torch.optim.Adam(_model().parameters(), lr=1e-3)
    opt2.load_state_dict(ck.optim_state)
    a, b = opt.state_dict(), opt2.state_dict()
    for pid in a["state"]:
        for name in a["state"][pid]:
            torch.testing.assert_close(torch.as_tensor(a["state"][pid][name]), torch.as_tensor(b["state"][pid][name]))


def test_not_ours(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="other.safetensors: a safetensors file but not a shapelatent checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")


def test_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="model.pt: not a readable safetensors checkpoint.*never loaded"):
        load_checkpoint(path)


def test_truncated(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", _model(), {}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "x.safetensors")
