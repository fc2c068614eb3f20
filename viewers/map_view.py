"""The latent map in the Open3D viewer: ``shapelatent view --store STORE --map``.

The store's codes are drawn as a 3-D cloud of small spheres (PCA to 3-D, one uniform scale so the map fits the cube
[-1, 1]^3 and distances stay honest), coloured by class (sorted class names -> the ``tab10`` palette, ``tab20`` for
more than 10 classes; unknown or ``other`` in grey). Beside the map: the selected item's true shape (re-sampled from
its source) and its reconstruction (its code decoded by the model); below: the interpolation between two marked
items, one decoded cloud per step, with the steps' codes projected by the same PCA (same mean and axes) onto the map.

Keys:
    Right/N, Left/P   next / previous item along the map tour: a greedy nearest-neighbour walk over the map
                      that starts at the item with the smallest PC1, so each step goes to a nearby point
    ] or J, [ or K    the next / previous nearest neighbour in latent space (full Z, Euclidean) of the item
                      where the jumps started (#1, #2, ...; [ back to #0 returns to it)
    A, B              mark the selection as endpoint A / B; with both marked the A-B line and the interpolation show
    C                 clear A and B
    Q, Escape         quit

Screenshots for tests work as in :mod:`viewers.window` (``screenshot_dir`` or ``SHAPELATENT_VIEW_SCREENSHOTS``).
The display-free parts (palette, PCA, tour, key state, layout) live in :mod:`viewers.map_model` and are re-exported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viewers.map_model import (  # the display-free parts, re-exported here
    GREY,
    GREY_CLASSES,
    SHAPE_SCALE,
    MapLayout,
    MapPCA,
    MapState,
    class_palette,
    fit_map_pca,
    latent_order,
    map_layout,
    map_tour,
)
from viewers.window import Window, colormap, text_mesh

__all__ = [
    "GREY",
    "GREY_CLASSES",
    "MAP_KEYS_HELP",
    "SHAPE_SCALE",
    "MapLayout",
    "MapPCA",
    "MapScene",
    "MapState",
    "class_palette",
    "fit_map_pca",
    "latent_order",
    "map_layout",
    "map_tour",
    "view_map",
]

logger = logging.getLogger(__name__)

MAP_KEYS_HELP = (
    "Right/N next item along the map, Left/P previous, ] or J next latent neighbour, [ or K previous, "
    "A / B mark endpoints (interpolation), C clears them, Q/Esc quits"
)
# GLFW key codes, as VisualizerWithKeyCallback.register_key_callback expects them.
KEY_A, KEY_B, KEY_C, KEY_J, KEY_K, KEY_N, KEY_P = 65, 66, 67, 74, 75, 78, 80
KEY_LBRACKET, KEY_RBRACKET, KEY_RIGHT, KEY_LEFT = 91, 93, 262, 263
HINT = (0.42, 0.42, 0.42)
KEY_LINES = "keys|Right/Left: walk the map|] / [: latent neighbours|A, B: mark ends|C: clear ends|Q: quit".split("|")
TEXT_SCALE = 1.5
_YAW, _PITCH = np.radians(-35.0), np.radians(20.0)
_SHAPE_TURN = np.array(  # yaw about y, then pitch about x: shapes show their side and top as well as their front
    [[1, 0, 0], [0, np.cos(_PITCH), -np.sin(_PITCH)], [0, np.sin(_PITCH), np.cos(_PITCH)]]
) @ np.array([[np.cos(_YAW), 0, np.sin(_YAW)], [0, 1, 0], [-np.sin(_YAW), 0, np.cos(_YAW)]])


# ---------------------------------------------------------------------------------------------- geometry
def _spheres(centers: np.ndarray, radius: float, colors: np.ndarray | Sequence[float]) -> Any:
    """One mesh of small spheres: centers (B, 3), colors (B, 3) or one RGB."""
    import open3d as o3d

    unit = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=5)
    v0, f0 = np.asarray(unit.vertices), np.asarray(unit.triangles)
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    verts = (c[:, None, :] + radius * v0[None]).reshape(-1, 3)  # (B * V0, 3)
    faces = (f0[None] + (np.arange(len(c)) * len(v0))[:, None, None]).reshape(-1, 3)
    cols = np.broadcast_to(np.asarray(colors, dtype=np.float64).reshape(-1, 1, 3), (len(c), len(v0), 3))
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
    mesh.vertex_colors = o3d.utility.Vector3dVector(cols.reshape(-1, 3))
    mesh.compute_vertex_normals()
    return mesh


def _lines(points: np.ndarray | Sequence[Sequence[float]], pairs: Sequence[tuple[int, int]]) -> Any:
    import open3d as o3d

    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(np.asarray(points, float)), o3d.utility.Vector2iVector(pairs))
    return ls.paint_uniform_color([0.8, 0.8, 0.8])


def _text(
    text: str, at: np.ndarray | Sequence[float], align: str = "center", color: Sequence[float] | None = None
) -> Any:
    """A text mesh (TEXT_SCALE times the viewer's) hanging below ``at``: centred on it, or starting at it (``left``)."""
    pos = np.asarray(at, dtype=np.float64)
    mesh = text_mesh(text, pos)
    if len(mesh.vertices):
        mesh.scale(TEXT_SCALE, center=pos)
        if align == "left":
            mesh.translate([pos[0] - np.asarray(mesh.vertices)[:, 0].min(), 0.0, 0.0])
    if color is not None:
        mesh.paint_uniform_color(list(color))
    return mesh


def _frame(rect: np.ndarray) -> Any:
    """The outline of a (2, 2) [[x0, y0], [x1, y1]] rectangle at z = 0."""
    (x0, y0), (x1, y1) = rect
    return _lines([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], [(0, 1), (1, 2), (2, 3), (3, 0)])


def _extent(layout: MapLayout) -> Any:
    """Two white (invisible) points at the layout's corners: the legacy viewer frames its camera on point clouds and
    meshes only (not text or lines), so without them the zoom would depend on what is drawn."""
    import open3d as o3d

    rects = np.concatenate(list(layout.frames.values()))  # (2F, 2)
    corners = np.array([[*rects.min(axis=0), -1.0], [*rects.max(axis=0), 1.0]])
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(corners)).paint_uniform_color([1.0, 1.0, 1.0])


