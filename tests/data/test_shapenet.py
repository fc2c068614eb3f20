"""ShapeNetCore importer on generated folders in the exact v2 / v1 layouts (the data cannot be downloaded here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig, sample_file
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sources.shapenet import (
    SHAPENET_CREATOR,
    SHAPENET_LICENSE,
    SHAPENET_SYNSETS,
    build_shapenet,
    front_rotation,
    load_split_csv,
    load_taxonomy,
    shapenet_items,
)

CFG = SamplingConfig(num_points=96, seed=0)
CHAIR, TABLE, PLANE = "03001627", "04379243", "02691156"
TAXONOMY = [
    {"synsetId": CHAIR, "name": "chair", "children": ["02738535"], "numInstances": 6778},
    {"synsetId": TABLE, "name": "table", "children": [], "numInstances": 8436},
    {"synsetId": PLANE, "name": "airplane,aeroplane,plane", "children": [], "numInstances": 4045},
    {"synsetId": "02738535", "name": "armchair", "children": [], "numInstances": 1},
]


def _rot_y(deg: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(np.radians(deg), (0, 1, 0))[:3, :3]


def _canonical() -> trimesh.Trimesh:
    """A chair-like model in shapelatent's convention: +Y up, a 'nose' sticking out of the front (+Z)."""
    body = trimesh.creation.box(extents=(1.0, 2.0, 1.0))
    nose = trimesh.creation.box(
        extents=(0.3, 0.3, 1.0), transform=trimesh.transformations.translation_matrix((0, 0, 1))
    )
    return trimesh.util.concatenate([body, nose])


def _write(mesh: trimesh.Trimesh, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)


def _posed(front_deg: float) -> trimesh.Trimesh:
    """The canonical model turned about Y, e.g. 180 degrees: front at -Z as in ShapeNetCore v2."""
    m = _canonical()
    m.vertices = m.vertices @ _rot_y(front_deg).T
    return m


