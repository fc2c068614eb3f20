"""``evaluate_run`` on a tiny run: every number present and finite, oracles, --classes, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import DatasetFormatError
from shapelatent.evaluate import EvalConfig, evaluate_run, to_markdown
from shapelatent.models.load import load_model
from shapelatent.train.loop import evaluate_chamfer

GEN_KEYS = {"MMD-CD", "COV-CD", "1-NNA-CD", "MMD-EMD", "COV-EMD", "1-NNA-EMD", "JSD"}
FAST = {"barycenter_steps": 30, "interpolation_pairs": 3, "interpolation_steps": 4, "mesh_shapes": 2}


@pytest.fixture(scope="module")
def evaluation(tiny_run, eval_data):
    return evaluate_run(tiny_run, eval_data, EvalConfig(**FAST))


def _finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_all_keys_present_and_finite(evaluation, eval_data):
    res = evaluation.result
    ds = ShapeDataset(eval_data)
    test = ds.indices("test")
    proto = res["protocol"]
    assert proto["split"] == "test" and proto["n_shapes"] == len(test) and proto["points"] == 128
    assert proto["n_train"] == len(ds.indices("train")) and proto["n_codes_all"] == len(ds)
    assert len(proto["model"]["fingerprint"]) == 64 and proto["emd_method"] == "auction"
    for key in ("chamfer_definition", "emd_definition", "normalize", "seed"):
        assert key in proto
    for row in ("model", "mean_shape", "nearest_train"):
        for metric in ("cd", "emd"):
            assert _finite(res["reconstruction"][row][metric]["mean"]), (row, metric)
            assert _finite(res["reconstruction"][row][metric]["median"]), (row, metric)
    gen = res["generation"]
    assert gen["n_samples"] == gen["n_ref"] == len(test) and gen["train_vs_ref"]["n"] == len(test)
    assert gen["gmm"]["components"] == min(32, len(ds.indices("train")))
    for part in ("l_gmm", "train_vs_ref"):
        assert GEN_KEYS <= set(gen[part]), part
        assert all(_finite(gen[part][k]) for k in GEN_KEYS), gen[part]
    for name in ("precision_split", "precision_all", "svm", "interpolation"):
        entry = res["latent"][name]
        assert "skipped" not in entry, entry
        assert 0.0 <= entry["value"] <= 1.0, (name, entry)
    assert res["latent"]["interpolation"]["pairs"] == 3
    assert res["barycenter"]["train_mean_cd_final"] < res["barycenter"]["train_mean_cd_init"]
    assert len(res["per_shape"]) == len(test)
    assert evaluation.samples.shape == (min(8, len(test)), 128, 3)  # 8 pictures at most
    assert len(evaluation.sample_titles) == len(evaluation.samples)


def test_reconstruction_matches_training_evaluation(evaluation, tiny_run, eval_data):
    """Per-shape reconstruction Chamfer equals the training loop's ``evaluate_chamfer`` on the same shapes."""
    ds = ShapeDataset(eval_data)
    oracle = evaluate_chamfer(load_model(tiny_run).model, ds, ds.indices("test"), torch.device("cpu"))
    got = [row["cd"] for row in evaluation.result["per_shape"]]
    np.testing.assert_allclose(got, oracle, rtol=1e-4, atol=1e-7)
    assert [row["id"] for row in evaluation.result["per_shape"]] == [ds.meta[i]["id"] for i in ds.indices("test")]


def test_markdown_tables(evaluation):
    md = to_markdown(evaluation.result)
    for needle in (
        "| model (reconstruction) |",
        "| mean training shape (Chamfer barycentre) |",
        "| nearest training shape by Chamfer (oracle) |",
        "CD mean (×10³)",
        "EMD mean (×10²)",
        "reference line: training shapes",
        "leave-one-out among the",
        "among all 24 codes (all splits)",
    ):
        assert needle in md, needle


def test_classes_restrict_everything(tiny_run, eval_data):
    ds = ShapeDataset(eval_data)
    cls = "stool"
    n_test = sum(ds.meta[i]["class"] == cls for i in ds.indices("test"))
    n_train = sum(ds.meta[i]["class"] == cls for i in ds.indices("train"))
    assert n_test >= 2
    res = evaluate_run(tiny_run, eval_data, EvalConfig(classes=(cls,), **FAST)).result
    assert res["protocol"]["classes"] == [cls] and res["protocol"]["n_shapes"] == n_test
    assert res["protocol"]["n_train"] == n_train and res["protocol"]["n_codes_all"] == n_test + n_train
    assert {row["class"] for row in res["per_shape"]} == {cls}
    class_of = {m["id"]: m["class"] for m in ds.meta}
    assert {class_of[row["nearest_train_id"]] for row in res["per_shape"]} == {cls}
    assert res["generation"]["gmm"]["fitted_on"] == n_train
    assert "a classifier needs at least 2" in res["latent"]["svm"]["skipped"]
    assert "fewer than 2 classes" in res["latent"]["interpolation"]["skipped"]