def _box(center: Sequence[float], half: Sequence[float]) -> Any:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]
    return _lines(corners * np.asarray(half) + np.asarray(center), pairs)


def _cloud(points: np.ndarray, color: Sequence[float], label: str, at: np.ndarray, scale: float) -> list[Any]:
    """A point cloud (P, 3), turned to a three-quarter view (the camera looks almost straight on), scaled, moved to
    ``at`` and faded towards white with depth so its shape reads, with its label below."""
    import open3d as o3d

    pts = np.asarray(points, np.float64) @ _SHAPE_TURN.T  # (P, 3)
    z = pts[:, 2]
    far = ((z.max() - z) / max(float(np.ptp(z)), 1e-9))[:, None]  # (P, 1): 0 nearest, 1 farthest
    cols = 0.8 * np.asarray(color) * (1 - 0.6 * far) + 0.6 * far
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts * scale + at))
    pcd.colors = o3d.utility.Vector3dVector(cols)
    return [pcd] + ([_text(label, at + [0.0, -1.1 * scale, 0.0])] if label else [])


# ---------------------------------------------------------------------------------------------- the viewer
def _resolve_model(store: Any, model: str | os.PathLike[str] | None) -> tuple[Any, tuple[str, str]]:
    """The model for reconstructions (``model``, else the store's recorded one if it exists), or None and why not.

    Raises:
        StoreError: the model did not make the store's codes.
    """
    from shapelatent.latent.store import model_fingerprint
    from shapelatent.models.load import load_model

    recorded = (store.info.get("model") or {}).get("path")
    path = Path(model) if model is not None else (Path(recorded) if recorded and Path(recorded).exists() else None)
    if path is None:
        why = f"(the store's model {Path(recorded).name} is gone)" if recorded else "(the store records no model)"
        return None, ("needs --model RUN", why)
    loaded = load_model(path)
    store.check_model(model_fingerprint(loaded.model), str(path))
    logger.info("reconstructions decoded by %s", path)
    return loaded, ("", "")


