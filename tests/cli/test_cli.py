from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shapelatent.cli.main import app

runner = CliRunner()


def _ok(args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def _fails(args, *needles):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())  # errors go to stderr
    for n in needles:
        assert n in text, (n, text)


def test_version():
    assert "shapelatent 0.1.0" in _ok(["--version"]).output


def test_build_info_train_flow(tmp_path):
    data = tmp_path / "d"
    _ok(["data", "build", "procedural", "--count", 20, "--points", 96, "--out", data, "--workers", 1])
    info = " ".join(_ok(["data", "info", data]).stdout.split())  # results go to stdout
    assert "20 shapes x 96 points" in info
    assert "│ all │ 16 │ 2 │ 2 │ 20 │" in info and "four_legged" in info
    _fails(["data", "build", "procedural", "--count", 20, "--out", data], "already exists; pass --force")
    run = tmp_path / "run"
    _ok(["train", "--data", data, "--out", run, "--epochs", 2, "--batch-size", 8, "--latent-dim", 8, "--device", "cpu"])
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 2
    _fails(["train", "--data", data, "--out", run, "--epochs", 2], "pass --resume")
    _ok(["train", "--data", data, "--out", run, "--epochs", 3, "--resume"])
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 3
    # A bare --resume keeps the run's own epoch count (it used to fall back to the default of 100).
    _ok(["train", "--data", data, "--out", run, "--resume"])
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 3
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_bad_inputs_have_clear_messages(tmp_path):
    _fails(["data", "build", "folder", tmp_path / "missing", "--out", tmp_path / "o"], "missing: no such folder")
    _fails(["data", "build", "procedural", "--count", 0, "--out", tmp_path / "o"], "count must be a positive integer")
    _fails(
        ["data", "build", "procedural", "--count", 5, "--points", 0, "--out", tmp_path / "o"],
        "num_points must be a positive integer",
    )
    _fails(
        ["data", "build", "procedural", "--count", 5, "--families", "throne", "--out", tmp_path / "o"],
        "unknown chair families ['throne']",
    )
    _fails(["data", "info", tmp_path], "not a shapelatent dataset")
    _fails(["train", "--data", tmp_path, "--out", tmp_path / "r"], "not a shapelatent dataset")
    _fails(["train", "--data", tmp_path, "--out", tmp_path / "r", "--device", "tpu"], "train.device must be one of")


@pytest.mark.slow
def test_demo_small(tmp_path):
    out = tmp_path / "demo"
    res = _ok(["demo", "--out", out, "--count", 30, "--epochs", 2, "--points", 128])
    assert (out / "reconstructions.png").exists() and (out / "loss_curve.png").exists()
    assert "demo finished" in res.stdout
    _fails(["demo", "--out", out, "--count", 30], "already exists; pass --force")
