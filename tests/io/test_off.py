from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapelatent.errors import MeshReadError
from shapelatent.io import MESH_READERS, read_mesh
from shapelatent.io.off import read_off


def _off_text(mesh: trimesh.Trimesh, header: str = "OFF\n{v} {f} 0\n") -> str:
    lines = [header.format(v=len(mesh.vertices), f=len(mesh.faces))]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in mesh.vertices]
    lines += [f"3 {a} {b} {c}\n" for a, b, c in mesh.faces]
    return "".join(lines)


def test_registered_for_off():
    assert MESH_READERS[".off"] is read_off


def test_standard_off_matches_trimesh_export(tmp_path, box_mesh):
    path = tmp_path / "box.off"
    box_mesh.export(path)
    mesh = read_off(path)
    np.testing.assert_allclose(mesh.vertices, box_mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, box_mesh.faces)


@pytest.mark.parametrize("header", ["OFF{v} {f} 0\n", "OFF {v} {f} 0\n", "OFF{v} {f}\n", "{v} {f} 0\n"])
def test_modelnet_style_headers(tmp_path, box_mesh, header):
    # ModelNet files such as 'OFF490 518 0' put the counts on the keyword's line; the keyword is optional
    path = tmp_path / "chair_0001.off"
    path.write_text(_off_text(box_mesh, header))
    mesh = read_mesh(path)
    assert len(mesh.faces) == 12 and mesh.area == pytest.approx(box_mesh.area)


def test_comments_blank_lines_colours_and_polygons(tmp_path):
    path = tmp_path / "quad.off"
    path.write_text(
        "# a unit square and a triangle, written by hand\n"
        "COFF\n"
        "\n"
        "5 2 0   # counts\n"
        "0 0 0 255 0 0 255\n"
        "1 0 0 255 0 0 255\n"
        "1 1 0 255 0 0 255\n"
        "0 1 0 255 0 0 255  # a comment after a vertex\n"
        "0 0 1 255 0 0 255\n"
        "\n"
        "4 0 1 2 3  0.5 0.5 0.5\n"
        "3 0 1 4\n"
    )
    mesh = read_off(path)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 4]]  # the quad as a fan
    assert mesh.area == pytest.approx(1.5)


def test_polygon_fan_area(tmp_path):
    angles = np.linspace(0, 2 * np.pi, 7)[:-1]
    verts = np.c_[np.cos(angles), np.sin(angles), np.zeros(6)]
    path = tmp_path / "hexagon.off"
    path.write_text("OFF\n6 1 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in verts) + "6 0 1 2 3 4 5\n")
    mesh = read_off(path)
    assert len(mesh.faces) == 4
    assert mesh.area == pytest.approx(3 * np.sqrt(3) / 2)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "the file is empty"),
        ("ply\nformat ascii 1.0\n", "line 1: not an OFF file"),
        ("OFF BINARY\n3 1 0\n", "binary OFF is not supported"),
        ("4OFF\n3 1 0\n", "(4D or n-dimensional OFF) is not supported"),
        ("OFF\n", "ends after the 'OFF' keyword"),
        ("OFF\n3 x 0\n", "line 2: expected integers for the counts"),
        ("OFF\n3 1 0 7\n", "line 2: expected the counts 'V F E'"),
        ("OFF\n-3 1 0\n", "must not be negative"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n", "promises 3 vertices and 1 faces, but the file ends after 2 vertices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n", "ends after 3 vertices and 0 faces"),
        ("OFF\n3 1 0\n0 0 0\n1 0\n0 1 0\n3 0 1 2\n", "line 4: a vertex needs 3 coordinates"),
        ("OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n", "line 4: vertex coordinates are not numbers"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\nnan 1 0\n3 0 1 2\n", "line 5: a vertex has NaN or infinite"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "line 6: vertex index 3 is out of range; the file has 3"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 -1 2\n", "line 6: vertex index -1 is out of range"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", "line 6: a face needs at least 3 vertices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", "line 6: the face lists 3 of its 4 vertex indices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\nx 0 1 2\n", "line 6: a face starts with its vertex count"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 b\n", "line 6: expected integers for the face's vertex indices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 2 1\n", "line 7: 1 more line(s) after the 1 faces"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, needle):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(MeshReadError) as err:
        read_off(path)
    msg = str(err.value)
    assert str(path) in msg and needle in msg, msg


def test_truncated_modelnet_file(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=2)
    text = _off_text(mesh, "OFF{v} {f} 0\n")
    path = tmp_path / "cut.off"
    path.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")
    with pytest.raises(MeshReadError, match=r"cut.off: the header promises 162 vertices and 320 faces"):
        read_mesh(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.off: no such file"):
        read_off(tmp_path / "nope.off")


def test_binary_garbage(tmp_path):
    path = tmp_path / "junk.off"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(MeshReadError, match="junk.off: line 1: not an OFF file"):
        read_mesh(path)


def test_large_file_fast_path_matches(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=4)  # 5120 faces: the vectorised path
    path = tmp_path / "ico.off"
    path.write_text(_off_text(mesh, "OFF{v} {f} 0\n"))
    got = read_off(path)
    np.testing.assert_array_equal(got.faces, mesh.faces)
    np.testing.assert_allclose(got.vertices, mesh.vertices, atol=1e-6)
