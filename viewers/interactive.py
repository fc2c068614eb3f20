"""The interactive Open3D viewer: interpolation steps, files side by side, latent neighbours.

It uses the legacy ``open3d.visualization.VisualizerWithKeyCallback`` (plain OpenGL through GLFW), which runs on a
desktop and under ``xvfb-run``. Labels are drawn as flat text meshes in the scene (the legacy window cannot change
its title after it opens); every label is also logged.

Keys (interpolation): Right/N next step, Left/P previous, Space play/pause, M cycles both/points/mesh, Q/Escape quit.
Files and neighbours: M cycles the display mode, Q/Escape quit; the mouse rotates, pans and zooms as usual.

With ``screenshot_dir`` set (or the environment variable ``SHAPELATENT_VIEW_SCREENSHOTS``) the viewer saves a PNG
of the window when it opens and after every key action: ``000_start.png``, ``001_next.png``, ...
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viewers.window import (  # the window and its display check, re-exported here
    NO_DISPLAY_MESSAGE,
    SCREENSHOT_ENV,
    NoDisplayError,
    Window,
    colormap,
    display_available,
    text_mesh,
)

__all__ = [
    "NO_DISPLAY_MESSAGE",
    "SCREENSHOT_ENV",
    "NoDisplayError",
    "Panel",
    "display_available",
    "load_interpolation",
    "view_files",
    "view_interpolation",
    "view_neighbors",
]

logger = logging.getLogger(__name__)

# GLFW key codes, as VisualizerWithKeyCallback.register_key_callback expects them (Q and Escape: viewers.window).
KEY_SPACE, KEY_M, KEY_N, KEY_P = 32, 77, 78, 80
KEY_RIGHT, KEY_LEFT = 262, 263
PLAY_INTERVAL_S = 0.6


@dataclass
class Panel:
    """One shape to draw: points and/or a mesh, with a colour and a label.

    Attributes:
        points: (P, 3) float32, or None.
        mesh_vertices: (V, 3) float32, or None.
        mesh_faces: (F, 3) int64, or None.
        color: RGB in [0, 1].
        label: text drawn under the shape.
    """

    points: np.ndarray | None
    mesh_vertices: np.ndarray | None
    mesh_faces: np.ndarray | None
    color: tuple[float, float, float]
    label: str

    @property
    def has_mesh(self) -> bool:
        return self.mesh_faces is not None and len(self.mesh_faces) > 0


def _read_shape(path: Path) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Points (P, 3) or mesh vertices (V, 3) + faces (F, 3) of a file; PLY without faces is a point cloud."""
    from shapelatent.io import read_mesh, read_points, supported_mesh_extensions, supported_point_extensions

    ext = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    if ext in supported_point_extensions() and (ext != ".ply" or not _ply_has_faces(path)):
        return read_points(path).points.astype(np.float32), None, None
    if ext in supported_mesh_extensions():
        mesh = read_mesh(path)
        return None, np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64)
    allowed = sorted(set(supported_mesh_extensions()) | set(supported_point_extensions()))
    raise ValueError(f"{path}: cannot show files of type {ext or '(none)'!r}; allowed: {', '.join(allowed)}.")


def _ply_has_faces(path: Path) -> bool:
    with open(path, "rb") as fh:
        header = fh.read(4096).split(b"end_header")[0]
    for line in header.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == b"element" and parts[1] == b"face":
            return int(parts[2]) > 0
    return False


