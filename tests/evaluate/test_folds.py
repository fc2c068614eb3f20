"""``shapelatent evaluate --folds K`` end to end: fold views, one model per fold, mean +- sd, the geometry ceiling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import SPLITS, ShapeDataset
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.evaluate.ceiling import neighbour_figures
from shapelatent.evaluate.folds import fold_split_codes
from shapelatent.metrics import pairwise_chamfer

runner = CliRunner()
FAST = ["--barycenter-steps", "3", "--k", "3", "--emd-method", "exact", "--samples", "6"]


@pytest.fixture(scope="module")
def cv_data(tmp_path_factory):
    """30 chairs of 3 families (10 each, P=64): every class has 10 test shapes over the folds."""
    out = tmp_path_factory.mktemp("folds") / "chairs"
    build_procedural(
        out, 30, sampling=SamplingConfig(num_points=64), seed=4, families=("stool", "sofa", "bench"), workers=1
    )
    return out


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text("[model]\nlatent_dim = 8\ndecoder_hidden = [64]\n[train]\nbatch_size = 10\nlr = 0.001\n")
    return path


def _cv(data, out, *extra, config=None):
    args = ["evaluate", "--folds", "2", "--data", str(data), "--out", str(out), "--epochs", "1", *FAST, "--json"]
    args += ["--config", str(config)] if config else []
    res = runner.invoke(app, [*args, *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def cv(cv_data, small_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "out"
    return out, _cv(cv_data, out, config=small_config)


def test_folds_json_has_mean_and_sd_of_every_figure(cv):
    out, payload = cv
    record = json.loads((out / "folds.json").read_text())
    assert payload["folds"] == record and record["format"] == "shapelatent-cross-validation"
    assert record["protocol"]["folds"] == 2 and record["protocol"]["fold_sizes"] == [15, 15]
    figures = record["figures"]
    for name in ("reconstruction.model.cd.mean", "latent.precision_split.value", "generation.l_gmm.MMD-CD"):
        assert figures[name]["n"] == 2 and len(figures[name]["values"]) == 2
        assert figures[name]["mean"] == pytest.approx(np.mean(figures[name]["values"]))
        assert figures[name]["sd"] == pytest.approx(np.std(figures[name]["values"], ddof=1))
    assert "training.test_chamfer" in figures
    for side in ("codes", "geometry"):
        for name in ("precision_split", "precision_all", "knn_accuracy"):
            assert 0.0 <= record["neighbours"][side][name]["mean"] <= 1.0, (side, name)
    # the codes' line is the evaluation's own class precision (same definition)
    assert record["neighbours"]["codes"]["precision_split"]["values"] == pytest.approx(
        figures["latent.precision_split.value"]["values"]
    )
    assert set(record["per_class"]) == {"stool", "sofa", "bench"} and not record["per_class_omitted"]
    assert all(row["n_test"] == 10 for row in record["per_class"].values())
    md = (out / "folds.md").read_text()
    assert "geometry ceiling (Chamfer)" in md and "| reconstruction.model.cd.mean |" in md
    assert [d["training"] for d in record["folds_detail"]] == ["trained", "trained"]


def test_fold_views_cover_every_shape_once(cv, cv_data):
    out, _ = cv
    ds = ShapeDataset(cv_data)
    tested = np.zeros(len(ds), dtype=int)
    for f in range(2):
        view = ShapeDataset(out / "folds" / str(f) / "data")
        assert (view.root / "points.npy").is_symlink() and view.info["split"]["fold"] == f
        test = view.indices("test")
        tested[test] += 1
        assert len(view.indices("val")) == 0 and len(view.indices("train")) == len(ds) - len(test)  # K=2: no val
        classes = np.array(view.classes())
        assert sorted(np.unique(classes[test], return_counts=True)[1].tolist()) == [5, 5, 5]
    assert (tested == 1).all()


def test_geometry_ceiling_is_chamfer_on_the_same_folds(cv, cv_data):
    out, payload = cv
    ds = ShapeDataset(cv_data)
    dist = pairwise_chamfer(np.array(ds.points))
    np.testing.assert_allclose(np.load(out / "chamfer.npy"), dist, rtol=1e-6)
    values = []
    for f in range(2):
        codes = ShapeDataset(out / "folds" / str(f) / "data").meta.split_codes
        ev, tr = np.flatnonzero(codes == SPLITS.index("test")), np.flatnonzero(codes == SPLITS.index("train"))
        values.append(neighbour_figures(dist, ds.classes(), ev, tr, 3).figures["knn_accuracy"]["value"])
    assert payload["folds"]["neighbours"]["geometry"]["knn_accuracy"]["values"] == pytest.approx(values)


def test_rerun_reuses_and_more_epochs_resume(cv, cv_data, small_config):
    out, _ = cv
    again = _cv(cv_data, out, config=small_config)
    assert [d["training"] for d in again["folds"]["folds_detail"]] == ["reused", "reused"]
    more = _cv(cv_data, out, "--epochs", "2", config=small_config)
    assert [d["training"] for d in more["folds"]["folds_detail"]] == ["resumed", "resumed"]
    assert json.loads((out / "folds" / "0" / "run" / "metrics.json").read_text())["epochs_done"] == 2
    res = runner.invoke(
        app,
        ["evaluate", "--folds", "2", "--data", str(cv_data), "--out", str(out), "--epochs", "2", "--config",
         str(small_config), "--latent-dim", "4", *FAST],
    )  # fmt: skip
    assert res.exit_code == 2 and "was trained with other settings (model.latent_dim: 8 (stored) vs 4)" in res.output
    res = runner.invoke(app, ["evaluate", "--folds", "2", "--data", str(cv_data), "--out", str(out), "--seed", "1"])
    assert res.exit_code == 2 and "holds a cross-validation with other settings (seed: 0 -> 1)" in res.output


def test_ceiling_only_trains_nothing(cv_data, tmp_path):
    payload = _cv(cv_data, tmp_path / "c", "--ceiling-only")["folds"]
    assert "codes" not in payload["neighbours"] and payload["figures"] == {}
    assert payload["neighbours"]["geometry"]["precision_all"]["sd"] == 0.0  # fold-independent
    assert not (tmp_path / "c" / "folds" / "0" / "run").exists()


def test_bad_fold_options_are_clear_errors(cv_data, tmp_path):
    def fails(args, message):
        res = runner.invoke(app, ["evaluate", "--data", str(cv_data), *args])
        assert res.exit_code == 2 and message in res.output, res.output

    fails(["--folds", "11", "--out", str(tmp_path / "o")], "--folds 11 is more than the shapes of the classes")
    assert not (tmp_path / "o").exists()  # refused before any work
    fails(["--folds", "1", "--out", str(tmp_path / "o")], "--folds must be an integer >= 2")
    fails(["--folds", "2"], "--folds needs --out OUT")
    fails(["--folds", "2", "--out", str(tmp_path / "o"), "--model", str(tmp_path)], "--model cannot be combined")
    fails(["--folds", "2", "--out", str(tmp_path / "o"), "--classes", "sofa"], "--classes cannot be combined")
    fails(["--epochs", "3", "--model", str(tmp_path)], "--epochs only apply with --folds K")
    fails([], "--model is required")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    fails(["--folds", "2", "--out", str(tmp_path / "busy")], "holds no cross-validation")


def test_fold_split_codes_rotate_val():
    folds = np.array([0, 1, 2, 0, 1, 2])
    assert [SPLITS[c] for c in fold_split_codes(folds, 2, 3)] == ["val", "train", "test"] * 2
    assert [SPLITS[c] for c in fold_split_codes(np.array([0, 1, 0, 1]), 1, 2)] == ["train", "test", "train", "test"]


@pytest.fixture(scope="module")
def extra_data(tmp_path_factory):
    """12 unlabelled-for-the-folds chairs of another family, sampled like cv_data (P=64)."""
    out = tmp_path_factory.mktemp("extra") / "others"
    build_procedural(out, 12, sampling=SamplingConfig(num_points=64), seed=9, families=("armchair",), workers=1)
    return out


def test_extra_data_trains_every_fold_and_is_never_tested(cv_data, extra_data, small_config, tmp_path):
    out = tmp_path / "cv_extra"
    payload = _cv(cv_data, out, "--extra-data", str(extra_data), config=small_config)["folds"]
    ds, extra = ShapeDataset(cv_data), ShapeDataset(extra_data)
    assert payload["protocol"]["extra_data"] == [{"path": str(extra_data.resolve()), "num_shapes": 12}]
    for f, detail in enumerate(payload["folds_detail"]):
        view = ShapeDataset(out / "folds" / str(f) / "data")
        train = ShapeDataset(detail["train_data"])
        assert detail["train_data"] == str(out / "folds" / str(f) / "train_data")
        # the fold's own training shapes plus every extra shape, all in train; the fold's test shapes only in test
        assert len(train) == len(ds) + len(extra)
        assert len(train.indices("train")) == len(view.indices("train")) + len(extra)
        assert len(train.indices("test")) == len(view.indices("test"))
        np.testing.assert_array_equal(np.asarray(train.points[len(ds) :]), np.asarray(extra.points))
        config = json.loads((out / "folds" / str(f) / "run" / "config.json").read_text())
        assert Path(config["data"]["path"]).resolve() == train.root.resolve()  # the run trained on the merge
        evaluation = json.loads((out / "folds" / str(f) / "eval" / "evaluation.json").read_text())
        assert evaluation["protocol"]["n_train"] == len(view.indices("train"))  # the oracle: labelled shapes
    again = _cv(cv_data, out, "--extra-data", str(extra_data), config=small_config)["folds"]
    assert [d["training"] for d in again["folds_detail"]] == ["reused", "reused"]
    res = runner.invoke(app, ["evaluate", "--folds", "2", "--data", str(cv_data), "--out", str(out), *FAST])
    assert res.exit_code == 2 and "holds a cross-validation with other settings (extra_data:" in res.output


def test_extra_data_refusals(cv_data, extra_data, tmp_path):
    def fails(args, message):
        res = runner.invoke(app, ["evaluate", "--data", str(cv_data), *args])
        assert res.exit_code == 2 and message in res.output, res.output

    p128 = tmp_path / "p128"
    build_procedural(p128, 4, sampling=SamplingConfig(num_points=128), seed=1, workers=1)
    fails(["--folds", "2", "--out", str(tmp_path / "o"), "--extra-data", str(p128)], "must share one sampling")
    assert not (tmp_path / "o").exists()  # refused before anything is written
    fails(["--folds", "2", "--out", str(tmp_path / "o"), "--extra-data", str(cv_data)], "is given twice")
    fails(["--model", str(tmp_path), "--extra-data", str(extra_data)], "--extra-data only apply with --folds K")
