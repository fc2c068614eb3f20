"""The interpolation window: a slider over t that decodes any in-between shape, with its panel.

Layout: the 3-D scene on the left (the current shape as mesh, points or both, in the renders' look), a panel on the
right: the endpoints and t, the slider, play/pause and the step count, linear/slerp, the mesher, what is shown,
the nearest store neighbours of the current code (with a store), endpoints from the store (a searchable list) or
from files, and the exports. Moving the slider decodes the points at once on the GUI thread (a few ms) and asks a
worker thread for the mesh (:class:`viewers.gui.worker.LatestWorker`, newest request wins); the mesh replaces the
points when it is ready, and a small cache makes revisited t immediate.

Timings of the last slider move are kept in :attr:`InterpolationWindow.latency` (seconds from the move to the
points being in the scene, ``mesh_s`` to the first mesh (the coarse implicit preview when the session has one, else
the full mesh) and ``full_mesh_s`` to the full-resolution mesh) for ``bench/viewer_latency.py``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from viewers.gui.base import GuiWindow, mesh_geometry, points_geometry
from viewers.gui.session import MESHERS, METHODS, InterpSession
from viewers.gui.worker import LatestWorker, MeshProcess

__all__ = ["DISPLAYS", "InterpolationWindow"]

logger = logging.getLogger(__name__)

DISPLAYS = ("mesh + points", "mesh", "points")
_LIST_MAX = 200  # store ids listed at once in the chooser (the search narrows them)


class InterpolationWindow(GuiWindow):
    """The interpolation window for a :class:`viewers.gui.session.InterpSession`.

    Args:
        session: the path and its model.
        t: the starting t in [0, 1].
        steps: shapes per segment for play and the GIF (>= 2).
        display: one of :data:`DISPLAYS`.
        width, height, export_dir, screenshot: see :class:`viewers.gui.base.GuiWindow`.
    """

    def __init__(
        self,
        session: InterpSession,
        *,
        t: float = 0.0,
        steps: int = 8,
        display: str = "mesh + points",
        width: int = 1280,
        height: int = 800,
        export_dir: str | os.PathLike[str] | None = None,
        screenshot: str | os.PathLike[str] | None = None,
    ) -> None:
        if display not in DISPLAYS:
            raise ValueError(f"display must be one of {DISPLAYS}; got {display!r}")
        super().__init__("shapelatent view - interpolation", width, height, export_dir, screenshot)
        gui = self.gui
        self.session = session
        self.display = display
        self.t = float(np.clip(t, 0.0, 1.0))
        self.playing = False
        self._last_play = 0.0
        self._mesh: Any = None  # MeshResult in the scene
        self._mesh_key: Any = None
        self._mesh_is_preview = False
        self._normals: Any = None
        self._failed_key: Any = None
        self._requested_at = 0.0
        self.latency: dict[str, float] = {}
        self.worker = LatestWorker(self._deliver)
        if session.mesh_process is None:
            session.mesh_process = MeshProcess(session.model_path)
        self.mat_mesh, self.mat_pts = self.materials()

        self.scene = self.scene_widget()
        self.window.add_child(self.scene)
        em = self.em
        panel = gui.Vert(0.4 * em, gui.Margins(0.6 * em, 0.6 * em, 0.6 * em, 0.6 * em))
        self.panel = panel
        self.title = gui.Label("")
        panel.add_child(self.title)
        self.t_label = gui.Label("")
        panel.add_child(self.t_label)
        self.slider = gui.Slider(gui.Slider.DOUBLE)
        self.slider.set_limits(0.0, 1.0)
        self.slider.set_on_value_changed(self.set_t)
        panel.add_child(self.slider)

        row = gui.Horiz(0.4 * em)
        self.play_button = gui.Button("Play")
        self.play_button.set_on_clicked(self.toggle_play)
        row.add_child(self.play_button)
        row.add_child(gui.Label("steps"))
        self.steps_edit = gui.NumberEdit(gui.NumberEdit.INT)
        self.steps_edit.set_limits(2, 64)
        self.steps_edit.int_value = int(steps)
        row.add_child(self.steps_edit)
        panel.add_child(row)

        grid = gui.VGrid(2, 0.3 * em)
        self.method_box = self._combo(METHODS, session.method, self._on_method)
        self.mesher_box = self._combo(MESHERS, session.mesher, self._on_mesher)
        self.display_box = self._combo(DISPLAYS, display, self._on_display)
        for name, box in (("path", self.method_box), ("mesher", self.mesher_box), ("show", self.display_box)):
            grid.add_child(gui.Label(name))
            grid.add_child(box)
        panel.add_child(grid)

        self.neigh_label = gui.Label("")
        panel.add_child(self.neigh_label)

        ends = gui.VGrid(2, 0.25 * em)
        if session.store is not None:  # the searchable id list opens in a dialog: the panel stays light to draw
            for text, i in (("A from store...", 0), ("B from store...", -1)):
                b = gui.Button(text)
                b.set_on_clicked(self._choose_from_store(i))
                ends.add_child(b)
        for text, i in (("A from file...", 0), ("B from file...", -1)):
            b = gui.Button(text)
            b.set_on_clicked(self._open_file(i))
            ends.add_child(b)
        panel.add_child(ends)
        panel.add_child(self.export_panel())
        panel.add_child(self.status)
        self.window.add_child(panel)
        self.window.set_on_layout(self._layout)
        self.scene.set_on_key(self._on_key)
        self._refresh_labels()
        self.slider.double_value = self.t
        self.set_t(self.t)

    # ------------------------------------------------------------------------------------------ widgets
    def _combo(self, items: tuple[str, ...], current: str, cb: Callable[[str, int], None]) -> Any:
        box = self.gui.Combobox()
        for it in items:
            box.add_item(it)
        if current in items:
            box.selected_index = items.index(current)
        box.set_on_selection_changed(cb)
        return box

    def _layout(self, ctx: Any) -> None:
        r = self.window.content_rect
        width = min(int(24 * self.em), r.width // 2)
        self.scene.frame = self.gui.Rect(r.x, r.y, r.width - width, r.height)
        self.panel.frame = self.gui.Rect(r.get_right() - width, r.y, width, r.height)

    def _choose_from_store(self, i: int) -> Callable[[], None]:
        """A dialog with a search field and the store's ids (with classes); OK makes the selected id endpoint i."""

        def open_dialog() -> None:
            gui, em = self.gui, self.em
            store = self.session.store
            rows = [f"{it['id']}  ({it['class'] or '?'})" for it in store.items]
            dlg = gui.Dialog("Choose a shape from the store")
            box = gui.Vert(0.4 * em, gui.Margins(em, em, em, em))
            box.add_child(gui.Label("A" if i == 0 else "B"))
            search = gui.TextEdit()
            search.placeholder_text = "search ids or classes"
            listing = gui.ListView()
            listing.set_max_visible_items(12)
            shown: list[str] = []

            def fill(q: str) -> None:
                q = q.strip().lower()
                hits = [r for r in rows if q in r.lower()] if q else rows
                shown[:] = [r.split("  (", 1)[0] for r in hits[:_LIST_MAX]]
                listing.set_items(hits[:_LIST_MAX])

            search.set_on_text_changed(fill)
            fill("")
            box.add_child(search)
            box.add_child(listing)
            row = gui.Horiz(0.4 * em)
            ok, cancel = gui.Button("OK"), gui.Button("Cancel")

            def done() -> None:
                j = listing.selected_index
                self.window.close_dialog()
                if 0 <= j < len(shown):
                    self.set_endpoint(i, shown[j])

            ok.set_on_clicked(done)
            cancel.set_on_clicked(self.window.close_dialog)
            row.add_stretch()
            row.add_child(ok)
            row.add_child(cancel)
            box.add_child(row)
            dlg.add_child(box)
            self.window.show_dialog(dlg)

        return open_dialog

    def _open_file(self, i: int) -> Callable[[], None]:
        def open_dialog() -> None:
            gui = self.gui
            dlg = gui.FileDialog(gui.FileDialog.OPEN, "Choose a mesh or point cloud", self.window.theme)
            dlg.add_filter(".obj .ply .off .stl .glb .gltf .npy", "meshes and point clouds")
            dlg.add_filter("", "all files")
            dlg.set_on_cancel(self.window.close_dialog)

            def done(path: str) -> None:
                self.window.close_dialog()
                self.set_endpoint(i, path)

            dlg.set_on_done(done)
            self.window.show_dialog(dlg)

        return open_dialog

    # ------------------------------------------------------------------------------------------ state
    def set_endpoint(self, i: int, ref: str) -> None:
        """Make a store id or a file endpoint i (0 the first, -1 the last) and redraw."""
        try:
            self.session.set_endpoint(i, self.session.endpoint_from_store(ref))
        except Exception as exc:  # shown to the user; the window stays usable
            self.set_status(f"cannot use {ref}: {exc}")
            return
        self._refresh_labels()
        self.set_t(self.t)

    def _on_method(self, text: str, _i: int) -> None:
        self.session.set_method(text)
        self._refresh_labels()
        self.set_t(self.t)

    def _on_mesher(self, text: str, _i: int) -> None:
        try:
            self.session.set_mesher(text)
        except ValueError as exc:
            self.set_status(str(exc))
            self.mesher_box.selected_index = MESHERS.index(self.session.mesher)
            return
        self._refresh_labels()
        self.set_t(self.t)

    def _on_display(self, text: str, _i: int) -> None:
        self.display = text
        self._show_geometry()

    def _refresh_labels(self) -> None:
        names = [a.label + (f" ({a.cls})" if a.cls else "") for a in self.session.anchors]
        self.title.text = "  ->  ".join(names)

    def set_t(self, t: float) -> None:
        """Show the shape at t: points now, the mesh when the worker has it."""
        self._requested_at = time.perf_counter()
        self.t = float(np.clip(t, 0.0, 1.0))
        if abs(self.slider.double_value - self.t) > 1e-9:
            self.slider.double_value = self.t
        self.t_label.text = f"t = {self.t:.3f}   ({self.session.method}, mesher {self.session.mesher})"
        self._points, normals = self.session.points_at(self.t)
        self._normals = normals
        key = self.session.mesh_key(self.t)
        cached = self.session.cached_mesh(self.t)
        preview = None if cached is not None or not self.session.has_preview else self.session.cached_mesh(self.t, True)
        shown = cached if cached is not None else preview
        self._mesh, self._mesh_key = (shown, key) if shown is not None else (None, None)
        self._mesh_is_preview = cached is None and preview is not None
        self._show_geometry()
        self.latency = {"points_s": time.perf_counter() - self._requested_at}
        if cached is not None:
            self.latency["mesh_s"] = self.latency["full_mesh_s"] = self.latency["points_s"]
        elif self.session.mesher != "none":
            if preview is not None:
                self.latency["mesh_s"] = self.latency["points_s"]
            self._submit_mesh(preview=self.session.has_preview and preview is None)
        near = self.session.neighbours_at(self.t, 3)
        self.neigh_label.text = (
            "nearest in store: " + ", ".join(f"{i} ({c})" for i, c, _d in near) if near else "no store: no neighbours"
        )
        self.window.post_redraw()

    def _submit_mesh(self, preview: bool) -> None:
        """Ask the worker for the mesh at the current t: the coarse preview first when ``preview``."""
        t_now, pts, nrm = self.t, self._points, self._normals
        key = self.session.mesh_key(t_now, preview)
        self.worker.submit(key, lambda: self.session.mesh_at(t_now, pts, nrm, preview=preview))

    def _deliver(self, key: Any, result: Any, error: BaseException | None) -> None:
        def apply() -> None:
            full_key = self.session.mesh_key(self.t)
            is_preview = self.session.has_preview and key == self.session.mesh_key(self.t, True) and key != full_key
            if key != full_key and not is_preview:
                return  # the slider moved on
            if error is not None:
                self._failed_key = key
                self.set_status(f"mesher {self.session.mesher} failed here: {error}")
                return
            if is_preview and self._mesh is not None and self._mesh_key == full_key and not self._mesh_is_preview:
                return  # the full mesh is already in
            self._mesh, self._mesh_key = result, full_key
            self._mesh_is_preview = is_preview
            self._show_geometry()
            now = time.perf_counter() - self._requested_at
            self.latency.setdefault("mesh_s", now)
            if is_preview:
                self._submit_mesh(preview=False)  # then the full resolution (newest request wins)
            else:
                self.latency["full_mesh_s"] = now
            self.window.post_redraw()

        if not self._closed:
            self.on_main_thread(apply)

    def _show_geometry(self) -> None:
        sc = self.scene.scene
        for name in ("mesh", "points"):
            if sc.has_geometry(name):
                sc.remove_geometry(name)
        has_mesh = self._mesh is not None
        if has_mesh and self.display in ("mesh + points", "mesh"):
            sc.add_geometry("mesh", mesh_geometry(self._mesh.vertices, self._mesh.faces), self.mat_mesh)
        if self.display in ("mesh + points", "points") or not has_mesh:
            sc.add_geometry("points", points_geometry(self._points), self.mat_pts)

    def current_mesh(self) -> Any:
        if self._mesh is not None and self._mesh_is_preview:  # export the full mesh, not the preview on screen
            return self.session.mesh_at(self.t, self._points, self._normals)
        return self._mesh

    def layout_info(self) -> dict[str, Any]:
        info = super().layout_info()
        for name in ("scene", "slider", "play_button", "screenshot_button", "gif_button", "mesh_button"):
            info[name] = self.widget_rect(getattr(self, name))
        return info

    def ready(self) -> bool:
        if self.session.mesher == "none":
            return True
        key = self.session.mesh_key(self.t)
        return (self._mesh_key == key and not self._mesh_is_preview) or self._failed_key == key

    # ------------------------------------------------------------------------------------------ play, keys, GIF
    def _step(self) -> float:
        return 1.0 / ((self.steps_edit.int_value - 1) * (len(self.session.anchors) - 1))

    def busy(self) -> bool:
        return self.playing or super().busy()

    def toggle_play(self) -> None:
        self.playing = not self.playing
        self.play_button.text = "Pause" if self.playing else "Play"

    def tick(self) -> bool:
        if not self.playing or not self.ready():
            return False
        now = time.perf_counter()
        if now - self._last_play < 0.4:
            return False
        self._last_play = now
        nxt = self.t + self._step()
        self.set_t(0.0 if nxt > 1.0 + 1e-9 else nxt)
        return True

    def _on_key(self, event: Any) -> Any:
        gui = self.gui
        if event.type != gui.KeyEvent.Type.DOWN:
            return gui.Widget.EventCallbackResult.IGNORED
        if event.key == gui.KeyName.RIGHT:
            self.set_t(min(1.0, self.t + self._step()))
        elif event.key == gui.KeyName.LEFT:
            self.set_t(max(0.0, self.t - self._step()))
        elif event.key == gui.KeyName.SPACE:
            self.toggle_play()
        else:
            return gui.Widget.EventCallbackResult.IGNORED
        return gui.Widget.EventCallbackResult.HANDLED

    def gif_frames(self) -> list[Callable[[], None]]:
        n = int(round(1.0 / self._step())) + 1
        return [functools.partial(self.set_t, float(t)) for t in np.linspace(0.0, 1.0, n)]

    def gif_widget(self) -> Any:
        return self.scene

    def on_close(self) -> None:
        self.worker.stop()
        if self.session.mesh_process is not None:
            self.session.mesh_process.close()
            self.session.mesh_process = None
