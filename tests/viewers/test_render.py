"""Headless renders with Open3D's OffscreenRenderer: real pixels, GIFs, interpolation folders, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
import typer
from PIL import Image
from typer.testing import CliRunner

from shapelatent.io import write_points_ply
from viewers import backends
from viewers import render as R

SIZE = (160, 160)


@pytest.fixture(scope="module", autouse=True)
def offscreen() -> None:
    ok, reason = R.offscreen_available()
    if not ok:
        pytest.skip(f"{reason} (Debian packages: {R.DEBIAN_PACKAGES})")


def _box() -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=(1.2, 0.8, 0.6))
    return box


def _sphere_points(n: int = 512) -> np.ndarray:
    rng = np.random.default_rng(0)
    p = rng.normal(size=(n, 3))
    return (0.8 * p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)  # (P, 3)


def _coverage(img: np.ndarray) -> float:
    return float((np.abs(img.astype(int) - 255).sum(-1) > 30).mean())


def test_mesh_and_points_render_real_pixels() -> None:
    images = R.render_images([_box(), _sphere_points()], size=SIZE)
    assert len(images) == 2
    for img in images:
        assert img.shape == (SIZE[1], SIZE[0], 3) and img.dtype == np.uint8
        assert 0.03 <= _coverage(img) <= 0.80
        assert (img[0, 0] == 255).all()  # white background in the corner: nothing clipped there
    mesh_img = images[0][_coverage_mask(images[0])]
    assert mesh_img.std(axis=0).max() > 5  # lit: faces facing different ways get different shades


def _coverage_mask(img: np.ndarray) -> np.ndarray:
    return np.abs(img.astype(int) - 255).sum(-1) > 30


def test_different_shapes_differ_and_same_shape_repeats() -> None:
    cyl = trimesh.creation.cylinder(radius=0.3, height=1.6)
    a, b, a2 = R.render_images([_box(), cyl, _box()], size=SIZE)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5
    assert np.abs(a.astype(int) - a2.astype(int)).mean() < 1  # fixed camera and lights: same input, same image


def test_unnormalised_shape_is_normalised() -> None:
    box = _box()
    box.apply_scale(1.0 / np.linalg.norm(box.vertices, axis=1).max())  # exactly on the unit sphere
    far = box.copy()
    far.apply_scale(50.0)
    far.apply_translation([100.0, -20.0, 5.0])
    a, b = R.render_images([box, far], size=SIZE)
    assert 0.03 <= _coverage(b) <= 0.80
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_shapes_of_the_unit_frame_keep_their_size_and_place() -> None:
    """An interpolation step whose box is off-centre (a part vanished) is not rescaled: no jump between panels."""
    from viewers.shapes import prepare

    rng = np.random.default_rng(1)
    full = rng.uniform(-0.5, 0.5, size=(400, 3)) * [0.8, 1.6, 0.8]  # radius < 1, box centred
    top = full[full[:, 1] > 0.1]  # its lower part gone: box centre moves up by ~0.3
    for pts in (full, top):
        np.testing.assert_array_equal(prepare(pts, 0, "auto").vertices, pts)


def test_render_views_writes_titled_sheet(tmp_path: Path) -> None:
    items = [_box(), (np.asarray(_box().vertices), np.asarray(_box().faces)), _sphere_points()]
    out = R.render_views(items, tmp_path / "sheet.png", titles=["a", "b", "c"], ncols=2, size=SIZE)
    img = Image.open(out)
    assert img.width == 2 * SIZE[0] and img.height > 2 * SIZE[1]
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temporary left behind


def test_render_strip_draws_points_and_mesh_files_in_one_row(tmp_path: Path) -> None:
    # the drawer the library's jobs are given (interpolate/sample/arithmetic strips, evaluate's samples.png)
    mesh_file = tmp_path / "box_mesh.ply"
    _box().export(mesh_file)
    plain = R.render_strip([_sphere_points(), mesh_file], ["points", "mesh"], tmp_path / "plain.png", size=SIZE)
    titled = R.render_strip([_sphere_points(), mesh_file], ["points", "mesh"], tmp_path / "t.png", "a title", size=SIZE)
    a, b = Image.open(plain), Image.open(titled)
    assert a.width == b.width == 2 * SIZE[0] and SIZE[1] < a.height < b.height  # one row; the title adds a band
    cells = np.asarray(a.convert("RGB"))[-SIZE[1] :]
    left, right = cells[:, : SIZE[0]], cells[:, SIZE[0] :]
    assert 0.03 <= _coverage(left) <= 0.80 and 0.03 <= _coverage(right) <= 0.80
    assert np.abs(left.astype(int) - right.astype(int)).mean() > 5  # points and a mesh look different


def test_points_mode_samples_meshes() -> None:
    (img,) = R.render_images([_box()], size=SIZE, mode="points")
    assert 0.03 <= _coverage(img) <= 0.80


def test_render_gif_frames(tmp_path: Path) -> None:
    frames = [_box().apply_scale(s) for s in (0.6, 0.8, 1.0, 1.2)]
    out = R.render_gif(frames, tmp_path / "a.gif", fps=5, size=SIZE)
    gif = Image.open(out)
    assert gif.n_frames == 4 and gif.size == SIZE
    assert gif.info.get("loop") == 0 and gif.info.get("duration") == 200


def _interpolation_folder(root: Path, meshes: bool) -> Path:
    root.mkdir()
    rows = []
    for i in range(3):
        box = trimesh.creation.box(extents=(0.8 + 0.3 * i, 0.8, 0.6))
        pts = trimesh.sample.sample_surface(box, 512, seed=i)[0]
        write_points_ply(root / f"step_{i:02d}.ply", pts)
        row = {"points": f"step_{i:02d}.ply", "step": i, "t": i / 2}
        if meshes:
            box.export(root / f"step_{i:02d}_mesh.ply")
            row["mesh"] = f"step_{i:02d}_mesh.ply"
        rows.append(row)
    (root / "manifest.json").write_text(json.dumps({"kind": "interpolation", "steps": rows}))
    return root


@pytest.mark.parametrize("meshes", [True, False])
def test_render_folder(tmp_path: Path, meshes: bool) -> None:
    folder = _interpolation_folder(tmp_path / "interp", meshes)
    result = R.render_folder(folder, size=SIZE)
    assert result.mode == ("mesh" if meshes else "points")
    assert result.sheet == folder / "render.png" and result.sheet.is_file()
    assert Image.open(result.gif).n_frames == 3
    sheet = np.asarray(Image.open(result.sheet).convert("RGB"))
    assert 0.03 <= _coverage(sheet) <= 0.80


def test_cli_render_folder_and_files(tmp_path: Path) -> None:
    from shapelatent.cli.render import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # keep `render` a subcommand, as in the main CLI
        pass

    folder = _interpolation_folder(tmp_path / "interp", meshes=True)
    runner = CliRunner()
    res = runner.invoke(
        app, ["render", str(folder), "--out", str(tmp_path / "s.png"), "--gif", str(tmp_path / "s.gif"), "--size", "96"]
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "s.gif").n_frames == 3
    files = [str(folder / "step_00_mesh.ply"), str(folder / "step_01.ply")]
    res = runner.invoke(app, ["render", *files, "--out", str(tmp_path / "f.png"), "--size", "96", "--ncols", "1"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "f.png").width == 96
    res = runner.invoke(app, ["render", str(tmp_path / "nope.ply"), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "nope.ply" in res.output
    res = runner.invoke(app, ["render", str(folder), "--out", str(tmp_path / "x.png"), "--mode", "wire"])
    assert res.exit_code == 2 and "mode must be one of" in res.output
    res = runner.invoke(app, ["render", *files, "--out", str(tmp_path / "x.png"), "--renderer", "vulkan"])
    assert res.exit_code == 2 and "renderer must be one of" in res.output


def test_cli_render_passes_the_renderer_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--renderer`` reaches both paths (files and an interpolation folder); a named renderer that cannot start is
    an error naming the packages, never the other backend."""
    from shapelatent.cli.render import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        pass

    seen: list[str] = []

    def fake_images(items, *, size, mode, renderer):
        seen.append(renderer)
        return [np.full((size[1], size[0], 3), 255, np.uint8) for _ in items]

    def fake_folder(folder, **kw):
        seen.append(kw["renderer"])
        return R.FolderRenders(Path(kw["out"]), None, "points")

    monkeypatch.setattr(R, "render_images", fake_images)
    monkeypatch.setattr(R, "render_folder", fake_folder)
    folder = _interpolation_folder(tmp_path / "interp", meshes=False)
    runner = CliRunner()
    res = runner.invoke(app, ["render", str(folder / "step_00.ply"), "--out", str(tmp_path / "a.png")])
    assert res.exit_code == 0, res.output
    for name in ("offscreen", "legacy"):
        res = runner.invoke(
            app, ["render", str(folder / "step_00.ply"), "--out", str(tmp_path / "b.png"), "--renderer", name]
        )
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["render", str(folder), "--out", str(tmp_path / "c.png"), "--renderer", "offscreen"])
    assert res.exit_code == 0, res.output
    assert seen == ["auto", "offscreen", "legacy", "offscreen"]
    monkeypatch.undo()
    monkeypatch.setattr(backends, "legacy_available", lambda: (False, "install `apt-get install libegl1 libgl1`"))
    res = runner.invoke(
        app, ["render", str(folder / "step_00.ply"), "--out", str(tmp_path / "d.png"), "--renderer", "legacy"]
    )
    assert res.exit_code != 0 and "libegl1 libgl1" in res.output
    assert not (tmp_path / "d.png").exists()


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        R.render_images([_box()], mode="wire")
    with pytest.raises(ValueError, match="renderer must be one of"):
        R.render_images([_box()], renderer="vulkan")
    with pytest.raises(ValueError, match=r"item 1: points must have shape \(P, 3\)"):
        R.render_images([_box(), np.zeros((4, 2))])
    with pytest.raises(ValueError, match="item 0: mode='mesh' but this item is a point cloud"):
        R.render_images([_sphere_points()], mode="mesh")
    with pytest.raises(FileNotFoundError, match="missing.obj"):
        R.render_images([tmp_path / "missing.obj"])
    with pytest.raises(ValueError, match="titles must have one entry per item"):
        R.render_views([_box()], tmp_path / "x.png", titles=["a", "b"])
    with pytest.raises(ValueError, match="nothing to render"):
        R.render_images([])
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        R.render_folder(tmp_path)
    folder = _interpolation_folder(tmp_path / "interp", meshes=False)
    with pytest.raises(ValueError, match=r"mode='mesh' but steps \[0, 1, 2\] have no mesh"):
        R.render_folder(folder, mode="mesh")