class MapScene:
    """The map of a store and everything drawn around it, as Open3D geometries (no window needed).

    Args: see :func:`view_map`.
    """

    def __init__(
        self,
        store: Any,
        model: Any = None,
        max_points: int | None = 5000,
        seed: int = 0,
        steps: int = 5,
        method: str = "linear",
    ) -> None:
        from shapelatent.data.build import SamplingConfig
        from shapelatent.latent.encode import model_sampling
        from shapelatent.latent.interpolate import interpolate_codes
        from shapelatent.latent.project import subsample
        from shapelatent.latent.store import LatentStore

        self.store = store if isinstance(store, LatentStore) else LatentStore.open(store)
        if len(self.store) < 2:
            raise ValueError(f"{self.store.path}: holds {len(self.store)} codes; a map needs at least 2.")
        interpolate_codes(self.store.codes[0], self.store.codes[1], steps, method)  # checks steps and method
        self.steps, self.method, self.layout = int(steps), method, map_layout(steps)
        self.rows = subsample(len(self.store), max_points, seed)  # (N,) store rows shown
        self.codes = self.store.codes[self.rows]  # (N, Z)
        self.pca = fit_map_pca(self.codes)
        self.coords = self.pca.transform(self.codes)  # (N, 3)
        self.items = [self.store.items[int(r)] for r in self.rows]
        self.palette = class_palette([it["class"] for it in self.items])
        self.state = MapState(self.codes, map_tour(self.coords))
        self.loaded, self.no_model = _resolve_model(self.store, model)
        recorded = (self.store.info.get("model") or {}).get("sampling")
        self.cfg = SamplingConfig.from_dict(recorded) if recorded else None
        if self.cfg is None and self.loaded is not None:
            self.cfg = model_sampling(self.loaded)
        self.radius = float(np.clip(0.12 / len(self.codes) ** (1 / 3), 0.01, 0.035))
        self._truth: dict[int, np.ndarray | None] = {}
        ev = " ".join(f"PC{j + 1} {100 * e:.0f}%" for j, e in enumerate(self.pca.explained))
        n, z = len(self.codes), self.store.latent_dim
        self.title = f"latent map: {n} of {len(self.store)} codes (Z={z}, seed {seed}), PCA {ev}"
        self._static: list[Any] | None = None

    def name(self, i: int) -> str:
        return f"{self.items[i]['id']} ({self.items[i]['class'] or '?'})"

    def true_points(self, i: int) -> np.ndarray | None:
        """(P, 3) float32 points of shown item i re-sampled from its source (cached), or None when it is gone."""
        from shapelatent.latent.sources import source_points

        if i not in self._truth:
            it = self.items[i]
            self._truth[i] = None if self.cfg is None else source_points(it["source"], it["class"], self.cfg)
            if self._truth[i] is None:
                logger.warning("%s: its source %r is not on this machine", it["id"], it["source"])
        return self._truth[i]

    def where(self) -> str:
        """How the selection was reached: its place on the tour, or its rank among the anchor's neighbours."""
        st, i = self.state, self.state.selected
        if st.anchor is not None and st.rank > 0:
            dist = float(np.linalg.norm(self.codes[i] - self.codes[st.anchor]))
            return f"latent neighbour #{st.rank} of {self.items[st.anchor]['id']}, d={dist:.3g}"
        return f"item {st.pos[i] + 1} of {len(self.codes)} along the map"

    def static(self) -> list[Any]:
        """What never changes: the map, its box and title, the panel frames and titles, the legend, the keys."""
        if self._static is None:
            lay = self.layout
            colors = np.array([self.palette[it["class"]] for it in self.items])  # (N, 3)
            out = [_spheres(self.coords, self.radius, colors), _box([0, 0, 0], [1, 1, 1]), _frame(lay.frames["shapes"])]
            out += [_frame(lay.frames["steps"]), _text(self.title, [-1.0, 1.38, 0], "left"), _extent(lay)]
            out += [_text(t, [x, 1.25, 0]) for t, x in (("true shape", lay.shape[0]), ("reconstruction", lay.recon[0]))]
            out.append(_text("classes", lay.legend, "left"))
            for j, (cls, col) in enumerate(self.palette.items()):
                at = lay.legend + [0.0, -0.14 * (j + 1), 0.0]
                out += [
                    _spheres(at + [0.05, -0.045, 0], 0.045, col),
                    _text(cls or "(no class)", at + [0.14, 0, 0], "left"),
                ]
            (kx, _), (_, ky) = lay.frames["keys"]
            out += [_text(t, [kx, ky - 0.13 * j, 0], "left", HINT if j else None) for j, t in enumerate(KEY_LINES)]
            self._static = out
        return list(self._static)

    def geometries(self) -> list[Any]:
        """Everything to draw for the current state (logged as well)."""
        from shapelatent.latent.decode import decode_codes
        from shapelatent.latent.interpolate import interpolate_codes

        st, lay, i, r = self.state, self.layout, self.state.selected, self.radius
        geoms = self.static()
        geoms += [_spheres(self.coords[i], 2.2 * r + 0.015, (0.05, 0.05, 0.05))]
        geoms += [_text(self.items[i]["id"], self.coords[i] + [0.07, 0.04, 0.05], "left")]
        (fx0, fy0), _ = lay.frames["shapes"]
        geoms += [_text(self.name(i), [lay.shape[0], 1.1, 0]), _text(self.where(), [fx0 + 0.05, fy0 + 0.2, 0], "left")]
        truth = self.true_points(i)
        if truth is not None:
            geoms += _cloud(truth, self.palette[self.items[i]["class"]], "", lay.shape, lay.shape_scale)
        else:
            geoms += [_text(f"source {self.items[i]['source']} not found", lay.shape)]
        if self.loaded is not None:
            rec = decode_codes(self.loaded, self.codes[i][None])[0][0]  # (P, 3)
            geoms += _cloud(rec, (0.25, 0.3, 0.45), "", lay.recon, lay.shape_scale)
            geoms += [_text("its code, decoded", [lay.recon[0], 1.1, 0])]
        else:
            geoms += [_text(t, lay.recon + [0, 0.1 - 0.15 * j, 0]) for j, t in enumerate(self.no_model)]
        for end, tag, t in ((st.a, "A", 0.0), (st.b, "B", 1.0)):
            if end is not None:
                geoms += [_spheres(self.coords[end], 1.8 * r + 0.01, colormap(t))]
                geoms += [_text(tag, self.coords[end] + [-0.03, 0.16, 0.05], "left")]
        (x0, _), (_, y1) = lay.frames["steps"]
        if st.line is None:
            text = "A and B mark two items: their interpolation shows here"
            logger.info("%s: %s", self.name(i), self.where())
            return geoms + [_text(text, [x0 + 0.05, y1 - 0.05, 0], "left", HINT)]
        a, b = st.line
        path = interpolate_codes(self.codes[a], self.codes[b], self.steps, self.method)  # (S, Z)
        ts = np.linspace(0.0, 1.0, self.steps)
        dots = self.coords[a] + np.linspace(0, 1, 40)[:, None] * (self.coords[b] - self.coords[a])  # (40, 3)
        geoms += [_spheres(dots, 0.35 * r + 0.003, (0.2, 0.2, 0.2))]
        geoms += [_spheres(self.pca.transform(path), 1.2 * r + 0.006, np.array([colormap(t) for t in ts]))]
        head = f"A {self.name(a)} -> B {self.name(b)}: {self.method}, {self.steps} steps"
        geoms += [_text(head, [x0 + 0.05, y1 - 0.05, 0], "left")]
        if self.loaded is not None:
            dec = decode_codes(self.loaded, path)[0]  # (S, P, 3)
            for k in range(self.steps):
                geoms += _cloud(dec[k], colormap(ts[k]), f"t={ts[k]:.2f}", lay.steps[k], lay.step_scale)
        else:
            geoms += [_text("decoding the steps " + self.no_model[0], lay.steps[self.steps // 2])]
        logger.info("%s: %s; interpolation %s", self.name(i), self.where(), head)
        return geoms


def view_map(
    store: Any,
    model: str | os.PathLike[str] | None = None,
    *,
    max_points: int | None = 5000,
    seed: int = 0,
    steps: int = 5,
    method: str = "linear",
    screenshot_dir: str | os.PathLike[str] | None = None,
    width: int = 1280,
    height: int = 800,
) -> None:
    """Open the latent map of a store (keys in the module docstring).

    Args:
        store: a ``LatentStore`` or the path of a store folder.
        model: run folder or checkpoint for reconstructions; default: the model path the store records, if it exists.
            Without one the map and the true shapes still show.
        max_points: show at most this many items (uniform subsample with ``seed``; only they can be selected);
            None shows all.
        seed: subsampling seed.
        steps: S, decoded interpolation steps between A and B (both included), S >= 2.
        method: ``linear`` or ``slerp`` interpolation.

    Raises:
        FileNotFoundError, StoreError: no store, or a model that did not make it.
        ValueError: fewer than 2 codes, bad ``steps``/``method``/``max_points``. NoDisplayError: no display.
    """
    scene = MapScene(store, model, max_points, seed, steps, method)
    win = Window(f"shapelatent view - map - {scene.store.path.name}", screenshot_dir, width, height)
    win.show(scene.geometries())
    rects = np.concatenate(list(scene.layout.frames.values()))  # (2F, 2)
    ctr = win.vis.get_view_control()
    ctr.change_field_of_view(step=-90.0)  # at its 5 degree minimum the legacy viewer is orthographic: panels stay flat
    ctr.set_front([0.12, 0.1, 1.0])
    ctr.set_up([0.0, 1.0, 0.0])
    ctr.set_lookat([*(rects.min(axis=0) + rects.max(axis=0)) / 2, 0.0])
    ctr.set_zoom(0.35)

    def act(fn: Any) -> Any:
        def run() -> None:
            fn()
            win.show(scene.geometries())

        return run

    st = scene.state
    win.on_key([KEY_RIGHT, KEY_N], "next", act(lambda: st.step(1)))
    win.on_key([KEY_LEFT, KEY_P], "previous", act(lambda: st.step(-1)))
    win.on_key([KEY_RBRACKET, KEY_J], "neighbour", act(lambda: st.jump(1)))
    win.on_key([KEY_LBRACKET, KEY_K], "back", act(lambda: st.jump(-1)))
    win.on_key([KEY_A], "mark_a", act(lambda: st.mark("a")))
    win.on_key([KEY_B], "mark_b", act(lambda: st.mark("b")))
    win.on_key([KEY_C], "clear", act(st.clear))
    win.run()
