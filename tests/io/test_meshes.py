from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapelatent.errors import MeshReadError, UnsupportedFormatError
from shapelatent.io import read_mesh, read_points, supported_mesh_extensions, write_points_ply


@pytest.mark.parametrize("ext", [".obj", ".off", ".ply", ".stl", ".glb"])
def test_formats_roundtrip(tmp_path, box_mesh, ext):
    path = tmp_path / f"box{ext}"
    box_mesh.export(path)
    mesh = read_mesh(path)
    assert len(mesh.faces) == 12
    assert mesh.area == pytest.approx(box_mesh.area, rel=1e-5)
    np.testing.assert_allclose(mesh.bounds, box_mesh.bounds, atol=1e-5)


def test_gltf_scene_is_flattened(tmp_path):
    a = trimesh.creation.box(extents=(1, 1, 1))
    b = trimesh.creation.box(extents=(1, 1, 1))
    scene = trimesh.Scene()
    scene.add_geometry(a, node_name="a", transform=trimesh.transformations.translation_matrix((-2, 0, 0)))
    scene.add_geometry(b, node_name="b", transform=trimesh.transformations.translation_matrix((2, 0, 0)))
    path = tmp_path / "two.glb"
    scene.export(path)
    mesh = read_mesh(path)
    assert len(mesh.faces) == 24
    np.testing.assert_allclose(mesh.bounds[:, 0], [-2.5, 2.5], atol=1e-6)  # transforms applied


def test_real_obj_with_mtl(real_mesh_paths):
    for path in real_mesh_paths:
        assert (path.parent / "model.mtl").exists()
        mesh = read_mesh(path)
        assert len(mesh.faces) > 100 and mesh.area > 0 and np.isfinite(mesh.vertices).all()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.obj: no such file"):
        read_mesh(tmp_path / "nope.obj")


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "model.fbx"
    path.write_text("x")
    with pytest.raises(UnsupportedFormatError) as err:
        read_mesh(path)
    msg = str(err.value)
    assert "model.fbx" in msg and "'.fbx'" in msg
    for ext in supported_mesh_extensions():
        assert ext in msg


def test_not_a_mesh(tmp_path):
    path = tmp_path / "garbage.stl"
    path.write_bytes(b"\x00\x01 this is not an stl file at all")
    with pytest.raises(MeshReadError, match="garbage.stl"):
        read_mesh(path)


def test_text_file_with_obj_extension(tmp_path):
    path = tmp_path / "notes.obj"
    path.write_text("hello, I am a shopping list\nmilk\n")
    with pytest.raises(MeshReadError, match=r"notes.obj: .*(empty|no triangle|not a triangle)"):
        read_mesh(path)


def test_empty_mesh(tmp_path):
    path = tmp_path / "empty.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(MeshReadError, match="empty.obj"):
        read_mesh(path)


def test_nan_vertices(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    with pytest.raises(MeshReadError, match=r"nan.obj: 1 vertices have NaN or infinite"):
        read_mesh(path)


def test_inf_vertices(tmp_path):
    path = tmp_path / "inf.off"
    path.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\ninf 1 0\n3 0 1 2\n")
    with pytest.raises(MeshReadError, match="inf.off: .*NaN or infinite"):
        read_mesh(path)


def test_zero_area(tmp_path):
    path = tmp_path / "flat.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    with pytest.raises(MeshReadError, match="flat.obj: the mesh has zero surface area"):
        read_mesh(path)


def test_folder_is_not_a_file(tmp_path):
    d = tmp_path / "dir.obj"
    d.mkdir()
    with pytest.raises(MeshReadError, match="is a folder"):
        read_mesh(d)


def test_points_ply_xyz_npy(tmp_path, rng):
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    nrm = rng.normal(size=(50, 3)).astype(np.float32)
    write_points_ply(tmp_path / "a.ply", pts, nrm)
    cloud = read_points(tmp_path / "a.ply")
    np.testing.assert_allclose(cloud.points, pts, rtol=1e-6)
    np.testing.assert_allclose(cloud.normals, nrm, rtol=1e-6)
    np.savetxt(tmp_path / "b.xyz", pts)
    np.testing.assert_allclose(read_points(tmp_path / "b.xyz").points, pts, rtol=1e-6)
    np.save(tmp_path / "c.npy", np.concatenate([pts, nrm], axis=1))
    got = read_points(tmp_path / "c.npy")
    np.testing.assert_allclose(got.normals, nrm, rtol=1e-6)


def test_points_errors(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(MeshReadError, match=r"bad.npy: expected an array of shape \(P, 3\) or \(P, 6\)"):
        read_points(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MeshReadError, match="obj.npy: not a plain numeric"):
        read_points(tmp_path / "obj.npy")
    with pytest.raises(UnsupportedFormatError, match="supported: .npy, .ply, .xyz"):
        read_points(tmp_path / "x.pcd")
    (tmp_path / "e.xyz").write_text("")
    with pytest.raises(MeshReadError, match="e.xyz"):
        read_points(tmp_path / "e.xyz")
