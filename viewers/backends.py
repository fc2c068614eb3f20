"""The two Open3D backends that draw a shape with the fixed look of :mod:`viewers.camera`, and the render loop.

- ``legacy`` (``"auto"`` where it starts): Open3D's OpenGL ``Visualizer`` in a hidden window: on the display, or
  without one EGL offscreen (Open3D 0.20; Debian ``libegl1 libgl1``); a few ms per frame. The pip wheels of
  Open3D 0.18/0.19 cannot open it without a display.
- ``offscreen``: Open3D's Filament ``OffscreenRenderer``, headless: Open3D 0.20 renders it on a Vulkan driver
  (Debian ``libvulkan1 mesa-vulkan-drivers``, software lavapipe when there is no GPU), where it can stall for
  seconds to minutes on some mesh frames; Open3D 0.18/0.19 on OpenGL through EGL (Mesa's surfaceless platform
  without a display, chosen by the probe when the default platform fails).

Whether a backend can start is probed once per process in a subprocess (a missing driver can abort the process
rather than raise); when it cannot, :class:`RendererUnavailableError` names the packages to install. ``"auto"``
takes ``legacy`` where it starts, else ``offscreen``, and logs which; a backend asked for by name is never
replaced by the other.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from shapelatent.errors import ShapelatentError
from viewers.camera import BACKGROUND, EYE_DIR, MESH_COLOR, SUN_DIR, eye_position, height_colors, pinhole, vertical_fov
from viewers.shapes import MODES, Shape, prepare, shaded

logger = logging.getLogger(__name__)

__all__ = [
    "DEBIAN_PACKAGES",
    "RENDERERS",
    "RendererUnavailableError",
    "check_mode_size",
    "legacy_available",
    "offscreen_available",
    "render_images",
    "resolve_renderer",
]

#: Debian/Ubuntu packages the offscreen renderer needs on a machine without a GPU driver.
DEBIAN_PACKAGES = "libvulkan1 mesa-vulkan-drivers libegl1 libgl1 libgomp1"
RENDERERS = ("auto", "legacy", "offscreen")


class RendererUnavailableError(ShapelatentError):
    """The requested renderer cannot start on this machine (missing system libraries)."""


@functools.lru_cache(maxsize=1)
def offscreen_available() -> tuple[bool, str]:
    """Whether Open3D's ``OffscreenRenderer`` can start here, probed once in a subprocess.

    Returns:
        ``(True, "")`` or ``(False, reason)``; the reason names the Debian packages to install.
    """
    probe = "import open3d.visualization.rendering as r; r.OffscreenRenderer(16, 16).render_to_image(); print('ok')"
    envs = [dict(os.environ)]
    if "EGL_PLATFORM" not in os.environ:
        # Open3D < 0.20 renders with OpenGL through EGL, whose default platform needs a display; Mesa's
        # surfaceless platform renders without one. Tried second, so a working default is never changed.
        envs.append({**os.environ, "EGL_PLATFORM": "surfaceless"})
    for env in envs:
        try:
            done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
        except subprocess.TimeoutExpired:
            return False, "the Open3D OffscreenRenderer probe did not finish in 120 s"
        if done.returncode == 0 and "ok" in done.stdout:
            if env.get("EGL_PLATFORM") != os.environ.get("EGL_PLATFORM"):
                os.environ["EGL_PLATFORM"] = env["EGL_PLATFORM"]  # read when the renderer starts EGL, after this
                logger.debug("OffscreenRenderer: EGL's default platform failed; using EGL_PLATFORM=surfaceless")
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
        "Open3D's Visualizer cannot open a hidden window (it needs a display, or EGL with Open3D >= 0.20); on "
        "Debian/Ubuntu install `apt-get install libegl1 libgl1` (Mesa's software rasteriser works without a GPU), "
        "or run under a virtual display (`xvfb-run -a shapelatent ...`)."
    )


def resolve_renderer(renderer: str) -> str:
    """The backend to use for ``renderer``, checked to start here.

    ``auto`` is ``legacy`` where it can start, else ``offscreen`` (the choice is logged). Open3D's OpenGL
    Visualizer renders a frame in a few ms and reliably, but the pip wheels of Open3D 0.18/0.19 cannot open it
    without a display (their headless path needs OSMesa and fails in GLEW); there, Filament's ``OffscreenRenderer``
    on OpenGL through EGL draws the same shapes with the same camera (about 1 s a frame on llvmpipe).

    Raises:
        ValueError: an unknown name. RendererUnavailableError: the backend cannot start (names the packages);
        for ``auto``, neither can (both reasons).
    """
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}; got {renderer!r}")
    if renderer == "auto":
        ok, reason = legacy_available()
        name = "legacy"
        if not ok:
            ok2, reason2 = offscreen_available()
            if not ok2:
                raise RendererUnavailableError(f"{reason} Nor can the offscreen renderer: {reason2}")
            name = "offscreen"
    else:
        name = renderer
        ok, reason = legacy_available() if name == "legacy" else offscreen_available()
        if not ok:
            raise RendererUnavailableError(reason)
    _log_choice_once(name, renderer)
    return name


@functools.cache
def _log_choice_once(name: str, asked: str) -> None:
    what = {"legacy": "Open3D Visualizer (OpenGL, hidden window)", "offscreen": "Open3D OffscreenRenderer (Filament)"}
    logger.info("renderer: %s [asked for %r]", what[name], asked)


class _Offscreen:
    """One Filament renderer of a fixed size, reused for every panel (starting one takes about a second)."""

    def __init__(self, width: int, height: int) -> None:
        import open3d as o3d
        from open3d.visualization import rendering

        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        self.size = (width, height)
        self.count = 0
        from shapelatent.native_output import native_output_to_log

        with native_output_to_log(logger):  # Filament's start-up lines (backend, EGL/GL versions) on fds 1/2
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
        self.eye = eye_position().tolist()
        self.fov = vertical_fov(width, height)

    def render(self, shape: Shape, point_size: float) -> np.ndarray:
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
            pc.colors = o3d.utility.Vector3dVector(height_colors(shape.vertices))
            mat.shader = "defaultUnlit"
            mat.point_size = float(point_size)
            scene.add_geometry(name, pc, mat)
        else:
            verts, faces, normals = shaded(shape)
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
        self.extrinsic, (f, cx, cy) = pinhole(width, height)
        self.intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, f, f, cx, cy)

    def render(self, shape: Shape, point_size: float) -> np.ndarray:
        """Draw one shape; returns ``(H, W, 3) uint8``."""
        import open3d as o3d

        vis = self.vis
        vis.clear_geometries()
        geom: Any
        if shape.faces is None:
            geom = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(shape.vertices))
            geom.colors = o3d.utility.Vector3dVector(height_colors(shape.vertices))
        else:
            verts, faces, normals = shaded(shape)
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


def check_mode_size(mode: str, size: tuple[int, int]) -> tuple[int, int]:
    """Validate a drawing mode and a panel size; returns ``(width, height)`` in pixels.

    Raises:
        ValueError: a mode not in ``MODES``, or a side outside 32..4096 pixels.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    given: Any = size
    scalar = bool(np.isscalar(given))  # a bare number is accepted too
    w, h = (int(given), int(given)) if scalar else (int(given[0]), int(given[1]))
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
        renderer: ``"auto"`` (``"legacy"`` where it starts, else ``"offscreen"``), ``"legacy"`` (Open3D's OpenGL
            Visualizer in a hidden window) or ``"offscreen"`` (Open3D's Filament OffscreenRenderer).

    Returns:
        One ``(H, W, 3) uint8`` image per item.

    Raises:
        ValueError: a bad item, mode, size or renderer name (the message names the item).
        FileNotFoundError: a path that does not exist.
        RendererUnavailableError: the renderer cannot start; the message names the Debian packages to install.
    """
    w, h = check_mode_size(mode, size)
    shapes = [prepare(item, i, mode) for i, item in enumerate(items)]
    if not shapes:
        raise ValueError("nothing to render: items is empty")
    r = _get_renderer((w, h), resolve_renderer(renderer))
    point_size = max(2.0, round(min(w, h) / 110))
    images = []
    for i, shape in enumerate(shapes):
        start = time.perf_counter()
        images.append(r.render(shape, point_size))
        logger.debug("panel %d rendered in %.2f s", i, time.perf_counter() - start)
    return images
