"""What every window of the GUI viewer shares: the Open3D application, scene widgets in the renders' look, the
status line, exports (window screenshot, current mesh, GIF of the path) and the non-interactive screenshot mode.

Screenshots are of the whole window, panels included: the window's pixels are read back from the X server
(``PIL.ImageGrab`` on the window's on-screen frame), so they show exactly what a user sees. Scene-widget frames for
GIFs are read the same way, cropped to the widget.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viewers.camera import FOV_DEG, MESH_COLOR, SUN_DIR, eye_position, height_colors

__all__ = ["GuiWindow", "GuiUnavailable", "app_instance", "mesh_geometry", "points_geometry", "run_app"]

logger = logging.getLogger(__name__)

_STARTED = False
SETTLE_S = 1.5  # seconds between a state being ready and its screenshot (frames reach the X server)
GIF_SETTLE_S = 0.5  # seconds a GIF frame's state is shown before it is read back
BEAT_S = 0.05  # heartbeat while something runs on its own (GIF, screenshot mode, play, pending results)
IDLE_BEAT_S = 0.5  # heartbeat otherwise
STALL_S = 20.0  # seconds without a tick after which the renderer counts as hung
STALL_EXIT = 3  # the exit code then
LAYOUT_ENV = "SHAPELATENT_VIEW_LAYOUT"  # write widget positions there once the first state is on screen (tests)


class GuiUnavailable(RuntimeError):
    """Open3D's GUI could not start here (no usable renderer); the legacy window may still work."""


def app_instance() -> Any:
    """The initialised ``open3d.visualization.gui.Application`` (initialised once per process).

    Raises:
        GuiUnavailable: Open3D's GUI failed to initialise (no GPU driver, Vulkan or OpenGL to render with).
    """
    global _STARTED
    import open3d.visualization.gui as gui

    app = gui.Application.instance
    if not _STARTED:
        try:
            app.initialize()
        except Exception as exc:  # Open3D raises RuntimeError with the renderer's reason
            raise GuiUnavailable(f"Open3D's GUI could not start: {exc}") from exc
        _STARTED = True
    return app


def run_app() -> None:
    """Run the GUI event loop until every window is closed."""
    app_instance().run()


def mesh_geometry(vertices: np.ndarray, faces: np.ndarray) -> Any:
    """(V, 3), (F, 3) -> an Open3D triangle mesh with vertex normals and its shading baked into vertex colours.

    The colour is the renders' mesh colour lit by their sun (ambient 0.35 + diffuse 0.65, both sides lit), drawn
    with an unlit material: on software Vulkan (Mesa lavapipe) Filament's lit pipeline hung the window in most
    launches once a mesh entered a scene beside the panels, the unlit one never did (measured: see the README).
    """
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.asarray(faces, dtype=np.int32)),
    )
    mesh.compute_vertex_normals()
    n = np.asarray(mesh.vertex_normals)  # (V, 3)
    sun = -np.asarray(SUN_DIR, dtype=np.float64)
    sun /= np.linalg.norm(sun)
    head = eye_position() / np.linalg.norm(eye_position())
    diffuse = 0.45 * np.abs(n @ sun) + 0.25 * np.abs(n @ head)  # (V,): sun plus a weak headlight, both sides
    shade = np.clip(0.35 + diffuse, 0.0, 1.0)[:, None]
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.asarray(MESH_COLOR)[None] * shade)
    return mesh


