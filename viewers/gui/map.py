"""The map window: the store's codes as a 3-D point map, the picked item's true shape and reconstruction, and an
interpolation between two picked codes.

- The map: every code (up to ``max_points``, subsampled with the seed) at its 3-D PCA (or t-SNE / UMAP, as
  ``shapelatent map`` computes them) coordinates, coloured by class, with a 2-D legend over the widget.
- Click a code: it is selected (a red marker); the right column shows its true shape (re-sampled from its source)
  and its reconstruction by the model (decoded points at once, the mesh when the mesher process has it).
- Shift-click a second code: the path between the two is drawn on the map (for PCA the projected path codes; for
  t-SNE / UMAP, which cannot place new codes, the straight segment), and the slider under the reconstruction
  moves along it (the reconstruction panel then shows the code at t).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np

from viewers.gui.base import GuiWindow, mesh_geometry, points_geometry
from viewers.gui.picking import pick
from viewers.gui.session import Endpoint, InterpSession
from viewers.gui.worker import LatestWorker, MeshProcess

__all__ = ["MapWindow"]

logger = logging.getLogger(__name__)

_CLICK_PX = 4


class MapWindow(GuiWindow):
    """Args: store (``LatentStore``), loaded model or None, map ``method`` (pca | tsne | umap), ``max_points``,
    ``seed``, ``mesher``; see :class:`GuiWindow` for the rest."""

    def __init__(
        self,
        store: Any,
        loaded: Any = None,
        *,
        model_path: str = "the model",
        method: str = "pca",
        max_points: int = 5000,
        seed: int = 0,
        mesher: str = "auto",
        width: int = 1280,
        height: int = 800,
        export_dir: str | os.PathLike[str] | None = None,
        screenshot: str | os.PathLike[str] | None = None,
        select: list[int] | None = None,
    ) -> None:
        from shapelatent.data.build import SamplingConfig
        from shapelatent.latent.project import project_codes
        from viewers.map_model import class_palette, fit_map_pca

        super().__init__("shapelatent view - latent map", width, height, export_dir, screenshot)
        gui = self.gui
        if len(store) < 2:
            raise ValueError(f"{store.path}: holds {len(store)} codes; a map needs at least 2.")
        self.store, self.loaded, self.method = store, loaded, method
        if method == "pca":
            from shapelatent.latent.project import subsample

            self.rows = subsample(len(store), max_points, seed)
            self.pca: Any = fit_map_pca(store.codes[self.rows])
            coords = self.pca.transform(store.codes[self.rows])
        else:
            proj = project_codes(store.codes, method, dims=3, seed=seed, max_points=max_points)
            self.rows, coords, self.pca = proj.indices, proj.coords, None
        c = np.asarray(coords, dtype=np.float64)
        self.center = (c.max(0) + c.min(0)) / 2
        self.scale = 1.0 / max(float(np.abs(c - self.center).max()), 1e-9)
        self.coords = (c - self.center) * self.scale  # (N, 3) in the unit cube
        self.items = [store.items[int(r)] for r in self.rows]
        self.palette = class_palette([it["class"] for it in self.items])
        recorded = (store.info.get("model") or {}).get("sampling")
        self.cfg = SamplingConfig.from_dict(recorded) if recorded else SamplingConfig(num_points=2048)
        self.selected: int | None = None
        self.second: int | None = None
        self.session: InterpSession | None = None
        self.t = 0.0
        self._down: tuple[float, float] | None = None
        self._mesh: Any = None
        self._mesh_key: Any = None
        self._failed_key: Any = None
        self.mat_mesh, self.mat_pts = self.materials()
        self.mat_map = self.materials()[1]
        self.mat_map.point_size = 7.0 * self.window.scaling

        self.map = self.scene_widget()
        self.frame_camera(self.map, radius=1.75)  # the codes fill the cube [-1, 1]^3
        colors = np.array([self.palette[it["class"]] for it in self.items], dtype=np.float64)
        self.map.scene.add_geometry("codes", points_geometry(self.coords, colors), self.mat_map)
        self.map.set_on_mouse(self._on_mouse)
        self.window.add_child(self.map)

        self.legend = gui.Vert(0.1 * self.em, gui.Margins(0.4 * self.em, 0.3 * self.em, 0.4 * self.em, 0.3 * self.em))
        self.legend.background_color = gui.Color(1.0, 1.0, 1.0, 0.85)
        for cls, rgb in sorted(self.palette.items()):
            lab = gui.Label(cls or "unlabelled")
            lab.text_color = gui.Color(*rgb)
            self.legend.add_child(lab)
        self.window.add_child(self.legend)

        col = gui.Vert(0.3 * self.em, gui.Margins(0.5 * self.em, 0.5 * self.em, 0.5 * self.em, 0.5 * self.em))
        self.col = col
        n, z = len(self.rows), store.latent_dim
        col.add_child(
            gui.Label(
                f"{n} of {len(store)} codes (Z={z}), {method.upper()} map; click a code, "
                "shift-click a second to interpolate"
            )
        )
        self.true_label = gui.Label("true shape: click a code")
        col.add_child(self.true_label)
        self.true_view = self.scene_widget()
        self.window.add_child(self.true_view)
        self.recon_label = gui.Label("reconstruction" if loaded is not None else "reconstruction: needs --model RUN")
        self.t_label = gui.Label("")
        self.slider = gui.Slider(gui.Slider.DOUBLE)
        self.slider.set_limits(0.0, 1.0)
        self.slider.set_on_value_changed(self.set_t)
        self.slider.enabled = False
        self.recon_view = self.scene_widget()
        self.window.add_child(self.recon_view)
        self.bottom = gui.Vert(0.3 * self.em, gui.Margins(0.5 * self.em, 0.2 * self.em, 0.5 * self.em, 0.2 * self.em))
        self.bottom.add_child(self.t_label)
        self.bottom.add_child(self.slider)
        self.bottom.add_child(self.export_panel())
        self.bottom.add_child(self.status)
        self.window.add_child(col)
        self.window.add_child(self.recon_label)
        self.window.add_child(self.bottom)
        self.window.set_on_layout(self._layout)

        self.mesher = mesher
        self.worker = LatestWorker(self._deliver)
        self.model_path = model_path
        self.mesh_process = MeshProcess(model_path) if loaded is not None else None
        for j, row in enumerate(select or []):
            where = np.flatnonzero(self.rows == int(row))
            if len(where):
                self.select(int(where[0]), second=j > 0)

    # ------------------------------------------------------------------------------------------ layout
    def _layout(self, ctx: Any) -> None:
        gui, r = self.gui, self.window.content_rect
        side = min(int(0.38 * r.width), 30 * int(self.em))
        mw = r.width - side
        self.map.frame = gui.Rect(r.x, r.y, mw, r.height)
        pref = self.legend.calc_preferred_size(ctx, gui.Widget.Constraints())
        self.legend.frame = gui.Rect(r.x + 8, r.y + 8, pref.width, pref.height)
        x = r.x + mw
        top_h = int(3.6 * self.em)
        self.col.frame = gui.Rect(x, r.y, side, top_h + int(1.6 * self.em))
        bottom_h = int(10 * self.em)
        view_h = (r.height - top_h - bottom_h - int(3.4 * self.em)) // 2
        y = r.y + top_h + int(1.8 * self.em)
        self.true_view.frame = gui.Rect(x + 4, y, side - 8, view_h)
        y += view_h
        self.recon_label.frame = gui.Rect(x + int(0.5 * self.em), y, side, int(1.6 * self.em))
        y += int(1.6 * self.em)
        self.recon_view.frame = gui.Rect(x + 4, y, side - 8, view_h)
        self.bottom.frame = gui.Rect(x, y + view_h, side, r.get_bottom() - y - view_h)

    # ------------------------------------------------------------------------------------------ picking
    def _on_mouse(self, event: Any) -> Any:
        gui = self.gui
        if event.type == gui.MouseEvent.Type.BUTTON_DOWN:
            self._down = (event.x, event.y)
        elif event.type == gui.MouseEvent.Type.BUTTON_UP and self._down is not None:
            x0, y0 = self._down
            self._down = None
            if abs(event.x - x0) <= _CLICK_PX and abs(event.y - y0) <= _CLICK_PX:
                i = self.pick_at(event.x - self.map.frame.x, event.y - self.map.frame.y)
                if i is not None:
                    shift = event.is_modifier_down(gui.KeyModifier.SHIFT)
                    self.on_main_thread(lambda: self.select(i, second=shift))
                    return gui.Widget.EventCallbackResult.HANDLED
        return gui.Widget.EventCallbackResult.IGNORED

    def pick_at(self, x: float, y: float) -> int | None:
        """The shown code under widget pixel (x, y), or None."""
        cam = self.map.scene.camera
        f = self.map.frame
        return pick(self.coords, (x, y), cam.get_view_matrix(), cam.get_projection_matrix(), f.width, f.height)

    def pixel_of(self, i: int) -> tuple[float, float]:
        """Where code i is drawn, in window pixels (tests place clicks with it)."""
        from viewers.gui.picking import project_to_pixels

        cam, f = self.map.scene.camera, self.map.frame
        px, _ = project_to_pixels(
            self.coords[i : i + 1], cam.get_view_matrix(), cam.get_projection_matrix(), f.width, f.height
        )
        return float(px[0, 0] + f.x), float(px[0, 1] + f.y)

    def _marker(self, name: str, at: np.ndarray | None, rgb: tuple[float, float, float]) -> None:
        import open3d as o3d

        sc = self.map.scene
        if sc.has_geometry(name):
            sc.remove_geometry(name)
        if at is None:
            return
        s = o3d.geometry.TriangleMesh.create_sphere(radius=0.035, resolution=12)
        s.translate(np.asarray(at, dtype=np.float64))
        s.compute_vertex_normals()
        s.paint_uniform_color(rgb)
        mat = self.materials()[0]
        mat.base_color = [*rgb, 1.0]
        sc.add_geometry(name, s, mat)

    def select(self, i: int, second: bool = False) -> None:
        """Select shown code i (``second``: as the other end of an interpolation from the current selection)."""
        it = self.items[i]
        if second and self.selected is not None and i != self.selected:
            self.second = i
            self._marker("second", self.coords[i], (0.95, 0.55, 0.1))
            self._start_path()
        else:
            self.selected, self.second, self.session = i, None, None
            self._marker("selected", self.coords[i], (0.85, 0.1, 0.1))
            self._marker("second", None, (0, 0, 0))
            self._marker("at_t", None, (0, 0, 0))
            if self.map.scene.has_geometry("path"):
                self.map.scene.remove_geometry("path")
            self.slider.enabled = False
            self.t_label.text = ""
            self._show_true(i)
            self._show_recon(self.store.codes[int(self.rows[i])], (it["id"],))
        self.set_status(f"selected {it['id']} ({it['class'] or '?'})" + (" as the second end" if second else ""))
        self.window.post_redraw()

    def _show_true(self, i: int) -> None:
        from shapelatent.latent.sources import source_points

        it = self.items[i]
        self.true_label.text = f"true shape: {it['id']} ({it['class'] or '?'})"
        pts = source_points(it["source"], it["class"], self.cfg)
        sc = self.true_view.scene
        if sc.has_geometry("points"):
            sc.remove_geometry("points")
        if pts is None:
            self.true_label.text += " - source not on this machine"
            return
        sc.add_geometry("points", points_geometry(pts), self.mat_pts)

    # ------------------------------------------------------------------------------------------ reconstruction
    def _show_recon(self, code: np.ndarray, key: tuple[Any, ...]) -> None:
        if self.loaded is None:
            return
        from shapelatent.latent.decode import decode_codes
        from shapelatent.latent.implicit_mesh import resolve_mesher

        pts, nrm = decode_codes(self.loaded, np.asarray(code, np.float32)[None])
        self._recon_points = pts[0]
        self._mesh, self._mesh_key, self._want = None, None, key
        self._draw_recon()
        mesher = str(resolve_mesher(self.mesher, self.loaded.model, self.model_path))
        if self.mesh_process is not None and mesher != "none":
            proc, c, p, n = self.mesh_process, np.asarray(code, np.float32), pts[0], (None if nrm is None else nrm[0])
            self.worker.submit(key, lambda: proc.mesh(mesher, c, p, n, 128))

    def _deliver(self, key: Any, result: Any, error: BaseException | None) -> None:
        def apply() -> None:
            if key != self._want:
                return
            if error is not None:
                self._failed_key = key
                self.set_status(f"mesher failed here: {error}")
                return
            self._mesh, self._mesh_key = result, key
            self._draw_recon()

        if not self._closed:
            self.on_main_thread(apply)

    def _draw_recon(self) -> None:
        sc = self.recon_view.scene
        for name in ("mesh", "points"):
            if sc.has_geometry(name):
                sc.remove_geometry(name)
        if self._mesh is not None:
            sc.add_geometry("mesh", mesh_geometry(self._mesh.vertices, self._mesh.faces), self.mat_mesh)
        else:
            sc.add_geometry("points", points_geometry(self._recon_points), self.mat_pts)
        self.window.post_redraw()

    # ------------------------------------------------------------------------------------------ interpolation
    def _start_path(self) -> None:
        import open3d as o3d

        assert self.selected is not None and self.second is not None
        ends = []
        for i in (self.selected, self.second):
            it = self.items[i]
            ends.append(Endpoint(it["id"], it["id"], it["class"] or "", self.store.codes[int(self.rows[i])]))
        if self.loaded is not None:
            self.session = InterpSession(self.loaded, ends, self.store, mesher="none", model_path=self.model_path)
        self._ends = ends
        ts = np.linspace(0, 1, 33)
        if self.pca is not None and self.session is not None:
            path = (self.pca.transform(np.stack([self.session.code_at(t) for t in ts])) - self.center) * self.scale
        else:
            a, b = self.coords[self.selected], self.coords[self.second]
            path = (1 - ts[:, None]) * a + ts[:, None] * b
        self._path = np.asarray(path, dtype=np.float64)
        lines = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(self._path), o3d.utility.Vector2iVector([[j, j + 1] for j in range(len(ts) - 1)])
        )
        lines.paint_uniform_color([0.1, 0.1, 0.1])
        mat = self.materials()[1]
        mat.shader = "unlitLine"
        mat.line_width = 2.0 * self.window.scaling
        if self.map.scene.has_geometry("path"):
            self.map.scene.remove_geometry("path")
        self.map.scene.add_geometry("path", lines, mat)
        self.slider.enabled = self.session is not None
        self.set_t(0.0)

    def set_t(self, t: float) -> None:
        """Move along the picked path (after a shift-click)."""
        if self.session is None:
            return
        self.t = float(np.clip(t, 0.0, 1.0))
        self.slider.double_value = self.t
        a, b = self._ends
        near = self.session.neighbours_at(self.t, 1)
        cls = f", nearest {near[0][0]} ({near[0][1]})" if near else ""
        self.t_label.text = f"{a.ref} -> {b.ref}: t = {self.t:.2f}{cls}"
        k = self.t * (len(self._path) - 1)
        j = min(int(k), len(self._path) - 2)
        self._marker("at_t", self._path[j] + (k - j) * (self._path[j + 1] - self._path[j]), (0.1, 0.1, 0.1))
        self._show_recon(self.session.code_at(self.t), ("t", round(self.t, 4), a.ref, b.ref))

    def ready(self) -> bool:
        if self.loaded is None or self.selected is None:
            return True
        return self._mesh_key == self._want or self._failed_key == self._want

    def current_mesh(self) -> Any:
        return self._mesh

    def layout_info(self) -> dict[str, Any]:
        info = super().layout_info()
        f = self.window.os_frame
        info["map"] = self.widget_rect(self.map)
        info["codes"] = {
            it["id"]: [f.x + x, f.y + y]
            for it, (x, y) in zip(self.items, map(self.pixel_of, range(len(self.items))), strict=True)
        }
        info["slider"] = self.widget_rect(self.slider)
        return info

    def gif_frames(self) -> list[Any]:
        if self.session is None:
            return []
        return [functools.partial(self.set_t, float(t)) for t in np.linspace(0, 1, 9)]

    def gif_widget(self) -> Any:
        return self.recon_view

    def on_close(self) -> None:
        self.worker.stop()
        if self.mesh_process is not None:
            self.mesh_process.close()
