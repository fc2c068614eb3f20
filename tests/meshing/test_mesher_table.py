"""The table of point-cloud meshers: one row each, and a mesher with a missing dependency names its extra."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shapelatent.errors import BackendUnavailableError
from shapelatent.meshing import MESHERS, MeshingConfig, reconstruct_mesh
from shapelatent.meshing import reconstruct as reconstruct_module


def test_meshers_are_the_table_rows():
    assert MESHERS == ("poisson", "ball_pivoting", "alpha")
    assert MESHERS == tuple(reconstruct_module._MESHERS)
    with pytest.raises(ValueError, match="unknown meshing method 'marching'"):
        MeshingConfig(method="marching")


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    row = dataclasses.replace(
        reconstruct_module._MESHERS["alpha"],
        requires="shapelatent_no_such_module",
        install="install it with `pip install 'shapelatent[x]'`",
    )
    monkeypatch.setitem(reconstruct_module._MESHERS, "alpha", row)
    points = np.random.default_rng(0).normal(size=(64, 3))
    with pytest.raises(
        BackendUnavailableError, match=r"mesher 'alpha' is unavailable .*pip install 'shapelatent\[x\]'"
    ):
        reconstruct_mesh(points, None, MeshingConfig(method="alpha"))