def test_offscreen_renderer_draws_points_like_the_default() -> None:
    # Filament's OffscreenRenderer is kept by name; on software Vulkan it can stall on mesh frames, so the default
    # (auto = legacy where it starts) is what the other tests use. Points never stalled. One process cannot hold both
    # renderers' GL contexts, so each renders in its own subprocess. Where the legacy window cannot start without a
    # display (the pip wheels of Open3D < 0.20), both render on a virtual display.
    import contextlib
    import os
    import subprocess
    import sys

    from tests.viewers.conftest import xvfb_display

    code = (
        "import numpy as np, sys; from viewers.render import render_images; "
        "p = np.random.default_rng(0).normal(size=(800, 3)); p /= np.linalg.norm(p, axis=1, keepdims=True); "
        "img = render_images([p], size=(96, 96), renderer=sys.argv[1])[0]; print((img.min(axis=2) < 235).mean())"
    )
    cover = {}
    headless_legacy = R.legacy_available()[0]
    display = contextlib.nullcontext(None) if headless_legacy else xvfb_display(("Xvfb",), "xvfb")
    with display as d:
        env = {**os.environ, **({"DISPLAY": d} if d else {})}
        for name in ("offscreen", "legacy"):
            done = subprocess.run(
                [sys.executable, "-c", code, name], capture_output=True, text=True, timeout=240, env=env
            )
            assert done.returncode == 0, done.stderr[-2000:]
            cover[name] = float(done.stdout.strip().splitlines()[-1])
    assert 0.03 < cover["offscreen"] < 0.8 and 0.03 < cover["legacy"] < 0.8
    assert abs(cover["offscreen"] - cover["legacy"]) < 0.25  # the same camera framing