@pytest.fixture
def shapenet_root(tmp_path):
    root = tmp_path / "ShapeNetCore.v2"
    for sid, count in ((CHAIR, 3), (TABLE, 2), (PLANE, 1)):
        for i in range(count):
            mesh = _posed(180.0)  # v2: +Y up, front -Z
            if sid == TABLE:
                mesh = trimesh.creation.box(extents=(3.0, 0.3 + 0.05 * i, 2.0))  # flat: thin along Y (up)
            _write(mesh, root / sid / f"{sid[-3:]}model{i}" / "models" / "model_normalized.obj")
            (root / sid / f"{sid[-3:]}model{i}" / "models" / "model_normalized.json").write_text("{}")
    (root / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    (root / "stray_folder").mkdir()
    return root


def test_items_classes_ids_and_metadata(shapenet_root):
    found = shapenet_items(shapenet_root)
    assert found.synsets == {PLANE: "airplane", CHAIR: "chair", TABLE: "table"}  # first comma-separated name
    assert found.layouts == {"v2": 6}
    assert [it.id for it in found.items][:2] == [f"{PLANE}/156model0", f"{CHAIR}/627model0"]
    item = found.items[1]
    assert item.cls == "chair" and item.split is None and item.kind == "mesh"
    assert item.license == SHAPENET_LICENSE == "ShapeNet terms of use (non-commercial research)"
    assert item.creator == SHAPENET_CREATOR == "ShapeNet"
    assert item.extra == {"synset": CHAIR, "model_id": "627model0", "layout": "v2"}
    assert item.rotation == front_rotation("-z")


def test_build_turns_v2_front_to_plus_z(shapenet_root, tmp_path):
    res = build_shapenet(shapenet_root, tmp_path / "ds", synsets=[CHAIR], sampling=CFG, workers=1)
    assert res.built == 3 and not res.skipped
    ds = ShapeDataset(res.path)
    _write(_canonical(), tmp_path / "canonical.obj")
    for i in range(3):  # each model, turned back to front +Z, equals the canonical model sampled the same way
        expected = sample_file(tmp_path / "canonical.obj", CFG, seed=CFG.seed + i)
        np.testing.assert_allclose(ds.points[i], expected.points, atol=1e-5)
        np.testing.assert_allclose(ds.normals[i], expected.normals, atol=1e-5)
    assert ds.info["source"]["kind"] == "shapenet" and ds.info["source"]["front"] == "auto"
    assert ds.info["conventions"] == {"up": "+Y", "front": "+Z"}
    # seeded split (ShapeNet has no split in its layout)
    assert ds.info["split"]["seed"] == 0 and sum(ds.info["split"]["counts"].values()) == 3


def test_up_axis_stays_y(shapenet_root, tmp_path):
    res = build_shapenet(shapenet_root, tmp_path / "ds", synsets=["table"], sampling=CFG, workers=1)
    ds = ShapeDataset(res.path)
    for pts in ds.points:
        extent = np.ptp(pts, axis=0)
        assert extent[1] < 0.3 * extent[0] and extent[1] < 0.3 * extent[2]  # thin along Y: Y stayed up


def test_v1_layout_front_plus_x(tmp_path):
    root = tmp_path / "ShapeNetCore.v1"
    _write(_posed(90.0), root / CHAIR / "abc" / "model.obj")  # v1: +Y up, front +X
    found = shapenet_items(root)
    assert found.layouts == {"v1": 1} and found.items[0].rotation == front_rotation("+x")
    assert found.synsets == {CHAIR: "chair"}  # no taxonomy.json: the built-in name
    res = build_shapenet(root, tmp_path / "ds", sampling=CFG, workers=1)
    _write(_canonical(), tmp_path / "canonical.obj")
    expected = sample_file(tmp_path / "canonical.obj", CFG, seed=CFG.seed)
    np.testing.assert_allclose(ShapeDataset(res.path).points[0], expected.points, atol=1e-5)


@pytest.mark.parametrize(("front", "deg"), [("+z", 0.0), ("-z", 180.0), ("+x", 90.0), ("-x", -90.0)])
def test_explicit_front(tmp_path, front, deg):
    root = tmp_path / "sn"
    _write(_posed(deg), root / CHAIR / "m" / "models" / "model_normalized.obj")
    res = build_shapenet(root, tmp_path / "ds", front=front, sampling=CFG, workers=1)
    _write(_canonical(), tmp_path / "canonical.obj")
    expected = sample_file(tmp_path / "canonical.obj", CFG, seed=CFG.seed)
    np.testing.assert_allclose(ShapeDataset(res.path).points[0], expected.points, atol=1e-5)


def test_rotations_are_proper():
    for front in ("-z", "+x", "-x"):
        m = np.asarray(front_rotation(front)).reshape(3, 3)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m) == pytest.approx(1.0)
        np.testing.assert_allclose(m @ [0, 1, 0], [0, 1, 0])  # up stays up
    assert front_rotation("+z") is None
    with pytest.raises(ValueError, match=r"front must be one of \+z, -z, \+x, -x; got 'up'"):
        front_rotation("up")


def test_synset_ids_without_taxonomy_fall_back(tmp_path):
    root = tmp_path / "sn"
    _write(_canonical(), root / "09999999" / "m" / "models" / "model_normalized.obj")
    _write(_canonical(), root / TABLE / "m" / "models" / "model_normalized.obj")
    assert shapenet_items(root).synsets == {"09999999": "09999999", TABLE: "table"}


def test_unknown_synset_lists_available(shapenet_root):
    with pytest.raises(ValueError) as err:
        shapenet_items(shapenet_root, synsets=["03001627", "04256520"])
    msg = str(err.value)
    assert "unknown synsets ['04256520']" in msg
    assert "03001627 (chair)" in msg and "04379243 (table)" in msg and "02691156 (airplane)" in msg
    assert [it.cls for it in shapenet_items(shapenet_root, synsets=["chair", TABLE]).items] == ["chair"] * 3 + [
        "table"
    ] * 2


