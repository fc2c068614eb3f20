"""Headless renders of meshes and point clouds with Open3D's ``OffscreenRenderer`` (Filament).

Every panel is drawn with the same fixed camera (front-left-above, Y up, +Z towards the viewer), the same
lighting and the same colours, so panels of a contact sheet and frames of a GIF compare directly:

- meshes: one material colour, lit (a sun light plus ambient light), flat on sharp edges, smooth elsewhere;
- point clouds: unlit points coloured by height (Y) with a fixed colormap over ``[-1, 1]``.

Shapes are expected to be normalised to the unit sphere (as every shapelatent dataset and decoder output
is). A shape that is not (its farthest point from the origin is beyond 1.02 or within 0.5, or its bounding-box
centre is more than 0.15 from the origin) is re-centred on its bounding-box centre and scaled to the unit sphere
before drawing; a debug log line says so. The camera frames the unit sphere with a 10% margin.

The renderer is Open3D's ``OffscreenRenderer``, which runs headless on a Vulkan driver (on Debian:
``libvulkan1 mesa-vulkan-drivers``, software llvmpipe when there is no GPU). Whether it can start is probed
once per process in a subprocess (a missing driver can abort the process rather than raise); when it
cannot, :class:`RendererUnavailableError` names the packages to install. There is no silent fallback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shapelatent.errors import ShapelatentError
from shapelatent.io.atomic import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "DEBIAN_PACKAGES",
    "FolderRenders",
    "RendererUnavailableError",
    "offscreen_available",
    "render_folder",
    "render_gif",
    "render_images",
    "render_views",
    "save_gif",
    "save_sheet",
]

#: Debian/Ubuntu packages the offscreen renderer needs on a machine without a GPU driver.
DEBIAN_PACKAGES = "libvulkan1 mesa-vulkan-drivers libegl1 libgl1 libgomp1"
MODES = ("auto", "points", "mesh")
RENDERERS = ("auto", "legacy", "offscreen")

BACKGROUND = (255, 255, 255)
MESH_COLOR = (0.62, 0.70, 0.84)  # one material colour for every mesh (linear RGB)
POINT_CMAP = "viridis"  # points coloured by height over the fixed range [-1, 1]
FOV_DEG = 30.0  # vertical field of view
EYE_DIR = np.array([-1.0, 0.75, 1.6])  # front-left-above; +Z is the front, Y is up
SUN_DIR = (0.4, -0.8, -0.6)  # where the sun light points (from upper left front)
POINTS_FOR_MESH = 4096  # points sampled on a mesh drawn in points mode


class RendererUnavailableError(ShapelatentError):
    """The requested renderer cannot start on this machine (missing system libraries)."""


class FolderRenders(NamedTuple):
    """What :func:`render_folder` wrote.

    Attributes:
        sheet: the contact sheet PNG.
        gif: the animated GIF, or None when not asked for.
        mode: ``"mesh"`` when every step had a mesh, else ``"points"``.
    """

    sheet: Path
    gif: Path | None
    mode: str


class _Shape(NamedTuple):
    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray | None  # (F, 3) int64, None for a point cloud


# ----------------------------------------------------------------------------------------------- renderer


@functools.lru_cache(maxsize=1)
def offscreen_available() -> tuple[bool, str]:
    """Whether Open3D's ``OffscreenRenderer`` can start here, probed once in a subprocess.

    Returns:
        ``(True, "")`` or ``(False, reason)``; the reason names the Debian packages to install.
    """
    probe = "import open3d.visualization.rendering as r; r.OffscreenRenderer(16, 16).render_to_image(); print('ok')"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        return False, "the Open3D OffscreenRenderer probe did not finish in 120 s"
    if done.returncode == 0 and "ok" in done.stdout:
        return True, ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
    return False, (
        f"Open3D's OffscreenRenderer cannot start ({tail[0]}); it needs a Vulkan or EGL driver: "
        f"on Debian/Ubuntu install `apt-get install {DEBIAN_PACKAGES}` (software llvmpipe works without a GPU)."
    )


@functools.lru_cache(maxsize=1)
def legacy_available() -> tuple[bool, str]:
    """Whether Open3D's legacy ``Visualizer`` can open a hidden window (a display, or EGL offscreen), probed once
    in a subprocess (a missing driver can crash the process rather than raise).

    Returns:
        ``(True, "")`` or ``(False, reason)``; the reason names the Debian packages to install.
    """
    probe = (
        "import open3d as o3d; v = o3d.visualization.Visualizer(); "
        "ok = v.create_window(visible=False, width=16, height=16); v.destroy_window(); print('ok' if ok else 'no')"
    )
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "the Open3D Visualizer probe did not finish in 60 s"
    if done.returncode == 0 and "ok" in done.stdout:
        return True, ""
    return False, (
        "Open3D's Visualizer cannot open an offscreen (EGL) context; on Debian/Ubuntu install "
        "`apt-get install libegl1 libgl1` (Mesa's software rasteriser works without a GPU)."
    )


def _resolve_renderer(renderer: str) -> str:
    """``auto`` -> ``legacy``: Open3D's OpenGL Visualizer on EGL renders a frame in a few ms and reliably, while
    the Filament ``OffscreenRenderer`` on software Vulkan stalls for seconds to minutes on some mesh frames."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}; got {renderer!r}")
    name = "legacy" if renderer == "auto" else renderer
    ok, reason = legacy_available() if name == "legacy" else offscreen_available()
    if not ok:
        raise RendererUnavailableError(reason)
    _log_choice_once(name, renderer)
    return name


