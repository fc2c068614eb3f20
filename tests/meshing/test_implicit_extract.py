"""Mesh extraction from implicit functions: MISE against the dense grid, watertightness, normals, clean-up, errors.

The functions are analytic (negated signed distances, positive inside), so the dense grid
(``initial_resolution == resolution``) is the oracle: MISE must give the same inside/outside at every grid point
(exactly: both evaluate the same points where it matters, the fill only keeps signs) and hence the same mesh.
At R = 128 the fine spacing is h = 2.2 / 128 = 0.0172 and the coarse spacing (32 cells) 4h = 0.069.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from shapelatent.meshing.implicit import (
    DEFAULT_BATCH_POINTS,
    ImplicitMesh,
    evaluate_grid,
    extract_mesh,
    marching_cubes_grid,
)

R, R0, BOX = 128, 32, 1.1
H = 2 * BOX / R  # fine spacing
COARSE = 2 * BOX / R0  # coarse spacing


def box_sdf(x: torch.Tensor, centre, half) -> torch.Tensor:
    """Signed distance (M,) of points (M, 3) to an axis-aligned box."""
    d = (x - torch.tensor(centre, dtype=x.dtype)).abs() - torch.tensor(half, dtype=x.dtype)
    return d.clamp(min=0).norm(dim=1) + d.max(dim=1).values.clamp(max=0)


def sphere(x: torch.Tensor) -> torch.Tensor:
    return 0.7 - x.norm(dim=1)


def bar(offset: float):
    """A bar along y, 1.8 h wide in x and z (one line of grid points), centred at x = z = offset."""
    return lambda x: -box_sdf(x, (offset, 0.0, offset), (0.9 * H, 0.8, 0.9 * H))


def leg_under_seat(x: torch.Tensor) -> torch.Tensor:
    """A 1.8 h leg between the coarse grid lines, attached under a slab (a chair leg)."""
    leg = box_sdf(x, (COARSE / 2, -0.25, COARSE / 2), (0.9 * H, 0.55, 0.9 * H))
    seat = box_sdf(x, (0.0, 0.35, 0.5), (0.5, 0.05, 0.5))
    return -torch.minimum(leg, seat)


def fin(x: torch.Tensor) -> torch.Tensor:
    """A sphere with a 0.04-thick plate through it, between the coarse grid planes (y in [0.014, 0.054])."""
    return -torch.minimum(x.norm(dim=1) - 0.5, box_sdf(x, (0.0, 0.034, 0.0), (0.85, 0.02, 0.85))) / 0.01


@pytest.fixture(scope="module")
def dense():
    cache: dict[str, object] = {}

    def get(name: str, fn):
        if name not in cache:
            cache[name] = evaluate_grid(fn, R, initial_resolution=R)
        return cache[name]

    return get


def _mesh(result: ImplicitMesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(result.vertices, result.faces, process=False)


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


@pytest.mark.parametrize(
    "name, fn",
    [("sphere", sphere), ("bar_on_coarse_line", bar(0.0)), ("leg_under_seat", leg_under_seat), ("fin", fin)],
)
def test_mise_grid_matches_dense(dense, name, fn):
    reference = dense(name, fn)
    grid = evaluate_grid(fn, R, initial_resolution=R0)
    np.testing.assert_array_equal(grid.values > 0, reference.values > 0)
    assert grid.known.sum() == grid.evaluations
    np.testing.assert_array_equal(grid.values[grid.known], reference.values[grid.known])
    assert grid.evaluations < 0.1 * (R + 1) ** 3
    # the same values at the corners of every cell with a sign change, so the same mesh
    v_mise, f_mise = marching_cubes_grid(grid.values, BOX)
    v_dense, f_dense = marching_cubes_grid(reference.values, BOX)
    assert len(f_mise) == len(f_dense) > 0
    np.testing.assert_allclose(_sorted_rows(v_mise), _sorted_rows(v_dense), atol=1e-6)


def test_without_tracing_libmise_cuts_an_attached_leg(dense):
    """libmise's rule alone loses most of a thin leg between the coarse lines; tracing keeps all of it."""
    reference = dense("leg_under_seat", leg_under_seat)
    plain = evaluate_grid(leg_under_seat, R, initial_resolution=R0, trace=False)
    traced = evaluate_grid(leg_under_seat, R, initial_resolution=R0, trace=True)
    lost = int(((plain.values > 0) != (reference.values > 0)).sum())
    assert lost > 30  # measured: 60 of the leg's ~64 grid points
    assert ((traced.values > 0) == (reference.values > 0)).all()


