"""Mesh metrics (Occupancy Networks protocol) against brute-force oracles and analytic cases.

Oracles: a dense numpy distance matrix for the point-set pieces (nearest distances, Chamfer-L1, F-score, normal
consistency), and closed forms for a unit cube against the same cube shifted by d along x:

* IoU = (1 - d) / (1 + d);
* for tau < d < 1/2, precision = recall = (4 (1 - d + tau) + 1 - (1 - 2 tau)^2) / 6 (the four side faces are
  within tau of the other cube where x lies in the overlap or within tau past it; the face inside the other cube
  near its rim; the outer end face is d away); for tau > d both are 1;
* accuracy = completeness = (d + (1 - (1 - 2d)^3) / 6 + 2 d^2) / 6 (end face, inner face, side strips).

Sampled values carry a sampling error; with 100 000 points the tolerances below are several standard errors
(precision: 0.0015) plus the sampling floor of the distances (mean nearest-sample spacing, about 0.004).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapelatent.metrics import (
    MeshMetrics,
    chamfer_l1,
    fscore,
    inside_mesh,
    is_closed,
    mesh_metrics,
    nearest_distances,
    normal_consistency,
    volume_iou,
)


def unit_cube(shift: float = 0.0) -> trimesh.Trimesh:
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    cube.apply_translation((0.5 + shift, 0.5, 0.5))
    return cube


def square(normal_axis: int) -> trimesh.Trimesh:
    """A unit square in the plane ``x[normal_axis] = 0``, two triangles."""
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    vertices = np.insert(corners, normal_axis, 0.0, axis=1)
    return trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], process=False)


def brute(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)  # (N, M)
    return d.min(axis=1), d.argmin(axis=1)


@pytest.fixture(scope="module")
def clouds():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(500, 3)) * 1.2 + 0.1
    na, nb = rng.normal(size=(300, 3)), rng.normal(size=(500, 3))
    return a, b, na, nb


def test_point_pieces_match_the_distance_matrix(clouds):
    a, b, na, nb = clouds
    d_ab, i_ab = brute(a, b)
    d_ba, i_ba = brute(b, a)
    dist, idx = nearest_distances(a, b)
    np.testing.assert_allclose(dist, d_ab, rtol=1e-12)
    np.testing.assert_array_equal(idx, i_ab)
    assert chamfer_l1(a, b) == pytest.approx(0.5 * (d_ab.mean() + d_ba.mean()), rel=1e-12)
    for tau in (0.05, 0.2, 0.5):
        p, r = (d_ab < tau).mean(), (d_ba < tau).mean()
        f = fscore(a, b, tau)
        assert (f.precision, f.recall) == (p, r)
        assert f.fscore == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    ua, ub = na / np.linalg.norm(na, axis=1, keepdims=True), nb / np.linalg.norm(nb, axis=1, keepdims=True)
    expected = 0.5 * (np.abs((ua * ub[i_ab]).sum(1)).mean() + np.abs((ub * ua[i_ba]).sum(1)).mean())
    assert normal_consistency(a, na, b, nb) == pytest.approx(expected, rel=1e-12)


def test_fscore_far_apart_is_zero():
    f = fscore(np.zeros((4, 3)), np.ones((5, 3)), 0.1)
    assert f == (0.0, 0.0, 0.0)


def test_mesh_metrics_points_match_the_pieces():
    pred, ref = unit_cube(0.05), unit_cube()
    m = mesh_metrics(pred, ref, n_points=2000, seed=3)
    from shapelatent.data.sampling import sample_surface

    p, r = sample_surface(pred, 2000, seed=3), sample_surface(ref, 2000, seed=3)
    d_pr, _ = brute(p.points.astype(float), r.points.astype(float))
    d_rp, _ = brute(r.points.astype(float), p.points.astype(float))
    assert m.accuracy == pytest.approx(d_pr.mean(), rel=1e-6)
    assert m.completeness == pytest.approx(d_rp.mean(), rel=1e-6)
    assert m.chamfer_l1 == pytest.approx(chamfer_l1(p.points, r.points), rel=1e-9)
    assert m.chamfer_l2 == pytest.approx(0.5 * ((d_pr**2).mean() + (d_rp**2).mean()), rel=1e-6)
    assert m.normal_consistency == pytest.approx(normal_consistency(p.points, p.normals, r.points, r.normals))
    for frac in (0.01, 0.02):
        assert m.fscore[frac] == pytest.approx(fscore(p.points, r.points, frac * np.sqrt(3)).fscore)


def test_identical_meshes_score_perfectly():
    for mesh in (unit_cube(), trimesh.creation.icosphere(subdivisions=3)):
        m = mesh_metrics(mesh, mesh.copy(), n_points=20_000)
        assert (m.chamfer_l1, m.chamfer_l2, m.accuracy, m.completeness) == (0.0, 0.0, 0.0, 0.0)
        assert m.normal_consistency == pytest.approx(1.0, abs=1e-6)
        assert m.fscore == {0.01: 1.0, 0.02: 1.0} and m.precision == m.recall == m.fscore
        assert m.iou == 1.0 and not m.empty


def test_shifted_cube_matches_the_closed_forms():
    d = 0.1
    m = mesh_metrics(unit_cube(d), unit_cube(), taus=(0.01, 0.02, 0.1), seed=1)
    assert m.diagonal == pytest.approx(np.sqrt(3))
    assert m.iou == pytest.approx((1 - d) / (1 + d), abs=0.01)
    for frac in (0.01, 0.02):
        tau = frac * np.sqrt(3)
        expected = (4 * (1 - d + tau) + 1 - (1 - 2 * tau) ** 2) / 6
        assert m.precision[frac] == pytest.approx(expected, abs=0.01)
        assert m.recall[frac] == pytest.approx(expected, abs=0.01)
        assert m.fscore[frac] == pytest.approx(expected, abs=0.01)
    assert m.fscore[0.1] == 1.0  # tau = 0.17 > d: every point is within d of the other surface
    expected_acc = (d + (1 - (1 - 2 * d) ** 3) / 6 + 2 * d**2) / 6
    assert expected_acc < m.accuracy < expected_acc + 0.004
    assert expected_acc < m.completeness < expected_acc + 0.004


def test_volume_iou_of_shifted_cubes_and_disjoint_ones():
    for d in (0.0, 0.25, 0.5):
        assert volume_iou(unit_cube(d), unit_cube(), n_points=50_000) == pytest.approx((1 - d) / (1 + d), abs=0.01)
    assert volume_iou(unit_cube(2.0), unit_cube(), n_points=10_000) == 0.0


def test_inside_mesh_is_exact_for_a_cube():
    points = np.array([[0.5, 0.5, 0.5], [0.01, 0.99, 0.5], [1.01, 0.5, 0.5], [-0.2, -0.2, -0.2]])
    np.testing.assert_array_equal(inside_mesh(unit_cube(), points), [True, True, False, False])
    np.testing.assert_array_equal(inside_mesh((np.zeros((0, 3)), np.zeros((0, 3), int)), points), [False] * 4)


def test_normal_consistency_ignores_orientation_and_sees_perpendicular_planes():
    flat = square(2)
    flipped = trimesh.Trimesh(flat.vertices, flat.faces[:, ::-1], process=False)
    assert mesh_metrics(flipped, flat, n_points=5000, iou="never").normal_consistency == pytest.approx(1.0)
    cube = unit_cube()
    inverted = trimesh.Trimesh(cube.vertices, cube.faces[:, ::-1], process=False)
    assert mesh_metrics(inverted, cube, n_points=20_000).normal_consistency > 0.98
    assert mesh_metrics(square(0), flat, n_points=5000, iou="never").normal_consistency == pytest.approx(0, abs=1e-9)


def test_iou_only_where_the_reference_has_an_inside():
    open_box = unit_cube()
    open_box = trimesh.Trimesh(open_box.vertices, open_box.faces[:-2], process=False)  # one side missing
    assert mesh_metrics(unit_cube(), open_box, n_points=1000).iou is None
    assert mesh_metrics(unit_cube(), open_box, n_points=1000, iou="always").iou is not None
    assert mesh_metrics(unit_cube(), unit_cube(), n_points=1000, iou="never").iou is None
    # an OBJ-style reference with split vertices is still watertight once coincident vertices are merged
    soup = unit_cube()
    split = trimesh.Trimesh(soup.vertices[soup.faces].reshape(-1, 3), np.arange(36).reshape(12, 3), process=False)
    assert mesh_metrics(unit_cube(), split, n_points=1000).iou == 1.0


def test_is_closed():
    cube = unit_cube()
    assert is_closed(cube)
    assert not is_closed((cube.vertices, cube.faces[:-1]))  # a hole
    flipped = cube.faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not is_closed((cube.vertices, flipped))  # one face against the others
    touching = trimesh.util.concatenate([unit_cube(), unit_cube(1.0)])  # two shells sharing the face x = 1
    merged = trimesh.Trimesh(touching.vertices, touching.faces)  # trimesh merges them: not "watertight" to trimesh
    assert not merged.is_watertight and is_closed(merged)
    assert not is_closed(square(2)) and not is_closed((np.zeros((0, 3)), np.zeros((0, 3), int)))
    assert mesh_metrics(unit_cube(0.5), merged, n_points=1000).iou == pytest.approx(0.5, abs=0.02)


def test_empty_prediction_gets_the_worst_result():
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    m = mesh_metrics(empty, unit_cube(), n_points=1000)
    assert m.empty and m.iou == 0.0
    assert m.chamfer_l1 == m.accuracy == m.completeness == pytest.approx(np.sqrt(3))
    assert m.chamfer_l2 == pytest.approx(3.0)
    assert m.normal_consistency == 0.0 and m.fscore == m.precision == m.recall == {0.01: 0.0, 0.02: 0.0}
    degenerate = (np.zeros((3, 3)), np.array([[0, 1, 2]]))  # a face without area
    assert mesh_metrics(degenerate, unit_cube(), n_points=1000).empty


def test_as_dict_is_flat():
    metrics = mesh_metrics(unit_cube(), unit_cube(), n_points=1000)
    assert isinstance(metrics, MeshMetrics)
    flat = metrics.as_dict()
    assert flat["fscore@1%"] == flat["fscore@2%"] == 1.0 and flat["iou"] == 1.0
    assert {"chamfer_l1", "normal_consistency", "precision@1%", "recall@2%", "empty"} <= set(flat)


def test_same_seed_same_result():
    a = mesh_metrics(unit_cube(0.03), unit_cube(), n_points=3000, seed=7)
    b = mesh_metrics(unit_cube(0.03), unit_cube(), n_points=3000, seed=7)
    c = mesh_metrics(unit_cube(0.03), unit_cube(), n_points=3000, seed=8)
    assert a == b and a != c


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ref_mesh": (np.zeros((3, 3)), np.zeros((0, 3), int))}, "ref_mesh has no faces of positive area"),
        ({"ref_mesh": (np.zeros((3, 2)), np.array([[0, 1, 2]]))}, r"ref_mesh vertices must be \(V, 3\)"),
        ({"ref_mesh": (np.zeros((3, 3)), np.array([[0, 1, 3]]))}, "faces index vertices outside 0..2"),
        ({"pred_mesh": "mesh.obj"}, r"pred_mesh must be a trimesh.Trimesh or a \(vertices, faces\) pair"),
        ({"taus": (0.01, -0.02)}, "taus must be positive fractions"),
        ({"taus": ()}, "taus must be positive fractions"),
        ({"iou": "maybe"}, "iou must be one of auto, always, never"),
        ({"n_points": 0}, "n_points must be a positive integer"),
        ({"iou_points": 2.5}, "iou_points must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"pred_mesh": unit_cube(), "ref_mesh": unit_cube(), "n_points": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        mesh_metrics(**args)


def test_bad_point_arguments():
    with pytest.raises(ValueError, match=r"target must be \(N, 3\) with N >= 1"):
        nearest_distances(np.zeros((3, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="tau must be a positive distance"):
        fscore(np.zeros((3, 3)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match=r"pred_normals must be \(3, 3\), one per point"):
        normal_consistency(np.zeros((3, 3)), np.ones((2, 3)), np.zeros((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="ref_normals holds 1 zero-length or non-finite normals"):
        normal_consistency(np.zeros((3, 3)), np.ones((3, 3)), np.zeros((3, 3)), np.eye(3) * [1, 1, 0])
