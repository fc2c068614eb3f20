"""Streams: results on stdout (one JSON document with ``--json``), progress and logs on stderr, no false alarms."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shapelatent.cli.common import jsonable
from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.latent.encode import encode_to_store
from shapelatent.models import ModelConfig
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.loop import train

runner = CliRunner()  # click >= 8.2 keeps result.stdout and result.stderr apart (result.output has both)
ALARM = re.compile(r"error|warning", re.IGNORECASE)
REPO = Path(__file__).parents[2]

SHAPES_KEYS = {"out", "manifest", "items", "meshing", "points_png", "meshes_png"}
KEYS = {
    "data info": {
        "path", "shapes", "points", "format_version", "classes", "splits", "sampling", "split_seed", "source",
        "skipped", "build_report",
    },
    "encode": {"store", "codes", "latent_dim", "failed"},
    "neighbors": {"store", "codes", "latent_dim", "metric", "index", "k", "query", "neighbors", "gallery", "decoded"},
    "interpolate": {"method", "shapes", "class_consistency", "renders", *SHAPES_KEYS},
    "sample": {"n", "components", "covariance", "class", "split", "fitted_on", *SHAPES_KEYS},
    "arithmetic": {"expression", "result", *SHAPES_KEYS},
    "map": {
        "image", "record", "store", "count", "method", "dims", "seed", "caption", "figures", "thumbnails",
        "thumbnails_skipped",
    },
    "evaluate": {"out", "files", "seconds", "evaluation"},
    "train": {"run_dir", "files", "summary"},
    "data augment": {"path", "built", "skipped", "build_report"},
}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """20 chairs (P=128; 16/2/2 split), a 1-epoch model with normals (Z=8) and its store."""
    root = tmp_path_factory.mktemp("streams")
    data = root / "data"
    build_procedural(data, 20, sampling=SamplingConfig(num_points=128), seed=0, workers=1)
    cfg = RunConfig(
        model=ModelConfig(num_points=128, latent_dim=8, decoder_hidden=(64,), predict_normals=True),
        train=TrainConfig(epochs=1, batch_size=10, seed=0, device="cpu", threads=1),
    )
    train(data, root / "run", cfg)
    encode_to_store(root / "run", [data], root / "store", workers=1)
    return {"root": root, "data": data, "run": root / "run", "store": root / "store"}


def _invoke(args) -> tuple[str, str]:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.stdout, res.stderr


def _json(args, command: str) -> dict:
    stdout, stderr = _invoke([*args, "--json"])
    payload = json.loads(stdout)  # the whole of stdout is one document
    assert set(payload) == KEYS[command], set(payload) ^ KEYS[command]
    assert "{" not in stderr
    return payload


def test_data_info_json_and_human(env):
    info = _json(["data", "info", env["data"]], "data info")
    assert info["shapes"] == 20 and info["points"] == 128
    assert info["splits"] == {"train": 16, "val": 2, "test": 2}
    assert sum(c["total"] for c in info["classes"].values()) == 20
    assert set(next(iter(info["classes"].values()))) == {"train", "val", "test", "total"}
    stdout, stderr = _invoke(["data", "info", env["data"]])
    text = " ".join(stdout.split())
    assert "20 shapes x 128 points" in text and "│ all │ 16 │ 2 │ 2 │ 20 │" in text
    assert stderr == ""


def test_encode_json_and_progress_on_stderr(env):
    store = env["root"] / "store2"
    out = _json(["encode", env["data"], "--model", env["run"], "--out", store, "--workers", 1], "encode")
    assert out == {"store": str(store), "codes": 20, "latent_dim": 8, "failed": []}
    stdout, stderr = _invoke(["encode", env["data"], "--model", env["run"], "--out", store, "--force"])
    assert f"store {store}: 20 codes of size 8" in " ".join(stdout.split())
    assert "encoding" in stderr and "encoding" not in stdout  # the progress bar


def test_neighbors_json(env, tmp_path):
    out = _json(["neighbors", "chair_000001", "--store", env["store"], "-k", 3], "neighbors")
    assert out["query"] == {"label": "chair_000001", "id": "chair_000001"}
    assert [n["rank"] for n in out["neighbors"]] == [1, 2, 3]
    assert set(out["neighbors"][0]) == {"rank", "id", "class", "distance"}
    assert "chair_000001" not in [n["id"] for n in out["neighbors"]]
    assert out["gallery"] is None and out["decoded"] == []
    stdout, _ = _invoke(["neighbors", "chair_000001", "--store", env["store"], "-k", 3])
    assert "3 nearest to chair_000001" in stdout and out["neighbors"][0]["id"] in stdout


def test_interpolate_json(env, tmp_path):
    out = _json(
        ["interpolate", "chair_000001", "chair_000002", "--model", env["run"], "--store", env["store"],
         "--out", tmp_path / "i", "--steps", 3],
        "interpolate",
    )  # fmt: skip
    assert len(out["items"]) == 3 and Path(out["items"][0]["points"]).is_file()
    assert "code" not in out["items"][0] and out["items"][0]["step"] == 0
    assert set(out["renders"]) == {"mode", "sheet", "gif"} and Path(out["renders"]["sheet"]).is_file()
    assert Path(out["manifest"]).is_file() and out["meshing"]["meshed"] + out["meshing"]["failed"] == 3


def test_sample_and_arithmetic_json(env, tmp_path):
    out = _json(
        ["sample", "--model", env["run"], "--store", env["store"], "--out", tmp_path / "s", "-n", 2,
         "--components", 2, "--mesher", "none"],
        "sample",
    )  # fmt: skip
    assert out["n"] == 2 and out["fitted_on"] == 16 and len(out["items"]) == 2
    assert out["items"][0]["mesh"] is None and out["meshes_png"] is None
    out = _json(
        ["arithmetic", "chair_000001 - chair_000002 + chair_000003", "--model", env["run"], "--store", env["store"],
         "--out", tmp_path / "a", "--mesher", "none"],
        "arithmetic",
    )  # fmt: skip
    assert len(out["items"]) == 4 and out["result"] == out["items"][-1]
    assert out["result"]["points"].endswith("result_points.ply")


def test_map_json(env, tmp_path):
    out = _json(["map", "--store", env["store"], "--out", tmp_path / "m.png", "--thumbnails", 0], "map")
    assert out["count"] == 20 and out["image"] == str(tmp_path / "m.png")
    assert Path(out["record"]).is_file() and out["figures"]["k"] == 5


def test_evaluate_and_train_json(env, tmp_path):
    out = _json(
        ["evaluate", "--model", env["run"], "--data", env["data"], "--out", tmp_path / "e", "--samples", 4,
         "--barycenter-steps", 3, "--mesh-shapes", 1],
        "evaluate",
    )  # fmt: skip
    assert out["evaluation"]["protocol"]["n_shapes"] == 2
    assert str(tmp_path / "e" / "evaluation.json") in out["files"]
    out = _json(
        ["train", "--data", env["data"], "--out", tmp_path / "r", "--epochs", 1, "--latent-dim", 4, "--device", "cpu"],
        "train",
    )
    assert out["run_dir"] == str(tmp_path / "r") and out["summary"]["epochs_done"] == 1


def test_augment_json(env, tmp_path):
    out = _json(
        ["data", "augment", "--model", env["run"], "--data", env["data"], "--out", tmp_path / "aug", "--pairs", 2,
         "--per-pair", 1],
        "data augment",
    )  # fmt: skip
    assert out["path"] == str(tmp_path / "aug") and out["built"] == 2 and out["skipped"] == []


def test_json_error_goes_to_stderr(env):
    res = runner.invoke(app, ["neighbors", "no_such_id", "--store", str(env["store"]), "--json"])
    assert res.exit_code == 2 and res.stdout == ""
    assert "error:" in res.stderr and "no_such_id" in res.stderr


def test_jsonable():
    value = {"p": Path("a/b"), "t": (1, np.float32(0.5)), "nan": math.nan, "a": np.arange(2), "s": "x"}
    assert jsonable(value) == {"p": "a/b", "t": [1, 0.5], "nan": None, "a": [0, 1], "s": "x"}


def _cli(args, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, without XDG_RUNTIME_DIR (as on servers and in containers)."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    cmd = [sys.executable, "-m", "shapelatent.cli.main", *[str(a) for a in args]]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _no_alarms(done: subprocess.CompletedProcess) -> None:
    for name, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        alarms = [line for line in text.splitlines() if ALARM.search(line)]
        assert not alarms, f"{name}: {alarms}"


@pytest.mark.slow
def test_demo_has_no_false_alarms(tmp_path):
    """The demo's commands on a tiny dataset (build, train, encode, neighbours, map, interpolation with Poisson
    meshes and EGL renders, report): results on stdout, progress on stderr, no line says error or warning."""
    done = _cli(["demo", "--out", tmp_path / "demo", "--count", 12, "--epochs", 1, "--points", 256], REPO)
    _no_alarms(done)
    assert "demo finished" in done.stdout and "run folder:" in done.stdout and "report:" in done.stdout
    assert "built 12 shapes" in done.stdout
    assert "chairs" in done.stderr and "epochs" in done.stderr and "━" not in done.stdout  # progress bars


@pytest.mark.slow
def test_fresh_processes_print_pure_json_and_no_alarms(env, tmp_path):
    """In a fresh process Open3D (meshing, renders) loads before numba starts its threads: still no warning, and
    nothing native (Open3D, PoissonRecon, EGL) reaches stdout around the JSON document."""
    done = _cli(
        ["interpolate", "chair_000001", "chair_000002", "--model", env["run"], "--store", env["store"],
         "--out", tmp_path / "i", "--steps", 3, "--json"],
        tmp_path,
    )  # fmt: skip
    _no_alarms(done)
    assert set(json.loads(done.stdout)) == KEYS["interpolate"]
    done = _cli(
        ["sample", "--model", env["run"], "--store", env["store"], "--out", tmp_path / "s", "-n", 2,
         "--components", 2, "--json"],
        tmp_path,
    )  # fmt: skip
    _no_alarms(done)
    assert set(json.loads(done.stdout)) == KEYS["sample"]
