"""Surface reconstruction from a point cloud with normals: Poisson, ball pivoting, alpha shapes.

The input is what a decoder produces: points (P, 3) and unit normals (P, 3) whose signs may be
inconsistent (a normal loss ``1 - |cos|`` does not see the sign). By default the signs are made
consistent and outward first (:func:`shapelatent.meshing.orient.orient_normals`, by visibility), because
Poisson reconstruction inflates bubbles wherever neighbouring normals disagree.

* ``poisson``: Open3D's screened Poisson reconstruction, then the clean-up of
  :mod:`shapelatent.meshing.cleanup` (fins removed, pinches split), which leaves a closed 2-manifold in
  most cases (``MeshResult.watertight``). Smooth, complete, a little blobby.
* ``ball_pivoting``: Open3D's ball pivoting; interpolates the points, so it is close to them, but leaves
  holes where the sampling is sparser than the largest ball.
* ``alpha``: the alpha complex of :mod:`shapelatent.meshing.alpha`; no normals needed (they only orient
  the faces that bound no tetrahedron), good on thin parts, holes on wide flat parts.

Each mesher is one row of the ``_MESHERS`` table (its function, the hint when it returns no face, whether it
refuses flat clouds, an optional dependency with its pip extra). A mesher that needs more than the points (the
``implicit`` one queries the model's occupancy decoder) has its own entry point and is not a row here.

Every length parameter that is not given is derived from the cloud's mean nearest-neighbour spacing
``s``, so the defaults work at any scale. Measured on 12 procedural chairs x 2048 points
(``bench/meshing.py``), the defaults chosen here are: Poisson depth 8 (7 to 9 give the same error), no
density trimming (``density_quantile=0``: with oriented normals there are no bubbles to trim, and any
quantile punches holes into sparsely sampled flat parts and thin legs, whose Poisson density is lowest),
ball radii (2, 3, 4) s and alpha 2.5 s (the lowest Chamfer error to the true surface among the values tried).

Example:
    >>> result = reconstruct_mesh(points, normals)            # doctest: +SKIP
    >>> save_mesh("chair.ply", result)                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from shapelatent.data.sampling import sample_surface
from shapelatent.errors import BackendUnavailableError, MeshingError, UnsupportedFormatError
from shapelatent.io.atomic import atomic_write
from shapelatent.meshing.alpha import alpha_shape
from shapelatent.meshing.cleanup import (
    drop_unreferenced,
    is_watertight,
    remove_degenerate,
    remove_fins,
    split_pinches,
)
from shapelatent.meshing.orient import ORIENTATIONS, as_o3d_cloud, estimate_normals, mean_spacing, orient_normals
from shapelatent.ops.chamfer import chamfer_distance

__all__ = [
    "MESHERS",
    "MESH_FORMATS",
    "MIN_POINTS",
    "MeshResult",
    "MeshingConfig",
    "reconstruct_mesh",
    "save_mesh",
]

logger = logging.getLogger(__name__)

MESH_FORMATS = (".ply", ".obj", ".glb")
#: Fewer points than this raise :class:`MeshingError`.
MIN_POINTS = 10

_FLAT = 1e-6  # a singular value below this fraction of the largest one counts as zero
_DEFAULT_BALL_RADII = (2.0, 3.0, 4.0)  # ball pivoting radii, in units of the mean spacing
_DEFAULT_ALPHA = 2.5  # alpha-shape radius, in units of the mean spacing
_CROP_MARGIN = 2.0  # Poisson crop box: the points' bounding box grown by this many spacings on each side


@dataclass(frozen=True)
class MeshingConfig:
    """How to turn a point cloud into a mesh.

    Attributes:
        method: one of ``MESHERS``.
        poisson_depth: octree depth of Poisson reconstruction (grid of up to 2**depth cells per side).
        density_quantile: Poisson only: remove the vertices whose density (Open3D's estimate of how many
            input points support them) is below this quantile of all densities, which trims surface that
            Poisson invents far from the points. 0 (the default) keeps everything: with oriented normals
            there is little to trim, and trimming opens holes wherever the sampling is sparse.
        orient_normals: make the normal signs consistent and outward before meshing (see ``orientation``).
            Turn it off only for normals that are already oriented.
        orientation: how, one of ``shapelatent.meshing.orient.ORIENTATIONS``; ``visibility`` handles
            thin parts, ``tangent_plane`` and ``centroid`` are kept for comparison.
        normal_neighbors: k of the PCA normal estimate used when no normals are given.
        ball_radii: ball pivoting radii; None means (2, 3, 4) x the mean nearest-neighbour spacing.
        alpha: alpha-shape radius; None means 2.5 x the mean nearest-neighbour spacing.
        crop_to_bbox: Poisson only: crop the mesh to the points' bounding box grown by two spacings.
    """

    method: str = "poisson"
    poisson_depth: int = 8
    density_quantile: float = 0.0
    orient_normals: bool = True
    orientation: str = "visibility"
    normal_neighbors: int = 16
    ball_radii: tuple[float, ...] | None = None
    alpha: float | None = None
    crop_to_bbox: bool = True

    def __post_init__(self) -> None:
        if self.method not in MESHERS:
            raise ValueError(f"unknown meshing method {self.method!r}; expected one of {MESHERS}")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"unknown normal orientation {self.orientation!r}; expected one of {ORIENTATIONS}")
        if isinstance(self.poisson_depth, bool) or not isinstance(self.poisson_depth, (int, np.integer)):
            raise ValueError(f"poisson_depth must be an integer in [1, 12]; got {self.poisson_depth!r}")
        if not 1 <= self.poisson_depth <= 12:
            raise ValueError(f"poisson_depth must be in [1, 12] (memory grows 8x per level); got {self.poisson_depth}")
        if not 0.0 <= self.density_quantile < 1.0:
            raise ValueError(f"density_quantile must be in [0, 1); got {self.density_quantile}")
        if self.normal_neighbors < 3:
            raise ValueError(f"normal_neighbors must be >= 3; got {self.normal_neighbors}")
        if self.ball_radii is not None:
            radii = tuple(float(r) for r in self.ball_radii)
            if not radii or not all(np.isfinite(r) and r > 0 for r in radii):
                raise ValueError(f"ball_radii must be positive finite radii, or None; got {self.ball_radii!r}")
            object.__setattr__(self, "ball_radii", radii)
        if self.alpha is not None and not (np.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be a positive finite radius, or None; got {self.alpha!r}")


class MeshResult(NamedTuple):
    """A reconstructed mesh and how it was made.

    Attributes:
        vertices: (V, 3) float32.
        faces: (F, 3) int64 indices into ``vertices``.
        method: the mesher, one of ``MESHERS``.
        seconds: wall time to build the mesh (normal estimation, orientation, meshing, clean-up), not
            counting the Chamfer evaluation.
        watertight: every edge is shared by exactly two faces, which use it in opposite directions
            (usual for Poisson, rare for ball pivoting and alpha shapes).
        chamfer_to_points: Chamfer distance (squared L2, mean over each cloud, the two directions summed)
            between P points sampled uniformly on the mesh surface and the P input points.
        num_triangles: F.
    """

    vertices: NDArray[np.float32]
    faces: NDArray[np.int64]
    method: str
    seconds: float
    watertight: bool
    chamfer_to_points: float
    num_triangles: int


def _fail(method: str, problem: str) -> MeshingError:
    return MeshingError(f"{method}: {problem}")


def _check_points(points: ArrayLike, method: str) -> NDArray[np.float64]:
    """Validate the cloud; raise :class:`MeshingError` naming the method and the problem."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise _fail(method, f"points must have shape (P, 3); got {pts.shape}")
    if len(pts) < MIN_POINTS:
        raise _fail(method, f"needs at least {MIN_POINTS} points; got {len(pts)}")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise _fail(method, f"{int(bad.sum())} of {len(pts)} points are NaN or infinite; drop them first")
    singular = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)  # (3,), descending
    if not singular[0] > 0:
        raise _fail(method, "all points coincide; there is no surface to reconstruct")
    if singular[1] <= _FLAT * singular[0]:
        raise _fail(method, "the points are collinear; there is no surface to reconstruct")
    flat = _MESHERS[method].refuses_flat
    if flat and singular[2] <= _FLAT * singular[0]:
        raise _fail(method, f"the points are coplanar and {flat}")
    distinct = len(np.unique(pts, axis=0))
    if distinct < MIN_POINTS:
        raise _fail(method, f"needs at least {MIN_POINTS} distinct points; got {distinct}")
    return pts


