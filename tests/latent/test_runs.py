from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shapelatent.data.format import ShapeDataset
from shapelatent.errors import MeshingError, OutputExistsError, StoreError
from shapelatent.latent.augment import augment_dataset
from shapelatent.latent.encode import encode_to_store
from shapelatent.latent.runs import run_arithmetic, run_interpolation, run_sampling


@pytest.fixture(scope="module")
def store(tiny_run, tiny_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "s"
    encode_to_store(tiny_run, [tiny_data], path, workers=1)
    return path


class _Drawer:
    """A stand-in for ``viewers.render.render_strip``: records what the library asks to draw, writes a stub PNG."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, list[str], Path, str | None]] = []

    def __call__(self, items, titles, path, title=None) -> Path:
        self.calls.append((list(items), list(titles), Path(path), title))
        Path(path).write_bytes(b"\x89PNG stub")
        return Path(path)


def _same_class_pair(data):
    ds = ShapeDataset(data)
    first = ds.meta[0]
    other = next(m for m in ds.meta[1:] if m["class"] == first["class"])
    return first["id"], other["id"]


def test_interpolation_writes_points_meshes_manifest(tiny_run, tiny_data, store, tmp_path):
    a, b = _same_class_pair(tiny_data)
    draw = _Drawer()
    man = run_interpolation(
        tiny_run, [a, b], tmp_path / "i", steps=4, store_path=store, mesher="ball_pivoting", draw=draw
    )
    out = tmp_path / "i"
    assert len(man["steps"]) == 4 and [r["t"] for r in man["steps"]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    for row in man["steps"]:
        assert (out / row["points"]).exists()
        assert ("mesh" in row and (out / row["mesh"]).exists()) or "mesh_error" in row
        assert len(row["code"]) == 8 and row["nn_class"]
    assert 0.0 <= man["class_consistency"] <= 1.0
    # the pictures are drawn by the drawer it was given: the decoded points, then the meshes that were built
    items, titles, path, title = draw.calls[0]
    assert man["points_png"] == path.name == "strip_points.png" and (out / man["points_png"]).is_file()
    assert [np.shape(p) for p in items] == [np.shape(items[0])] * 4 and np.shape(items[0])[1] == 3
    assert len(titles) == 4 and title == "linear interpolation"
    meshed = [out / r["mesh"] for r in man["steps"] if "mesh" in r]
    if meshed:
        assert draw.calls[1][0] == meshed and man["meshes_png"] == draw.calls[1][2].name == "strip_meshes.png"
    assert len(draw.calls) == 1 + bool(meshed)
    assert json.loads((out / "manifest.json").read_text())["method"] == "linear"
    assert json.loads((out / "provenance.json").read_text())["seed"] == 0
    with pytest.raises(OutputExistsError, match="not empty; pass --force"):
        run_interpolation(tiny_run, [a, b], out, steps=4, store_path=store, mesher=None)


def test_interpolation_from_mesh_files_and_path(tiny_run, real_mesh_paths, tmp_path):
    man = run_interpolation(
        tiny_run, [str(p) for p in real_mesh_paths], tmp_path / "i", steps=3, method="slerp", mesher=None
    )
    assert len(man["steps"]) == 2 * 2 + 1 and [r["segment"] for r in man["steps"]] == [0, 0, 0, 1, 1]
    assert "class_consistency" not in man
    assert "points_png" not in man and not list((tmp_path / "i").glob("*.png"))  # no drawer, no pictures


def test_interpolation_errors(tiny_run, tiny_data, store, tmp_path):
    a, b = _same_class_pair(tiny_data)
    with pytest.raises(ValueError, match="same shape"):
        run_interpolation(tiny_run, [a, a], tmp_path / "x", store_path=store)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        run_interpolation(tiny_run, [a, b], tmp_path / "x", steps=1, store_path=store)
    with pytest.raises(FileNotFoundError, match="neither an id in .* nor an existing mesh"):
        run_interpolation(tiny_run, [a, "no_such_chair"], tmp_path / "x", store_path=store)


def test_store_of_another_model_is_refused(other_run, tiny_data, store, tmp_path):
    a, b = _same_class_pair(tiny_data)
    with pytest.raises(StoreError, match="different model"):
        run_interpolation(other_run, [a, b], tmp_path / "x", store_path=store)


def test_mesher_failure_is_reported_and_the_rest_goes_on(tiny_run, tiny_data, store, tmp_path, monkeypatch):
    import shapelatent.meshing as meshing

    real = meshing.reconstruct_mesh
    calls = {"n": 0}

    def flaky(points, normals=None, config=None, *, seed=0):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MeshingError("poisson: the decoded cloud is degenerate (test)")
        return real(points, normals, config, seed=seed)

    monkeypatch.setattr(meshing, "reconstruct_mesh", flaky)
    a, b = _same_class_pair(tiny_data)
    man = run_interpolation(tiny_run, [a, b], tmp_path / "i", steps=3, store_path=store, mesher="ball_pivoting")
    rows = man["steps"]
    assert rows[1]["mesh_error"].startswith("poisson: the decoded cloud is degenerate")
    assert (tmp_path / "i" / rows[1]["points"]).exists()
    assert "mesh" in rows[0] and "mesh" in rows[2]
    assert man["meshing"]["failed"] == 1 and man["meshing"]["meshed"] == 2


def test_sampling_and_class_filter(tiny_run, tiny_data, store, tmp_path):
    cls = ShapeDataset(tiny_data).meta[0]["class"]
    draw = _Drawer()
    man = run_sampling(tiny_run, store, tmp_path / "s", n=4, components=2, cls=cls, split=None, mesher=None, draw=draw)
    assert len(man["samples"]) == 4 and man["fitted_on"] == 6 and man["class"] == cls
    assert man["points_png"] == "samples_points.png" and "meshes_png" not in man and len(draw.calls) == 1
    assert draw.calls[0][3] == "l-GMM samples (2 components)" and len(draw.calls[0][1]) == 4
    with pytest.raises(StoreError, match="no class 'throne'"):
        run_sampling(tiny_run, store, tmp_path / "t", n=2, components=1, cls="throne", mesher=None)
    with pytest.raises(ValueError, match="needs at least that many codes"):
        run_sampling(tiny_run, store, tmp_path / "u", n=2, components=50, cls=cls, split=None, mesher=None)


def test_arithmetic_with_class_means(tiny_run, tiny_data, store, tmp_path):
    from shapelatent.latent.store import LatentStore

    s = LatentStore.open(store)
    a = s.ids[0]
    classes = sorted(set(s.classes))
    man = run_arithmetic(
        tiny_run, f"{a} - mean:{classes[0]} + mean:{classes[1]}", tmp_path / "a", store_path=store, mesher=None
    )
    mask0 = np.array([c == classes[0] for c in s.classes])
    mask1 = np.array([c == classes[1] for c in s.classes])
    expected = s.codes[0] - s.codes[mask0].mean(0) + s.codes[mask1].mean(0)
    np.testing.assert_allclose(man["shapes"][-1]["code"], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="class means need --store"):
        run_arithmetic(tiny_run, f"mean:{classes[0]}", tmp_path / "b", mesher=None)


def test_augment_dataset(tiny_run, tiny_data, tmp_path):
    res = augment_dataset(tiny_run, tiny_data, tmp_path / "aug", pairs=5, per_pair=2, seed=3)
    ds = ShapeDataset(res.path)
    assert len(ds) == 10 and set(m["split"] for m in ds.meta) == {"train"}
    assert all(m["source"].startswith("interpolated:") for m in ds.meta)
    assert np.linalg.norm(ds.points, axis=2).max() == pytest.approx(1.0, abs=1e-5)
