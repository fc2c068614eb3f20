"""Pre-sampled point-set importer on generated latent_3d_points and PC15k folders (no download possible here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig, sample_file
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sampling import sample_surface
from shapelatent.data.sources.pointsets import build_pointset, detect_layout, pointset_items
from shapelatent.data.sources.shapenet import SHAPENET_LICENSE, front_rotation

CFG = SamplingConfig(num_points=64, seed=0)
CHAIR, TABLE, PLANE = "03001627", "04379243", "02691156"


def _canonical_points(n: int, seed: int) -> np.ndarray:
    """(n, 3) points on an asymmetric model in shapelatent's convention: +Y up, a 'nose' at the front (+Z)."""
    body = trimesh.creation.box(extents=(1.0, 2.0, 1.0))
    nose = trimesh.creation.box(
        extents=(0.3, 0.3, 1.0), transform=trimesh.transformations.translation_matrix((0, 0, 1))
    )
    return sample_surface(trimesh.util.concatenate([body, nose]), n, seed=seed).points.astype(np.float64)


def _turn(points: np.ndarray, deg: float) -> np.ndarray:
    rot = trimesh.transformations.rotation_matrix(np.radians(deg), (0, 1, 0))[:3, :3]
    return points @ rot.T


def _write_ply(points: np.ndarray, path, ascii_: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if ascii_:
        head = f"ply\nformat ascii 1.0\nelement vertex {len(points)}\nproperty float x\nproperty float y\n"
        head += "property float z\nend_header\n"
        path.write_text(head + "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in points))
    else:
        trimesh.PointCloud(points).export(path)


@pytest.fixture
def l3dp_root(tmp_path):
    """latent_3d_points layout: <root>/<synset>/<model_id>.ply, 2048 points each, front +X (ShapeNetCore v1)."""
    root = tmp_path / "shape_net_core_uniform_samples_2048"
    for sid, count in ((CHAIR, 3), (TABLE, 2)):
        for i in range(count):
            pts = _turn(_canonical_points(2048, seed=10 * i + len(sid)), 90.0)
            _write_ply(pts, root / sid / f"{sid[-3:]}m{i}.ply")
    return root


@pytest.fixture
def pc15k_root(tmp_path):
    """PC15k layout: <root>/<synset>/{train,val,test}/<model_id>.npy, (15000, 3), front -Z (ShapeNetCore v2)."""
    root = tmp_path / "ShapeNetCore.v2.PC15k"
    for sid, splits in ((CHAIR, ("train", "train", "val", "test")), (PLANE, ("train", "test"))):
        for i, split in enumerate(splits):
            (root / sid / split).mkdir(parents=True, exist_ok=True)
            np.save(root / sid / split / f"{sid[-3:]}m{i}.npy", _turn(_canonical_points(15000, seed=i), 180.0))
    return root


def test_detect_layout(l3dp_root, pc15k_root, tmp_path):
    assert detect_layout(l3dp_root) == "latent_3d_points"
    assert detect_layout(pc15k_root) == "pc15k"
    (tmp_path / "other" / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"other: cannot tell the layout; expected <root>/<synset>/<model_id>.ply"):
        detect_layout(tmp_path / "other")


def test_latent_3d_points_items(l3dp_root):
    found = pointset_items(l3dp_root)
    assert found.layout == "latent_3d_points"
    assert found.synsets == {CHAIR: "chair", TABLE: "table"}  # built-in names
    assert found.counts == {"": 5}  # no official split: seeded at build time
    it = found.items[0]
    assert it.id == f"{CHAIR}/627m0" and it.cls == "chair" and it.kind == "points" and it.split is None
    assert it.license == SHAPENET_LICENSE and it.rotation == front_rotation("+x")
    assert it.extra == {"synset": CHAIR, "model_id": "627m0", "pointset": "latent_3d_points"}


def test_latent_3d_points_build(l3dp_root, tmp_path):
    res = build_pointset(l3dp_root, tmp_path / "ds", sampling=CFG, workers=1)
    assert res.built == 5 and not res.skipped
    ds = ShapeDataset(res.path)
    assert ds.points.shape == (5, 64, 3)
    assert ds.info["classes"] == {"chair": 3, "table": 2}
    assert ds.info["source"]["layout"] == "latent_3d_points" and ds.info["source"]["split"] == "seeded"
    extra = json.loads(ds.meta[0]["extra"])
    assert extra["presampled"] is True and extra["normals_estimated"] == "PCA, unoriented"
    assert np.allclose(np.linalg.norm(ds.normals, axis=2), 1.0, atol=1e-4)
    # no re-sampling: every output point is one of the file's points (turned to front +Z and normalised)
    canonical = _canonical_points(2048, seed=len(CHAIR))
    np.save(tmp_path / "canonical.npy", canonical)
    expected = sample_file(tmp_path / "canonical.npy", CFG, seed=CFG.seed + 0)
    np.testing.assert_allclose(ds.points[0], expected.points, atol=1e-5)


def test_ascii_ply_points(tmp_path):
    root = tmp_path / "l3dp"
    _write_ply(_canonical_points(256, seed=0), root / CHAIR / "ascii.ply", ascii_=True)
    res = build_pointset(root, tmp_path / "ds", sampling=CFG, workers=1)
    assert res.built == 1


def test_pc15k_keeps_official_split_and_turns_front(pc15k_root, tmp_path):
    res = build_pointset(pc15k_root, tmp_path / "ds", sampling=CFG, workers=1)
    ds = ShapeDataset(res.path)
    assert {m["id"]: m["split"] for m in ds.meta} == {
        f"{PLANE}/156m0": "train",
        f"{PLANE}/156m1": "test",
        f"{CHAIR}/627m0": "train",
        f"{CHAIR}/627m1": "train",
        f"{CHAIR}/627m2": "val",
        f"{CHAIR}/627m3": "test",
    }
    assert ds.info["classes"] == {"airplane": 2, "chair": 4}
    assert ds.info["source"]["split"] == "official (pc15k)"
    i = [m["id"] for m in ds.meta].index(f"{CHAIR}/627m2")
    np.save(tmp_path / "canonical.npy", _canonical_points(15000, seed=2))
    expected = sample_file(tmp_path / "canonical.npy", CFG, seed=CFG.seed + i)
    np.testing.assert_allclose(ds.points[i], expected.points, atol=1e-5)


def test_front_override_and_taxonomy(pc15k_root, tmp_path):
    (pc15k_root / "taxonomy.json").write_text(json.dumps([{"synsetId": CHAIR, "name": "chair,seat", "children": []}]))
    found = pointset_items(pc15k_root, front="+z", synsets=["chair"])
    assert found.synsets == {CHAIR: "chair"} and len(found.items) == 4
    assert all(it.rotation is None for it in found.items)
    res = build_pointset(pc15k_root, tmp_path / "ds", front="+z", synsets=[CHAIR], sampling=CFG, workers=1)
    np.save(tmp_path / "as_stored.npy", _turn(_canonical_points(15000, seed=0), 180.0))
    expected = sample_file(tmp_path / "as_stored.npy", CFG, seed=CFG.seed)
    np.testing.assert_allclose(ShapeDataset(res.path).points[0], expected.points, atol=1e-5)


def test_broken_and_small_clouds(l3dp_root, tmp_path):
    np_dir = l3dp_root / CHAIR
    (np_dir / "cut.ply").write_bytes((np_dir / "627m1.ply").read_bytes()[:300])  # binary PLY cut short
    _write_ply(_canonical_points(20, seed=3), np_dir / "few.ply")  # fewer points than P: drawn with replacement
    res = build_pointset(l3dp_root, tmp_path / "ds", sampling=CFG, workers=1)
    assert res.built == 6
    assert [s["source"].split("/")[-1] for s in res.skipped] == ["cut.ply"]
    assert "cut.ply" in res.skipped[0]["reason"]


def test_bad_npy_skipped(pc15k_root, tmp_path):
    np.save(pc15k_root / CHAIR / "train" / "flat.npy", np.zeros((100, 2)))
    np.save(pc15k_root / CHAIR / "train" / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    res = build_pointset(pc15k_root, tmp_path / "ds", sampling=CFG, workers=1)
    reasons = {s["source"].split("/")[-1]: s["reason"] for s in res.skipped}
    assert set(reasons) == {"flat.npy", "objects.npy"}
    assert "expected an array of shape (P, 3) or (P, 6), found (100, 2)" in reasons["flat.npy"]
    assert "not a plain numeric .npy array" in reasons["objects.npy"]
    assert res.built == 6


def test_errors(l3dp_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing: no such folder"):
        pointset_items(tmp_path / "missing")
    with pytest.raises(ValueError, match="layout must be one of auto, latent_3d_points, pc15k; got 'h5'"):
        pointset_items(l3dp_root, layout="h5")
    with pytest.raises(ValueError, match="front must be one of auto"):
        pointset_items(l3dp_root, front="+y")
    with pytest.raises(ValueError, match=r"unknown synsets \['sofa'\]; available here: 03001627 \(chair\)"):
        pointset_items(l3dp_root, synsets=["sofa"])
    with pytest.raises(ValueError, match=r"no point files found at <synset>/\{train,val,test\}/<model_id>.npy"):
        pointset_items(l3dp_root, layout="pc15k")


def test_cli(pc15k_root, tmp_path):
    runner = CliRunner()
    args = ["data", "build", "pointset", pc15k_root, "--out", tmp_path / "cli", "--points", 64, "--workers", 1]
    res = runner.invoke(app, [str(a) for a in [*args, "--synsets", "airplane"]])
    assert res.exit_code == 0, res.output
    assert "built 2 shapes" in " ".join(res.output.split())
    res = runner.invoke(app, [str(a) for a in [*args, "--layout", "h5"]])
    assert res.exit_code == 2 and "layout must be one of" in res.output