def _check_normals(normals: ArrayLike, shape: tuple[int, ...], method: str) -> NDArray[np.float64]:
    nrm = np.asarray(normals, dtype=np.float64)
    if nrm.shape != shape:
        raise _fail(method, f"normals must have the shape of points {shape}; got {nrm.shape}")
    if not np.isfinite(nrm).all():
        raise _fail(method, "normals contain NaN or infinite values")
    length = np.linalg.norm(nrm, axis=1)
    if not (length > 0).all():
        raise _fail(method, f"{int((length <= 0).sum())} normals have zero length; pass normals=None to estimate them")
    return nrm / length[:, None]


def _poisson(pts, nrm, config: MeshingConfig, spacing: float):
    import open3d as o3d

    from shapelatent.native_output import native_output_to_log

    cloud = as_o3d_cloud(pts, nrm)
    # PoissonRecon prints diagnostics ("[WARNING] ... bad average roots") straight to stderr: log them instead.
    # n_threads=1: Open3D's multi-threaded Poisson emits the vertices in a run-dependent order.
    with native_output_to_log(logger):
        mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
            cloud, depth=config.poisson_depth, n_threads=1
        )
    density = np.asarray(densities)  # (V,)
    if config.density_quantile > 0 and len(density):
        mesh.remove_vertices_by_mask(density < np.quantile(density, config.density_quantile))
    if config.crop_to_bbox and len(mesh.triangles):
        margin = _CROP_MARGIN * spacing
        box = o3d.geometry.AxisAlignedBoundingBox(pts.min(axis=0) - margin, pts.max(axis=0) + margin)
        mesh = mesh.crop(box)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64).reshape(-1, 3)
    return split_pinches(vertices, remove_fins(remove_degenerate(vertices, faces)))