def points_geometry(points: np.ndarray, colors: np.ndarray | None = None) -> Any:
    """(P, 3) -> an Open3D point cloud coloured by height (as the renders) or by ``colors`` (P, 3) in [0, 1]."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(height_colors(points) if colors is None else np.asarray(colors, float))
    return pcd


class GuiWindow:
    """A window with a status line, export buttons and the screenshot mode; subclasses add widgets.

    Args:
        title: window title.
        width, height: window size in pixels.
        export_dir: where the export buttons write (created on first export).
        screenshot: save the whole window there once :meth:`ready` and exit (the non-interactive mode).
    """

    def __init__(
        self,
        title: str,
        width: int,
        height: int,
        export_dir: str | os.PathLike[str] | None = None,
        screenshot: str | os.PathLike[str] | None = None,
    ) -> None:
        import open3d.visualization.gui as gui

        self.gui = gui
        self.app = app_instance()
        self.window = self.app.create_window(title, width, height)
        self.em = self.window.theme.font_size
        self.export_dir = Path(export_dir) if export_dir is not None else Path.cwd() / "shapelatent_view"
        self.screenshot_path = Path(screenshot) if screenshot is not None else None
        self.status = gui.Label("")
        self.exports: list[Path] = []
        self._ready_since: float | None = None
        self._gif: dict[str, Any] | None = None
        self._closed = False
        self._inbox: deque[Callable[[], None]] = deque()  # results of worker threads, applied on the next tick
        self._layout_written = False
        self.window.set_on_tick_event(self._on_tick)
        self.window.set_on_close(self._on_close)
        self.window.set_on_key(self._on_window_key)
        self._beat_started = False
        self._last_tick = time.perf_counter()

    # ------------------------------------------------------------------------------------------ widgets
    def scene_widget(self) -> Any:
        """A scene widget with the renders' look: white background, sun light, the fixed camera."""
        import open3d.visualization.rendering as rendering

        w = self.gui.SceneWidget()
        w.scene = rendering.Open3DScene(self.window.renderer)
        w.scene.set_background([1.0, 1.0, 1.0, 1.0])
        w.scene.show_axes(False)
        w.scene.show_skybox(False)
        w.scene.view.set_post_processing(False)  # colours as given (no tone mapping): white stays white
        w.scene.set_lighting(rendering.Open3DScene.LightingProfile.NO_SHADOWS, np.asarray(SUN_DIR, np.float32))
        self.frame_camera(w)
        return w

    def frame_camera(self, widget: Any, center: Sequence[float] = (0, 0, 0), radius: float = 1.0) -> None:
        """The renders' camera: front-left-above, Y up, the sphere of ``radius`` around ``center`` in view."""
        import open3d as o3d

        c = np.asarray(center, dtype=np.float64)
        bbox = o3d.geometry.AxisAlignedBoundingBox(c - radius, c + radius)
        widget.setup_camera(FOV_DEG, bbox, c.astype(np.float32))
        widget.look_at(c.astype(np.float32), (c + eye_position() * radius).astype(np.float32), [0.0, 1.0, 0.0])

    def materials(self) -> tuple[Any, Any]:
        """(mesh material, point material)."""
        import open3d.visualization.rendering as rendering

        mesh = rendering.MaterialRecord()
        mesh.shader = "defaultUnlit"  # shading baked into the vertex colours (see mesh_geometry)
        pts = rendering.MaterialRecord()
        pts.shader = "defaultUnlit"
        pts.point_size = 3.0 * self.window.scaling
        return mesh, pts

    def export_panel(self, gif: bool = True, mesh_label: str = "Save mesh", horizontal: bool = False) -> Any:
        """Export buttons: Screenshot, the current mesh (PLY/OBJ/GLB), GIF of the path."""
        gui = self.gui
        box = gui.Horiz(0.25 * self.em) if horizontal else gui.Vert(0.25 * self.em)
        row = gui.Horiz(0.25 * self.em)
        shot = self.screenshot_button = gui.Button("Screenshot")
        shot.set_on_clicked(lambda: self.save_screenshot(self._next_export("png")))
        row.add_child(shot)
        if gif:
            gb = self.gif_button = gui.Button("Save GIF")
            gb.set_on_clicked(lambda: self.start_gif(self._next_export("gif")))
            row.add_child(gb)
        box.add_child(row)
        row2 = row if horizontal else gui.Horiz(0.25 * self.em)
        self.mesh_format = gui.Combobox()
        for f in ("ply", "obj", "glb"):
            self.mesh_format.add_item(f)
        mb = self.mesh_button = gui.Button(mesh_label)
        mb.set_on_clicked(lambda: self.save_mesh(self._next_export(self.mesh_format.selected_text)))
        row2.add_child(mb)
        row2.add_child(self.mesh_format)
        if not horizontal:
            box.add_child(row2)
        return box

    def set_status(self, text: str) -> None:
        self.status.text = text
        logger.info("%s", text)

    # ------------------------------------------------------------------------------------------ exports
    def _next_export(self, ext: str) -> Path:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        i = 0
        while (self.export_dir / f"view_{i:03d}.{ext}").exists():
            i += 1
        return self.export_dir / f"view_{i:03d}.{ext}"

    def grab(self, widget: Any = None) -> Any:
        """The window's pixels (or one widget's) as a PIL image, read back from the X server."""
        from PIL import ImageGrab

        f = self.window.os_frame
        x, y, w, h = f.x, f.y, f.width, f.height
        if widget is not None:
            r = widget.frame
            x, y, w, h = x + r.x, y + r.y, r.width, r.height
        return ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=os.environ.get("DISPLAY") or None)

    def save_screenshot(self, path: str | os.PathLike[str], image: Any = None) -> Path:
        """Save the whole window, panels included (or ``image``, a grab of it), as a PNG (written atomically)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp.png")
        (image if image is not None else self.grab()).save(tmp)
        os.replace(tmp, p)
        self.exports.append(p)
        self.set_status(f"saved {p}")
        return p

    def current_mesh(self) -> Any:
        """The mesh the export button writes: a ``MeshResult`` or None (subclasses)."""
        return None

    def save_mesh(self, path: str | os.PathLike[str]) -> Path | None:
        """Write the current mesh (PLY/OBJ/GLB by the suffix)."""
        from shapelatent.meshing.reconstruct import save_mesh

        res = self.current_mesh()
        if res is None:
            self.set_status("no mesh to save yet (choose a mesher, or wait for the mesh)")
            return None
        p = save_mesh(path, res)
        self.exports.append(p)
        self.set_status(f"saved {p}")
        return p

    # ------------------------------------------------------------------------------------------ GIF of the path
    def gif_frames(self) -> list[Callable[[], None]]:
        """Setters, one per GIF frame (subclasses: the path's steps)."""
        return []

    def gif_widget(self) -> Any:
        """The widget the GIF records (subclasses)."""
        return None

    def start_gif(self, path: str | os.PathLike[str]) -> None:
        """Record the path: set each frame's state, wait until it is drawn, read the widget back; save at the end."""
        frames = self.gif_frames()
        if not frames:
            self.set_status("nothing to record")
            return
        self._gif = {"path": Path(path), "setters": frames, "i": -1, "images": [], "since": None}
        self.set_status(f"recording {len(frames)} frames to {path} ...")

    def _gif_tick(self) -> None:
        g = self._gif
        assert g is not None
        now = time.perf_counter()
        if g["i"] >= 0:
            if not self.ready():
                g["since"] = None
                return
            if g["since"] is None:
                g["since"] = now
            if now - g["since"] < GIF_SETTLE_S:  # let the new geometry reach the screen
                return
            g["images"].append(self.grab(self.gif_widget()).convert("RGB"))
        g["i"] += 1
        g["since"] = None
        if g["i"] < len(g["setters"]):
            g["setters"][g["i"]]()
            return
        self._gif = None
        images = g["images"]
        path: Path = g["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.gif")
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=160, loop=0)
        os.replace(tmp, path)
        self.exports.append(path)
        self.set_status(f"saved {path} ({len(images)} frames)")

    # ------------------------------------------------------------------------------------------ loop
    def ready(self) -> bool:
        """Whether what the window should show is on screen (subclasses: meshes may still be computing)."""
        return True

    def tick(self) -> bool:
        """Per-frame work of subclasses (play); True asks for a redraw."""
        return False

    def on_main_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the GUI thread at its next tick (worker threads hand their results over this way).

        Scenes are changed only in tick events: changing a scene inside a callback posted from another thread
        stalled the next frame on software Vulkan (llvmpipe) in about half of the runs. The posted callback only
        asks for a redraw, which wakes an idle loop so that the tick comes.
        """
        self._inbox.append(fn)
        self._wake()

    def _wake(self) -> None:
        if not self._closed:
            try:
                self.app.post_to_main_thread(self.window, self.window.post_redraw)
            except Exception:  # the window is gone
                pass

    def _on_tick(self) -> bool:
        self._last_tick = time.perf_counter()
        if not self._beat_started:
            self._beat_started = True
            threading.Thread(target=self._heartbeat, name="shapelatent-gui-beat", daemon=True).start()
        redraw = bool(self._inbox)
        while self._inbox:
            self._inbox.popleft()()
        redraw = self.tick() or redraw
        now = time.perf_counter()
        if not self.ready():
            self._ready_since = None
        elif self._ready_since is None:
            self._ready_since = now
        settled = self._ready_since is not None and now - self._ready_since > SETTLE_S
        if settled:
            self._write_layout()
        if self._gif is not None:
            self._gif_tick()
            redraw = True
        elif self.screenshot_path is not None and not self._closed:
            if settled:  # frames after the state is ready: it is on screen
                image = self.grab()
                if max(image.convert("L").getextrema()) < 8 and now - (self._ready_since or now) < 60:
                    self._ready_since = now - SETTLE_S / 2  # nothing presented yet (all black): look again soon
                else:
                    self.save_screenshot(self.screenshot_path, image)
                    self.close()
            redraw = True
        return redraw

    def busy(self) -> bool:
        """Whether the window has work that runs without user input (subclasses add play)."""
        layout_pending = bool(os.environ.get(LAYOUT_ENV)) and not self._layout_written
        return self._gif is not None or self.screenshot_path is not None or layout_pending

    def _heartbeat(self) -> None:
        """Keeps the loop ticking and watches the renderer, from the first tick on.

        Open3D sends tick events only while the window is busy; waking it (see :meth:`on_main_thread`) every
        ``BEAT_S`` while something runs on its own (GIF, screenshot mode, play) and every ``IDLE_BEAT_S`` otherwise
        keeps the GIF recorder, the screenshot mode and play going. If no tick comes for ``STALL_S`` seconds, the
        renderer has hung: on software Vulkan (Mesa's lavapipe, e.g. under Xvfb) Filament sometimes never returns
        from acquiring the next frame after a mesh enters the scene (measured here: roughly one launch in three).
        The process then says so on stderr and exits with code 3 instead of hanging.
        """
        last_idle = 0.0
        while not self._closed:
            time.sleep(BEAT_S)
            now = time.perf_counter()
            if now - self._last_tick > STALL_S:
                msg = (
                    f"the 3-D renderer stopped drawing ({STALL_S:.0f} s without a frame): a known hang of Open3D's "
                    "Filament on software Vulkan (Mesa lavapipe); run the command again, or use `shapelatent view "
                    "--legacy` or `shapelatent render`."
                )
                print(f"shapelatent view: {msg}", file=sys.stderr, flush=True)
                os._exit(STALL_EXIT)
            if self.busy() or now - last_idle > IDLE_BEAT_S:
                last_idle = now
                self._wake()

    def _on_window_key(self, event: Any) -> bool:
        """Escape or Q closes the window (unless a text field has the focus)."""
        gui = self.gui
        if event.type == gui.KeyEvent.Type.DOWN and event.key in (gui.KeyName.ESCAPE, gui.KeyName.Q):
            self.close()
            return True
        return False

    def layout_info(self) -> dict[str, Any]:
        """Where things are on the screen, for scripted clicks (tests): ``{name: [x, y, w, h]}`` (subclasses add)."""
        f = self.window.os_frame
        return {"window": [f.x, f.y, f.width, f.height]}

    def widget_rect(self, widget: Any) -> list[int]:
        """A widget's frame in screen pixels: [x, y, w, h]."""
        f, r = self.window.os_frame, widget.frame
        return [f.x + r.x, f.y + r.y, r.width, r.height]

    def _write_layout(self) -> None:
        import json

        path = os.environ.get(LAYOUT_ENV)
        if not path or self._layout_written:
            return
        self._layout_written = True
        tmp = Path(path).with_name(f".{Path(path).name}.tmp")
        tmp.write_text(json.dumps(self.layout_info()))
        os.replace(tmp, path)

    def _on_close(self) -> bool:
        self._closed = True
        self.on_close()
        return True

    def on_close(self) -> None:
        """Subclasses: stop workers."""

    def close(self) -> None:
        """Close the window after the current callback (closing inside a tick callback crashes Open3D 0.20)."""
        self._closed = True
        self.app.post_to_main_thread(self.window, self.window.close)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` every 10 ms for up to ``timeout`` seconds (tests and benchmarks)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
