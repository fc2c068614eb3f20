"""MMD, COV, 1-NNA and JSD against brute-force definitions and hand cases; generation_metrics end to end."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from shapelatent.metrics.generation import (
    coverage,
    generation_metrics,
    jsd,
    mmd,
    normalize_clouds,
    one_nna,
)
from shapelatent.metrics.pairwise import pairwise_chamfer, pairwise_emd

# ------------------------------------------------------------------ MMD and COV


def _mmd_loop(d):
    return np.mean([min(d[n, m] for n in range(d.shape[0])) for m in range(d.shape[1])])


def _cov_loop(d):
    matched = set()
    for n in range(d.shape[0]):
        best = 0
        for m in range(d.shape[1]):
            if d[n, m] < d[n, best]:
                best = m
        matched.add(best)
    return len(matched) / d.shape[1]


@pytest.mark.parametrize("seed", range(5))
def test_mmd_and_coverage_match_loops(seed):
    rng = np.random.default_rng(seed)
    d = rng.random((rng.integers(1, 9), rng.integers(1, 9)))
    if seed == 4:
        d = np.round(d, 1)  # many ties: argmin goes to the lower reference index
    assert mmd(d) == pytest.approx(_mmd_loop(d))
    assert coverage(d) == pytest.approx(_cov_loop(d))


def test_mmd_and_coverage_by_hand():
    d = np.array([[0.1, 0.9, 0.5], [0.2, 0.8, 0.4]])  # 2 generated x 3 references
    assert mmd(d) == pytest.approx((0.1 + 0.8 + 0.4) / 3)
    assert coverage(d) == pytest.approx(1 / 3)  # both generated clouds pick reference 0
    assert coverage(np.eye(3)[::-1] * -1 + 1) == pytest.approx(1.0)


# ------------------------------------------------------------------ 1-NNA


def _one_nna_loop(d_gg, d_rr, d_gr):
    """Explicit union matrix; the nearest other sample decides; mixed-label ties count 1/2."""
    n, m = d_gr.shape
    full = np.block([[d_gg, d_gr], [d_gr.T, d_rr]])
    labels = np.array([0] * n + [1] * m)
    correct = []
    for i in range(n + m):
        others = [j for j in range(n + m) if j != i]
        best = min(full[i, j] for j in others)
        nearest_labels = {labels[j] for j in others if full[i, j] == best}
        correct.append(0.5 if len(nearest_labels) == 2 else float(labels[i] in nearest_labels))
    return np.mean(correct)


def _dists(g, r):
    return cdist(g, g), cdist(r, r), cdist(g, r)


@pytest.mark.parametrize("seed", range(4))
def test_one_nna_matches_loop(seed):
    rng = np.random.default_rng(seed)
    g, r = rng.random((rng.integers(1, 8), 2)), rng.random((rng.integers(1, 8), 2))
    if seed == 3:
        g, r = np.round(g * 3), np.round(r * 3)  # integer points: many exact ties
    assert one_nna(*_dists(g, r)) == pytest.approx(_one_nna_loop(*_dists(g, r)))


def test_one_nna_hand_cases():
    # Two tight clusters far apart, one per set: every cloud's nearest is its own set's.
    g = np.array([[0.0], [0.1]])
    r = np.array([[10.0], [10.1]])
    assert one_nna(*_dists(g, r)) == 1.0
    # Interleaved on a line at unit spacing g r g r: every nearest-other is at distance 1 on both sides ...
    g, r = np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]])
    # g0: only r1 at 1 -> wrong; g2: r1 and r3 at 1 -> wrong; r1: g0, g2 -> wrong; r3: g2 -> wrong
    assert one_nna(*_dists(g, r)) == 0.0
    # A tie between the two sets counts 1/2: g0 has g at 2 and r at 2.
    g, r = np.array([[0.0], [2.0]]), np.array([[-2.0], [10.0]])
    # g0: g2 and r-2 both at 2 -> 1/2; g2: g0 at 2 -> right; r-2: g0 at 2 -> wrong; r10: g2 at 8 -> wrong
    assert one_nna(*_dists(g, r)) == pytest.approx(1.5 / 4)


def test_one_nna_identical_sets_give_zero():
    """Each cloud's nearest other is its exact copy in the other set (PointFlow's convention)."""
    x = np.random.default_rng(0).random((30, 3))
    assert one_nna(*_dists(x, x.copy())) == 0.0


def test_one_nna_same_distribution_near_half_different_near_one():
    rng = np.random.default_rng(0)
    g, r = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    assert abs(one_nna(*_dists(g, r)) - 0.5) < 0.06
    shifted = rng.normal(size=(300, 3)) + [6.0, 0.0, 0.0]
    assert one_nna(*_dists(g, shifted)) > 0.98


def test_one_nna_shape_errors():
    with pytest.raises(ValueError, match=r"d_gg must be \(N, N\)"):
        one_nna(np.zeros((2, 2)), np.zeros((3, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="d_gr contains NaN"):
        one_nna(np.zeros((1, 1)), np.zeros((1, 1)), np.full((1, 1), np.nan))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        mmd(np.zeros((0, 3)))


# ------------------------------------------------------------------ normalisation


def test_normalize_per_shape():
    rng = np.random.default_rng(0)
    x = rng.random((3, 50, 3)) * [1.0, 2.0, 3.0] + [5.0, -1.0, 0.0]
    out = normalize_clouds(x, "per_shape")
    np.testing.assert_allclose(np.linalg.norm(out, axis=2).max(axis=1), 0.5)
    np.testing.assert_allclose(out.max(axis=1) + out.min(axis=1), 0.0, atol=1e-12)  # bbox centre at 0
    np.testing.assert_allclose(normalize_clouds(torch.from_numpy(x[0]), "per_shape"), out[0])
    np.testing.assert_array_equal(normalize_clouds(x, "none"), x)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize_clouds(x, "unit")
    with pytest.raises(ValueError, match=r"clouds \[1\] have all points at one place"):
        normalize_clouds(np.stack([x[0], np.zeros((50, 3))]), "per_shape")


# ------------------------------------------------------------------ JSD


def _jsd_brute_force(gen, ref, resolution, in_sphere):
    cells = []
    spacing = 1.0 / (resolution - 1)
    for i in range(resolution):
        for j in range(resolution):
            for k in range(resolution):
                c = np.array([i, j, k], dtype=np.float32) * np.float32(spacing) - np.float32(0.5)
                if not in_sphere or np.linalg.norm(c) <= 0.5:
                    cells.append(c)
    cells = np.array(cells, dtype=np.float64)

    def counts(clouds):
        nearest = np.argmin(cdist(clouds.reshape(-1, 3), cells), axis=1)
        return np.bincount(nearest, minlength=len(cells)).astype(float)

    p, q = counts(gen), counts(ref)
    p, q = p / p.sum(), q / q.sum()
    mix = (p + q) / 2
    kl = lambda a, b: sum(a[i] * np.log2(a[i] / b[i]) for i in range(len(a)) if a[i] > 0)  # noqa: E731
    return 0.5 * kl(p, mix) + 0.5 * kl(q, mix)


@pytest.mark.parametrize(("resolution", "in_sphere"), [(6, True), (7, False), (28, True)])
def test_jsd_matches_brute_force(resolution, in_sphere):
    rng = np.random.default_rng(resolution)
    gen = normalize_clouds(rng.normal(size=(3, 40, 3)), "per_shape")
    ref = normalize_clouds(rng.random((2, 40, 3)), "per_shape") * 0.9
    expected = _jsd_brute_force(gen, ref, resolution, in_sphere)
    assert jsd(gen, ref, resolution, in_sphere) == pytest.approx(expected, abs=1e-12)


def test_jsd_hand_cases():
    rng = np.random.default_rng(0)
    x = normalize_clouds(rng.normal(size=(4, 64, 3)), "per_shape")
    assert jsd(x, x) == pytest.approx(0.0, abs=1e-12)
    assert jsd(x, x[::-1, ::-1]) == pytest.approx(0.0, abs=1e-12)  # only the occupancy counts
    left = np.full((2, 10, 3), 0.0) + [-0.3, 0.0, 0.0]
    right = np.full((1, 7, 3), 0.0) + [0.3, 0.0, 0.0]
    assert jsd(left, right) == pytest.approx(1.0)  # disjoint occupancy: 1 bit
    # Half of gen's points in ref's only cell: p = (1/2, 1/2), q = (1, 0).
    half = np.concatenate([left[:, :5], np.zeros((2, 5, 3)) + [0.3, 0.0, 0.0]], axis=1)
    m = np.array([0.75, 0.25])
    expected = -(m * np.log2(m)).sum() - (1.0 + 0.0) / 2
    assert jsd(half, right) == pytest.approx(expected)


def test_jsd_warns_outside_the_unit_cube_and_sphere():
    inside = np.zeros((1, 4, 3))
    corner = np.full((1, 4, 3), 0.45)  # in the cube, norm 0.78: outside the sphere
    with pytest.warns(UserWarning, match="not in the unit sphere") as record:
        jsd(corner, inside)
    assert not any("unit cube" in str(w.message) for w in record)
    with pytest.warns(UserWarning) as record:
        jsd(inside, inside + 2.0)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and "reference clouds are not in the unit cube" in messages[0]
    assert "not in the unit sphere (largest norm 3.46" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jsd(corner, inside, in_unit_sphere=False)  # the cube check alone: no warning
    with pytest.raises(ValueError, match="resolution must be an integer >= 2"):
        jsd(inside, inside, resolution=1)


# ------------------------------------------------------------------ generation_metrics


def test_generation_metrics_end_to_end():
    rng = np.random.default_rng(0)
    gen = np.clip(rng.normal(size=(5, 32, 3)) * 0.1, -0.28, 0.28).astype(np.float32)
    ref = np.clip(rng.normal(size=(4, 32, 3)) * 0.1, -0.28, 0.28).astype(np.float32)
    calls = []
    out = generation_metrics(gen, ref, progress=lambda d, t: calls.append((d, t)))
    assert list(out) == ["MMD-CD", "COV-CD", "1-NNA-CD", "MMD-EMD", "COV-EMD", "1-NNA-EMD", "JSD"]
    assert all(isinstance(v, float) for v in out.values())
    total = 2 * (5 * 4 + 10 + 6)
    assert calls[-1] == (total, total) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    d_gr = pairwise_chamfer(gen, ref)
    assert out["MMD-CD"] == pytest.approx(mmd(d_gr), rel=1e-6)
    assert out["COV-CD"] == coverage(d_gr)
    assert out["1-NNA-CD"] == one_nna(pairwise_chamfer(gen), pairwise_chamfer(ref), d_gr)
    e_gr = pairwise_emd(gen, ref, method="exact")
    assert mmd(e_gr) <= out["MMD-EMD"] <= mmd(e_gr) * 1.01
    assert out["JSD"] == pytest.approx(jsd(gen, ref))

    only_cd = generation_metrics(torch.from_numpy(gen), ref, metrics=("cd",), normalize="per_shape")
    assert list(only_cd) == ["MMD-CD", "COV-CD", "1-NNA-CD", "JSD"]
    g, r = normalize_clouds(gen, "per_shape"), normalize_clouds(ref, "per_shape")
    assert only_cd["MMD-CD"] == pytest.approx(mmd(pairwise_chamfer(g.astype(np.float32), r.astype(np.float32))))
    exact = generation_metrics(gen, ref, metrics=("emd",), emd_method="exact")
    assert exact["MMD-EMD"] == pytest.approx(mmd(e_gr))


def test_generation_metrics_errors():
    x = np.zeros((2, 8, 3))
    with pytest.raises(ValueError, match="non-empty subset"):
        generation_metrics(x, x, metrics=("cd", "fid"))
    with pytest.raises(ValueError, match="non-empty subset"):
        generation_metrics(x, x, metrics=())
    with pytest.raises(ValueError, match="unknown emd_method"):
        generation_metrics(x, x, emd_method="sinkhorn")
    with pytest.raises(ValueError, match="P=8 points, ref has P=9"):
        generation_metrics(x, np.zeros((2, 9, 3)))
    with pytest.raises(ValueError, match=r"gen must be a set of clouds \(N, P, 3\)"):
        generation_metrics(x[0], x)


def test_jsd_notes_go_to_the_log_and_other_warnings_stay(caplog):
    from shapelatent.metrics import jsd_notes_to_log

    rng = np.random.default_rng(0)
    inside = rng.uniform(-0.2, 0.2, (3, 64, 3))
    outside = inside * 3.0  # reaches past the radius-0.5 sphere
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a JSD warning escaping the block would raise here
        with caplog.at_level(logging.INFO, logger="t"), jsd_notes_to_log(logging.getLogger("t")):
            value = jsd(outside, inside)
    assert 0.0 <= value <= 1.0
    assert any(r.getMessage().startswith("JSD: the generated clouds") for r in caplog.records)
    with pytest.warns(RuntimeWarning, match="unrelated"):
        with jsd_notes_to_log(logging.getLogger("t")):
            warnings.warn("unrelated", RuntimeWarning, stacklevel=1)