def _ball_pivoting(pts, nrm, config: MeshingConfig, spacing: float):
    import open3d as o3d

    radii = config.ball_radii or tuple(r * spacing for r in _DEFAULT_BALL_RADII)
    mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(
        as_o3d_cloud(pts, nrm), o3d.utility.DoubleVector(list(radii))
    )
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64).reshape(-1, 3)


def _alpha(pts, nrm, config: MeshingConfig, spacing: float):
    from scipy.spatial import QhullError

    alpha = config.alpha or _DEFAULT_ALPHA * spacing
    try:
        faces = alpha_shape(pts, alpha, nrm)
    except QhullError as exc:  # flat or otherwise degenerate input
        first_line = str(exc).strip().splitlines()[0]
        raise _fail("alpha", f"the Delaunay tetrahedralisation failed ({first_line})") from exc
    return pts, faces


@dataclass(frozen=True)
class _Mesher:
    """One point-cloud mesher.

    Attributes:
        mesh: ``(points (P, 3) float64, normals (P, 3) float64 unit and oriented, config, spacing)`` ->
            ``(vertices (V, 3), faces (F, 3) int64)``; raise :class:`MeshingError` (via ``_fail``) on bad input.
        empty_hint: what to change when it returns no face, for the :class:`MeshingError`.
        refuses_flat: why it refuses coplanar points and what to use instead (None: flat clouds are fine).
        requires: a module that must import for it to run (None: only core dependencies).
        install: how to install ``requires``, naming the pip extra (in :class:`BackendUnavailableError`).
    """

    mesh: Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]
    empty_hint: str
    refuses_flat: str | None = None
    requires: str | None = None
    install: str = ""


#: The point-cloud meshers (``MeshingConfig.method``): adding one is a function and one row here.
_MESHERS: dict[str, _Mesher] = {
    "poisson": _Mesher(_poisson, "lower density_quantile or turn off crop_to_bbox"),
    "ball_pivoting": _Mesher(_ball_pivoting, "give larger ball_radii"),
    "alpha": _Mesher(
        _alpha,
        "give a larger alpha",
        refuses_flat="alpha shapes need a 3-D Delaunay tetrahedralisation; use method='ball_pivoting' for a flat cloud",
    ),
}
MESHERS = tuple(_MESHERS)


def _check_available(method: str) -> None:
    module = _MESHERS[method].requires
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(f"mesher {method!r} is unavailable ({exc}): {_MESHERS[method].install}") from exc


def _chamfer_to_points(vertices, faces, points: NDArray[np.float64], seed: int) -> float:
    import trimesh

    surface = sample_surface(trimesh.Trimesh(vertices, faces, process=False), len(points), seed=seed).points
    x = torch.from_numpy(surface.astype(np.float32))[None]  # (1, P, 3)
    y = torch.from_numpy(points.astype(np.float32))[None]
    return float(chamfer_distance(x, y).loss)