@functools.cache
def _log_choice_once(name: str, asked: str) -> None:
    what = {"legacy": "Open3D Visualizer (OpenGL, EGL offscreen)", "offscreen": "Open3D OffscreenRenderer (Filament)"}
    logger.info("renderer: %s [asked for %r]", what[name], asked)


class _Offscreen:
    """One Filament renderer of a fixed size, reused for every panel (starting one takes about a second)."""

    def __init__(self, width: int, height: int) -> None:
        import open3d as o3d
        from open3d.visualization import rendering

        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        self.size = (width, height)
        self.count = 0
        self.r = rendering.OffscreenRenderer(width, height)
        view = self.r.scene.view
        # shadows and ambient occlusion cost ~20 s a frame on llvmpipe; post-processing would tone-map the
        # white background to grey. Lighting is tuned for the linear output instead.
        view.set_post_processing(False)
        view.set_shadowing(False)
        view.set_ambient_occlusion(False)
        view.set_antialiasing(False)
        self.r.scene.set_background([c / 255 for c in BACKGROUND] + [1.0])
        self.r.scene.scene.set_sun_light(list(SUN_DIR), [1.0, 1.0, 1.0], 60000.0)
        self.r.scene.scene.enable_sun_light(True)
        self.r.scene.scene.enable_indirect_light(True)
        self.r.scene.scene.set_indirect_light_intensity(35000.0)
        dist = 1.1 / np.sin(np.radians(FOV_DEG / 2))  # the unit sphere fits inside the panel with a small margin
        self.eye = (EYE_DIR / np.linalg.norm(EYE_DIR) * dist).tolist()
        self.fov = (
            FOV_DEG
            if height <= width
            else float(np.degrees(2 * np.arctan(np.tan(np.radians(FOV_DEG / 2)) * height / width)))
        )

    def render(self, shape: _Shape, point_size: float) -> np.ndarray:
        """Draw one shape; returns ``(H, W, 3) uint8``."""
        import open3d as o3d
        from open3d.visualization import rendering

        scene = self.r.scene
        # hide the previous shape rather than removing it: on llvmpipe, freeing Filament buffers right after a
        # frame can stall for seconds to minutes; the hidden ones are freed in batches
        if self.count and self.count % 16 == 0:
            scene.clear_geometry()
        elif self.count:
            scene.show_geometry(f"shape{self.count - 1}", False)
        name = f"shape{self.count}"
        self.count += 1
        mat = rendering.MaterialRecord()
        if shape.faces is None:
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(shape.vertices))
            pc.colors = o3d.utility.Vector3dVector(_height_colors(shape.vertices))
            mat.shader = "defaultUnlit"
            mat.point_size = float(point_size)
            scene.add_geometry(name, pc, mat)
        else:
            verts, faces, normals = _shaded(shape)
            mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
            mesh.vertex_normals = o3d.utility.Vector3dVector(normals)
            mat.shader = "defaultLit"
            mat.base_color = [*MESH_COLOR, 1.0]
            mat.base_roughness = 0.7
            mat.base_reflectance = 0.3
            scene.add_geometry(name, mesh, mat)
        # set explicitly after adding: setup_camera() would derive near/far from the (empty) scene's bounds
        camera = scene.camera
        camera.set_projection(self.fov, self.size[0] / self.size[1], 0.1, 20.0, rendering.Camera.FovType.Vertical)
        camera.look_at([0.0, 0.0, 0.0], self.eye, [0.0, 1.0, 0.0])
        return np.asarray(self.r.render_to_image())[..., :3].copy()


