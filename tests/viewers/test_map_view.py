"""The latent map viewer: the pure pieces against brute-force oracles, the scene without a window, the CLI's errors,
and the real window under Xvfb (marker ``display``; it reuses the Xvfb/xdotool machinery of test_interactive).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import typer
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from shapelatent.cli.view import register
from shapelatent.errors import StoreError
from shapelatent.latent.encode import encode_to_store
from shapelatent.latent.interpolate import interpolate_codes
from shapelatent.latent.project import project_codes
from shapelatent.latent.store import LatentStore
from tests.latent.conftest import tiny_data, tiny_run  # noqa: F401  (session fixtures: a 36-chair set, a 2-epoch run)
from tests.viewers.test_interactive import _differs, _not_blank, _pixels, _Viewer, xvfb  # noqa: F401
from viewers.map_view import (
    GREY,
    MapScene,
    MapState,
    class_palette,
    fit_map_pca,
    latent_order,
    map_layout,
    map_tour,
)


@pytest.fixture(scope="module")
def store(tiny_run, tiny_data, tmp_path_factory) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("map") / "store"
    encode_to_store(tiny_run, [tiny_data], path, workers=1)
    return path


def _no_model_copy(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest)
    info = json.loads((dest / "store.json").read_text())
    del info["model"]["path"]
    (dest / "store.json").write_text(json.dumps(info))
    return dest


# ---------------------------------------------------------------------------------------------- pure functions
def test_class_palette_is_fixed_by_sorted_names() -> None:
    tab10 = matplotlib.colormaps["tab10"]
    pal = class_palette(["stool", "bench", "stool", "armchair", "", "other"])
    assert list(pal)[:3] == ["armchair", "bench", "stool"]
    assert [pal[c] for c in ("armchair", "bench", "stool")] == [tuple(tab10(i)[:3]) for i in range(3)]
    assert pal[""] == pal["other"] == GREY
    assert class_palette(["bench", "armchair", "stool"]) == {k: pal[k] for k in ("armchair", "bench", "stool")}
    many = class_palette([f"c{i:02d}" for i in range(14)])
    assert len(set(many.values())) == 14 and many["c00"] == tuple(matplotlib.colormaps["tab20"](0)[:3])


def test_map_pca_is_project_codes_scaled_into_the_cube(rng: np.random.Generator) -> None:
    codes = (rng.normal(size=(40, 8)) * [5, 3, 2, 1, 1, 1, 1, 1]).astype(np.float32)
    pca = fit_map_pca(codes)
    coords = pca.transform(codes)
    assert coords.shape == (40, 3) and coords.dtype == np.float32
    assert np.abs(coords).max() == pytest.approx(1.0, abs=1e-6)
    # the oracle: the library's PCA map, same axes and sign convention, before centring and uniform scaling
    ref = project_codes(codes, method="pca", dims=3).coords
    np.testing.assert_allclose(coords * pca.scale + pca.center, ref, atol=1e-4)
    np.testing.assert_allclose(pca.explained, project_codes(codes, dims=3).explained_variance, atol=1e-9)
    # Z < 3: the missing axes are zero
    assert np.all(fit_map_pca(codes[:, :2]).transform(codes[:, :2])[:, 2] == 0)
    with pytest.raises(ValueError, match=r"N >= 2; got \(1, 8\)"):
        fit_map_pca(codes[:1])
    with pytest.raises(ValueError, match=r"codes must be \(B, 8\)"):
        pca.transform(codes[:, :4])


def test_linear_interpolation_lies_on_the_segment_between_the_endpoints(rng: np.random.Generator) -> None:
    codes = rng.normal(size=(30, 16)).astype(np.float32)
    pca = fit_map_pca(codes)
    a, b = pca.transform(codes[[3, 17]])
    path = pca.transform(interpolate_codes(codes[3], codes[17], 7, "linear"))
    t = np.linspace(0, 1, 7)[:, None]
    np.testing.assert_allclose(path, (1 - t) * a + t * b, atol=1e-5)
    curved = pca.transform(interpolate_codes(codes[3], codes[17], 7, "slerp"))  # same ends, off the chord between
    np.testing.assert_allclose(curved[[0, -1]], [a, b], atol=1e-5)


def _greedy_walk(coords: np.ndarray) -> list[int]:
    """Brute force: start at the smallest x, then always the nearest unvisited point (lowest index on ties)."""
    left = list(range(len(coords)))
    cur = min(left, key=lambda j: (coords[j, 0], j))
    out = []
    while left:
        out.append(cur)
        left.remove(cur)
        if left:
            cur = min(left, key=lambda j: (float(((coords[j] - coords[cur]) ** 2).sum()), j))
    return out


def test_map_tour_is_the_greedy_nearest_neighbour_walk(rng: np.random.Generator) -> None:
    coords = rng.uniform(-1, 1, size=(60, 3))
    tour = map_tour(coords)
    assert tour.dtype == np.int64 and sorted(tour) == list(range(60))
    assert tour.tolist() == _greedy_walk(coords)
    assert map_tour(np.array([[0.5, 0, 0], [0.1, 0, 0], [0.9, 0, 0], [0.2, 0, 0]])).tolist() == [1, 3, 0, 2]
    grid = rng.integers(0, 3, size=(80, 3)).astype(np.float64)  # many equal distances and duplicate points
    assert map_tour(grid).tolist() == _greedy_walk(grid)
    assert map_tour(np.zeros((1, 3))).tolist() == [0]


def test_latent_order_matches_a_kd_tree(rng: np.random.Generator) -> None:
    codes = rng.normal(size=(50, 8))
    _, idx = cKDTree(codes).query(codes[7], k=50)
    assert latent_order(codes, 7).tolist() == [int(j) for j in idx if j != 7]


def test_map_state_keys() -> None:
    codes = np.array([[0.0], [1.0], [3.0], [10.0]], np.float32)
    st = MapState(codes, np.array([2, 0, 3, 1]))
    assert st.selected == 2
    st.step(1)
    assert st.selected == 0
    st.step(-2)  # wraps around the tour
    assert st.selected == 1
    st.jump(1)  # nearest of row 1 (code 1.0): row 0 (distance 1), then row 2 (2), then row 3 (9)
    assert (st.selected, st.anchor, st.rank) == (0, 1, 1)
    st.jump(1)
    assert st.selected == 2
    st.jump(1)
    st.jump(1)  # stops at the farthest
    assert (st.selected, st.rank) == (3, 3)
    for _ in range(4):
        st.jump(-1)  # back to the anchor, not past it
    assert (st.selected, st.rank) == (1, 0)
    st.mark("a")
    assert st.line is None
    st.mark("b")
    assert st.line is None  # A == B: no line
    st.step(1)  # ends the jumps
    assert st.anchor is None and st.selected == 2
    st.mark("b")
    assert st.line == (1, 2)
    st.clear()
    assert (st.a, st.b, st.line) == (None, None, None)


def test_map_layout_panels_do_not_overlap() -> None:
    lay = map_layout(5)
    rects = list(lay.frames.values())
    np.testing.assert_array_equal(lay.frames["map"], [[-1, -1], [1, 1]])
    for i, r in enumerate(rects):
        for s in rects[i + 1 :]:
            apart = r[1, 0] <= s[0, 0] or s[1, 0] <= r[0, 0] or r[1, 1] <= s[0, 1] or s[1, 1] <= r[0, 1]
            assert apart, f"{r.tolist()} overlaps {s.tolist()}"

    def inside(center: np.ndarray, scale: float, name: str) -> bool:
        (x0, y0), (x1, y1) = lay.frames[name]
        x, y = center[:2]
        return x0 <= x - scale and x + scale <= x1 and y0 <= y - scale and y + scale <= y1

    assert inside(lay.shape, lay.shape_scale, "shapes") and inside(lay.recon, lay.shape_scale, "shapes")
    assert lay.recon[0] - lay.shape[0] >= 2 * lay.shape_scale
    for steps in (2, 5, 9):
        lay = map_layout(steps)
        gaps = np.diff(lay.steps[:, 0])
        assert lay.steps.shape == (steps, 3) and np.allclose(gaps, gaps[0]) and gaps[0] >= 2 * lay.step_scale
        assert all(inside(c, lay.step_scale, "steps") for c in lay.steps)
    with pytest.raises(ValueError, match="steps >= 2"):
        map_layout(1)


# ---------------------------------------------------------------------------------------------- the scene, no window
def _clouds(geoms: list) -> int:
    import open3d as o3d

    return sum(isinstance(g, o3d.geometry.PointCloud) for g in geoms)


def test_scene_with_the_store_model(store: Path) -> None:
    scene = MapScene(store, steps=4)
    assert scene.loaded is not None  # the model path the store records
    assert scene.coords.shape == (36, 3) and scene.state.selected == int(map_tour(scene.coords)[0])
    assert _clouds(scene.geometries()) == 3  # the extent marker, the true shape, the reconstruction
    scene.state.mark("a")
    scene.state.step(5)
    scene.state.mark("b")
    assert _clouds(scene.geometries()) == 3 + 4  # plus one decoded cloud per interpolation step
    scene.state.jump(1)
    assert scene.where().startswith("latent neighbour #1 of ")
    sub = MapScene(store, max_points=10, seed=3)
    assert len(sub.codes) == 10 and sub.title.startswith("latent map: 10 of 36 codes")


def test_scene_without_a_model_still_shows_map_and_shapes(store: Path, tmp_path: Path) -> None:
    scene = MapScene(_no_model_copy(store, tmp_path / "s"))
    assert scene.loaded is None and scene.no_model == ("needs --model RUN", "(the store records no model)")
    scene.state.mark("a")
    scene.state.step(1)
    scene.state.mark("b")
    assert _clouds(scene.geometries()) == 2  # the extent marker and the true shape: nothing decoded


def test_scene_errors(store: Path, tiny_run: Path, tmp_path: Path) -> None:  # noqa: F811
    items = [{"id": str(i), "source": "x", "class": "", "split": ""} for i in range(2)]
    one = LatentStore(tmp_path / "one", {"latent_dim": 2, "model": {}}, np.zeros((1, 2), np.float32), items[:1])
    with pytest.raises(ValueError, match="holds 1 codes; a map needs at least 2"):
        MapScene(one)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        MapScene(store, steps=1)
    codes = np.array([[0, 0], [1, 1]], np.float32)
    other = LatentStore(tmp_path / "other", {"latent_dim": 2, "model": {"fingerprint": "0" * 64}}, codes, items)
    with pytest.raises(StoreError, match="made by a different model"):
        MapScene(other, model=tiny_run)


def test_cli_map_argument_errors(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":12345")  # never opened: the errors come first
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["--map"])
    assert result.exit_code == 2 and "--map needs --store STORE" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["--store", str(store), "--map", "--query", "x"])
    assert result.exit_code == 2 and "give no --query" in " ".join(result.output.split())


# ---------------------------------------------------------------------------------------------- under Xvfb
def _dark_rows(img: np.ndarray, top: float) -> float:
    """Fraction of non-white pixels in the image below ``top`` (a fraction of its height)."""
    part = img[int(top * img.shape[0]) :]
    return float((part.min(axis=2) < 200).mean())


@pytest.mark.display
def test_map_viewer_keys_under_xvfb(xvfb: str, store: Path, tmp_path: Path) -> None:  # noqa: F811
    viewer = _Viewer(xvfb, ["--store", str(store), "--map"], tmp_path / "shots")
    try:
        start = _pixels(viewer.wait_shot(0))
        assert _not_blank(start) and _not_blank(viewer.screen(tmp_path / "root0.png"))

        viewer.key("Right")
        moved = _pixels(viewer.wait_shot(1))
        assert _differs(start, moved), "Right did not move the selection"

        viewer.key("a")
        viewer.wait_shot(2)
        viewer.key("Right")
        before_b = _pixels(viewer.wait_shot(3))
        viewer.key("b")
        with_line = _pixels(viewer.wait_shot(4))
        assert viewer.wait_shot(4).name == "004_mark_b.png"
        assert _differs(before_b, with_line), "A + Right + B did not draw the line and the interpolation"
        # the interpolation row (the lower third of the window) fills with decoded clouds
        assert _dark_rows(with_line, 0.66) > _dark_rows(before_b, 0.66) + 0.002

        viewer.key("bracketright")
        assert _differs(with_line, _pixels(viewer.wait_shot(5))), "] did not jump to a latent neighbour"

        viewer.key("q", closes=True)
        assert viewer.proc.wait(timeout=15) == 0, viewer.output()
        log = " ".join(viewer.output().split())  # rich wraps the printed help
        assert "latent map of" in log and "A / B mark endpoints" in log  # the key help, printed by the CLI
        assert "interpolation A " in log and "latent neighbour #1 of " in log
    finally:
        viewer.close()
