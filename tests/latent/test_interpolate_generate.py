from __future__ import annotations

import numpy as np
import pytest

from shapelatent.latent.generate import ArithmeticTerm, LatentGMM, evaluate_expression, parse_expression
from shapelatent.latent.interpolate import interpolate_codes, latent_path, slerp


def test_linear_endpoints_and_midpoint(rng):
    a, b = rng.normal(size=8), rng.normal(size=8)
    path = interpolate_codes(a, b, 5)
    assert path.shape == (5, 8) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], a, rtol=1e-6)
    np.testing.assert_allclose(path[-1], b, rtol=1e-6)
    np.testing.assert_allclose(path[2], (a + b) / 2, rtol=1e-5, atol=1e-6)


def test_slerp_on_the_circle():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    t = np.linspace(0, 1, 5)
    got = slerp(a, b, t)
    angles = np.arctan2(got[:, 1], got[:, 0])
    np.testing.assert_allclose(angles, t * np.pi / 2, atol=1e-12)  # constant angular speed
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1 + t, atol=1e-12)  # lengths interpolated linearly
    np.testing.assert_allclose(slerp(a, 3 * a, t), (1 + 2 * t)[:, None] * a, atol=1e-12)  # parallel: linear


def test_path_through_three_shapes(rng):
    anchors = [rng.normal(size=4) for _ in range(3)]
    path = latent_path(anchors, steps=4, method="slerp")
    assert path.codes.shape == (7, 4)
    np.testing.assert_allclose(path.codes[3], anchors[1], rtol=1e-5)
    assert path.segment.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_interpolation_errors(rng):
    a = rng.normal(size=4)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        interpolate_codes(a, a + 1, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        interpolate_codes(a, a + 1, 3, "cubic")
    with pytest.raises(ValueError, match="same size Z"):
        interpolate_codes(a, np.zeros(5), 3)
    with pytest.raises(ValueError, match=r"same code \(A == B\)"):
        latent_path([a, a.copy()], 3)


def test_gmm_fits_and_samples_deterministically(rng):
    codes = np.concatenate([rng.normal(-5, 0.1, size=(50, 3)), rng.normal(5, 0.1, size=(50, 3))])
    gmm = LatentGMM(2, seed=1).fit(codes)
    s1, s2 = gmm.sample(40), LatentGMM(2, seed=1).fit(codes).sample(40)
    np.testing.assert_array_equal(s1, s2)
    assert np.all(np.abs(np.abs(s1) - 5) < 1.0)  # every sample lies in one of the two clusters
    assert (s1[:, 0] > 0).sum() > 5 and (s1[:, 0] < 0).sum() > 5
    with pytest.raises(ValueError, match="needs at least that many codes"):
        LatentGMM(200).fit(codes)


def test_expressions():
    assert parse_expression("a - b + mean:chair") == [
        ArithmeticTerm(1.0, "a"),
        ArithmeticTerm(-1.0, "b"),
        ArithmeticTerm(1.0, "mean:chair"),
    ]
    assert parse_expression("chair-01 + x") == [ArithmeticTerm(1.0, "chair-01"), ArithmeticTerm(1.0, "x")]
    table = {"a": np.array([1.0, 2.0]), "b": np.array([0.5, 0.5]), "c": np.array([3.0, 0.0])}
    np.testing.assert_allclose(evaluate_expression(parse_expression("a - b + c"), table.__getitem__), [3.5, 1.5])
    with pytest.raises(ValueError, match="empty latent expression"):
        parse_expression("   ")
