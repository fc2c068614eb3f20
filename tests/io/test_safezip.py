"""Safe zip extraction: hostile archives are refused or reported, nothing is written outside the folder."""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from shapelatent.errors import ArchiveError
from shapelatent.io.meshes import read_mesh
from shapelatent.io.safezip import copy_capped, extract_zip, safe_member_name, sanitize_mtl_text, sanitize_obj


def _zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], method=zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name" is what some tests want
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def _all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_extracts_selected_members_and_reports_missing(tmp_path):
    arc = _zip(tmp_path / "a.zip", [("m/a.obj", b"v 0 0 0\n"), ("m/a.mtl", b"Kd 1 0 0\n"), ("other.txt", b"x")])
    res = extract_zip(arc, tmp_path / "out", members=["m/a.obj", "m/a.mtl", "m/missing.obj"])
    assert set(res.extracted) == {"m/a.obj", "m/a.mtl"}
    assert res.extracted["m/a.obj"].read_bytes() == b"v 0 0 0\n"
    assert res.problems == ["m/missing.obj: not in the archive"]
    assert res.total_bytes == 8 + 9
    assert _all_files(tmp_path / "out") == {"m/a.obj", "m/a.mtl"}  # no temporary files left behind


def test_names_that_leave_the_folder_are_refused(tmp_path):
    entries = [
        ("../evil.txt", b"x"),
        ("a/../../evil2.txt", b"x"),
        ("/abs/evil3.txt", b"x"),
        ("C:/evil4.txt", b"x"),
        ("c:evil5.txt", b"x"),
        ("..\\evil6.txt", b"x"),
        ("ok/./fine.txt", b"fine"),
    ]
    arc = _zip(tmp_path / "a.zip", entries)
    out = tmp_path / "deep" / "out"
    res = extract_zip(arc, out)
    assert set(res.extracted) == {"ok/./fine.txt"}
    assert res.extracted["ok/./fine.txt"] == out / "ok" / "fine.txt"
    assert len(res.problems) == 6 and all("refused" in p for p in res.problems)
    assert _all_files(tmp_path) == {"a.zip", "deep/out/ok/fine.txt"}


@pytest.mark.parametrize(
    "name,expected",
    [("a/b", "a/b"), ("a//./b", "a/b"), ("../a", None), ("a/..", None), ("/a", None), ("D:a", None), ("a\\b", None)],
)
def test_safe_member_name(name, expected):
    assert safe_member_name(name) == expected
    assert safe_member_name("a\x00b") is None and safe_member_name("") is None and safe_member_name("./") is None


def test_symlink_entries_are_refused_not_followed(tmp_path):
    link = zipfile.ZipInfo("m/passwd.obj")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("m/fifo")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    arc = _zip(tmp_path / "a.zip", [(link, b"/etc/passwd"), (fifo, b""), ("m/ok.obj", b"v 1 2 3\n")])
    res = extract_zip(arc, tmp_path / "out")
    assert set(res.extracted) == {"m/ok.obj"}
    assert any("m/passwd.obj: refused, a symlink entry" in p for p in res.problems)
    assert any("m/fifo: refused, a special entry" in p for p in res.problems)
    assert not (tmp_path / "out" / "m" / "passwd.obj").exists() and not os.path.islink(tmp_path / "out/m/passwd.obj")


def test_existing_symlink_in_destination_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    arc = _zip(tmp_path / "a.zip", [("sub/x.txt", b"x")])
    res = extract_zip(arc, out)
    assert res.extracted == {} and "symbolic link" in res.problems[0]
    assert list(outside.iterdir()) == []


def test_declared_size_over_the_cap_raises_before_writing(tmp_path):
    arc = _zip(tmp_path / "a.zip", [(f"f{i}.bin", os.urandom(100_000)) for i in range(3)])
    with pytest.raises(ArchiveError, match=r"a\.zip: the entries to extract declare 300000 bytes, more than max_total"):
        extract_zip(arc, tmp_path / "out", max_total_bytes=250_000)
    assert _all_files(tmp_path / "out") == set()
    assert extract_zip(arc, tmp_path / "out2", max_total_bytes=300_000).total_bytes == 300_000


