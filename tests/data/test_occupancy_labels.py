"""Occupancy queries and labels on hand-made meshes with a known inside; union meshes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapelatent.data.occupancy_labels import SHELL_EPS, label_points, sample_queries, shape_occupancy
from shapelatent.data.union import union_mesh
from shapelatent.errors import WindingNumberError


def _far_from(d: np.ndarray, margin: float = 2e-3) -> np.ndarray:
    return np.abs(d) > margin


def test_shell_eps_is_one_voxel_at_128():
    assert SHELL_EPS == pytest.approx(2 * 1.1 / 128)


def test_queries_counts_box_and_seed():
    sphere = trimesh.creation.icosphere(3, radius=0.9)
    q = sample_queries(sphere.vertices, sphere.faces, 1024, seed=3)
    assert q.shape == (1024, 3) and q.dtype == np.float16
    assert np.abs(q.astype(np.float64)).max() <= 1.1
    assert np.array_equal(q, sample_queries(sphere.vertices, sphere.faces, 1024, seed=3))
    assert not np.array_equal(q, sample_queries(sphere.vertices, sphere.faces, 1024, seed=4))
    r = np.linalg.norm(q.astype(np.float64), axis=1)
    d_near1, d_near2 = np.abs(r[512:768] - 0.9), np.abs(r[768:] - 0.9)  # sigma 0.01, then 0.05
    assert np.median(d_near1) < 0.015 < np.median(d_near2) < 0.06
    assert np.median(np.abs(r[:512] - 0.9)) > 0.2  # the first half is uniform in the box
    with pytest.raises(ValueError, match="multiple of 8"):
        sample_queries(sphere.vertices, sphere.faces, 100)


def test_icosphere_labels_match_the_analytic_inside():
    sphere = trimesh.creation.icosphere(5, radius=0.8)  # faces within 1e-4 of the sphere
    q = sample_queries(sphere.vertices, sphere.faces, 4096, seed=0).astype(np.float64)
    r = np.linalg.norm(q, axis=1)
    exact = label_points(sphere.vertices, sphere.faces, q, method="winding")
    keep = _far_from(r - 0.8)
    assert np.array_equal(exact[keep], (r < 0.8)[keep])
    shell = label_points(sphere.vertices, sphere.faces, q, method="winding+shell")
    keep = _far_from(r - 0.8 - SHELL_EPS)
    assert np.array_equal(shell[keep], (r < 0.8 + SHELL_EPS)[keep])  # the shell adds a layer SHELL_EPS thick
    assert np.array_equal(label_points(sphere.vertices, sphere.faces, q, method="auto"), exact)


def test_box_labels_match_the_analytic_inside(box_mesh, rng):
    q = rng.uniform(-1.2, 1.2, (5000, 3))
    half = np.array([1.0, 0.5, 0.25])
    inside = (np.abs(q) < half).all(axis=1)
    margin = np.abs(np.abs(q) - half).min(axis=1) > 1e-6
    got = label_points(box_mesh.vertices, box_mesh.faces, q, method="winding")
    assert np.array_equal(got[margin], inside[margin])


def test_union_of_two_overlapping_boxes():
    a = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b.apply_translation((0.5, 0.25, 0.0))
    u = union_mesh([a, b])
    assert u.is_watertight and u.is_winding_consistent
    assert u.volume == pytest.approx(2.0 - 0.5 * 0.75 * 1.0, rel=1e-9)
    assert len(u.split(only_watertight=False)) == 1
    q = np.random.default_rng(1).uniform(-1, 1.2, (4000, 3))
    in_a = (np.abs(q) < 0.5).all(axis=1)
    in_b = (np.abs(q - (0.5, 0.25, 0.0)) < 0.5).all(axis=1)
    got = label_points(u.vertices, u.faces, q, method="auto")
    assert np.array_equal(got, in_a | in_b)
    # (vertices, faces) pairs work too, and the union surface has no face inside the other box
    v = union_mesh([(a.vertices, a.faces), (b.vertices, b.faces)])
    assert v.volume == pytest.approx(u.volume)


def test_union_refuses_an_open_part():
    a = trimesh.creation.box()
    open_part = trimesh.Trimesh(a.vertices, a.faces[:-2], process=False)
    with pytest.raises(ValueError, match="part 1: not a closed 2-manifold"):
        union_mesh([a, open_part])
    with pytest.raises(ValueError, match="at least one part"):
        union_mesh([])


def test_single_sided_panel_is_labelled_by_the_shell():
    v = np.array([[-0.5, 0.0, -0.5], [0.5, 0.0, -0.5], [0.5, 0.0, 0.5], [-0.5, 0.0, 0.5]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    rng = np.random.default_rng(2)
    q = np.column_stack((rng.uniform(-0.4, 0.4, 2000), rng.uniform(-0.05, 0.05, 2000), rng.uniform(-0.4, 0.4, 2000)))
    winding = label_points(v, f, q, method="winding")
    assert winding.mean() < 0.01  # an open panel has no inside
    shell = label_points(v, f, q, method="winding+shell")
    near = np.abs(q[:, 1])
    assert np.array_equal(
        shell[_far_from(near - SHELL_EPS, 1e-6)], (near < SHELL_EPS)[_far_from(near - SHELL_EPS, 1e-6)]
    )
    assert np.array_equal(label_points(v, f, q, method="auto"), shell)  # open: auto adds the shell


@pytest.mark.parametrize(
    ("vertices", "faces", "message"),
    [
        (np.zeros((3, 3)), np.zeros((0, 3), np.int64), "no triangle faces"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]]), np.array([[0, 1, 2]]), "NaN or infinite"),
        (np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]]), "zero surface area"),
    ],
)
def test_meaningless_winding_numbers_raise(vertices, faces, message):
    with pytest.raises(WindingNumberError, match=f"chair.obj: .*{message}"):
        label_points(vertices, faces, np.zeros((8, 3)), source="chair.obj")
    with pytest.raises(WindingNumberError, match=message):
        shape_occupancy(vertices, faces, queries=8, source="chair.obj")


def test_bad_method():
    box = trimesh.creation.box()
    with pytest.raises(ValueError, match="winding\\+shell"):
        label_points(box.vertices, box.faces, np.zeros((1, 3)), method="sdf")


def test_shape_occupancy_applies_the_transform():
    sphere = trimesh.creation.icosphere(4, radius=2.0)
    center = np.array([10.0, -3.0, 1.0])
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # v' = M v
    raw = (sphere.vertices @ np.linalg.inv(rot).T) + np.linalg.inv(rot) @ center  # M raw = sphere + center
    occ = shape_occupancy(raw, sphere.faces, center=center, scale=2.5, rotation=rot.ravel(), queries=2048, seed=1)
    r = np.linalg.norm(occ.points.astype(np.float64), axis=1)
    assert occ.method == "winding"  # an icosphere is closed
    keep = _far_from(r - 0.8)
    assert np.array_equal(occ.labels[keep], (r < 0.8)[keep])
