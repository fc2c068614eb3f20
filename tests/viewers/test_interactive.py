"""The interactive viewer: loading and errors without a display; the real window under Xvfb (marker ``display``).

The display tests start their own Xvfb, run ``python -m shapelatent.cli.main view`` in a subprocess, drive it with
``xdotool`` and take screenshots with ImageMagick's ``import`` and with the viewer's own capture. They skip only
when Xvfb, xdotool or import is not installed (``apt-get install xvfb xdotool imagemagick``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trimesh
import typer
from PIL import Image
from typer.testing import CliRunner

from shapelatent.cli.view import register
from shapelatent.io import write_points_ply
from shapelatent.latent.store import LatentStore
from tests.viewers.conftest import xvfb_display
from viewers import interactive

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("Xvfb", "xdotool", "import")


def _write_interpolation(root: Path, steps: int = 3) -> Path:
    """An interpolation-like folder: a box growing into a taller box, points with normals plus PLY meshes."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(steps):
        t = i / (steps - 1)
        mesh = trimesh.creation.box(extents=(0.8, 0.6 + 0.8 * t, 0.5 + 0.3 * (1 - t)))
        mesh.apply_translation((0.3 * t, 0.0, 0.0))
        pts, face_idx = trimesh.sample.sample_surface(mesh, 512, seed=i)
        write_points_ply(root / f"step_{i:02d}_points.ply", pts.astype(np.float32), mesh.face_normals[face_idx])
        mesh.export(root / f"step_{i:02d}_mesh.ply")
        rows.append(
            {"points": f"step_{i:02d}_points.ply", "mesh": f"step_{i:02d}_mesh.ply", "t": t, "step": i, "segment": 0}
        )
    manifest = {"kind": "interpolation", "shapes": [{"label": "boxA"}, {"label": "boxB"}], "steps": rows}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


# ---------------------------------------------------------------------------------------------- no display needed
def test_load_interpolation_labels_and_colours(tmp_path: Path) -> None:
    panels = interactive.load_interpolation(_write_interpolation(tmp_path / "interp"))
    assert [p.label for p in panels] == [
        "step 1/3 t=0.00 (boxA ... boxB)",
        "step 2/3 t=0.50 (boxA ... boxB)",
        "step 3/3 t=1.00 (boxA ... boxB)",
    ]
    assert all(p.has_mesh and p.points.shape == (512, 3) for p in panels)
    assert panels[0].color != panels[-1].color  # coloured by t


def test_load_interpolation_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.json: no manifest"):
        interactive.load_interpolation(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"steps": []}))
    with pytest.raises(ValueError, match="'steps' must be a non-empty list"):
        interactive.load_interpolation(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"steps": [{"points": "missing.ply"}]}))
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        interactive.load_interpolation(tmp_path)


def test_view_files_rejects_unknown_type(tmp_path: Path) -> None:
    bad = tmp_path / "shape.xyzw"
    bad.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="cannot show files of type '.xyzw'"):
        interactive.view_files([bad])


def test_neighbor_panels_skip_items_without_source(tmp_path: Path, box_mesh: trimesh.Trimesh) -> None:
    box = tmp_path / "box.obj"
    box_mesh.export(box)
    codes = np.array([[0, 0], [1, 0], [0, 3], [5, 5]], np.float32)
    items = [
        {"id": "q", "source": str(box), "class": "box", "split": "test"},
        {"id": "near", "source": str(box), "class": "box", "split": "train"},
        {"id": "gone", "source": str(tmp_path / "deleted.obj"), "class": "stool", "split": "train"},
        {"id": "chair", "source": "procedural:123", "class": "stool", "split": "train"},
    ]
    store = LatentStore(tmp_path / "store", {"latent_dim": 2}, codes, items)
    panels = interactive.neighbor_panels(store, "q", k=2)
    assert [p.label for p in panels] == ["query q (box)", "#1 near (box) d=1.000"]
    assert panels[0].points.shape == (1024, 3)
    # procedural sources are regenerated from their seed and family
    panels = interactive.neighbor_panels(store, "chair", k=1)
    assert panels[0].label == "query chair (stool)" and panels[0].points.shape == (1024, 3)