def reconstruct_mesh(
    points: ArrayLike,
    normals: ArrayLike | None = None,
    config: MeshingConfig = MeshingConfig(),  # noqa: B008 (frozen, so a shared default is safe)
    *,
    seed: int = 0,
) -> MeshResult:
    """Reconstruct a triangle mesh from a point cloud with (possibly sign-inconsistent) normals.

    Steps: validate; if ``normals`` is None, estimate them by PCA over ``config.normal_neighbors``
    neighbours (:func:`shapelatent.meshing.orient.estimate_normals`, Open3D's method with a fix for parts
    thinner than the neighbourhood) and always orient them with ``config.orientation``, since PCA normals
    have arbitrary signs; otherwise orient the given normals when ``config.orient_normals``; mesh with
    ``config.method``; drop degenerate and unreferenced geometry; measure the Chamfer distance between the
    mesh surface and the points.

    Args:
        points: (P, 3) float, finite, P >= ``MIN_POINTS``, not all coincident nor collinear (nor coplanar
            for ``alpha``).
        normals: (P, 3) float unit (or any non-zero length) normals, signs possibly inconsistent, or None
            to estimate them. Alpha shapes use them only to orient the faces that bound no tetrahedron.
        config: the method and its parameters.
        seed: seeds the orientation rays and the surface sampling of ``chamfer_to_points``; the same seed
            gives the same mesh.

    Returns:
        :class:`MeshResult`.

    Raises:
        MeshingError: the cloud is degenerate (fewer than ``MIN_POINTS`` points, NaN or infinite values,
            coincident, collinear, or coplanar for ``alpha``), the normals do not match the points, or the
            method produced an empty mesh. The message names the method and the problem.
    """
    import open3d as o3d

    method = config.method
    _check_available(method)
    start = time.perf_counter()
    pts = _check_points(points, method)
    spacing = mean_spacing(pts)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        if normals is None:
            nrm = estimate_normals(pts, config.normal_neighbors)
            nrm = orient_normals(pts, nrm, method=config.orientation, seed=seed, spacing=spacing).normals
            logger.debug("estimated and oriented %d normals (k=%d)", len(pts), config.normal_neighbors)
        else:
            nrm = _check_normals(normals, pts.shape, method)
            if config.orient_normals:
                oriented = orient_normals(pts, nrm, method=config.orientation, seed=seed, spacing=spacing)
                nrm = oriented.normals
                logger.debug(
                    "orientation (%s) flipped %d of %d normals",
                    config.orientation,
                    int(oriented.flipped.sum()),
                    len(pts),
                )
        vertices, faces = _MESHERS[method].mesh(pts, nrm, config, spacing)
    vertices, faces = drop_unreferenced(vertices, remove_degenerate(vertices, faces))
    vertices = vertices.astype(np.float32)
    if len(faces) == 0:
        raise _fail(method, f"the method returned an empty mesh from {len(pts)} points; {_MESHERS[method].empty_hint}")
    seconds = time.perf_counter() - start
    chamfer = _chamfer_to_points(vertices, faces, pts, seed)
    logger.debug("%s: %d triangles in %.2f s, chamfer to points %.3g", method, len(faces), seconds, chamfer)
    return MeshResult(vertices, faces, method, seconds, is_watertight(faces), chamfer, len(faces))


def save_mesh(path: str | os.PathLike[str], result: MeshResult) -> Path:
    """Write a reconstructed mesh, format by extension (``MESH_FORMATS``: PLY, OBJ, GLB), atomically.

    Args:
        path: the file to write; its folder is created.
        result: from :func:`reconstruct_mesh`.

    Returns:
        The path written.

    Raises:
        UnsupportedFormatError: (a ``ValueError``) the extension is not one of ``MESH_FORMATS``.
    """
    import trimesh

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise UnsupportedFormatError(
            f"cannot write a mesh to {target}: unsupported extension {suffix or '(none)'!r}; "
            f"supported: {', '.join(MESH_FORMATS)}"
        )
    mesh = trimesh.Trimesh(np.asarray(result.vertices), np.asarray(result.faces), process=False)

    def write(tmp: Path) -> None:
        mesh.export(tmp, file_type=suffix[1:])  # the temporary name ends in .tmp.<ext>: give the type

    return atomic_write(target, write)