def test_unavailable_legacy_renderer_names_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "legacy_available", lambda: (False, "install `apt-get install libegl1 libgl1`"))
    with pytest.raises(R.RendererUnavailableError, match="libegl1 libgl1"):
        R.render_images([_box()], renderer="legacy")  # by name: never replaced by the other backend
    monkeypatch.setattr(backends, "offscreen_available", lambda: (False, "no Vulkan: install libvulkan1"))
    with pytest.raises(R.RendererUnavailableError, match=r"libegl1 libgl1.*Nor can the offscreen.*libvulkan1"):
        R.render_images([_box()])  # auto: both reasons


def test_auto_takes_the_offscreen_renderer_where_legacy_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "legacy_available", lambda: (False, "no display"))
    monkeypatch.setattr(backends, "offscreen_available", lambda: (True, ""))
    assert backends.resolve_renderer("auto") == "offscreen"
    monkeypatch.setattr(backends, "legacy_available", lambda: (True, ""))
    assert backends.resolve_renderer("auto") == "legacy"


def test_unavailable_renderer_names_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        backends, "offscreen_available", lambda: (False, "no Vulkan: install libvulkan1 mesa-vulkan-drivers")
    )
    with pytest.raises(R.RendererUnavailableError, match="libvulkan1 mesa-vulkan-drivers"):
        R.render_images([_box()], renderer="offscreen")
