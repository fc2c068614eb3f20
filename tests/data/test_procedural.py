"""Tests for shapelatent.data.procedural: determinism, per-family geometry, streams and errors."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from shapelatent.data.procedural import FAMILIES, Chair, chair_seed, generate_chair, iter_chairs

# (min, max) overall height in metres, generous around the sampled ranges.
HEIGHTS = {
    "four_legged": (0.65, 1.15),
    "stool": (0.40, 1.15),
    "armchair": (0.60, 1.10),
    "office": (0.80, 1.55),
    "bench": (0.38, 1.00),
    "sofa": (0.55, 1.00),
}


def _same_mesh(a: Chair, b: Chair) -> bool:
    return np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.mesh.faces, b.mesh.faces)


def test_families_are_the_documented_six() -> None:
    assert FAMILIES == ("four_legged", "stool", "armchair", "office", "bench", "sofa")


@pytest.mark.parametrize("family", [*FAMILIES, None])
def test_same_seed_gives_identical_chair(family: str | None) -> None:
    a, b = generate_chair(123, family), generate_chair(123, family)
    assert _same_mesh(a, b)
    assert a.family == b.family
    assert a.params == b.params


@pytest.mark.parametrize("family", FAMILIES)
def test_different_seeds_give_different_chairs(family: str) -> None:
    a, b = generate_chair(1, family), generate_chair(2, family)
    assert a.params != b.params
    assert a.mesh.vertices.shape != b.mesh.vertices.shape or not np.allclose(a.mesh.vertices, b.mesh.vertices)


def test_family_none_is_the_explicit_family_of_the_same_seed() -> None:
    for seed in range(12):
        chosen = generate_chair(seed)
        assert chosen.family in FAMILIES
        assert _same_mesh(chosen, generate_chair(seed, chosen.family))


def test_family_none_covers_all_families() -> None:
    assert {generate_chair(seed).family for seed in range(120)} == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_a_plausible_chair(family: str) -> None:
    for seed in range(8):
        chair = generate_chair(seed, family)
        mesh = chair.mesh
        assert chair.family == family
        assert len(mesh.vertices) > 0 and len(mesh.faces) > 0
        assert np.isfinite(mesh.vertices).all()
        assert mesh.area > 0
        # the boolean union of closed primitives: watertight, consistently wound
        assert mesh.is_watertight and mesh.is_winding_consistent
        lo, hi = mesh.bounds
        assert lo[1] == pytest.approx(0.0, abs=1e-9)  # standing on the floor
        low, high = HEIGHTS[family]
        assert low <= hi[1] <= high, f"{family} seed {seed}: height {hi[1]:.3f}"
        assert hi[1] >= chair.params["seat_height"]
        assert 0.2 < hi[0] - lo[0] < 2.7 and 0.2 < hi[2] - lo[2] < 1.2
        assert abs(lo[2] + hi[2]) < 1.0  # roughly centred in depth
        json.dumps(chair.params)
        values = chair.params.values()
        assert all(isinstance(v, (float, int, str)) and not isinstance(v, bool) for v in values)
        assert chair.params["seed"] == seed
        if chair.params["has_back"]:
            top = mesh.vertices[mesh.vertices[:, 1] > 0.9 * hi[1]]  # the topmost tenth is the back
            assert top[:, 2].mean() < -0.05, f"{family} seed {seed}: back not behind the seat (-z)"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_part_faces_outwards(family: str) -> None:
    # the chair is the union of its parts (one body, or a few); an inward-wound part would carve a hole
    bodies = generate_chair(5, family).mesh.split(only_watertight=False)
    assert 1 <= len(bodies) <= 3
    assert min(body.volume for body in bodies) > 0


def test_family_specific_structure() -> None:
    office = generate_chair(0, "office")
    assert office.params["n_spokes"] == 5
    stools = [generate_chair(s, "stool") for s in range(20)]
    assert {c.params["n_legs"] for c in stools} == {3, 4}
    assert {c.params["seat_shape"] for c in stools} == {"round", "square"}
    assert all(c.params["footrest"] == "none" for c in stools if c.params["seat_height"] <= 0.58)
    sofa, armchair = generate_chair(0, "sofa"), generate_chair(0, "armchair")
    assert sofa.params["seat_width"] > armchair.params["seat_width"]


def test_iter_chairs_count_balance_and_order() -> None:
    chairs = list(iter_chairs(14, seed=3))
    assert len(chairs) == 14
    assert [c.family for c in chairs[:6]] == list(FAMILIES)
    counts = Counter(c.family for c in chairs)
    assert max(counts.values()) - min(counts.values()) <= 1
    subset = [c.family for c in iter_chairs(5, seed=3, families=["stool", "sofa"])]
    assert subset == ["stool", "sofa", "stool", "sofa", "stool"]


def test_iter_chairs_members_regenerate_individually() -> None:
    chairs = list(iter_chairs(8, seed=11))
    for i in (0, 5, 7):
        again = generate_chair(chair_seed(11, i), FAMILIES[i % len(FAMILIES)])
        assert _same_mesh(chairs[i], again)
        assert chairs[i].params["seed"] == chair_seed(11, i)


def test_iter_chairs_is_reproducible_and_seeded() -> None:
    a, b = list(iter_chairs(3, seed=4)), list(iter_chairs(3, seed=4))
    assert all(_same_mesh(x, y) for x, y in zip(a, b, strict=True))
    c = list(iter_chairs(3, seed=5))
    assert not any(_same_mesh(x, y) for x, y in zip(a, c, strict=True))


def test_chair_seed_is_deterministic_and_distinct() -> None:
    seeds = [chair_seed(0, i) for i in range(1000)]
    assert seeds == [chair_seed(0, i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert all(isinstance(s, int) and 0 <= s < 2**64 for s in seeds)
    assert chair_seed(0, 1) != chair_seed(1, 1)


def test_unknown_family_error_lists_families() -> None:
    with pytest.raises(ValueError, match="unknown chair family 'throne'") as info:
        generate_chair(0, "throne")
    for family in FAMILIES:
        assert family in str(info.value)


@pytest.mark.parametrize("count", [0, -3])
def test_iter_chairs_rejects_non_positive_count(count: int) -> None:
    with pytest.raises(ValueError, match="count must be a positive integer"):
        iter_chairs(count)


def test_iter_chairs_rejects_bad_families() -> None:
    with pytest.raises(ValueError, match="families must name at least one"):
        iter_chairs(3, families=[])
    with pytest.raises(ValueError, match="unknown chair family 'throne'.*four_legged"):
        iter_chairs(3, families=["stool", "throne"])


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_bad_seed_is_rejected(seed: object) -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        generate_chair(seed)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        chair_seed(seed, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index must be a non-negative integer"):
        chair_seed(0, -1)
