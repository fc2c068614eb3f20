from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapelatent.errors import MeshReadError
from shapelatent.io.obj import read_obj


def test_matches_trimesh_on_real_fixtures(real_mesh_paths):
    for path in real_mesh_paths:
        ours = read_obj(path)
        ref = trimesh.load(str(path), file_type="obj", process=False, force="mesh")
        assert len(ours.faces) == len(ref.faces)
        assert ours.area == pytest.approx(ref.area, rel=1e-9)
        np.testing.assert_allclose(ours.bounds, ref.bounds)


def test_quads_ngons_slashes_and_negative_indices(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text(
        "# a unit square as a quad, and a pentagon with relative indices\n"
        "mtllib nowhere.mtl\nusemtl red\n"
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        "vt 0 0\nvn 0 0 1\n"
        "f 1/1/1 2/1/1 3/1/1 4/1/1\n"
        "v 0 0 1\nv 1 0 1\nv 1.5 0.5 1\nv 1 1 1\nv 0 1 1\n"
    )
    with open(path, "a") as fh:
        fh.write("f -5//1 -4//1 -3//1 -2//1 -1//1\n")
    mesh = read_obj(path)
    assert len(mesh.faces) == 2 + 3  # quad -> 2 triangles, pentagon -> 3
    assert mesh.area == pytest.approx(1.0 + 1.25)


def test_bad_indices_and_numbers(tmp_path):
    (tmp_path / "a.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    with pytest.raises(MeshReadError, match="a.obj: face indices refer to vertices that do not exist"):
        read_obj(tmp_path / "a.obj")
    (tmp_path / "b.obj").write_text("v 0 zero 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(MeshReadError, match="b.obj: a vertex line is not three numbers"):
        read_obj(tmp_path / "b.obj")
