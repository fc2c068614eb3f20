"""Surface reconstruction on analytic shapes, checked against dense samples of the true surface.

Shapes: a unit sphere (2048 points, exact normals), a 1 x 0.6 x 0.4 box and a 1 x 0.03 x 0.8 plate (a chair
seat 0.03 thick: the case where normal orientation goes wrong), each sampled with 2048 points and the
normals of their faces. Distances are measured with scipy ``cKDTree`` from 20 000 points sampled on the
reconstructed mesh to 100 000 points sampled on the true surface (whose own spacing is about 0.15 s), and
back, in units of the cloud's mean nearest-neighbour spacing s (sphere 0.039, box 0.017, plate 0.014).

Tolerances (measured values in brackets, worst mesher):
* mesh -> true: 95th percentile < 1.0 s [0.82 s], max < 2.0 s [1.56 s]: no surface away from the shape;
* true -> mesh: 95th percentile < 1.5 s [1.40 s], max < 4.0 s [3.56 s]: no large holes.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import ConvexHull, cKDTree

from shapelatent.data.sampling import sample_surface
from shapelatent.errors import MeshingError, UnsupportedFormatError
from shapelatent.meshing import (
    MESHERS,
    MIN_POINTS,
    MeshingConfig,
    estimate_normals,
    mean_spacing,
    orient_normals,
    reconstruct_mesh,
    save_mesh,
)
from shapelatent.meshing.alpha import alpha_shape
from shapelatent.meshing.cleanup import is_watertight, remove_fins, split_pinches

P = 2048
MESH_TO_TRUE_P95, MESH_TO_TRUE_MAX = 1.0, 2.0  # in units of the mean spacing s
TRUE_TO_MESH_P95, TRUE_TO_MESH_MAX = 1.5, 4.0


def _sphere(count: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(count, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def shapes() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (points (P, 3), true unit normals (P, 3), dense sample of the true surface (100000, 3))."""
    sphere = _sphere(P, 0)
    out = {"sphere": (sphere, sphere.copy(), _sphere(100_000, 1))}
    for name, extents in (("box", (1.0, 0.6, 0.4)), ("plate", (1.0, 0.03, 0.8))):
        mesh = trimesh.creation.box(extents=extents)
        cloud = sample_surface(mesh, P, seed=1)
        out[name] = (
            cloud.points.astype(np.float64),
            cloud.normals.astype(np.float64),
            sample_surface(mesh, 100_000, seed=2).points,
        )
    return out


def _flip_half(normals: np.ndarray, seed: int = 3) -> np.ndarray:
    signs = np.where(np.random.default_rng(seed).random(len(normals)) < 0.5, -1.0, 1.0)
    return normals * signs[:, None]


