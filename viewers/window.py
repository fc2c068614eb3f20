"""The Open3D window every interactive viewer uses, and what it needs: the display check, text labels, colours.

A :class:`Window` is a legacy ``open3d.visualization.VisualizerWithKeyCallback`` (plain OpenGL through GLFW), which
runs on a desktop and under ``xvfb-run``. Labels are flat text meshes in the scene (the legacy window cannot change
its title after it opens). With ``screenshot_dir`` set (or the environment variable ``SHAPELATENT_VIEW_SCREENSHOTS``)
the window saves a PNG when it opens and after every key action: ``000_start.png``, ``001_next.png``, ...
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.errors import ShapelatentError

__all__ = [
    "KEY_ESCAPE",
    "KEY_Q",
    "MODES",
    "NO_DISPLAY_MESSAGE",
    "SCREENSHOT_ENV",
    "TEXT_HEIGHT",
    "NoDisplayError",
    "Window",
    "colormap",
    "display_available",
    "text_mesh",
]

logger = logging.getLogger(__name__)

SCREENSHOT_ENV = "SHAPELATENT_VIEW_SCREENSHOTS"
MODES = ("both", "points", "mesh")  # what a window shows of a shape with a mesh; M cycles them
KEY_Q, KEY_ESCAPE = 81, 256  # GLFW key codes (as register_key_callback expects them) that close every window
TEXT_HEIGHT = 0.06  # scene units per text line; shapes are normalised to the unit sphere


class NoDisplayError(ShapelatentError, RuntimeError):
    """No display server to open a window on."""


NO_DISPLAY_MESSAGE = (
    "no display to open the viewer window on (DISPLAY is not set); run `shapelatent view` on a desktop or under "
    "`xvfb-run -s '-screen 0 1280x800x24' shapelatent view ...`; for pictures without a display use "
    "`shapelatent render`."
)


def display_available() -> bool:
    """Whether a window can be opened: always on macOS/Windows, on Linux when DISPLAY or WAYLAND_DISPLAY is set."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def colormap(t: float) -> tuple[float, float, float]:
    """The viewers' colour for ``t`` in [0, 1] (viridis; clipped), as RGB in [0, 1]."""
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["viridis"](float(np.clip(t, 0.0, 1.0)))
    return (float(r), float(g), float(b))


def text_mesh(text: str, center: np.ndarray) -> Any:
    """Flat dark text in the xy plane, centred on ``center`` (x) and hanging below it (y)."""
    import open3d as o3d

    mesh = o3d.t.geometry.TriangleMesh.create_text(text, depth=0.0).to_legacy()
    v = np.asarray(mesh.vertices)
    if len(v) == 0:
        return mesh
    s = TEXT_HEIGHT / 14.0  # create_text draws glyphs about 14 units tall
    v = (v - [(v[:, 0].min() + v[:, 0].max()) / 2, v[:, 1].max(), 0.0]) * s + center
    mesh.vertices = o3d.utility.Vector3dVector(v)
    mesh.compute_vertex_normals()
    mesh.paint_uniform_color([0.1, 0.1, 0.1])
    return mesh


class Window:
    """One legacy Open3D window showing a list of panels, several at a time or one at a time."""

    def __init__(self, title: str, screenshot_dir: str | os.PathLike[str] | None, width: int, height: int) -> None:
        import open3d as o3d

        if not display_available():
            raise NoDisplayError(NO_DISPLAY_MESSAGE)
        self.vis = o3d.visualization.VisualizerWithKeyCallback()
        if not self.vis.create_window(window_name=title, width=width, height=height):
            raise NoDisplayError(
                f"Open3D could not open a window on DISPLAY={os.environ.get('DISPLAY')!r}; "
                + NO_DISPLAY_MESSAGE.split("; ", 1)[1]
            )
        opt = self.vis.get_render_option()
        opt.background_color = np.array([1.0, 1.0, 1.0])
        opt.point_size = 4.0
        opt.mesh_show_back_face = True
        shots = screenshot_dir or os.environ.get(SCREENSHOT_ENV)
        self.shot_dir = Path(shots) if shots else None
        if self.shot_dir is not None:
            self.shot_dir.mkdir(parents=True, exist_ok=True)
        self.shots = 0
        self.mode = "both"
        self.first = True

    def show(self, geometries: list[Any]) -> None:
        """Replace what is drawn; the first call frames the camera on it (later ones keep the camera)."""
        self.vis.clear_geometries()
        for g in geometries:
            self.vis.add_geometry(g, reset_bounding_box=self.first)
        if self.first:
            ctr = self.vis.get_view_control()
            ctr.set_front([0.25, 0.12, 1.0])
            ctr.set_up([0.0, 1.0, 0.0])
            ctr.set_zoom(0.8)
            self.first = False

    def capture(self, action: str) -> None:
        """Save the window as ``NNN_<action>.png`` in the screenshot folder (if there is one)."""
        if self.shot_dir is None:
            return
        path = self.shot_dir / f"{self.shots:03d}_{action}.png"
        tmp = self.shot_dir / f".{path.stem}.tmp.png"  # written whole, then renamed: readers never see half a PNG
        self.vis.capture_screen_image(tmp, do_render=True)
        os.replace(tmp, path)
        self.shots += 1
        logger.debug("saved %s", path)

    def on_key(self, keys: Sequence[int], action: str, fn: Any) -> None:
        """Call ``fn()`` on any of the GLFW ``keys``, then capture a screenshot named after ``action``."""

        def callback(vis: Any) -> bool:
            fn()
            if action != "quit":
                self.capture(action)
            return True

        for key in keys:
            self.vis.register_key_callback(key, callback)

    def run(self) -> None:
        """Show the window until Q or Escape (a ``start`` screenshot first), then close it."""
        self.on_key([KEY_Q, KEY_ESCAPE], "quit", self.vis.close)
        for _ in range(2):  # draw once before the first capture
            self.vis.poll_events()
            self.vis.update_renderer()
        self.capture("start")
        self.vis.run()
        self.vis.destroy_window()

    def next_mode(self) -> None:
        """Cycle what is shown of shapes with a mesh: both, points, mesh."""
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        logger.info("display: %s", self.mode)
