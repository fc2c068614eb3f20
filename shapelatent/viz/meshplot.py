"""Headless contact sheets of meshes with matplotlib (Agg): flat-shaded, Y-up, seen from front-left-above.

Meshes follow the project's convention (Y up, front towards +Z). They are drawn with matplotlib's
``Poly3DCollection`` under an orthographic camera, back faces culled (so a flipped face shows as a hole),
and shaded by the angle between each face normal and a light placed above and to the left of the camera.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from shapelatent.io.atomic import atomic_write

__all__ = ["render_mesh_grid"]

logger = logging.getLogger(__name__)


class MeshLike(Protocol):
    """Anything with ``vertices`` (V, 3) and ``faces`` (F, 3), such as ``trimesh.Trimesh``."""

    @property
    def vertices(self) -> NDArray[np.floating]: ...

    @property
    def faces(self) -> NDArray[np.integer]: ...


def _to_plot_axes(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map (x, y, z) with Y up and front +Z to matplotlib's (x, -z, y): a proper rotation, Z up."""
    return np.stack((points[..., 0], -points[..., 2], points[..., 1]), axis=-1)


def render_mesh_grid(
    meshes: Sequence[MeshLike],
    titles: Sequence[str],
    path: str | os.PathLike[str],
    *,
    ncols: int | None = None,
    panel_size: float = 2.6,
    dpi: int = 100,
    elev: float = 22.0,
    azim: float = -125.0,
    color: tuple[float, float, float] = (0.60, 0.68, 0.80),
    subdivide: int = 24,
) -> Path:
    """Render meshes side by side into one PNG, written atomically.

    Args:
        meshes: the meshes, each with ``vertices`` (V, 3) float and ``faces`` (F, 3) int; Y up, front +Z.
        titles: one title per mesh.
        path: the PNG to write (its folder is created; an existing file is replaced atomically).
        ncols: panels per row (default: up to 4).
        panel_size: width and height of one panel in inches.
        dpi: resolution of the PNG.
        elev: camera elevation in degrees above the horizontal.
        azim: camera azimuth in degrees in matplotlib's frame, where the mesh front is -Y and the mesh's
            +X is +X; the default -125 looks from the front and from the mesh's -X side.
        color: base RGB colour in [0, 1].
        subdivide: split faces longer than 1/``subdivide`` of the mesh's extent before drawing, which
            keeps the painter's-algorithm depth sort from drawing far faces over near ones; 0 disables.

    Returns:
        The path written.

    Raises:
        ValueError: if there are no meshes, the titles do not match the meshes one to one, a mesh is
            empty or has non-finite vertices, or ``ncols`` < 1.
    """
    import trimesh
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if len(meshes) == 0:
        raise ValueError("render_mesh_grid needs at least one mesh; got none")
    if len(titles) != len(meshes):
        raise ValueError(f"need one title per mesh; got {len(titles)} titles for {len(meshes)} meshes")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}")
    ncols = min(len(meshes), ncols or 4)
    nrows = math.ceil(len(meshes) / ncols)

    e, a = math.radians(elev), math.radians(azim)
    to_camera = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    light = to_camera + np.array([-0.4 * math.sin(a), 0.4 * math.cos(a), 0.9])  # up and to the left
    light /= np.linalg.norm(light)

    title_in = 0.3  # inches reserved above each row for its titles
    fig = Figure(figsize=(ncols * panel_size, nrows * (panel_size + title_in)), dpi=dpi)
    for i, (mesh, title) in enumerate(zip(meshes, titles, strict=True)):
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(vertices) == 0 or len(faces) == 0:
            raise ValueError(f"mesh {i} ({title!r}) is empty: {len(vertices)} vertices, {len(faces)} faces")
        if not np.isfinite(vertices).all():
            raise ValueError(f"mesh {i} ({title!r}) has non-finite vertices")
        if subdivide > 0:  # smaller faces make matplotlib's per-face depth sort far less wrong
            extent = float(np.ptp(vertices, axis=0).max())
            vertices, faces = trimesh.remesh.subdivide_to_size(vertices, faces, extent / subdivide, max_iter=8)
        tris = _to_plot_axes(np.asarray(vertices, dtype=np.float64))[np.asarray(faces)]  # (F, 3, 3)
        normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])  # (F, 3)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        front = normals @ to_camera > 0.0
        shade = 0.35 + 0.65 * np.clip(normals[front] @ light, 0.0, 1.0)  # (F',)
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="3d")
        colors = np.outer(shade, color)  # (F', 3); edges in the face colour hide anti-aliasing seams
        polys = Poly3DCollection(tris[front], facecolors=colors, edgecolors=colors, linewidths=0.3)
        ax.add_collection3d(polys)
        lo, hi = tris.reshape(-1, 3).min(axis=0), tris.reshape(-1, 3).max(axis=0)
        centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.02
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1.0, 1.0, 1.0))
        ax.set_proj_type("ortho")
        ax.view_init(elev=elev, azim=azim)
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
    top = 1.0 - title_in / (nrows * (panel_size + title_in))
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=top, wspace=0.0, hspace=title_in / panel_size)

    target = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    logger.debug("wrote %d meshes to %s", len(meshes), target)
    return target