class _Legacy:
    """Open3D's OpenGL ``Visualizer`` in a hidden window (EGL offscreen without a display), with the same fixed
    camera as :class:`_Offscreen` set through pinhole parameters."""

    def __init__(self, width: int, height: int) -> None:
        import open3d as o3d

        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        self.size = (width, height)
        self.vis = o3d.visualization.Visualizer()
        if not self.vis.create_window(visible=False, width=width, height=height):
            raise RendererUnavailableError(legacy_available()[1] or "Open3D's Visualizer could not open a window")
        opt = self.vis.get_render_option()
        opt.background_color = np.asarray(BACKGROUND, dtype=np.float64) / 255
        opt.mesh_show_back_face = True
        opt.light_on = False  # colours carry the shading (see render)
        dist = 1.1 / np.sin(np.radians(FOV_DEG / 2))
        eye = EYE_DIR / np.linalg.norm(EYE_DIR) * dist
        forward = -eye / np.linalg.norm(eye)  # looking at the origin
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.stack([right, down, forward])  # world -> camera (x right, y down, z forward)
        self.extrinsic = np.eye(4)
        self.extrinsic[:3, :3] = rot
        self.extrinsic[:3, 3] = -rot @ eye
        f = (min(width, height) / 2) / np.tan(np.radians(FOV_DEG / 2))
        self.intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, f, f, width / 2 - 0.5, height / 2 - 0.5)

    def render(self, shape: _Shape, point_size: float) -> np.ndarray:
        """Draw one shape; returns ``(H, W, 3) uint8``."""
        import open3d as o3d

        vis = self.vis
        vis.clear_geometries()
        if shape.faces is None:
            geom = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(shape.vertices))
            geom.colors = o3d.utility.Vector3dVector(_height_colors(shape.vertices))
        else:
            verts, faces, normals = _shaded(shape)
            geom = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
            # Lambert shading computed here (a key light from SUN_DIR plus a fill from the camera), shown unlit,
            # so the look does not depend on the OpenGL driver's lighting
            n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            key = -np.asarray(SUN_DIR, dtype=np.float64) / np.linalg.norm(SUN_DIR)
            fill = EYE_DIR / np.linalg.norm(EYE_DIR)
            shade = 0.35 + 0.45 * np.abs(n @ key) + 0.25 * np.abs(n @ fill)  # both sides lit (back faces drawn)
            geom.vertex_colors = o3d.utility.Vector3dVector(np.clip(np.outer(shade, MESH_COLOR), 0, 1))
        vis.add_geometry(geom, reset_bounding_box=True)
        vis.get_render_option().point_size = float(point_size)
        params = o3d.camera.PinholeCameraParameters()
        params.intrinsic = self.intrinsic
        params.extrinsic = self.extrinsic
        vis.get_view_control().convert_from_pinhole_camera_parameters(params, allow_arbitrary=True)
        vis.poll_events()
        vis.update_renderer()
        img = np.asarray(vis.capture_screen_float_buffer(do_render=True))
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


_RENDERER: _Offscreen | _Legacy | None = None


def _get_renderer(size: tuple[int, int], name: str = "offscreen") -> _Offscreen | _Legacy:
    global _RENDERER
    cls = _Legacy if name == "legacy" else _Offscreen
    if _RENDERER is None or _RENDERER.size != size or not isinstance(_RENDERER, cls):
        start = time.perf_counter()
        _RENDERER = None  # release the old one before starting another
        _RENDERER = cls(*size)
        logger.debug("%s %dx%d started in %.2f s", cls.__name__, *size, time.perf_counter() - start)
    return _RENDERER


# ----------------------------------------------------------------------------------------------- shapes