def test_free_bar_between_coarse_lines_is_the_documented_limit(dense):
    """A free-floating part thinner than a coarse cell between the coarse lines is lost; a finer start finds it."""
    fn = bar(COARSE / 2)
    reference = dense("bar_between", fn)
    assert (reference.values > 0).sum() > 60  # the dense grid sees it
    assert extract_mesh(fn, R, initial_resolution=R0).is_empty
    finer = evaluate_grid(fn, R, initial_resolution=2 * R0)  # coarse spacing 2h: its centre line is on the grid
    np.testing.assert_array_equal(finer.values > 0, reference.values > 0)


def test_thin_bar_mesh_is_one_watertight_piece():
    result = extract_mesh(bar(0.0), R, initial_resolution=R0)
    mesh = _mesh(result)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert len(mesh.split(only_watertight=False)) == 1
    lo, hi = result.vertices.min(axis=0), result.vertices.max(axis=0)
    assert hi[1] - lo[1] > 1.6 - 2 * H and hi[0] - lo[0] < 2 * H  # full length, about 1-2 cells wide
    assert mesh.volume > 0


def test_sphere_is_watertight_with_outward_normals():
    result = extract_mesh(sphere, R)
    mesh = _mesh(result)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.7**3, rel=2e-3)
    radius = np.linalg.norm(result.vertices, axis=1)
    assert np.abs(radius - 0.7).max() < 0.05 * H
    radial = result.vertices / radius[:, None]
    assert result.normals.shape == result.vertices.shape and result.normals.dtype == np.float32
    assert (np.einsum("ij,ij->i", result.normals, radial) > 0.99).all()
    assert result.vertices.dtype == np.float32 and result.faces.dtype == np.int64
    assert result.evaluations == sum(result.evaluations_per_level) < 0.1 * (R + 1) ** 3
    assert set(result.timings) == {"fn", "grid", "marching_cubes", "components", "normals", "total"}


