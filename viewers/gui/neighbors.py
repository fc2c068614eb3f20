"""The neighbours window: a store item and its k nearest codes in a grid of scene widgets.

Each cell shows the item's true shape (re-sampled from its source, coloured by height as in the renders) with a
2-D label under it (rank, id, class, distance in code space). The cameras are shared: turning or zooming one cell
turns every cell. Clicking a neighbour (press and release without dragging) makes it the query.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from viewers.gui.base import GuiWindow, points_geometry

__all__ = ["NeighborsWindow", "neighbor_rows"]

logger = logging.getLogger(__name__)

_CLICK_PX = 4  # a press and release closer than this is a click, not a drag


def neighbor_rows(store: Any, query: str | int, k: int) -> list[tuple[int, float | None]]:
    """``[(store row, distance or None for the query)]``: the query then its k nearest codes (exact search).

    Raises:
        StoreError: unknown id. ValueError: bad index, or k outside 1..N-1 (checked by ``NeighborIndex.search``).
    """
    from shapelatent.latent.retrieval import NeighborIndex

    if isinstance(query, int) or (isinstance(query, str) and query.isdigit() and query not in store.ids):
        i = int(query)
        if not 0 <= i < len(store):
            raise ValueError(f"{store.path}: query index {i} is out of range 0..{len(store) - 1}.")
    else:
        i = store.index_of(str(query))
    res = NeighborIndex(store.codes).search(store.codes[i][None], k, exclude=[i])
    return [(i, None)] + [(int(j), float(d)) for j, d in zip(res.indices[0], res.distances[0], strict=True) if j >= 0]


class NeighborsWindow(GuiWindow):
    """The grid. Args: a ``LatentStore``, the query (id or row), k; see :class:`GuiWindow` for the rest."""

    def __init__(
        self,
        store: Any,
        query: str | int,
        k: int = 8,
        *,
        width: int = 1280,
        height: int = 800,
        export_dir: str | os.PathLike[str] | None = None,
        screenshot: str | os.PathLike[str] | None = None,
    ) -> None:
        from shapelatent.data.build import SamplingConfig

        super().__init__("shapelatent view - neighbours", width, height, export_dir, screenshot)
        gui = self.gui
        self.store, self.k = store, int(k)
        recorded = (store.info.get("model") or {}).get("sampling")
        self.cfg = SamplingConfig.from_dict(recorded) if recorded else SamplingConfig(num_points=2048)
        self.rows = neighbor_rows(store, query, self.k)
        self.cells = [self.scene_widget() for _ in self.rows]
        self.labels = [gui.Label("") for _ in self.rows]
        self._points: dict[int, np.ndarray | None] = {}
        self._down: tuple[int, float, float] | None = None
        self._active = 0
        self._last_view: np.ndarray | None = None
        self.mat_mesh, self.mat_pts = self.materials()
        for i, (cell, label) in enumerate(zip(self.cells, self.labels, strict=True)):
            cell.set_on_mouse(self._mouse(i))
            self.window.add_child(cell)
            self.window.add_child(label)
        bar = gui.Vert(0.2 * self.em, gui.Margins(0.5 * self.em, 0.3 * self.em, 0.5 * self.em, 0.3 * self.em))
        top = gui.Horiz(0.5 * self.em)
        self.header = gui.Label("")
        top.add_child(self.header)
        top.add_stretch()
        top.add_child(self.export_panel(mesh_label="Save query points", horizontal=True))
        bar.add_child(top)
        bar.add_child(self.status)
        self.bar = bar
        self.window.add_child(bar)
        self.window.set_on_layout(self._layout)
        self.show()

    def _layout(self, ctx: Any) -> None:
        gui, r = self.gui, self.window.content_rect
        bar_h = int(4.6 * self.em)
        self.bar.frame = gui.Rect(r.x, r.y, r.width, bar_h)
        n = len(self.cells)
        cols = max(1, math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        cw, ch = r.width // cols, (r.height - bar_h) // rows
        lh = int(1.6 * self.em)
        for i, (cell, label) in enumerate(zip(self.cells, self.labels, strict=True)):
            x, y = r.x + (i % cols) * cw, r.y + bar_h + (i // cols) * ch
            cell.frame = gui.Rect(x + 2, y + 2, cw - 4, ch - lh - 4)
            label.frame = gui.Rect(x + 4, y + ch - lh, cw - 8, lh)

    def layout_info(self) -> dict[str, Any]:
        info = super().layout_info()
        info["cells"] = [self.widget_rect(c) for c in self.cells]
        info["ids"] = [self.store.items[row]["id"] for row, _d in self.rows]
        info["screenshot_button"] = self.widget_rect(self.screenshot_button)
        return info

    def points(self, row: int) -> np.ndarray | None:
        """(P, 3) float32 true points of store row ``row`` (cached), or None when its source is gone."""
        from shapelatent.latent.sources import source_points

        if row not in self._points:
            it = self.store.items[row]
            self._points[row] = source_points(it["source"], it["class"], self.cfg)
            if self._points[row] is None:
                logger.info("%s: its source %r is not on this machine", it["id"], it["source"])
        return self._points[row]

    def show(self) -> None:
        """Draw the current query and its neighbours."""
        q = self.store.items[self.rows[0][0]]
        self.header.text = f"{q['id']} ({q['class'] or '?'}) and its {len(self.rows) - 1} nearest codes"
        for rank, ((row, dist), cell, label) in enumerate(zip(self.rows, self.cells, self.labels, strict=True)):
            it = self.store.items[row]
            cls = it["class"] or "?"
            label.text = f"query {it['id']} ({cls})" if dist is None else f"#{rank} {it['id']} ({cls})  d={dist:.3f}"
            sc = cell.scene
            if sc.has_geometry("points"):
                sc.remove_geometry("points")
            pts = self.points(row)
            if pts is None:
                label.text += "  [source not found]"
                continue
            sc.add_geometry("points", points_geometry(pts), self.mat_pts)
        self.window.post_redraw()

    def set_query(self, row: int) -> None:
        """Make store row ``row`` the query."""
        self.rows = neighbor_rows(self.store, int(row), self.k)
        self.set_status(f"query: {self.store.items[row]['id']}")
        self.show()

    def _mouse(self, i: int) -> Any:
        gui = self.gui

        def on_mouse(event: Any) -> Any:
            self._active = i
            if event.type == gui.MouseEvent.Type.BUTTON_DOWN:
                self._down = (i, event.x, event.y)
            elif event.type == gui.MouseEvent.Type.BUTTON_UP and self._down is not None:
                j, x, y = self._down
                self._down = None
                if j == i and abs(event.x - x) <= _CLICK_PX and abs(event.y - y) <= _CLICK_PX and i > 0:
                    row = self.rows[i][0]
                    self.on_main_thread(lambda: self.set_query(row))
                    return gui.Widget.EventCallbackResult.HANDLED
            return gui.Widget.EventCallbackResult.IGNORED

        return on_mouse

    def tick(self) -> bool:
        """Share the active cell's camera with every other cell."""
        src = self.cells[self._active].scene.camera
        view = np.asarray(src.get_view_matrix())
        if self._last_view is not None and np.array_equal(view, self._last_view):
            return False
        self._last_view = view
        for j, cell in enumerate(self.cells):
            if j != self._active:
                cell.scene.camera.copy_from(src)
        return True

    def current_mesh(self) -> Any:
        """The query's true points as a point-only ``MeshResult`` is not a mesh: save them as a PLY instead."""
        return None

    def save_mesh(self, path: str | os.PathLike[str]) -> Any:
        from pathlib import Path

        from shapelatent.io.atomic import write_points_ply

        pts = self.points(self.rows[0][0])
        if pts is None:
            self.set_status("the query's source is not on this machine")
            return None
        p = Path(path).with_suffix(".ply")
        write_points_ply(p, pts)
        self.exports.append(p)
        self.set_status(f"saved {p}")
        return p

    def gif_frames(self) -> list[Callable[[], None]]:
        """The query, then each neighbour in turn, in the first cell."""
        frames: list[Callable[[], None]] = []
        for row, _d in self.rows:
            frames.append(functools.partial(self._show_in_first, row))
        frames.append(self.show)
        return frames

    def _show_in_first(self, row: int) -> None:
        sc = self.cells[0].scene
        if sc.has_geometry("points"):
            sc.remove_geometry("points")
        pts = self.points(row)
        if pts is not None:
            sc.add_geometry("points", points_geometry(pts), self.mat_pts)

    def gif_widget(self) -> Any:
        return self.cells[0]