def test_too_many_files_raises(tmp_path):
    arc = _zip(tmp_path / "many.zip", [(f"d/f{i}.txt", b"x") for i in range(50)])
    with pytest.raises(ArchiveError, match=r"many\.zip: 50 files to extract, more than max_files=10"):
        extract_zip(arc, tmp_path / "out", max_files=10)
    assert _all_files(tmp_path / "out") == set()
    assert (
        len(extract_zip(arc, tmp_path / "out", max_files=10, members=[f"d/f{i}.txt" for i in range(10)]).extracted)
        == 10
    )


def test_high_compression_ratio_is_refused(tmp_path):
    arc = _zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(5 << 20)), ("ok.txt", b"ok")])
    res = extract_zip(arc, tmp_path / "out")
    assert set(res.extracted) == {"ok.txt"}
    assert "zeros.bin: refused" in res.problems[0] and "zip bomb" in res.problems[0]
    # trusted: a higher ratio cap lets it through
    assert "zeros.bin" in extract_zip(arc, tmp_path / "out2", max_ratio=1e6).extracted


def _set_declared_size(data: bytearray, name: bytes, size: int) -> None:
    """Patch the uncompressed size of ``name`` in its local header and central directory entry."""
    local = data.find(b"PK\x03\x04")
    assert data[local + 30 : local + 30 + len(name)] == name
    struct.pack_into("<I", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    assert data[central + 46 : central + 46 + len(name)] == name
    struct.pack_into("<I", data, central + 24, size)


def test_entry_larger_than_declared_is_cut_off_and_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", bytes(2 << 20))
    data = bytearray(buf.getvalue())
    _set_declared_size(data, b"big.bin", 1000)  # says 1000 bytes, inflates to 2 MiB
    arc = tmp_path / "liar.zip"
    arc.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"liar\.zip!big\.bin: corrupt or truncated data"):
        extract_zip(arc, tmp_path / "out")
    assert _all_files(tmp_path / "out") == set()  # nothing half-written, no temporary file left


def test_copy_capped_stops_at_the_limit():
    dst = io.BytesIO()
    with pytest.raises(ArchiveError, match="stream: decompresses to more than the 1000 bytes allowed"):
        copy_capped(io.BytesIO(bytes(5000)), dst, 1000, "stream")
    assert len(dst.getvalue()) <= 1000
    dst = io.BytesIO()
    assert copy_capped(io.BytesIO(b"abc"), dst, 3, "s") == 3 and dst.getvalue() == b"abc"


def test_duplicate_names_are_reported_and_not_extracted(tmp_path):
    arc = _zip(
        tmp_path / "dup.zip",
        [("a.txt", b"first"), ("a.txt", b"second"), ("d/b.txt", b"1"), ("d//b.txt", b"2"), ("c.txt", b"c")],
    )
    res = extract_zip(arc, tmp_path / "out")
    assert set(res.extracted) == {"c.txt"}
    assert res.problems == [
        "a.txt: not extracted, the archive holds 2 entries with this name",
        "d/b.txt: not extracted, the archive holds 2 entries with this name",
    ]


def test_file_and_folder_with_the_same_name(tmp_path):
    arc = _zip(tmp_path / "a.zip", [("a", b"file"), ("a/b.txt", b"x")])
    res = extract_zip(arc, tmp_path / "out")
    assert set(res.extracted) == {"a"} and "a/b.txt: not extracted" in res.problems[0]