def _normalize(points: np.ndarray | None, vertices: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Centre on the bounding box and scale into the unit sphere (mesh and points together)."""
    ref = vertices if vertices is not None else points
    if ref is None:
        raise ValueError("a shape needs points or mesh vertices; got neither")
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    center = (lo + hi) / 2
    radius = float(np.linalg.norm(ref - center, axis=1).max()) or 1.0
    scale = lambda a: None if a is None else ((a - center) / radius).astype(np.float32)  # noqa: E731
    return scale(points), scale(vertices)


def load_interpolation(folder: str | os.PathLike[str]) -> list[Panel]:
    """Read the steps of a folder written by ``shapelatent interpolate``.

    Args:
        folder: holds ``manifest.json`` whose ``steps`` rows name a ``points`` file and optionally a ``mesh``.

    Returns:
        One :class:`Panel` per step, coloured by ``t`` (viridis), labelled ``step i/N t=... (A ... B)``.

    Raises:
        FileNotFoundError: no folder, manifest or step file.
        ValueError: the manifest has no steps or a step without ``points``.
    """
    root = Path(folder)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: no manifest; give a folder written by `shapelatent interpolate`.")
    manifest = json.loads(manifest_path.read_text())
    steps = manifest.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{manifest_path}: 'steps' must be a non-empty list of {{points, mesh, t}} rows.")
    shapes = [str(s.get("label") or s.get("ref") or "?") for s in manifest.get("shapes", [])]
    panels = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or "points" not in step:
            raise ValueError(f"{manifest_path}: step {i} has no 'points' file name.")
        points, _, _ = _read_shape(root / step["points"])
        verts = faces = None
        if step.get("mesh"):
            _, verts, faces = _read_shape(root / step["mesh"])
        t = float(step.get("t", i / max(len(steps) - 1, 1)))
        seg = int(step.get("segment", 0))
        ends = f" ({shapes[seg]} ... {shapes[seg + 1]})" if seg + 1 < len(shapes) else ""
        label = f"step {i + 1}/{len(steps)} t={t:.2f}{ends}"
        panels.append(Panel(points, verts, faces, colormap(t), label))
    return panels


def _o3d_geometries(panel: Panel, mode: str, offset: np.ndarray, text_at: np.ndarray) -> list[Any]:
    """Open3D shapes (mesh and/or points, moved by ``offset`` (3,)) and the label (top centre at ``text_at``)."""
    import open3d as o3d

    out: list[Any] = []
    color = np.asarray(panel.color)
    verts, faces = panel.mesh_vertices, panel.mesh_faces
    if panel.has_mesh and verts is not None and faces is not None and mode in ("both", "mesh"):
        mesh = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(verts.astype(np.float64) + offset),
            o3d.utility.Vector3iVector(faces.astype(np.int32)),
        )
        mesh.compute_vertex_normals()
        mesh.paint_uniform_color(0.45 * color + 0.55)  # lighter than the points, so both read when overlaid
        out.append(mesh)
    if panel.points is not None and (mode in ("both", "points") or not panel.has_mesh):
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(panel.points.astype(np.float64) + offset))
        pcd.paint_uniform_color(0.8 * color)
        out.append(pcd)
    if panel.label:
        out.append(text_mesh(panel.label, text_at))
    return out


def view_interpolation(
    folder: str | os.PathLike[str],
    *,
    screenshot_dir: str | os.PathLike[str] | None = None,
    width: int = 1024,
    height: int = 768,
) -> None:
    """Show the steps of an interpolation folder one at a time (keys in the module docstring).

    Raises:
        FileNotFoundError, ValueError: see :func:`load_interpolation`.
        NoDisplayError: no display to open the window on.
    """
    panels = load_interpolation(folder)
    all_pts = np.concatenate([a for p in panels for a in (p.points, p.mesh_vertices) if a is not None])
    # the label sits under the lowest point of any step, centred, at the same place for every step
    lo, hi = all_pts.min(axis=0), all_pts.max(axis=0)
    text_at = np.array([(lo[0] + hi[0]) / 2, lo[1] - 0.08, (lo[2] + hi[2]) / 2])
    win = Window(f"shapelatent view - {Path(folder).name}", screenshot_dir, width, height)
    state: dict[str, Any] = {"i": 0, "playing": False, "last": 0.0}
    zero = np.zeros(3)

    def draw() -> None:
        panel = panels[state["i"]]
        win.show(_o3d_geometries(panel, win.mode, zero, text_at))
        logger.info("%s [%s]", panel.label, win.mode)

    def step(d: int) -> None:
        state["i"] = (state["i"] + d) % len(panels)
        draw()

    def toggle_mode() -> None:
        if not any(p.has_mesh for p in panels):
            logger.info("this interpolation has no meshes; showing points only")
            return
        win.next_mode()
        draw()

    def animate(vis: Any) -> bool:
        now = time.monotonic()
        if not state["playing"] or now - state["last"] < PLAY_INTERVAL_S:
            return False
        state["last"] = now
        step(1)
        return True

    def toggle_play() -> None:
        state["playing"] = not state["playing"]
        # None stops the animation (Open3D takes it; the 0.20 stub does not say so, 0.19 has none)
        vis: Any = win.vis
        vis.register_animation_callback(animate if state["playing"] else None)
        logger.info("animation %s", "playing" if state["playing"] else "paused")

    draw()
    win.on_key([KEY_RIGHT, KEY_N], "next", lambda: step(1))
    win.on_key([KEY_LEFT, KEY_P], "previous", lambda: step(-1))
    win.on_key([KEY_SPACE], "play", toggle_play)
    win.on_key([KEY_M], "mode", toggle_mode)
    win.run()


def _grid(panels: list[Panel], title: str, screenshot_dir: Any, width: int, height: int, columns: int) -> None:
    """Lay panels out in a grid (2.5 units apart) and show them all."""
    spacing = 2.5
    win = Window(title, screenshot_dir, width, height)
    placed = []
    for j, p in enumerate(panels):
        row, col = divmod(j, columns)
        placed.append((p, np.array([col * spacing, -row * spacing * 1.1, 0.0])))

    def draw() -> None:
        geoms = []
        for p, off in placed:
            geoms += _o3d_geometries(p, win.mode, off, off + [0.0, -1.08, 0.0])
        win.show(geoms)

    def toggle_mode() -> None:
        win.next_mode()
        draw()

    draw()
    win.on_key([KEY_M], "mode", toggle_mode)
    win.run()


def view_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    screenshot_dir: str | os.PathLike[str] | None = None,
    width: int = 1280,
    height: int = 720,
) -> None:
    """Show meshes and point clouds side by side, each normalised into the unit sphere, labelled by file name.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: no paths, or a file type with no reader (the message lists the allowed ones).
        NoDisplayError: no display to open the window on.
    """
    if not paths:
        raise ValueError("give at least one mesh or point-cloud file to view.")
    panels = []
    for j, path in enumerate(paths):
        pts, verts, faces = _read_shape(Path(path))
        pts, verts = _normalize(pts, verts)
        panels.append(Panel(pts, verts, faces, colormap(j / max(len(paths) - 1, 1)), Path(path).name))
    _grid(panels, "shapelatent view - files", screenshot_dir, width, height, columns=min(len(panels), 5))


def neighbor_panels(store: Any, query: str | int, k: int) -> list[Panel]:
    """Panels for a store item and its k nearest neighbours (items without a readable source file are skipped).

    Args:
        store: a ``LatentStore`` or the path of a store folder.
        query: an item id or a store index.
        k: K, neighbours, 1 <= K < N.

    Raises:
        StoreError: unknown id; ValueError: bad k or index, or no item with a source file to show.
    """
    from shapelatent.data.build import SamplingConfig
    from shapelatent.latent.sources import source_points
    from shapelatent.latent.store import LatentStore
    from viewers.gui.neighbors import neighbor_rows  # the query and its k nearest rows, shared with the GUI

    cfg = SamplingConfig(num_points=1024)

    if not isinstance(store, LatentStore):
        store = LatentStore.open(store)
    rows = neighbor_rows(store, query, k)
    panels = []
    for rank, (j, dist) in enumerate(rows):
        item = store.items[j]
        points = source_points(item["source"], item["class"], cfg)
        if points is None:
            logger.warning("skipping %s: its source %r is not on this machine", item["id"], item["source"])
            continue
        cls = item["class"] or "?"
        label = f"query {item['id']} ({cls})" if dist is None else f"#{rank} {item['id']} ({cls}) d={dist:.3f}"
        color = (0.85, 0.33, 0.1) if dist is None else colormap(0.25 + 0.6 * rank / max(len(rows) - 1, 1))
        panels.append(Panel(points, None, None, color, label))
    if not panels:
        raise ValueError(f"{store.path}: none of the query and neighbour items has a source file on this machine.")
    return panels


def view_neighbors(
    store: Any,
    query: str | int,
    k: int = 8,
    *,
    screenshot_dir: str | os.PathLike[str] | None = None,
    width: int = 1280,
    height: int = 800,
) -> None:
    """Show a store item and its k nearest neighbours in a grid, labelled with class and distance.

    Raises:
        StoreError, ValueError: see :func:`neighbor_panels`. NoDisplayError: no display.
    """
    panels = neighbor_panels(store, query, k)
    columns = max(1, math.ceil(math.sqrt(len(panels))))
    _grid(panels, "shapelatent view - neighbours", screenshot_dir, width, height, columns=columns)
