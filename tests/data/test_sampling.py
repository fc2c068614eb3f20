from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from shapelatent.data.normalize import Normalization
from shapelatent.data.sampling import farthest_point_sample, sample_surface


def test_points_on_surface_with_face_normals(box_mesh):
    cloud = sample_surface(box_mesh, 512, seed=1)
    assert cloud.points.shape == (512, 3) and cloud.points.dtype == np.float32
    half = np.array([1.0, 0.5, 0.25])
    rel = np.abs(cloud.points) / half  # (P, 3): on the surface one coordinate is exactly at +-half
    np.testing.assert_allclose(rel.max(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(cloud.normals, axis=1), 1.0, atol=1e-5)
    # the normal is the outward axis of the face the point lies on
    axis = rel.argmax(axis=1)
    expected = np.zeros_like(cloud.points)
    expected[np.arange(len(axis)), axis] = np.sign(cloud.points[np.arange(len(axis)), axis])
    np.testing.assert_allclose(cloud.normals, expected, atol=1e-5)


def test_area_weighting(box_mesh):
    # faces of the 2 x 1 x 0.5 box: the +-Z faces hold 2/(2+1+0.5)= 4/7 of the area.
    cloud = sample_surface(box_mesh, 20000, seed=0)
    share = np.mean(np.abs(cloud.normals[:, 2]) > 0.5)
    assert share == pytest.approx(4 / 7, abs=0.015)


def test_seeded(box_mesh):
    a = sample_surface(box_mesh, 100, seed=3)
    b = sample_surface(box_mesh, 100, seed=3)
    c = sample_surface(box_mesh, 100, seed=4)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_point_count_must_be_positive(box_mesh, bad):
    with pytest.raises(ValueError, match="num_points must be a positive integer"):
        sample_surface(box_mesh, bad)


def test_fps_oracle_and_spread(box_mesh, rng):
    pts = rng.random((300, 3))
    idx = farthest_point_sample(pts, 20, seed=0)
    assert len(set(idx.tolist())) == 20
    # brute force: each chosen point is the farthest from the ones before it
    for k in range(1, 20):
        d = np.min(((pts[:, None] - pts[idx[:k]][None]) ** 2).sum(-1), axis=1)
        assert d[idx[k]] == pytest.approx(d.max())
    dense = sample_surface(box_mesh, 256, seed=0)
    even = sample_surface(box_mesh, 256, seed=0, oversample=2048)
    gap = lambda p: cKDTree(p).query(p, k=2)[0][:, 1].min()  # noqa: E731
    assert gap(even.points) > gap(dense.points)


def test_normalization_conventions(rng):
    pts = rng.normal(size=(100, 3)) * [3, 1, 2] + [10, -4, 1]
    n = Normalization("bbox", "unit_sphere").apply(pts)
    assert np.linalg.norm(n.points, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose((n.points.max(0) + n.points.min(0)) / 2, 0, atol=1e-6)
    m = Normalization("mean", "unit_diagonal").apply(pts)
    np.testing.assert_allclose(m.points.mean(0), 0, atol=1e-6)
    assert np.linalg.norm(m.points.max(0) - m.points.min(0)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(n.points * n.scale + n.center, pts, atol=1e-4)
    assert Normalization.from_dict(Normalization("mean").to_dict()) == Normalization("mean")
    with pytest.raises(ValueError, match="center must be one of"):
        Normalization("median")
    with pytest.raises(ValueError, match="zero extent"):
        Normalization().apply(np.ones((5, 3)))
