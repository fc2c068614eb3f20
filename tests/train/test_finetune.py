"""Fine-tuning: ``train(..., init_from=RUN)`` and ``shapelatent train --init-from``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import CheckpointError, DatasetFormatError
from shapelatent.models import ModelConfig
from shapelatent.models.load import load_model
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.loop import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "chairs"
    build_procedural(out, 24, sampling=SamplingConfig(num_points=96), seed=2, workers=1)
    return out


def _cfg(epochs=3, lr=1e-3, latent=8, **train_over):
    return RunConfig(
        model=ModelConfig(num_points=96, latent_dim=latent, decoder_hidden=(32, 32)),
        train=TrainConfig(epochs=epochs, batch_size=8, lr=lr, seed=3, device="cpu", threads=1, **train_over),
    )


@pytest.fixture(scope="module")
def source(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("ft") / "source"
    train(data, run, _cfg(epochs=4))
    return run


def _params(run):
    return dict(load_model(run).model.named_parameters())


def test_init_from_starts_at_the_source_weights(data, source, tmp_path):
    # a vanishing learning rate: after one epoch the fine-tuned weights are still the source's; from scratch they
    # are the seed's random init, far from them
    src = _params(source)
    train(data, tmp_path / "ft", _cfg(epochs=1, lr=1e-12), init_from=source)
    train(data, tmp_path / "scratch", _cfg(epochs=1, lr=1e-12))
    ft, scratch = _params(tmp_path / "ft"), _params(tmp_path / "scratch")
    for name, p in src.items():
        torch.testing.assert_close(ft[name], p, rtol=0, atol=1e-6)
    assert max((scratch[n] - p).abs().max().item() for n, p in src.items()) > 1e-2
    rec = json.loads((tmp_path / "ft" / "config.json").read_text())["init_from"]
    assert rec["path"] == str(source.resolve()) and rec["model_config"]["latent_dim"] == 8


def test_finetune_with_emd_term_trains_and_resumes_with_its_record(data, source, tmp_path):
    run = tmp_path / "ft"
    cfg = _cfg(epochs=2, lr=1e-4, emd_weight=0.1, lr_schedule="cosine")
    train(data, run, cfg, init_from=source, stop_after_epochs=1)
    res = train(data, run, resume=True)
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert json.loads((run / "config.json").read_text())["init_from"]["path"] == str(source.resolve())
    # the first epoch starts from a trained model: its Chamfer is the source's level, not a random decoder's
    src_last = json.loads((source / "metrics.jsonl").read_text().splitlines()[-1])
    scratch = train(data, tmp_path / "scratch", _cfg(epochs=1, lr=1e-4))
    assert res.history[0]["train_chamfer"] < 0.8 * scratch.history[0]["train_chamfer"]
    assert res.history[0]["train_chamfer"] < 2 * src_last["train_chamfer"]


def test_init_from_refuses_another_architecture_data_or_resume(data, source, tmp_path):
    with pytest.raises(CheckpointError, match=r"latent_dim 8 \(this run: 16\)"):
        train(data, tmp_path / "a", _cfg(latent=16), init_from=source)
    with pytest.raises(CheckpointError, match="nothing to start from"):
        train(data, tmp_path / "b", _cfg(), init_from=tmp_path / "missing")
    other = tmp_path / "other"
    shutil.copytree(data, other)
    info = json.loads((other / "dataset.json").read_text())
    info["sampling"]["normalization"] = {"center": "centroid", "scale": "unit_cube"}
    (other / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="normalisation: dataset.*Fine-tune on"):
        train(other, tmp_path / "c", _cfg(), init_from=source)
    train(data, tmp_path / "d", _cfg(epochs=1), stop_after_epochs=0)
    with pytest.raises(ValueError, match="drop one of them"):
        train(data, tmp_path / "d", resume=True, init_from=source)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_cli_init_from_takes_the_source_architecture(data, source, tmp_path):
    runner = CliRunner()
    run = tmp_path / "cli"
    args = ["train", "--data", data, "--out", run, "--init-from", source, "--epochs", 1, "--batch-size", 8]
    res = runner.invoke(app, [str(a) for a in [*args, "--emd-weight", 0.1, "--lr", 1e-4, "--device", "cpu"]])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["run"]["model"]["latent_dim"] == 8 and cfg["run"]["model"]["decoder_hidden"] == [32, 32]
    assert cfg["init_from"]["path"] == str(source.resolve())
    bad = runner.invoke(app, [str(a) for a in [*args, "--resume"]])
    assert bad.exit_code == 2 and "drop --init-from" in " ".join(bad.stderr.split())
    wrong = runner.invoke(app, [str(a) for a in [*args, "--latent-dim", 4, "--out", tmp_path / "w"]])
    assert wrong.exit_code == 2 and "latent_dim 8 (this run: 4)" in " ".join(wrong.stderr.split())


def test_a_shipped_model_by_name_is_a_source(tmp_path):
    from shapelatent.data.format import ShapeDataset
    from shapelatent.pretrained import pretrained_dir
    from shapelatent.train.finetune import initial_weights

    build_procedural(tmp_path / "d", 4, sampling=SamplingConfig(num_points=2048), seed=0, workers=1)
    state, cfg, rec = initial_weights("furniture", None, ShapeDataset(tmp_path / "d"))
    assert rec["path"] == str(pretrained_dir("furniture").resolve())  # its folder, not ./furniture
    assert cfg.model.implicit is not None and cfg.model.num_points == 2048
    src = load_model("furniture").model.state_dict()
    assert state.keys() == src.keys() and all(torch.equal(state[k], src[k]) for k in src)