def _distances(result, dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force (cKDTree) distances mesh samples -> true surface, and true surface -> mesh samples."""
    on_mesh = sample_surface(trimesh.Trimesh(result.vertices, result.faces, process=False), 20_000, seed=0).points
    mesh_to_true, _ = cKDTree(dense).query(on_mesh)
    true_to_mesh, _ = cKDTree(on_mesh).query(dense[::5])
    return mesh_to_true, true_to_mesh


def _assert_close(result, points: np.ndarray, dense: np.ndarray) -> None:
    s = mean_spacing(points)
    mesh_to_true, true_to_mesh = _distances(result, dense)
    assert np.quantile(mesh_to_true, 0.95) < MESH_TO_TRUE_P95 * s
    assert mesh_to_true.max() < MESH_TO_TRUE_MAX * s
    assert np.quantile(true_to_mesh, 0.95) < TRUE_TO_MESH_P95 * s
    assert true_to_mesh.max() < TRUE_TO_MESH_MAX * s


# ------------------------------------------------------------------------------------------ reconstruction


@pytest.mark.parametrize("method", MESHERS)
@pytest.mark.parametrize("shape", ["sphere", "box", "plate"])
def test_mesh_is_close_to_true_surface(shapes, shape, method):
    points, normals, dense = shapes[shape]
    result = reconstruct_mesh(points, normals, MeshingConfig(method=method))
    assert result.method == method
    assert result.vertices.dtype == np.float32 and result.vertices.shape[1] == 3
    assert result.faces.dtype == np.int64 and result.faces.shape == (result.num_triangles, 3)
    assert 0 <= result.faces.min() and result.faces.max() < len(result.vertices)
    assert result.seconds > 0
    _assert_close(result, points, dense)


def test_poisson_sphere_is_watertight(shapes):
    points, normals, _ = shapes["sphere"]
    result = reconstruct_mesh(points, normals)
    assert result.watertight
    assert trimesh.Trimesh(result.vertices, result.faces).is_watertight  # trimesh agrees
    radius = np.linalg.norm(result.vertices, axis=1)
    assert np.abs(radius - 1.0).max() < 0.02


def test_chamfer_to_points_matches_brute_force(shapes):
    points, normals, _ = shapes["box"]
    result = reconstruct_mesh(points, normals, seed=5)
    mesh = trimesh.Trimesh(result.vertices, result.faces, process=False)
    on_mesh = sample_surface(mesh, len(points), seed=5).points.astype(np.float64)
    pts = points.astype(np.float32).astype(np.float64)
    d_xy, _ = cKDTree(pts).query(on_mesh)
    d_yx, _ = cKDTree(on_mesh).query(pts)
    expected = (d_xy**2).mean() + (d_yx**2).mean()
    assert result.chamfer_to_points == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("method", MESHERS)
def test_same_seed_same_mesh(shapes, method):
    points, normals, _ = shapes["plate"]
    flipped = _flip_half(normals)
    a = reconstruct_mesh(points, flipped, MeshingConfig(method=method), seed=7)
    b = reconstruct_mesh(points, flipped, MeshingConfig(method=method), seed=7)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert a.chamfer_to_points == b.chamfer_to_points


@pytest.mark.parametrize("method", ["poisson", "ball_pivoting"])
@pytest.mark.parametrize("shape", ["sphere", "box", "plate"])
def test_flipped_normals_are_reoriented(shapes, shape, method):
    points, normals, dense = shapes[shape]
    result = reconstruct_mesh(points, _flip_half(normals), MeshingConfig(method=method, orient_normals=True))
    _assert_close(result, points, dense)
    if method == "poisson":
        assert result.watertight


def test_flipped_normals_without_orientation_ruin_poisson(shapes):
    """The control for the test above: the same flipped normals, not oriented, give bubbles off the box."""
    points, normals, dense = shapes["box"]
    result = reconstruct_mesh(points, _flip_half(normals), MeshingConfig(orient_normals=False))
    mesh_to_true, _ = _distances(result, dense)
    assert np.quantile(mesh_to_true, 0.95) > 3 * MESH_TO_TRUE_P95 * mean_spacing(points)


@pytest.mark.parametrize("shape", ["sphere", "box", "plate"])
def test_estimated_normals(shapes, shape):
    points, _, dense = shapes[shape]
    result = reconstruct_mesh(points, None)
    _assert_close(result, points, dense)


# ------------------------------------------------------------------------------------------ normals


@pytest.mark.parametrize(
    ("shape", "method"),
    # not ("box", "tangent_plane"): across a 90-degree edge n_i . n_j is 0 and the propagated sign is a coin toss
    [
        ("sphere", "visibility"),
        ("box", "visibility"),
        ("sphere", "tangent_plane"),
        ("sphere", "centroid"),
        ("box", "centroid"),
    ],
)
def test_orientation_recovers_signs_on_convex_shapes(shapes, shape, method):
    points, normals, _ = shapes[shape]
    oriented = orient_normals(points, _flip_half(normals), method=method)
    agree = np.einsum("ij,ij->i", oriented.normals, normals) > 0
    assert agree.mean() > 0.99


def test_visibility_orients_thin_plate_where_graph_propagation_fails(shapes):
    points, normals, _ = shapes["plate"]
    flipped = _flip_half(normals)
    agree = {}
    for method in ("visibility", "tangent_plane"):
        oriented = orient_normals(points, flipped, method=method, seed=0)
        agree[method] = float((np.einsum("ij,ij->i", oriented.normals, normals) > 0).mean())
    assert agree["visibility"] == 1.0
    assert agree["tangent_plane"] < 0.9  # the neighbour graph links the two faces 0.03 apart


def test_orientation_keeps_consistent_normals_and_reports_flips(shapes):
    points, normals, _ = shapes["plate"]
    assert not orient_normals(points, normals).flipped.any()
    flipped = _flip_half(normals)
    result = orient_normals(points, flipped)
    np.testing.assert_array_equal(result.flipped, np.einsum("ij,ij->i", flipped, normals) < 0)


def test_estimate_normals_sphere_and_thin_cylinder():
    sphere = _sphere(1000, 4)
    normals = estimate_normals(sphere, 16)
    assert np.abs(np.einsum("ij,ij->i", normals, sphere)).min() > 0.98
    # a rod of radius 0.01 sampled 0.02 apart: the neighbourhoods wrap around it
    rng = np.random.default_rng(5)
    angle, height = rng.uniform(0, 2 * np.pi, 600), rng.uniform(0, 1, 600)
    radial = np.stack([np.cos(angle), np.zeros(600), np.sin(angle)], axis=1)
    rod = 0.01 * radial + height[:, None] * np.array([0.0, 1.0, 0.0])
    inner = (height > 0.1) & (height < 0.9)
    along = np.abs(np.einsum("ij,ij->i", estimate_normals(rod, 16), radial))[inner]
    pca_only = np.abs(np.einsum("ij,ij->i", estimate_normals(rod, 16, ambiguity=1.0), radial))[inner]
    assert np.median(along) > 0.9 > np.median(pca_only)


# ------------------------------------------------------------------------------------------ pieces


def test_alpha_shape_with_huge_alpha_is_the_convex_hull(shapes):
    points, _, _ = shapes["box"]
    faces = alpha_shape(points, 1e3)
    mesh = trimesh.Trimesh(points, faces, process=False)
    assert mesh.area == pytest.approx(ConvexHull(points).area, rel=1e-6)  # float32 faces are not exactly flat
    assert is_watertight(faces) and mesh.volume > 0  # closed and facing outwards


def test_cleanup_helpers():
    box = trimesh.creation.box()
    faces = np.asarray(box.faces)
    assert is_watertight(faces)
    assert not is_watertight(faces[1:])  # a hole
    assert not is_watertight(np.concatenate([faces[:1, ::-1], faces[1:]]))  # one face wound backwards
    fin = np.concatenate([faces, faces[:1], faces[:1, ::-1]])  # a repeated face and its reverse
    np.testing.assert_array_equal(remove_fins(fin), faces)
    # two tetrahedra sharing the edge (0, 1): closed, but that edge has four faces
    tet = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0], [0, 0, -1]], dtype=float)
    other = np.array([[0, 1, 4], [0, 5, 1], [1, 5, 4], [0, 4, 5]])
    pinched = np.concatenate([tet, other])
    assert not is_watertight(pinched)
    new_vertices, new_faces = split_pinches(vertices, pinched)
    assert is_watertight(new_faces) and len(new_vertices) == 8  # both ends of the shared edge doubled
    np.testing.assert_array_equal(new_vertices[new_faces], vertices[pinched])  # no face moved


# ------------------------------------------------------------------------------------------ saving


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_save_mesh_round_trip(tmp_path, shapes, suffix):
    points, normals, _ = shapes["sphere"]
    result = reconstruct_mesh(points, normals, MeshingConfig(method="ball_pivoting"))
    path = save_mesh(tmp_path / "sub" / f"mesh{suffix}", result)
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == result.num_triangles
    assert loaded.area == pytest.approx(trimesh.Trimesh(result.vertices, result.faces).area, rel=1e-5)


def test_save_mesh_unknown_extension(tmp_path, shapes):
    points, normals, _ = shapes["sphere"]
    result = reconstruct_mesh(points, normals, MeshingConfig(method="ball_pivoting"))
    with pytest.raises(UnsupportedFormatError, match=r"'\.stl'.*\.ply, \.obj, \.glb") as info:
        save_mesh(tmp_path / "mesh.stl", result)
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "mesh.stl").exists()


# ------------------------------------------------------------------------------------------ errors


def _line(count: int) -> np.ndarray:
    return np.linspace(0, 1, count)[:, None] * np.array([[1.0, 2.0, 3.0]])


def _square(count: int) -> np.ndarray:
    xy = np.random.default_rng(6).random((count, 2))
    return np.stack([xy[:, 0], xy[:, 1], np.zeros(count)], axis=1)


@pytest.mark.parametrize(
    ("method", "points", "message"),
    [
        ("poisson", np.zeros((MIN_POINTS - 1, 3)) + np.arange(MIN_POINTS - 1)[:, None], r"at least 10 points; got 9"),
        ("alpha", np.zeros((20, 2)), r"shape \(P, 3\); got \(20, 2\)"),
        ("poisson", np.where(np.arange(60)[:, None] == 7, np.nan, _sphere(60, 0)), r"1 of 60 points are NaN"),
        ("ball_pivoting", np.ones((50, 3)), r"all points coincide"),
        ("poisson", _line(50), r"collinear"),
        ("alpha", _square(200), r"coplanar.*ball_pivoting"),
        ("poisson", np.repeat(_sphere(5, 0), 4, axis=0), r"at least 10 distinct points; got 5"),
    ],
)
def test_degenerate_clouds_raise(method, points, message):
    with pytest.raises(MeshingError, match=rf"^{method}: .*{message}") as info:
        reconstruct_mesh(points, None, MeshingConfig(method=method))
    assert isinstance(info.value, ValueError)


def test_flat_cloud_is_fine_for_ball_pivoting():
    points = _square(400)
    result = reconstruct_mesh(points, np.tile([0.0, 0.0, 1.0], (400, 1)), MeshingConfig(method="ball_pivoting"))
    assert result.num_triangles > 400 and np.abs(result.vertices[:, 2]).max() == 0


@pytest.mark.parametrize(
    ("normals", "message"),
    [
        (np.ones((100, 2)), r"normals must have the shape of points \(100, 3\); got \(100, 2\)"),
        (np.where(np.arange(100)[:, None] == 3, np.inf, 1.0) * np.ones((100, 3)), r"NaN or infinite"),
        (np.where(np.arange(100)[:, None] < 2, 0.0, 1.0) * np.ones((100, 3)), r"2 normals have zero length"),
    ],
)
def test_bad_normals_raise(normals, message):
    with pytest.raises(MeshingError, match=rf"^poisson: .*{message}"):
        reconstruct_mesh(_sphere(100, 0), normals)


def test_empty_mesh_raises(shapes):
    points, normals, _ = shapes["sphere"]
    config = MeshingConfig(method="ball_pivoting", ball_radii=(1e-6,))
    with pytest.raises(MeshingError, match=r"^ball_pivoting: the method returned an empty mesh.*larger ball_radii"):
        reconstruct_mesh(points, normals, config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(method="marching_cubes"), r"unknown meshing method 'marching_cubes'; expected one of \('poisson'"),
        (dict(orientation="up"), r"unknown normal orientation 'up'; expected one of \('visibility'"),
        (dict(poisson_depth=0), r"poisson_depth must be in \[1, 12\]"),
        (dict(poisson_depth=8.5), r"poisson_depth must be an integer"),
        (dict(density_quantile=1.0), r"density_quantile must be in \[0, 1\)"),
        (dict(normal_neighbors=2), r"normal_neighbors must be >= 3"),
        (dict(ball_radii=(0.1, -1.0)), r"ball_radii must be positive finite radii"),
        (dict(ball_radii=()), r"ball_radii must be positive finite radii"),
        (dict(alpha=0.0), r"alpha must be a positive finite radius"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeshingConfig(**kwargs)


def test_orient_normals_errors():
    points = _sphere(50, 0)
    with pytest.raises(ValueError, match=r"unknown normal orientation 'inward'"):
        orient_normals(points, points, method="inward")
    with pytest.raises(ValueError, match=r"both have shape \(P, 3\); got \(50, 3\) and \(49, 3\)"):
        orient_normals(points, points[:-1])
    with pytest.raises(ValueError, match=r"must be finite"):
        orient_normals(points, np.where(np.arange(50)[:, None] == 0, np.nan, points))
    with pytest.raises(ValueError, match=r"1 normals have zero length"):
        orient_normals(points, np.where(np.arange(50)[:, None] == 0, 0.0, points))
    with pytest.raises(ValueError, match=r"k >= 3"):
        estimate_normals(points, 2)
