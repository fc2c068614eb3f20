"""ModelNet10/40 importer on a generated folder in the exact ModelNet layout (the data cannot be downloaded here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig, sample_file
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sources.modelnet import (
    MODELNET_LICENSE,
    build_modelnet,
    modelnet_items,
    up_rotation,
)

CFG = SamplingConfig(num_points=96, seed=0)
# Y-up -> Z-up, the inverse of what the importer applies: (x, y, z) -> (x, -z, y)
Y_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _write_off(mesh: trimesh.Trimesh, path, malformed: bool) -> None:
    """Write an OFF file; ``malformed`` puts the counts on the keyword line, as many ModelNet files do."""
    head = (
        f"OFF{len(mesh.vertices)} {len(mesh.faces)} 0\n"
        if malformed
        else f"OFF\n{len(mesh.vertices)} {len(mesh.faces)} 0\n"
    )
    body = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in mesh.vertices)
    body += "".join(f"3 {a} {b} {c}\n" for a, b, c in mesh.faces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + body)


def _shape(cls: str, i: int) -> trimesh.Trimesh:
    """Z-up shapes: chairs are tall along Z, tables wide along X."""
    extents = (0.5, 0.6, 2.0 + 0.1 * i) if cls == "chair" else (3.0 + 0.1 * i, 1.5, 0.4)
    return trimesh.creation.box(extents=extents)


@pytest.fixture
def modelnet_root(tmp_path):
    root = tmp_path / "ModelNet10"
    n = 0
    for cls in ("chair", "table"):
        for split, count in (("train", 3), ("test", 2)):
            for _ in range(count):
                n += 1
                _write_off(_shape(cls, n), root / cls / split / f"{cls}_{n:04d}.off", malformed=n % 2 == 0)
    # archive debris that must be ignored
    (root / "__MACOSX" / "chair" / "train").mkdir(parents=True)
    (root / "__MACOSX" / "chair" / "train" / "._chair_0001.off").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (root / "chair" / "train" / "._chair_0001.off").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "README.txt").write_text("ModelNet10\n")
    return root


def test_items_keep_official_split_and_ids(modelnet_root):
    found = modelnet_items(modelnet_root)
    assert found.classes == ["chair", "table"]
    assert found.counts == {"test": 4, "train": 6}
    ids = [it.id for it in found.items]
    assert ids[:3] == ["chair/chair_0001", "chair/chair_0002", "chair/chair_0003"]
    chair_test = [it for it in found.items if it.cls == "chair" and it.split == "test"]
    assert [it.id for it in chair_test] == ["chair/chair_0004", "chair/chair_0005"]
    assert all(it.license == MODELNET_LICENSE and it.kind == "mesh" for it in found.items)
    assert all(it.rotation == up_rotation("z") for it in found.items)
    assert not any("._" in it.path or "__MACOSX" in it.path for it in found.items)


def test_build_keeps_split_and_turns_z_up_to_y_up(modelnet_root, tmp_path):
    out = tmp_path / "mn"
    res = build_modelnet(modelnet_root, out, sampling=CFG, workers=1)
    assert res.built == 10 and not res.skipped
    ds = ShapeDataset(out)
    by_id = {m["id"]: i for i, m in enumerate(ds.meta)}
    assert {m["split"] for m in ds.meta if m["id"].endswith(("0004", "0005", "0009", "0010"))} == {"test"}
    assert len(ds.indices("train")) == 6 and len(ds.indices("test")) == 4 and len(ds.indices("val")) == 0
    assert ds.info["source"]["kind"] == "modelnet" and ds.info["source"]["up"] == "z"
    assert ds.info["classes"] == {"chair": 5, "table": 5}
    # a chair tall along Z in the file must be tall along Y in the dataset
    extent = np.ptp(ds.points[by_id["chair/chair_0001"]], axis=0)
    assert extent[1] > 2.5 * extent[0] and extent[1] > 2.5 * extent[2]
    # a table flat in Z (thin along its up axis) must be thin along Y
    extent = np.ptp(ds.points[by_id["table/table_0006"]], axis=0)
    assert extent[1] < 0.25 * extent[0]
    assert json.loads(ds.meta[0]["extra"])["official_split"] == "train"


def test_rotation_matches_the_canonical_model(tmp_path):
    # an asymmetric model authored in shapelatent's convention (Y up, front +Z), written Z-up as ModelNet is
    canonical = trimesh.util.concatenate(
        [
            trimesh.creation.box(extents=(1.0, 2.0, 1.0)),
            trimesh.creation.box(
                extents=(0.3, 0.3, 1.0), transform=trimesh.transformations.translation_matrix((0, 0, 1))
            ),
        ]
    )
    canonical.export(tmp_path / "canonical.off")
    source = canonical.copy()
    source.vertices = canonical.vertices @ Y_TO_Z_UP.T
    _write_off(source, tmp_path / "mn" / "thing" / "train" / "thing_0001.off", malformed=True)
    build_modelnet(tmp_path / "mn", tmp_path / "ds", sampling=CFG, workers=1)
    expected = sample_file(tmp_path / "canonical.off", CFG, seed=CFG.seed + 0)
    got = ShapeDataset(tmp_path / "ds")
    np.testing.assert_allclose(got.points[0], expected.points, atol=1e-5)
    np.testing.assert_allclose(got.normals[0], expected.normals, atol=1e-5)


def test_up_y_keeps_coordinates(modelnet_root, tmp_path):
    build_modelnet(modelnet_root, tmp_path / "mn", up="y", classes=["chair"], sampling=CFG, workers=1)
    ds = ShapeDataset(tmp_path / "mn")
    assert len(ds) == 5 and set(ds.classes()) == {"chair"}
    extent = np.ptp(ds.points[0], axis=0)
    assert extent[2] > 2.5 * extent[1]  # still tall along Z: nothing was rotated


def test_val_carved_from_train_seeded(modelnet_root, tmp_path):
    a = modelnet_items(modelnet_root, val_fraction=0.34, seed=1)
    assert a.counts == {"test": 4, "train": 4, "val": 2}
    val = [it for it in a.items if it.split == "val"]
    assert {it.cls for it in val} == {"chair", "table"}  # stratified per class
    assert all(it.extra["official_split"] == "train" for it in val)
    again = modelnet_items(modelnet_root, val_fraction=0.34, seed=1)
    assert [it.split for it in again.items] == [it.split for it in a.items]
    # the chair's val pick does not depend on which other classes are listed
    only_chairs = modelnet_items(modelnet_root, val_fraction=0.34, seed=1, classes=["chair"])
    assert [it.id for it in only_chairs.items if it.split == "val"] == [it.id for it in val if it.cls == "chair"]
    res = build_modelnet(modelnet_root, tmp_path / "mn", val_fraction=0.34, seed=1, sampling=CFG, workers=1)
    assert ShapeDataset(res.path).info["split"]["counts"] == {"train": 4, "val": 2, "test": 4}


def test_errors(modelnet_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing: no such folder"):
        modelnet_items(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no class folders with train/ or test/ inside"):
        modelnet_items(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"unknown classes \['sofa'\]; available here: chair, table"):
        modelnet_items(modelnet_root, classes=["sofa"])
    with pytest.raises(ValueError, match="up must be one of z, y; got 'x'"):
        modelnet_items(modelnet_root, up="x")
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\); got 1.0"):
        modelnet_items(modelnet_root, val_fraction=1.0)
    dup = modelnet_root / "chair" / "test" / "chair_0001.off"
    dup.write_bytes((modelnet_root / "chair" / "train" / "chair_0001.off").read_bytes())
    with pytest.raises(ValueError, match=r"same file name appears in both train/ and test/ for \['chair/chair_0001'\]"):
        modelnet_items(modelnet_root)


def test_broken_off_is_skipped_with_reason(modelnet_root, tmp_path):
    (modelnet_root / "chair" / "train" / "chair_0099.off").write_text("OFF12 20 0\n0 0 0\n")
    res = build_modelnet(modelnet_root, tmp_path / "mn", sampling=CFG, workers=1)
    assert res.built == 10
    assert len(res.skipped) == 1 and "chair_0099.off: the header promises 12 vertices" in res.skipped[0]["reason"]


def test_cli(modelnet_root, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["data", "build", "modelnet", modelnet_root, "--out", out, "--points", 64, "--workers", 1]
    res = runner.invoke(app, [str(a) for a in [*args, "--val-fraction", 0.34]])
    assert res.exit_code == 0, res.output
    assert "built 10 shapes" in " ".join(res.output.split())
    res = runner.invoke(app, [str(a) for a in [*args, "--classes", "sofa"]])
    assert res.exit_code == 2 and "unknown classes ['sofa']" in " ".join(res.output.split())
