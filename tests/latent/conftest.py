from __future__ import annotations

import pytest

from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.models import ModelConfig
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.loop import train


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("latent") / "chairs"
    build_procedural(out, 36, sampling=SamplingConfig(num_points=128), seed=2, workers=1)
    return out


def _run(tmp_path_factory, data, seed: int, normals: bool):
    cfg = RunConfig(
        model=ModelConfig(num_points=128, latent_dim=8, decoder_hidden=(64,), predict_normals=normals),
        train=TrainConfig(epochs=2, batch_size=12, lr=1e-3, seed=seed, device="cpu"),
    )
    out = tmp_path_factory.mktemp("runs") / f"run{seed}"
    train(data, out, cfg)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_data):
    """A 2-epoch model with decoded normals (P=128, Z=8)."""
    return _run(tmp_path_factory, tiny_data, seed=0, normals=True)


@pytest.fixture(scope="session")
def other_run(tmp_path_factory, tiny_data):
    """Same architecture, another seed: a different model."""
    return _run(tmp_path_factory, tiny_data, seed=1, normals=True)
