"""The implicit mesher end to end: data build --occupancy, train-implicit, reconstruct, --mesher, mesh metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.occupancy import read_occupancy
from shapelatent.data.reference import reference_meshes
from shapelatent.evaluate.meshes import mesh_quality, summarize_mesh_quality
from shapelatent.latent.store import model_fingerprint
from shapelatent.models.load import load_model

runner = CliRunner()


def _ok(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    return res


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny procedural dataset with occupancy, an autoencoder, and the same model with a head."""
    root = tmp_path_factory.mktemp("implicit")
    data, ae, head = root / "data", root / "ae", root / "head"
    _ok(
        ["data", "build", "procedural", "--count", "16", "--points", "256", "--out", str(data)]
        + ["--occupancy", "1024", "--workers", "1"]
    )
    _ok(["train", "--data", str(data), "--out", str(ae), "--epochs", "2", "--batch-size", "8", "--latent-dim", "16"])
    _ok(
        ["train-implicit", "--model", str(ae), "--data", str(data), "--out", str(head), "--epochs", "3"]
        + ["--hidden", "32", "--blocks", "2", "--queries", "256", "--batch-size", "8", "--kind", "film"]
    )
    return data, ae, head


def test_build_occupancy_option_writes_labels(runs):
    data, _, _ = runs
    occ = read_occupancy(data)
    assert occ.points.shape == (16, 1024, 3) and occ.labels.shape == (16, 128)
    assert bool(np.all(occ.valid))


def test_head_keeps_the_fingerprint(runs):
    _, ae, head = runs
    assert model_fingerprint(load_model(ae).model) == model_fingerprint(load_model(head).model)
    assert load_model(head).model.has_implicit and not load_model(ae).model.has_implicit


def test_reconstruct_writes_meshes_in_the_input_frame(runs, tmp_path):
    _, _, head = runs
    box = trimesh.creation.box((4.0, 2.0, 1.0))
    box.apply_translation((10.0, -3.0, 5.0))
    src = tmp_path / "crate.obj"
    box.export(src)
    out = tmp_path / "rec"
    res = _ok(["reconstruct", str(src), "--model", str(head), "--out", str(out), "--mesher", "poisson", "--json"])
    doc = json.loads(res.stdout)
    item = doc["items"][0]
    assert item["mesh"] == "crate.ply" and item["mesher"] == "poisson"
    mesh = trimesh.load(out / "crate.ply", force="mesh")
    # written in the input's coordinates: the bounding box centre is near the input's (a tiny model, loose tolerance)
    assert np.linalg.norm(mesh.bounds.mean(0) - box.bounds.mean(0)) < 2.0
    assert (out / "crate_compare.png").exists() and (out / "manifest.json").exists()