def test_split_csv(shapenet_root, tmp_path):
    csv_path = tmp_path / "all.csv"
    csv_path.write_text(
        "id,synsetId,subSynsetId,modelId,split\n"
        f"1,{CHAIR},{CHAIR},627model0,train\n"
        f"2,{CHAIR},02738535,627model1,val\n"
        f"3,{int(CHAIR)},{CHAIR},627model2,test\n"  # leading zero dropped, as some copies have it
        f"4,{TABLE},{TABLE},243model0,train\n"
    )
    assert load_split_csv(csv_path)[(CHAIR, "627model2")] == "test"
    res = build_shapenet(
        shapenet_root, tmp_path / "ds", synsets=[CHAIR, TABLE], split_csv=csv_path, sampling=CFG, workers=1
    )
    ds = ShapeDataset(res.path)
    assert {m["id"]: m["split"] for m in ds.meta} == {
        f"{CHAIR}/627model0": "train",
        f"{CHAIR}/627model1": "val",
        f"{CHAIR}/627model2": "test",
        f"{TABLE}/243model0": "train",
    }
    assert len(res.skipped) == 1 and "not listed in the split CSV" in res.skipped[0]["reason"]
    assert "243model1" in res.skipped[0]["source"]


def test_split_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\n")
    with pytest.raises(ValueError, match="needs the columns id,synsetId,subSynsetId,modelId,split"):
        load_split_csv(bad)
    bad.write_text(f"id,synsetId,subSynsetId,modelId,split\n1,{CHAIR},{CHAIR},m,holdout\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 2: unknown split 'holdout'; expected train, val or test"):
        load_split_csv(bad)
    with pytest.raises(FileNotFoundError, match="nope.csv: no such split CSV"):
        load_split_csv(tmp_path / "nope.csv")


def test_taxonomy_errors(tmp_path):
    p = tmp_path / "taxonomy.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="taxonomy.json: not valid JSON"):
        load_taxonomy(p)
    p.write_text('{"synsetId": "1"}')
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_taxonomy(p)
    p.write_text('[{"name": "chair"}]')
    with pytest.raises(ValueError, match="entry 0 lacks 'synsetId' or 'name'"):
        load_taxonomy(p)


def test_missing_mesh_and_layout_errors(shapenet_root, tmp_path):
    (shapenet_root / CHAIR / "emptymodel" / "images").mkdir(parents=True)
    res = build_shapenet(shapenet_root, tmp_path / "ds", synsets=[CHAIR], sampling=CFG, workers=1)
    assert res.built == 3
    assert res.skipped == [
        {
            "source": str(shapenet_root / CHAIR / "emptymodel"),
            "reason": "no models/model_normalized.obj (ShapeNetCore v2) or model.obj (v1) in the folder",
        }
    ]
    with pytest.raises(FileNotFoundError, match="missing: no such folder"):
        shapenet_items(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match=r"flat: no synset folders \(8-digit WordNet offsets"):
        shapenet_items(tmp_path / "flat")
    with pytest.raises(ValueError, match="front must be one of auto"):
        shapenet_items(shapenet_root, front="y")


def test_builtin_synsets():
    assert len(SHAPENET_SYNSETS) == 57  # 55 of v2 plus bicycle and boat (v1 only)
    assert all(len(k) == 8 and k.isdigit() for k in SHAPENET_SYNSETS)
    for sid, name in {
        "02691156": "airplane",
        "02828884": "bench",
        "02933112": "cabinet",
        "02958343": "car",
        "03001627": "chair",
        "03211117": "display",
        "03636649": "lamp",
        "03691459": "loudspeaker",
        "04090263": "rifle",
        "04256520": "sofa",
        "04379243": "table",
        "04401088": "telephone",
        "04530566": "watercraft",
    }.items():
        assert SHAPENET_SYNSETS[sid] == name


def test_cli(shapenet_root, tmp_path):
    runner = CliRunner()
    args = ["data", "build", "shapenet", shapenet_root, "--out", tmp_path / "cli", "--points", 64, "--workers", 1]
    res = runner.invoke(app, [str(a) for a in [*args, "--synsets", "chair,04379243", "--front", "-z"]])
    assert res.exit_code == 0, res.output
    assert "built 5 shapes" in " ".join(res.output.split())
    res = runner.invoke(app, [str(a) for a in [*args, "--synsets", "sofa"]])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "unknown synsets ['sofa']" in text and "03001627 (chair)" in text
