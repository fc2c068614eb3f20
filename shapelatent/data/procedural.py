"""Procedural chairs: a parametric generator of chair meshes, the built-in default dataset.

Every chair is built from a few dozen primitives (boxes, bevelled boxes, low-section cylinders and
frusta, tori) placed by seeded continuous parameters, and returned as one ``trimesh.Trimesh``. Each
primitive is a closed, outward-facing solid; the chair is their boolean union
(:func:`~shapelatent.data.union.union_mesh`, manifold3d), so the mesh is watertight, consistently wound and
is only the true outer surface: no face lies inside another part (surface samples all lie on the outside, and
occupancy labels are exact).

Conventions: Y is up, the chair's front faces +Z (a back, when there is one, is at negative z), the
floor is y = 0 (the lowest vertex), the seat is centred on x = 0 and z = 0, and units are metres (a
dining seat is about 0.45 high).

The parts (primitives, mesh builder, parameter sampler) live in ``procedural_parts`` and the families
(one function per family) in ``procedural_families``; this module is the public API.

Example:
    >>> chair = generate_chair(7, "office")
    >>> chair.family, round(float(chair.mesh.bounds[0, 1]), 6)
    ('office', 0.0)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import trimesh

from shapelatent.data.procedural_families import BUILDERS, FAMILIES
from shapelatent.data.procedural_parts import Builder, Sampler
from shapelatent.data.union import union_mesh

__all__ = ["FAMILIES", "Chair", "chair_seed", "generate_chair", "iter_chairs"]


@dataclass(frozen=True)
class Chair:
    """One generated chair.

    Attributes:
        mesh: the chair, vertices (V, 3) float64 and faces (F, 3) int64, Y up, front +Z, floor y = 0; the
            union of its parts (watertight).
        family: one of ``FAMILIES``.
        params: every sampled parameter (lengths in metres, angles in degrees, flags as 0/1 ints,
            categorical choices as strings), plus ``seed``; JSON-serialisable.
    """

    mesh: trimesh.Trimesh
    family: str
    params: dict[str, float | int | str]


# --------------------------------------------------------------------------- public API


def _check_seed(seed: int, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {seed!r}")
    return int(seed)


def _check_family(family: str) -> str:
    if family not in BUILDERS:
        raise ValueError(f"unknown chair family {family!r}; choose from {', '.join(FAMILIES)}")
    return family


def chair_seed(seed: int, index: int) -> int:
    """The seed of chair ``index`` in ``iter_chairs(..., seed=seed)``.

    Derived with ``numpy.random.SeedSequence(seed, spawn_key=(index,))``, so every chair of a stream
    can be regenerated on its own with ``generate_chair(chair_seed(seed, index), family)``.

    Args:
        seed: the stream's seed, a non-negative integer.
        index: the chair's position in the stream, a non-negative integer.

    Returns:
        A non-negative integer below 2**64.

    Raises:
        ValueError: if ``seed`` or ``index`` is negative or not an integer.
    """
    ss = np.random.SeedSequence(_check_seed(seed), spawn_key=(_check_seed(index, "index"),))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def generate_chair(seed: int, family: str | None = None) -> Chair:
    """Generate one chair.

    The family choice and the parameters come from independent child streams of
    ``SeedSequence(seed)``, so ``generate_chair(s)`` equals ``generate_chair(s, generate_chair(s).family)``.

    Args:
        seed: a non-negative integer; the same seed and family give an identical mesh.
        family: one of ``FAMILIES``; None picks one uniformly from the seed.

    Returns:
        The chair: its mesh, family and sampled parameters.

    Raises:
        ValueError: if ``family`` is not one of ``FAMILIES`` or ``seed`` is not a non-negative integer.
    """
    seed = _check_seed(seed)
    family_ss, params_ss = np.random.SeedSequence(seed).spawn(2)
    if family is None:
        family = FAMILIES[int(np.random.default_rng(family_ss).integers(len(FAMILIES)))]
    _check_family(family)
    sampler = Sampler(np.random.default_rng(params_ss))
    sampler.set("seed", seed)
    builder = Builder()
    BUILDERS[family](sampler, builder)
    return Chair(mesh=union_mesh(builder.parts()), family=family, params=sampler.params)


def iter_chairs(count: int, seed: int = 0, families: Sequence[str] | None = None) -> Iterator[Chair]:
    """Generate ``count`` chairs, round-robin over ``families`` so classes stay balanced.

    Chair ``i`` is ``generate_chair(chair_seed(seed, i), families[i % len(families)])``.

    Args:
        count: number of chairs, > 0.
        seed: seed of the whole stream, a non-negative integer.
        families: the families to cycle through, in order (default ``FAMILIES``).

    Yields:
        The chairs, one at a time.

    Raises:
        ValueError: if ``count`` <= 0, ``families`` is empty or names an unknown family, or ``seed`` is
            not a non-negative integer (raised on the call, before the first chair).
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    seed = _check_seed(seed)
    fams = FAMILIES if families is None else tuple(families)
    if not fams:
        raise ValueError(f"families must name at least one of {', '.join(FAMILIES)}; got an empty sequence")
    for f in fams:
        _check_family(f)
    return _iter(int(count), seed, fams)


def _iter(count: int, seed: int, families: tuple[str, ...]) -> Iterator[Chair]:
    for i in range(count):
        yield generate_chair(chair_seed(seed, i), families[i % len(families)])