def test_mismatched_dataset_is_refused(tiny_run, tmp_path):
    other = tmp_path / "p64"
    build_procedural(other, 6, sampling=SamplingConfig(num_points=64), workers=1)
    with pytest.raises(DatasetFormatError, match=r"points per shape \(P\): dataset 64, model 128.*--points 128"):
        evaluate_run(tiny_run, other)


def test_bad_options(tiny_run, eval_data):
    with pytest.raises(ValueError, match="no class 'table'; classes in the dataset: four_legged, sofa, stool"):
        evaluate_run(tiny_run, eval_data, EvalConfig(classes=("table",)))
    with pytest.raises(ValueError, match="--emd-method must be one of"):
        evaluate_run(tiny_run, eval_data, EvalConfig(emd_method="sinkhorn"))
    with pytest.raises(ValueError, match="--split must be one of"):
        evaluate_run(tiny_run, eval_data, EvalConfig(split="holdout"))
    with pytest.raises(ValueError, match="'val' split has 0 shapes"):
        evaluate_run(tiny_run, eval_data, EvalConfig(split="val"))


def test_mesh_metrics_per_mesher(evaluation):
    meshes = evaluation.result["meshes"]
    assert meshes["n_shapes"] == 2 and len(meshes["per_shape"]) == 2
    summ = meshes["summary"]["all"]
    assert {"poisson", "poisson_true"} <= set(summ)  # the tiny run has no occupancy head: no implicit row
    for m in ("poisson", "poisson_true"):
        f2 = summ[m]["fscore@2%"]
        assert f2 is None or 0.0 <= f2 <= 1.0


def test_refined_row_is_refinement_of_the_encoder_codes(tiny_run, eval_data):
    """--refine N: the refined row is never worse per shape, matches refine_codes, and the ratios match their rows."""
    from shapelatent.latent.encode import codes_for_points
    from shapelatent.latent.refine import refine_codes

    cfg = EvalConfig(**{**FAST, "mesh_shapes": 0}, refine=20)
    res = evaluate_run(tiny_run, eval_data, cfg).result
    rec = res["reconstruction"]
    assert rec["refined"]["steps"] == 20 and rec["refined"]["lr"] == 0.1
    assert rec["refined"]["seconds_per_shape"] > 0
    model_cd = np.array([r["cd"] for r in res["per_shape"]])
    refined_cd = np.array([r["refined_cd"] for r in res["per_shape"]])
    near = np.array([r["nearest_train_cd"] for r in res["per_shape"]])
    assert (refined_cd <= model_cd * (1 + 1e-5)).all() and refined_cd.mean() < model_cd.mean()
    # the same refinement, run directly (brute-force oracle of the row)
    ds = ShapeDataset(eval_data)
    pts = np.asarray(ds.points[ds.indices("test")])
    model = load_model(tiny_run).model
    direct = refine_codes(model, pts, codes_for_points(model, pts), 20)
    np.testing.assert_allclose(refined_cd, direct.chamfer_after, rtol=1e-4, atol=1e-7)
    for row, cd in (("model", model_cd), ("refined", refined_cd)):
        r = rec["ratio_to_nearest"][row]
        assert r["of_means"] == pytest.approx(cd.mean() / near.mean(), rel=1e-6)
        assert r["mean"] == pytest.approx(np.mean(cd / near), rel=1e-6)
        assert r["median"] == pytest.approx(np.median(cd / near), rel=1e-6)
    md = to_markdown(res)
    assert "| model, codes refined at test time |" in md and "refined: " in md and "20 Adam steps" in md
    plain = evaluate_run(tiny_run, eval_data, EvalConfig(**{**FAST, "mesh_shapes": 0})).result
    assert "refined" not in plain["reconstruction"] and "refined" not in plain["reconstruction"]["ratio_to_nearest"]
    assert "refined_cd" not in plain["per_shape"][0]
    with pytest.raises(ValueError, match="--refine must be >= 0"):
        evaluate_run(tiny_run, eval_data, EvalConfig(refine=-1))
