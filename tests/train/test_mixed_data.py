"""Training on several datasets at once (`train --data A --data B`); mirror and anisotropic-scale augmentation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import ShapeDataset
from shapelatent.data.merge import merge_datasets, shape_weights
from shapelatent.data.occupancy_build import add_occupancy
from shapelatent.data.occupancy_format import read_occupancy, unpack_labels
from shapelatent.data.sources.folder import build_folder
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import DatasetFormatError
from shapelatent.train.data import TrainLoader, augment

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "meshes"


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    cfg = SamplingConfig(num_points=64)
    build_procedural(root / "chairs", 12, sampling=cfg, seed=3, workers=1)
    add_occupancy(root / "chairs", queries=16, workers=1)
    src = root / "meshes"
    for name in ("deck_chair", "desk_lamp", "technical_table"):
        shutil.copytree(FIXTURES / name, src / name)
    build_folder(src, root / "real", sampling=cfg, workers=1, split_fractions={"train": 1.0, "val": 0.0, "test": 0.0})
    return root


def test_merge_concatenates_rows_metadata_and_splits(two_sets, tmp_path):
    a, b = ShapeDataset(two_sets / "chairs"), ShapeDataset(two_sets / "real")
    out = merge_datasets([a.root, b.root], tmp_path / "mix")
    m = ShapeDataset(out)
    assert len(m) == len(a) + len(b)
    np.testing.assert_array_equal(m.points[: len(a)], a.points)
    np.testing.assert_array_equal(m.points[len(a) :], b.points)
    np.testing.assert_array_equal(m.normals[len(a) :], b.normals)
    assert [r["id"] for r in m.meta] == [r["id"] for r in a.meta] + [r["id"] for r in b.meta]
    assert [r["index"] for r in m.meta] == [str(i) for i in range(len(m))]
    # each source keeps its own split
    assert list(m.indices("train")) == list(a.indices("train")) + [len(a) + i for i in b.indices("train")]
    assert m.classes() == a.classes() + b.classes()
    info = m.info["merged_from"]
    assert [e["num_shapes"] for e in info] == [len(a), len(b)] and info[1]["start"] == len(a)
    assert shape_weights(m, m.indices("train")) is None  # no weights: every train shape once per epoch


def test_merge_refuses_a_different_sampling_contract(two_sets, tmp_path):
    build_procedural(tmp_path / "p32", 4, sampling=SamplingConfig(num_points=32), seed=1, workers=1)
    with pytest.raises(DatasetFormatError, match="num_points is 32.*one sampling and normalisation contract"):
        merge_datasets([two_sets / "real", tmp_path / "p32"], tmp_path / "mix")
    other = tmp_path / "renorm"
    shutil.copytree(two_sets / "real", other)
    info = json.loads((other / "dataset.json").read_text())
    info["sampling"]["normalization"]["scale"] = "unit_cube"
    (other / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="normalization"):
        merge_datasets([two_sets / "chairs", other], tmp_path / "mix2")
    assert not (tmp_path / "mix").exists() and not (tmp_path / "mix2").exists()  # nothing half-written


def test_merge_refuses_duplicate_ids_and_a_dataset_twice(two_sets, tmp_path):
    with pytest.raises(DatasetFormatError, match="twice"):
        merge_datasets([two_sets / "chairs", two_sets / "chairs"], tmp_path / "m")
    copy = tmp_path / "other" / "chairs"
    shutil.copytree(two_sets / "chairs", copy)
    with pytest.raises(DatasetFormatError, match="rename one dataset folder"):
        merge_datasets([two_sets / "chairs", copy], tmp_path / "m")


def test_shared_ids_are_prefixed_with_the_folder_name(two_sets, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_sets / "chairs", copy)
    m = ShapeDataset(merge_datasets([two_sets / "chairs", copy], tmp_path / "m"))
    ids = [r["id"] for r in m.meta]
    assert ids[0] == "chairs/chair_000000" and ids[12] == "copy/chair_000000" and len(set(ids)) == 24
    unique = ShapeDataset(merge_datasets([two_sets / "chairs", two_sets / "real"], tmp_path / "u"))
    assert unique.meta[0]["id"] == "chair_000000" and unique.info["ids"] == "kept"


def test_occupancy_merged_with_a_common_query_prefix(two_sets, tmp_path):
    small = tmp_path / "small"
    build_procedural(small, 3, sampling=SamplingConfig(num_points=64), seed=9, workers=1)
    add_occupancy(small, queries=8, workers=1)
    out = merge_datasets([two_sets / "chairs", small], tmp_path / "mix")
    occ, src = read_occupancy(out), read_occupancy(two_sets / "chairs")
    assert occ.meta["queries"] == 8 and occ.points.shape == (15, 8, 3)
    # row 0 keeps the first 4 uniform and the first 4 near-surface queries of its 16, with their labels
    keep = np.r_[0:4, 8:12]
    np.testing.assert_array_equal(occ.points[0], src.points[0][keep])
    np.testing.assert_array_equal(unpack_labels(occ.labels[:1], 8)[0], unpack_labels(src.labels[:1], 16)[0][keep])
    np.testing.assert_array_equal(occ.points[12:], read_occupancy(small).points)
    # a source without occupancy: the merge has none, and says why
    no_occ = merge_datasets([two_sets / "chairs", two_sets / "real"], tmp_path / "mix2")
    assert "no occupancy samples" in ShapeDataset(no_occ).info["occupancy"]


def test_weights_give_each_source_its_share(two_sets, tmp_path):
    out = merge_datasets([two_sets / "chairs", two_sets / "real"], tmp_path / "mix", weights=[1.0, 3.0])
    m = ShapeDataset(out)
    idx = m.indices("train")
    w = shape_weights(m, idx)
    assert w is not None and np.isclose(w.sum(), 1.0)
    n_a = int(np.sum(idx < 12))
    assert np.isclose(w[idx < 12].sum(), 0.25) and np.isclose(w[idx >= 12].sum(), 0.75)
    np.testing.assert_allclose(w[idx < 12], 0.25 / n_a)
    loader = TrainLoader(m.root, idx, batch_size=4, seed=0, weights=w)
    drawn = np.concatenate([b.points.numpy() for e in range(60) for b in loader.epoch(e)])
    from_b = np.isin(drawn[:, 0, 0], m.points[12:, 0, 0])
    assert 0.65 < from_b.mean() < 0.85  # 75% expected over 60 epochs of draws


def test_mirror_flips_x_of_points_and_normals():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(2, 5, 3)).astype(np.float32)
    nrm = pts / np.linalg.norm(pts, axis=-1, keepdims=True)
    p, n = augment(pts, nrm, None, None, mirror=np.array([True, False]))
    np.testing.assert_allclose(p[0], pts[0] * [-1, 1, 1])
    np.testing.assert_allclose(n[0], nrm[0] * [-1, 1, 1])
    np.testing.assert_allclose(p[1], pts[1])


def test_anisotropic_scale_keeps_normals_perpendicular_and_unit():
    """Oracle: points on a tilted plane; after the map the normal must be perpendicular to the mapped tangents."""
    t1, t2 = np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0])
    normal = np.cross(t1, t2) / np.linalg.norm(np.cross(t1, t2))
    uv = np.random.default_rng(1).uniform(-1, 1, size=(50, 2))
    pts = (uv[:, :1] * t1 + uv[:, 1:] * t2)[None].astype(np.float32)  # (1, 50, 3)
    nrm = np.broadcast_to(normal, pts.shape).astype(np.float32)
    a = np.array([[1.5, 0.5, 0.8]])
    p, n = augment(pts, nrm, np.array([0.7]), np.array([1.1]), mirror=np.array([True]), aniso=a)
    rot = np.array([[np.cos(0.7), 0, np.sin(0.7)], [0, 1, 0], [-np.sin(0.7), 0, np.cos(0.7)]])
    mat = np.diag(a[0]) @ (1.1 * rot) @ np.diag([-1.0, 1, 1])
    np.testing.assert_allclose(p[0], pts[0] @ mat.T, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    for t in (mat @ t1, mat @ t2):
        np.testing.assert_allclose(n[0] @ t, 0.0, atol=1e-5)


def test_train_cli_mixes_datasets_with_mirror_and_aniso(two_sets, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(two_sets / "chairs"), "--data", str(two_sets / "real"), "--out", str(out)]
    args += ["--epochs", "1", "--batch-size", "4", "--latent-dim", "8", "--device", "cpu", "--no-normals"]
    args += ["--mirror-aug", "--aniso-aug", "0.9,1.1", "--weights", "1,2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["run"]["train"]["augment_mirror"] is True and cfg["run"]["train"]["augment_aniso"] == [0.9, 1.1]
    assert [e["weight"] for e in cfg["data"]["merged_from"]] == [1.0, 2.0]
    assert ShapeDataset(out / "data").info["num_shapes"] == 15
    # a resumed run reuses its merge; other datasets on resume are an error
    res = CliRunner().invoke(app, [*args[:-4], "--weights", "1,2", "--epochs", "2", "--resume"])
    assert res.exit_code == 0, res.output
    bad = ["train", "--data", str(two_sets / "chairs"), "--data", str(two_sets / "real"), "--out", str(out)]
    res = CliRunner().invoke(app, [*bad, "--resume"])
    assert res.exit_code != 0 and "resume with the --data" in res.output


def test_weights_need_several_datasets(two_sets, tmp_path):
    res = CliRunner().invoke(
        app, ["train", "--data", str(two_sets / "chairs"), "--out", str(tmp_path / "r"), "--weights", "1"]
    )
    assert res.exit_code != 0 and "two or more --data" in res.output


def test_data_merge_cli(two_sets, tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["data", "merge", str(two_sets / "chairs"), str(two_sets / "real"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert ShapeDataset(out).info["num_shapes"] == 15
    res = CliRunner().invoke(app, ["data", "merge", str(two_sets / "chairs"), "-o", str(tmp_path / "one")])
    assert res.exit_code != 0 and "two or more datasets" in res.output


def test_merge_keeps_every_sources_attribution(two_sets, tmp_path):
    assert not (merge_datasets([two_sets / "chairs", two_sets / "real"], tmp_path / "none") / "ATTRIBUTION.md").exists()
    a, b = tmp_path / "a" / "chairs", tmp_path / "b" / "real"
    shutil.copytree(two_sets / "chairs", a)
    shutil.copytree(two_sets / "real", b)
    (b / "ATTRIBUTION.md").write_text(
        "# Attribution\n\n## Creators to credit (CC-BY)\n\n- **Ada** (CC-BY-3.0): Chair\n"
    )
    text = (merge_datasets([a, b], tmp_path / "mix") / "ATTRIBUTION.md").read_text()
    assert text.startswith("# Attribution\n") and "`chairs`, `real`" in text
    assert "## chairs\n\nNo ATTRIBUTION.md" in text  # a source without one is named, not dropped silently
    assert "## real (" in text and "### Attribution" in text and "#### Creators to credit (CC-BY)" in text
    assert "- **Ada** (CC-BY-3.0): Chair" in text  # every credit line kept whole
