"""add_occupancy: upgrading existing datasets in place, the recovered transforms, failures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from shapelatent.data.build import BuildItem, SamplingConfig, build_items
from shapelatent.data.format import ShapeDataset
from shapelatent.data.occupancy import has_occupancy, read_occupancy, unpack_labels
from shapelatent.data.occupancy_build import FIT_TOLERANCE, _fit, add_occupancy, recover_transform
from shapelatent.data.occupancy_labels import label_points
from shapelatent.data.procedural import generate_chair
from shapelatent.data.sampling import sample_surface
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import OutputExistsError
from shapelatent.io.meshes import read_mesh

from ..conftest import REAL_MESHES
from .test_sweethome3d import library  # noqa: F401  (the fixture: a small .sh3f made from the fixtures)

Q = 512


@pytest.fixture
def chairs(tmp_path):
    out = tmp_path / "chairs"
    build_procedural(out, 4, sampling=SamplingConfig(num_points=256, seed=5), seed=5, workers=1)
    return out


def _normalised_mesh(ds: ShapeDataset, i: int):
    row = ds.meta[i]
    mesh = generate_chair(int(row["source"].split(":")[1]), row["class"]).mesh
    cfg = SamplingConfig.from_dict(ds.info["sampling"])
    c, s, kind, resid = recover_transform(mesh.vertices, mesh.faces, np.array(ds.points[i]), cfg, [cfg.seed + i])
    return (np.asarray(mesh.vertices) - c) / s, np.asarray(mesh.faces), kind, resid


def test_add_occupancy_on_procedural_chairs(chairs):
    done = []
    report = add_occupancy(chairs, queries=Q, seed=1, workers=1, progress=done.append)
    assert sum(done) == 4 and report.built == 4 and report.valid == 4 and not report.failed
    assert report.transforms == {"exact": 4, "fitted": 0} and report.max_residual < 1e-6
    assert report.label_methods == {"winding": 4}  # union meshes are closed: the exact inside test
    assert has_occupancy(chairs)
    occ = read_occupancy(chairs)
    assert occ.points.shape == (4, Q, 3) and occ.labels.shape == (4, Q // 8) and occ.valid.all()
    assert occ.meta["uniform"] == Q // 2 and occ.meta["near_surface"] == Q // 2 and occ.meta["built"] == 4
    ds = ShapeDataset(chairs)
    labels = unpack_labels(occ.labels, Q)
    for i in range(4):
        v, f, kind, resid = _normalised_mesh(ds, i)
        assert kind == "exact" and resid < 1e-6  # the stored points lie on the transformed mesh
        pts = np.asarray(occ.points[i], dtype=np.float64)
        assert np.array_equal(labels[i], label_points(v, f, pts, method="winding"))
        assert 0.0 < labels[i, : Q // 2].mean() < 0.5  # some uniform queries fall inside a chair
    assert np.allclose(ds.points[:], np.load(chairs / "points.npy"))  # points untouched
    with pytest.raises(OutputExistsError, match="force"):
        add_occupancy(chairs, queries=Q, workers=1)
    again = add_occupancy(chairs, queries=Q, seed=1, workers=2, force=True)
    assert again.valid == 4 and np.array_equal(
        np.asarray(read_occupancy(chairs).labels), np.packbits(labels, 1, "little")
    )


def test_fit_recovers_the_same_transform(chairs):
    ds = ShapeDataset(chairs)
    row = ds.meta[2]
    mesh = generate_chair(int(row["source"].split(":")[1]), row["class"]).mesh
    cfg = SamplingConfig.from_dict(ds.info["sampling"])
    exact = recover_transform(mesh.vertices, mesh.faces, np.array(ds.points[2]), cfg, [cfg.seed + 2])
    fitted = recover_transform(mesh.vertices, mesh.faces, np.array(ds.points[2]), cfg, seeds=[])
    assert exact[2] == "exact" and fitted[2] == "fitted"
    assert fitted[1] == pytest.approx(exact[1], rel=1e-5)
    assert np.allclose(fitted[0], exact[0], atol=1e-5 * exact[1]) and fitted[3] < 1e-5


@pytest.mark.parametrize("name", ["deck_chair", "desk_lamp", "technical_table"])
def test_fit_recovers_sparse_rows_of_real_models(name):
    """A few points of a real model (a prefix of a 2048-point row, as a dataset cut to fewer points holds): the fit
    finds the builder's transform on all 9 cases of each model. Trimmed point-to-plane alone stopped in a wrong minimum
    on 14 of the 27 (median residual 1e-4 to 5.8), and on 3 of the table's it slid the points of the top along it, a
    median residual of 1e-16 that a median criterion accepted: an accepted fit must be the true transform."""
    mesh = read_mesh(REAL_MESHES / name / "model.obj")
    v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    cfg = SamplingConfig()
    recovered = 0
    for seed in range(3):
        norm = cfg.normalization.apply(sample_surface(mesh, 2048, seed=seed).points)
        for p in (64, 128, 256):
            c, s, resid = _fit(norm.points[:p], v, f)
            if resid < FIT_TOLERANCE:  # accepted fits are the true transform
                recovered += 1
                assert s == pytest.approx(norm.scale, rel=1e-6)
                assert np.allclose(c, norm.center, atol=1e-6 * norm.scale)
    assert recovered == 9


def test_add_occupancy_on_real_meshes_with_rotation(tmp_path):
    meta = {m["dir"]: m for m in json.loads((REAL_MESHES / "items.json").read_text())}
    items = [
        BuildItem(
            id=d,
            path=str(REAL_MESHES / d / "model.obj"),
            cls="x",
            kind="mesh",
            rotation=tuple(meta[d]["model_rotation"]) if meta[d]["model_rotation"] else None,
        )
        for d in sorted(meta)
    ]
    items = [BuildItem(**{**it.__dict__, "extra": {"rotation": it.rotation}}) for it in items]  # recorded rotation
    assert any(it.rotation for it in items)
    out = tmp_path / "real"
    build_items(items, out, source={"kind": "test"}, sampling=SamplingConfig(num_points=256), workers=1)
    report = add_occupancy(out, queries=Q, workers=1)
    assert report.valid == 3 and report.transforms["exact"] == 3 and report.max_residual < 1e-6
    assert report.label_methods.get("winding+shell", 0) >= 1  # Sweet Home 3D models are open shells
    occ = read_occupancy(out)
    labels = unpack_labels(occ.labels, Q)
    assert (labels[:, Q // 2 :].mean(axis=1) > 0.2).all()  # near-surface queries: panels and legs labelled inside
    # the stored surface points themselves are inside the shell
    ds = ShapeDataset(out)
    for i, item in enumerate(items):
        mesh = read_mesh(item.path)
        c, s, _, _ = recover_transform(
            mesh.vertices,
            mesh.faces,
            np.array(ds.points[i]),
            SamplingConfig.from_dict(ds.info["sampling"]),
            [i],
            item.rotation,
        )
        v = np.asarray(mesh.vertices) @ (np.reshape(item.rotation, (3, 3)).T if item.rotation else np.eye(3))
        assert label_points((v - c) / s, mesh.faces, np.array(ds.points[i]), method="winding+shell").all()


def test_missing_source_is_reported_not_fatal(tmp_path):
    src = tmp_path / "meshes"
    shutil.copytree(REAL_MESHES / "deck_chair", src / "a")
    shutil.copytree(REAL_MESHES / "desk_lamp", src / "b")
    items = [BuildItem(id=n, path=str(src / n / "model.obj"), cls="x", kind="mesh") for n in ("a", "b")]
    out = tmp_path / "ds"
    build_items(items, out, source={"kind": "test"}, sampling=SamplingConfig(num_points=128), workers=1)
    (src / "b" / "model.obj").unlink()
    report = add_occupancy(out, queries=64, workers=1)
    assert report.valid == 1 and len(report.failed) == 1
    assert report.failed[0]["id"] == "b" and "not found" in report.failed[0]["reason"]
    occ = read_occupancy(out)
    assert occ.valid.tolist() == [True, False] and occ.meta["built"] == 2


def test_add_occupancy_on_a_sweethome3d_library(library, tmp_path):  # noqa: F811 (the imported fixture)
    from shapelatent.data.sources.sweethome3d import build_sweethome3d

    out = tmp_path / "sh3d"
    build_sweethome3d([library], out, sampling=SamplingConfig(num_points=128), workers=1)
    lost = add_occupancy(out, queries=64, workers=1)  # the library is not given: every row reported, none crash
    assert lost.valid == 0 and len(lost.failed) == 4 and "not found" in lost.failed[0]["reason"]
    assert not read_occupancy(out).valid.any()
    report = add_occupancy(out, queries=Q, workers=1, archives=[library.parent], force=True)
    # the rows after two skipped inputs (a missing model, a model of lines) and the one with a modelRotation
    # are recovered exactly too
    assert report.valid == 4 and report.transforms == {"exact": 4, "fitted": 0} and report.max_residual < 1e-6
    labels = unpack_labels(read_occupancy(out).labels, Q)
    assert (labels[:, Q // 2 :].mean(axis=1) > 0.2).all()
