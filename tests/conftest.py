"""Shared fixtures: tiny seeded shapes and the committed real meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

FIXTURES = Path(__file__).parent / "fixtures"
REAL_MESHES = FIXTURES / "meshes"


@pytest.fixture
def box_mesh() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(2.0, 1.0, 0.5))


@pytest.fixture
def real_mesh_paths() -> list[Path]:
    paths = sorted(REAL_MESHES.glob("*/model.obj"))
    assert len(paths) >= 3, "committed CC0 fixtures are missing"
    return paths


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