def test_gradient_normals_match_the_true_normals():
    result = extract_mesh(sphere, 64, initial_resolution=16, normals="gradient")
    radial = result.vertices / np.linalg.norm(result.vertices, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", result.normals, radial) > 0.9999).all()
    grid_only = extract_mesh(sphere, 64, initial_resolution=16, normals="none")
    assert grid_only.normals is None
    assert result.evaluations == grid_only.evaluations + len(result.vertices)


@pytest.mark.parametrize(
    "fn, volume",
    [
        (lambda x: torch.ones(len(x)), (2 * BOX) ** 3),  # inside everywhere: the box itself
        (lambda x: 0.3 - x[:, 0], (BOX + 0.3) * (2 * BOX) ** 2),  # a half-space cut by the box
        (lambda x: 1.0 - x.norm(dim=1), None),  # a sphere of radius 1 poking out of the box [-0.6, 0.6]^3
    ],
)
def test_touching_the_box_is_closed(fn, volume):
    result = extract_mesh(fn, 32, box=BOX if volume else 0.6, initial_resolution=8)
    mesh = _mesh(result)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    if volume is not None:
        assert mesh.volume == pytest.approx(volume, rel=1e-3)
    assert np.abs(result.vertices).max() <= (BOX if volume else 0.6) + 1e-5


def test_values_on_the_threshold_stay_watertight():
    """A box whose faces lie on grid planes: many values exactly 0."""
    result = extract_mesh(lambda x: -box_sdf(x, (0.0, 0.0, 0.0), (8 * H, 4 * H, 12 * H)), R)
    assert _mesh(result).is_watertight


def test_empty_level_set_gives_an_empty_mesh():
    result = extract_mesh(lambda x: -torch.ones(len(x)), 64, initial_resolution=16)
    assert result.is_empty and result.vertices.shape == (0, 3) and result.faces.shape == (0, 3)
    assert result.normals.shape == (0, 3)
    assert result.evaluations == 17**3  # nothing active: the coarse grid only


def test_remove_small_components():
    def two_spheres(x):
        return torch.maximum(0.5 - (x - torch.tensor([-0.3, 0.0, 0.0])).norm(dim=1),
                             0.15 - (x - torch.tensor([0.6, 0.0, 0.0])).norm(dim=1))  # fmt: skip

    kept = extract_mesh(two_spheres, 64, initial_resolution=16)
    assert len(_mesh(kept).split(only_watertight=False)) == 2 and kept.components_removed == 0
    for fraction in (0.5, 1.0):
        pruned = extract_mesh(two_spheres, 64, initial_resolution=16, remove_small=fraction)
        mesh = _mesh(pruned)
        assert pruned.components_removed == 1 and len(mesh.split(only_watertight=False)) == 1
        assert mesh.is_watertight and pruned.vertices[:, 0].max() < 0.3  # the big sphere stays
        assert len(pruned.normals) == len(pruned.vertices) and pruned.faces.max() < len(pruned.vertices)
    assert len(extract_mesh(two_spheres, 64, initial_resolution=16, remove_small=0.01).faces) == len(kept.faces)


def test_batches_numpy_output_and_column_logits():
    calls = []

    def numpy_fn(x: torch.Tensor) -> np.ndarray:
        calls.append(len(x))
        return sphere(x).numpy()[:, None]  # (M, 1) numpy

    batched = extract_mesh(numpy_fn, 64, initial_resolution=16, batch_points=1000)
    assert max(calls) <= 1000 and sum(calls) == batched.evaluations
    calls.clear()
    whole = extract_mesh(numpy_fn, 64, initial_resolution=16)  # the CPU default
    assert max(calls) == DEFAULT_BATCH_POINTS["cpu"] and whole.evaluations == batched.evaluations
    np.testing.assert_array_equal(batched.vertices, whole.vertices)
    np.testing.assert_array_equal(batched.faces, whole.faces)


def test_fn_receives_float32_points_inside_the_box():
    seen = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return sphere(x)

    extract_mesh(fn, 32, box=0.9, initial_resolution=8)
    points = torch.cat(seen)
    assert points.dtype == torch.float32 and points.shape[1] == 3
    assert points.abs().max() <= 0.9 + 1e-6 and points.abs().max() >= 0.9 - 1e-6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resolution": 100}, "initial_resolution (32) times a power of two"),
        ({"resolution": 96}, "power of two"),
        ({"initial_resolution": 0}, "initial_resolution must be an integer >= 1"),
        ({"box": 0.0}, "box must be a finite positive number"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ({"batch_points": 0}, "batch_points must be an integer >= 1"),
        ({"dilate": -1}, "dilate must be an integer >= 0"),
        ({"remove_small": 1.5}, "remove_small must be a fraction in [0, 1]"),
        ({"normals": "vertex"}, "normals must be one of mesh, gradient, none"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        extract_mesh(sphere, **{"resolution": 64, "initial_resolution": 32, **kwargs})


def test_bad_functions():
    with pytest.raises(ValueError, match=r"fn must map \(M, 3\) points to \(M,\) or \(M, 1\) logits"):
        extract_mesh(lambda x: x, 32, initial_resolution=8)
    with pytest.raises(ValueError, match="fn returned 729 non-finite values"):
        extract_mesh(lambda x: torch.full((len(x),), float("nan")), 32, initial_resolution=8)
    with pytest.raises(ValueError, match="fn must be callable"):
        extract_mesh("sphere", 32, initial_resolution=8)
    with pytest.raises(ValueError, match="normals='gradient' needs fn to return a torch tensor"):
        extract_mesh(lambda x: sphere(x).detach().numpy(), 32, initial_resolution=8, normals="gradient")


def test_marching_cubes_grid_checks_its_grid():
    with pytest.raises(ValueError, match=r"values must be an \(R\+1, R\+1, R\+1\) grid"):
        marching_cubes_grid(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        marching_cubes_grid(np.full((4, 4, 4), np.inf))
    vertices, faces = marching_cubes_grid(np.full((4, 4, 4), -1.0))
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)