def test_implicit_mesher_needs_the_head(runs, tmp_path):
    _, ae, _ = runs
    src = tmp_path / "b.obj"
    trimesh.creation.box((1, 1, 1)).export(src)
    args = ["reconstruct", str(src), "--model", str(ae), "--out", str(tmp_path / "o"), "--mesher", "implicit"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert "occupancy head" in res.stderr and "train-implicit" in res.stderr


def test_train_implicit_without_occupancy_names_the_fix(runs, tmp_path):
    _, ae, _ = runs
    data = tmp_path / "plain"
    _ok(["data", "build", "procedural", "--count", "6", "--points", "256", "--out", str(data), "--workers", "1"])
    res = runner.invoke(app, ["train-implicit", "--model", str(ae), "--data", str(data), "--out", str(tmp_path / "h")])
    assert res.exit_code == 2 and "--occupancy" in res.stderr and "data occupancy" in res.stderr


def test_data_occupancy_upgrades_in_place(runs, tmp_path):
    data = tmp_path / "plain"
    _ok(["data", "build", "procedural", "--count", "4", "--points", "128", "--out", str(data), "--workers", "1"])
    before = np.load(data / "points.npy").copy()
    res = _ok(["data", "occupancy", str(data), "--queries", "256", "--workers", "1", "--json"])
    doc = json.loads(res.stdout)
    assert doc["built"] == 4 and doc["valid"] == 4
    assert np.array_equal(np.load(data / "points.npy"), before)  # points untouched
    assert read_occupancy(data).points.shape == (4, 256, 3)


def test_reference_meshes_lie_on_the_points(runs):
    import igl

    data, _, _ = runs
    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(data)
    for ref in reference_meshes(data, [0, 3]):
        assert ref.error == ""
        d2 = igl.point_mesh_squared_distance(np.asarray(ds.points[ref.index], np.float64), ref.vertices, ref.faces)[0]
        assert np.sqrt(d2.max()) < 1e-5


def test_mesh_quality_rows_and_summary(runs):
    data, _, head = runs
    model = load_model(head).model
    rows = mesh_quality(model, data, [0, 1], n_points=2000, resolution=32)
    assert len(rows) == 2
    for r in rows:
        for m in ("poisson", "poisson_true", "implicit"):
            assert m in r
            if "error" not in r[m]:
                assert 0.0 <= r[m]["fscore@2%"] <= 1.0 and r[m]["components"] >= 1
    summ = summarize_mesh_quality(rows, by_class=True)
    assert "all" in summ and summ["all"]["poisson_true"]["n"] == 2
    # Poisson on the true 256 points is near the true mesh (measured 0.57 at F@2% on these sparse clouds)
    assert summ["all"]["poisson_true"]["fscore@2%"] > 0.3
    with pytest.raises(ValueError, match="unknown meshers"):
        mesh_quality(model, data, [0], meshers=["marching"])


def test_mesh_quality_meshes_the_refined_or_given_codes(runs, monkeypatch):
    import shapelatent.evaluate.meshes as em
    from shapelatent.data.format import ShapeDataset
    from shapelatent.latent.encode import codes_for_points
    from shapelatent.latent.refine import refine_codes

    data, _, head = runs
    model = load_model(head).model
    pts = np.asarray(ShapeDataset(data).points[[0, 1]], dtype=np.float32)
    start = codes_for_points(model, pts)
    want = refine_codes(model, pts, start, 5).codes
    seen = []
    real = em.mesh_from_code
    monkeypatch.setattr(em, "mesh_from_code", lambda m, code, **kw: seen.append(np.array(code)) or real(m, code, **kw))
    em.mesh_quality(model, data, [0, 1], meshers=["implicit"], n_points=500, resolution=32, refine=5)
    assert len(seen) == 2 and np.allclose(np.stack(seen), want, atol=1e-6)
    assert not np.allclose(want, start, atol=1e-4)  # refinement moved the codes
    seen.clear()
    em.mesh_quality(model, data, [0], meshers=["implicit"], n_points=500, resolution=32)
    assert np.allclose(seen[0], start[0], atol=1e-6)
    seen.clear()
    given = start[:1] + 0.5  # codes from elsewhere are meshed as given
    em.mesh_quality(model, data, [0], meshers=["implicit"], n_points=500, resolution=32, codes=given)
    assert np.allclose(seen[0], given[0])
    with pytest.raises(ValueError, match="codes must have shape"):
        em.mesh_quality(model, data, [0, 1], meshers=["implicit"], codes=given)


def test_interpolate_auto_uses_the_head(runs, tmp_path):
    data, _, head = runs
    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(data)
    a, b = (str(tmp_path / f"{n}.obj") for n in "ab")
    trimesh.creation.box((1, 2, 1)).export(a)
    trimesh.creation.icosphere(2).export(b)
    out = tmp_path / "interp"
    res = _ok(["interpolate", a, b, "--model", str(head), "--out", str(out), "--steps", "3", "--json"])
    doc = json.loads(res.stdout)
    assert doc["meshing"]["meshed"] + doc["meshing"]["failed"] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mesher"] == "implicit"
    assert len(ds) == 16