def test_cli_without_display_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, [str(_write_interpolation(tmp_path / "interp"))])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "no display" in out and "xvfb-run" in out and "shapelatent render" in out


# ---------------------------------------------------------------------------------------------- under Xvfb
@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    with xvfb_display(TOOLS, "xvfb xdotool imagemagick") as display:
        yield display


class _Viewer:
    """A viewer subprocess on the Xvfb display, driven with xdotool."""

    def __init__(self, display: str, args: list[str], shots: Path) -> None:
        self.env = {**os.environ, "DISPLAY": display, "PYTHONPATH": str(REPO)}
        self.env.pop("WAYLAND_DISPLAY", None)
        self.shots = shots
        cmd = [sys.executable, "-m", "shapelatent.cli.main", "view", "--legacy", *args, "--screenshot-dir", str(shots)]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--name", "shapelatent view"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.window = found.stdout.split()[0]
        self.wait_shot(0)

    def wait_shot(self, n: int, timeout: float = 15) -> Path:
        """The viewer's n-th capture, once it is completely written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = sorted(self.shots.glob(f"{n:03d}_*.png"))
            if hits:
                try:
                    with Image.open(hits[0]) as im:
                        im.load()
                    return hits[0]
                except (OSError, SyntaxError):  # PIL raises SyntaxError on a truncated PNG chunk
                    pass  # still being written
            if self.proc.poll() is not None:
                pytest.fail(f"the viewer exited early: {self.output()}")
            time.sleep(0.1)
        pytest.fail(f"no screenshot {n:03d}_*.png in {self.shots} after {timeout} s: {os.listdir(self.shots)}")

    def key(self, key: str, closes: bool = False) -> None:
        """Press a key; a key that ``closes`` the window may leave xdotool a gone window for the key release."""
        done = subprocess.run(
            ["xdotool", "key", "--window", self.window, key], env=self.env, capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0 and not (closes and "BadWindow" in done.stderr):
            pytest.fail(f"xdotool key {key} failed ({done.stderr.strip()}); viewer: {self.output()}")

    def screen(self, path: Path) -> np.ndarray:
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=20)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), np.float32)

    def output(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32)


def _not_blank(img: np.ndarray) -> bool:
    return img.std() > 5 and (img.min(axis=2) < 200).mean() > 0.005  # some non-white content


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and (np.abs(a - b).max(axis=2) > 30).mean() > 0.001


@pytest.mark.display
def test_interpolation_viewer_keys_under_xvfb(xvfb: str, tmp_path: Path) -> None:
    folder = _write_interpolation(tmp_path / "interp")
    viewer = _Viewer(xvfb, [str(folder)], tmp_path / "shots")
    try:
        start = _pixels(viewer.wait_shot(0))
        root0 = viewer.screen(tmp_path / "root0.png")
        assert _not_blank(start) and _not_blank(root0)

        viewer.key("Right")
        after_next = _pixels(viewer.wait_shot(1))
        assert viewer.wait_shot(1).name == "001_next.png"
        assert _differs(start, after_next), "Right did not change the picture (next step)"
        root1 = viewer.screen(tmp_path / "root1.png")
        assert _differs(root0, root1)

        viewer.key("m")
        after_mode = _pixels(viewer.wait_shot(2))
        assert _differs(after_next, after_mode), "M did not change the picture (points/mesh toggle)"

        viewer.key("q", closes=True)
        assert viewer.proc.wait(timeout=15) == 0, viewer.output()
        log = viewer.output()
        assert "step 2/3 t=0.50 (boxA ... boxB) [both]" in log
        assert "step 2/3 t=0.50 (boxA ... boxB) [points]" in log
    finally:
        viewer.close()


@pytest.mark.display
def test_files_viewer_under_xvfb(xvfb: str, tmp_path: Path, real_mesh_paths: list[Path]) -> None:
    cloud = tmp_path / "cloud.ply"
    pts = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    write_points_ply(cloud, pts, None)
    viewer = _Viewer(xvfb, [str(real_mesh_paths[0]), str(cloud)], tmp_path / "shots")
    try:
        assert _not_blank(_pixels(viewer.wait_shot(0)))
        viewer.key("Escape", closes=True)
        assert viewer.proc.wait(timeout=15) == 0, viewer.output()
    finally:
        viewer.close()
