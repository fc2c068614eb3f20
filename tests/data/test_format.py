from __future__ import annotations

import json

import numpy as np
import pytest

from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import FORMAT_VERSION, NpyAppender, ShapeDataset, assign_splits
from shapelatent.data.sources.folder import build_folder, load_class_map
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import DatasetFormatError, OutputExistsError


def test_npy_appender_streams(tmp_path, rng):
    rows = rng.random((7, 4, 3)).astype(np.float32)
    app = NpyAppender(tmp_path / "a.npy", (4, 3))
    app.append(rows[:3])
    app.append(rows[3])
    app.append(rows[4:])
    app.close()
    got = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert got.shape == (7, 4, 3)
    np.testing.assert_array_equal(got, rows)


def test_splits_are_seeded_and_cover():
    a = assign_splits(100, 1, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert a == assign_splits(100, 1, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert a != assign_splits(100, 2, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert (a.count("train"), a.count("val"), a.count("test")) == (80, 10, 10)
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(10, 0, {"train": 0.5})


def test_build_procedural(tmp_path):
    out = tmp_path / "chairs"
    res = build_procedural(out, 24, sampling=SamplingConfig(num_points=128), seed=3, workers=1)
    assert res.built == 24 and not res.skipped
    ds = ShapeDataset(out)
    assert ds.points.shape == (24, 128, 3) and isinstance(ds.points, np.memmap)
    assert np.linalg.norm(ds.points, axis=2).max() == pytest.approx(1.0, abs=1e-5)  # unit sphere
    info = json.loads((out / "dataset.json").read_text())
    assert info["format_version"] == FORMAT_VERSION
    assert info["sampling"]["normalization"] == {"center": "bbox", "scale": "unit_sphere"}
    assert info["conventions"] == {"up": "+Y", "front": "+Z"}
    assert len(info["classes"]) == 6 and sum(info["classes"].values()) == 24
    assert sum(info["split"]["counts"].values()) == 24
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 3 and prov["shapelatent_version"]
    assert {m["split"] for m in ds.meta} <= {"train", "val", "test"}
    # same seed, same data; parallel workers give the same result
    build_procedural(tmp_path / "again", 24, sampling=SamplingConfig(num_points=128), seed=3, workers=2)
    np.testing.assert_array_equal(ShapeDataset(tmp_path / "again").points, ds.points)


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "chairs"
    build_procedural(out, 8, sampling=SamplingConfig(num_points=64), workers=1)
    before = (out / "points.npy").read_bytes()
    with pytest.raises(OutputExistsError, match="already exists; pass --force"):
        build_procedural(out, 8, sampling=SamplingConfig(num_points=64), seed=9, workers=1)
    assert (out / "points.npy").read_bytes() == before
    build_procedural(out, 8, sampling=SamplingConfig(num_points=64), seed=9, workers=1, force=True)
    assert (out / "points.npy").read_bytes() != before
    assert not (tmp_path / "chairs.partial").exists()


def test_build_folder_skips_and_reports_broken(tmp_path, box_mesh, real_mesh_paths):
    src = tmp_path / "src"
    (src / "box").mkdir(parents=True)
    (src / "real").mkdir()
    box_mesh.export(src / "box" / "a.stl")
    box_mesh.export(src / "box" / "b.off")
    (src / "box" / "broken.obj").write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (src / "box" / "empty.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    for p in real_mesh_paths:
        (src / "real" / p.parent.name).mkdir()
        for f in p.parent.iterdir():
            (src / "real" / p.parent.name / f.name).write_bytes(f.read_bytes())
    np.savetxt(src / "box" / "cloud.xyz", np.random.default_rng(0).random((300, 3)))
    res = build_folder(src, tmp_path / "ds", sampling=SamplingConfig(num_points=96), workers=1)
    report = json.loads((tmp_path / "ds" / "build_report.json").read_text())
    reasons = {s["source"].split("/")[-1]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"broken.obj", "empty.ply"}
    assert "NaN" in reasons["broken.obj"]
    assert res.built == 3 + len(real_mesh_paths)
    ds = ShapeDataset(tmp_path / "ds")
    assert sorted(set(ds.classes())) == ["box", "real"]
    assert ds.info["skipped"] == 2


def test_build_folder_all_broken(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.obj").write_text("nothing here\n")
    with pytest.raises(DatasetFormatError, match=r"no shape could be built .*x.obj"):
        build_folder(tmp_path / "src", tmp_path / "ds", workers=1)
    assert not (tmp_path / "ds").exists()


def test_other_format_version_is_refused(tmp_path):
    out = tmp_path / "chairs"
    build_procedural(out, 8, sampling=SamplingConfig(num_points=64), workers=1)
    info = json.loads((out / "dataset.json").read_text())
    info["format_version"] = 99
    (out / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(
        DatasetFormatError, match=r"dataset format version 99, this shapelatent reads version 1; rebuild"
    ):
        ShapeDataset(out)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetFormatError, match="no dataset.json"):
        ShapeDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such dataset folder"):
        ShapeDataset(tmp_path / "missing")


def test_truncated_arrays_detected(tmp_path):
    out = tmp_path / "chairs"
    build_procedural(out, 8, sampling=SamplingConfig(num_points=64), workers=1)
    data = (out / "points.npy").read_bytes()
    (out / "points.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError, match="points.npy"):
        ShapeDataset(out)


def test_class_map(tmp_path):
    (tmp_path / "m.csv").write_text("file,class\na.obj,chair\n")
    assert load_class_map(tmp_path / "m.csv") == {"a.obj": "chair"}
    (tmp_path / "m.json").write_text('{"b.obj": "table"}')
    assert load_class_map(tmp_path / "m.json") == {"b.obj": "table"}
    (tmp_path / "bad.csv").write_text("name,label\n")
    with pytest.raises(ValueError, match="needs the columns 'file' and 'class'"):
        load_class_map(tmp_path / "bad.csv")