def test_truncated_and_non_zip_archives_raise(tmp_path):
    good = _zip(tmp_path / "good.zip", [(f"f{i}.txt", os.urandom(2000)) for i in range(5)])
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArchiveError, match=r"cut\.zip: not a readable zip archive, or truncated"):
        extract_zip(cut, tmp_path / "out")
    junk = tmp_path / "junk.sh3f"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ArchiveError, match=r"junk\.sh3f: not a readable zip archive"):
        extract_zip(junk, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nope.zip: no such archive"):
        extract_zip(tmp_path / "nope.zip", tmp_path / "out")
    # corrupt data inside an intact directory
    data = bytearray(good.read_bytes())
    data[60:90] = bytes(30)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"bad\.zip!f0\.txt: corrupt or truncated data"):
        extract_zip(bad, tmp_path / "out3")


# ---------------------------------------------------------------------------------------------------------
# OBJ / MTL references

_CUBE = (
    "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\n"
    "usemtl red\nf 1 3 2\nf 1 4 3\nf 5 6 7\nf 5 7 8\nf 1 2 6\nf 1 6 5\n"
    "f 4 8 7\nf 4 7 3\nf 2 3 7\nf 2 7 6\nf 1 5 8\nf 1 8 4\n"
)


def _mtl(textures: str) -> str:
    return f"newmtl red\nKd 1 0 0\nKs 0.1 0.1 0.1\n{textures}\n"


def test_sanitize_mtl_text_drops_textures_outside(tmp_path):
    root = tmp_path / "root"
    base = root / "model"
    base.mkdir(parents=True)
    lines = [
        "map_Kd /etc/passwd",
        "map_Kd ../../secret.png",
        "map_Ks C:/Users/x/wood.jpg",
        "map_Bump -bm 0.03 ../../../x.png",
        "bump ~/.ssh/id_rsa",
        "map_Kd tex.png",
        "map_Kd -s 1 1 1 tex.png",
        "refl ../model/tex.png",
    ]
    text = _mtl("\n".join(lines))
    geometry_only, dropped = sanitize_mtl_text(text, base, root)
    assert dropped == lines
    assert geometry_only == "newmtl red\nKd 1 0 0\nKs 0.1 0.1 0.1\n"
    kept, dropped = sanitize_mtl_text(text, base, root, keep_textures=True)
    assert dropped == lines[:5]
    assert "map_Kd tex.png" in kept and "map_Kd -s 1 1 1 tex.png" in kept and "refl ../model/tex.png" in kept


def test_sanitize_obj_removes_outside_mtllib_and_textures(tmp_path):
    root = tmp_path / "root"
    model = root / "chair"
    model.mkdir(parents=True)
    secret = tmp_path / "secret.mtl"
    secret.write_text("newmtl red\nKd 0 1 0\n")
    obj = model / "chair.obj"
    obj.write_text(f"# exported\n# mtllib ../../secret.mtl\nmtllib /etc/passwd\nmtllib chair.mtl\n{_CUBE}")
    (model / "chair.mtl").write_text(_mtl("map_Kd /etc/passwd\nmap_Kd ../../secret.png\nmap_Kd wood.jpg"))
    notes = sanitize_obj(obj, root)
    assert len(notes) == 5
    text = obj.read_text()
    assert "secret" not in text and "/etc/passwd" not in text
    assert text == f"# exported\nmtllib chair.mtl\n{_CUBE}"
    assert (model / "chair.mtl").read_text() == "newmtl red\nKd 1 0 0\nKs 0.1 0.1 0.1\n"
    mesh = read_mesh(obj)
    assert len(mesh.faces) == 12 and abs(mesh.area - 6.0) < 1e-9
    assert sanitize_obj(obj, root) == []  # idempotent: nothing left to remove, nothing rewritten
    with pytest.raises(ValueError, match="not inside the extraction folder"):
        sanitize_obj(obj, model / "elsewhere")


def test_sanitize_obj_keeps_bytes_it_does_not_touch(tmp_path):
    root = tmp_path
    obj = root / "m.obj"
    raw = b"# caf\xe9\r\nmtllib C:\\x.mtl\r\n" + _CUBE.encode()
    obj.write_bytes(raw)
    sanitize_obj(obj, root)
    assert obj.read_bytes() == b"# caf\xe9\r\n" + _CUBE.encode()