def _height_colors(points: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    h = np.clip((points[:, 1] + 1.0) / 2.0, 0.0, 1.0)  # (P,) height over the fixed range [-1, 1]
    return np.asarray(colormaps[POINT_CMAP](h))[:, :3]


def _shaded(shape: _Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split vertices at sharp edges (> 30 degrees) so boxes look flat and smooth surfaces stay smooth."""
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=True)
    shaded = trimesh.graph.smooth_shade(mesh, angle=np.radians(30.0))
    verts = np.asarray(shaded.vertices, dtype=np.float64)
    faces = np.asarray(shaded.faces, dtype=np.int32)
    normals = np.asarray(shaded.vertex_normals, dtype=np.float64)
    # draw both sides: open meshes (Poisson surfaces, single-sided furniture) show no holes from behind
    back = faces[:, ::-1] + len(verts)
    return np.vstack([verts, verts]), np.vstack([faces, back]), np.vstack([normals, -normals])


def _normalised(vertices: np.ndarray) -> np.ndarray:
    radius = float(np.linalg.norm(vertices, axis=1).max())
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    offset = float(np.linalg.norm((lo + hi) / 2))
    if 0.5 <= radius <= 1.02 and offset <= 0.15:
        return vertices
    centred = vertices - (lo + hi) / 2
    scale = float(np.linalg.norm(centred, axis=1).max()) or 1.0
    logger.debug("shape (radius %.3g, off-centre %.3g) re-centred and scaled to the unit sphere", radius, offset)
    return centred / scale


def _load_path(path: Path) -> _Shape:
    from shapelatent.io.meshes import MESH_READERS, POINT_READERS, read_mesh, read_points

    ext = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file to render")
    if ext in MESH_READERS and ext in POINT_READERS:  # .ply: a mesh when it has faces, else points
        import trimesh

        loaded = trimesh.load(str(path), file_type=ext[1:], process=False)
        if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
            ext_kind = "mesh"
        else:
            ext_kind = "points"
    elif ext in MESH_READERS:
        ext_kind = "mesh"
    elif ext in POINT_READERS:
        ext_kind = "points"
    else:
        known = sorted(set(MESH_READERS) | set(POINT_READERS))
        raise ValueError(f"{path}: cannot render extension {ext or '(none)'!r}; supported: {', '.join(known)}")
    if ext_kind == "mesh":
        mesh = read_mesh(path)
        return _Shape(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64))
    return _Shape(read_points(path).points.astype(np.float64), None)


def _to_shape(item: Any, index: int) -> _Shape:
    if isinstance(item, (str, os.PathLike)):
        return _load_path(Path(item))
    if hasattr(item, "vertices") and hasattr(item, "faces"):  # trimesh.Trimesh (or alike)
        return _to_shape((np.asarray(item.vertices), np.asarray(item.faces)), index)
    if isinstance(item, tuple) and len(item) == 2:
        v, f = np.asarray(item[0], dtype=np.float64), np.asarray(item[1])
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise ValueError(
                f"item {index}: a (vertices, faces) tuple needs (V, 3) and (F, 3) with F >= 1; "
                f"got {v.shape} and {f.shape}"
            )
        if f.min() < 0 or f.max() >= len(v):
            raise ValueError(f"item {index}: face indices must lie in [0, {len(v)}); got [{f.min()}, {f.max()}]")
        return _Shape(v, f.astype(np.int64))
    arr = np.asarray(item, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
        raise ValueError(f"item {index}: points must have shape (P, 3) with P >= 1; got {arr.shape}")
    return _Shape(arr, None)


def _prepare(item: Any, index: int, mode: str) -> _Shape:
    shape = _to_shape(item, index)
    if not np.isfinite(shape.vertices).all():
        raise ValueError(f"item {index}: coordinates contain NaN or infinity")
    if mode == "mesh" and shape.faces is None:
        raise ValueError(f"item {index}: mode='mesh' but this item is a point cloud (no faces); use mode='auto'")
    if mode == "points" and shape.faces is not None:
        import trimesh

        mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
        pts, _ = trimesh.sample.sample_surface(mesh, POINTS_FOR_MESH, seed=index)
        shape = _Shape(np.asarray(pts, dtype=np.float64), None)
    return _Shape(_normalised(shape.vertices), shape.faces)


# ----------------------------------------------------------------------------------------------- public API


def _check_common(mode: str, size: tuple[int, int]) -> tuple[int, int]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    w, h = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise ValueError(f"size must be between 32 and 4096 pixels a side; got {size!r}")
    return w, h


def render_images(
    items: Sequence[Any],
    *,
    size: tuple[int, int] = (320, 320),
    mode: str = "auto",
    renderer: str = "auto",
) -> list[np.ndarray]:
    """Render each shape to its own image with the fixed camera, lights and colours.

    Args:
        items: file paths (mesh or point cloud), ``(P, 3)`` arrays, ``(vertices (V, 3), faces (F, 3))`` tuples
            or trimesh meshes.
        size: ``(width, height)`` of each image in pixels.
        mode: ``"auto"`` (meshes as meshes, point clouds as points), ``"points"`` (meshes are sampled into
            points) or ``"mesh"`` (every item must be a mesh).
        renderer: ``"auto"`` (= ``"legacy"``), ``"legacy"`` (Open3D's OpenGL Visualizer, EGL offscreen) or
            ``"offscreen"`` (Open3D's Filament OffscreenRenderer; Vulkan).

    Returns:
        One ``(H, W, 3) uint8`` image per item.

    Raises:
        ValueError: a bad item, mode, size or renderer name (the message names the item).
        FileNotFoundError: a path that does not exist.
        RendererUnavailableError: the renderer cannot start; the message names the Debian packages to install.
    """
    w, h = _check_common(mode, size)
    shapes = [_prepare(item, i, mode) for i, item in enumerate(items)]
    if not shapes:
        raise ValueError("nothing to render: items is empty")
    r = _get_renderer((w, h), _resolve_renderer(renderer))
    point_size = max(2.0, round(min(w, h) / 110))
    images = []
    for i, shape in enumerate(shapes):
        start = time.perf_counter()
        images.append(r.render(shape, point_size))
        logger.debug("panel %d rendered in %.2f s", i, time.perf_counter() - start)
    return images


def _font(px: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), px)


def _sheet(images: list[np.ndarray], titles: Sequence[str] | None, ncols: int | None):
    from PIL import Image, ImageDraw

    n = len(images)
    h, w = images[0].shape[:2]
    cols = max(1, min(n, ncols if ncols else min(n, 6)))
    rows = -(-n // cols)
    font_px = max(10, h // 18)
    title_h = int(font_px * 1.6) if titles else 0
    sheet = Image.new("RGB", (cols * w, rows * (h + title_h)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(font_px)
    for i, img in enumerate(images):
        x, y = (i % cols) * w, (i // cols) * (h + title_h)
        sheet.paste(Image.fromarray(img), (x, y + title_h))
        if titles:
            draw.text((x + w / 2, y + title_h / 2), str(titles[i]), fill=(30, 30, 30), font=font, anchor="mm")
    return sheet


def render_views(
    items: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: tuple[int, int] = (320, 320),
    mode: str = "auto",
    renderer: str = "auto",
) -> Path:
    """Render several shapes into one contact-sheet PNG (titles over the panels), written atomically.

    Args:
        items: see :func:`render_images`.
        path: the PNG to write.
        titles: one title per item, drawn over its panel; None for no titles.
        ncols: panels per row (default: all in one row up to 6).
        size: ``(width, height)`` of each panel.
        mode, renderer: see :func:`render_images`.

    Returns:
        The path written.

    Raises:
        ValueError: titles of the wrong length, ``ncols < 1``, or anything :func:`render_images` rejects.
    """
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"titles must have one entry per item ({len(items)}); got {len(titles)}")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}")
    images = render_images(items, size=size, mode=mode, renderer=renderer)
    return save_sheet(images, path, titles=titles, ncols=ncols)


def save_sheet(
    images: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
) -> Path:
    """Paste images (each ``(H, W, 3) uint8``, one size) into a PNG contact sheet, titles over the panels."""
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image ({len(images)}); got {len(titles)}")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}")
    sheet = _sheet(list(images), titles, ncols)
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG", optimize=True))


def render_gif(
    frames_items: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    fps: float = 6,
    size: tuple[int, int] = (320, 320),
    loop: bool = True,
    mode: str = "auto",
    renderer: str = "auto",
) -> Path:
    """Render one frame per shape (same camera) into an animated GIF, written atomically.

    Args:
        frames_items: the shapes in frame order (see :func:`render_images` for the accepted kinds).
        path: the GIF to write.
        fps: frames per second (0 < fps <= 50).
        size: ``(width, height)`` of each frame.
        loop: loop forever (True) or play once.
        mode, renderer: see :func:`render_images`.

    Returns:
        The path written.
    """
    if not 0 < fps <= 50:
        raise ValueError(f"fps must be in (0, 50]; got {fps}")
    images = render_images(frames_items, size=size, mode=mode, renderer=renderer)
    return save_gif(images, path, fps, loop)


def save_gif(images: Sequence[np.ndarray], path: str | os.PathLike[str], fps: float = 6, loop: bool = True) -> Path:
    """Write images (each ``(H, W, 3) uint8``, one size) as an animated GIF, atomically; returns the path."""
    from PIL import Image

    if not 0 < fps <= 50:
        raise ValueError(f"fps must be in (0, 50]; got {fps}")

    frames = [Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for img in images]
    extra: dict[str, Any] = {"loop": 0} if loop else {}

    def write(tmp: Path) -> None:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=int(round(1000 / fps)),
            disposal=1,
            **extra,
        )

    return atomic_write(path, write)


def _folder_items(folder: Path, mode: str) -> tuple[list[Path], list[str], str]:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{folder}: no manifest.json (expected the output folder of `shapelatent interpolate`)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{manifest_path}: not valid JSON ({exc})") from exc
    rows = manifest.get("steps") if isinstance(manifest, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "points" in r for r in rows):
        raise ValueError(f"{manifest_path}: expected a non-empty 'steps' list whose rows name a 'points' file")
    use_mesh = mode == "mesh" or (mode == "auto" and all("mesh" in r for r in rows))
    if mode == "mesh" and not all("mesh" in r for r in rows):
        missing = [i for i, r in enumerate(rows) if "mesh" not in r]
        raise ValueError(f"{manifest_path}: mode='mesh' but steps {missing} have no mesh")
    files = [folder / (r["mesh"] if use_mesh else r["points"]) for r in rows]
    titles = [f"t={r['t']:.2f}" if isinstance(r.get("t"), (int, float)) else f"step {i}" for i, r in enumerate(rows)]
    return files, titles, "mesh" if use_mesh else "points"


def render_folder(
    folder: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    gif: str | os.PathLike[str] | None | bool = True,
    size: tuple[int, int] = (320, 320),
    ncols: int | None = None,
    mode: str = "auto",
    fps: float = 6,
    renderer: str = "auto",
) -> FolderRenders:
    """Render an interpolation folder (``shapelatent interpolate`` output) as a contact sheet and a GIF.

    The folder's ``manifest.json`` has ``steps`` rows naming each step's ``points`` PLY and, when meshing
    succeeded, its ``mesh``. In ``"auto"`` mode meshes are drawn when every step has one, else points (so
    all frames look alike).

    Args:
        folder: the interpolation output folder.
        out: the contact sheet PNG (default ``folder/render.png``).
        gif: the GIF path, True for ``folder/render.gif``, or None/False for no GIF.
        size, ncols, mode, renderer: see :func:`render_views`.
        fps: GIF frames per second.

    Returns:
        :class:`FolderRenders` with the paths written and the mode used.

    Raises:
        FileNotFoundError: no folder or no ``manifest.json``.
        ValueError: a malformed manifest, or ``mode="mesh"`` with steps lacking a mesh.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files, titles, used = _folder_items(root, mode)
    sheet_path = Path(out) if out is not None else root / "render.png"
    if not 0 < fps <= 50:
        raise ValueError(f"fps must be in (0, 50]; got {fps}")
    size = _check_common(mode, size)
    images = render_images(files, size=size, mode="auto", renderer=renderer)
    save_sheet(images, sheet_path, titles=titles, ncols=ncols)
    gif_path: Path | None = None
    if gif:
        gif_path = root / "render.gif" if gif is True else Path(gif)
        save_gif(images, gif_path, fps, loop=True)
    return FolderRenders(sheet_path, gif_path, used)
