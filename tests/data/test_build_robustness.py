"""Builds survive bad inputs: every good shape is kept, every bad one is skipped with a reason, nothing hangs,
and an interrupted or failed build never leaves (or replaces) a dataset."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import trimesh

from shapelatent.data.build import BuildItem, SamplingConfig, build_items
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sampling import sample_surface
from shapelatent.data.sources.folder import build_folder, folder_items
from shapelatent.errors import DatasetFormatError, OutputExistsError

CFG = SamplingConfig(num_points=64, seed=0)
SOURCE = {"kind": "test"}
MAX_FACES = 50  # the good meshes below have at most 20 faces; the "huge" one has 320


def _box(extents=(2.0, 1.0, 0.5)) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents)


def _obj_text(mesh: trimesh.Trimesh) -> str:
    return trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_texture=False)


def _partly_degenerate() -> trimesh.Trimesh:
    """A box plus zero-area faces far away: collinear, repeated-index and coincident-vertex triangles (last)."""
    box = _box()
    n = len(box.vertices)
    extra_v = np.array([[100.0, 0, 0], [101.0, 0, 0], [102.0, 0, 0], [0, 200.0, 0], [0, 0, -300.0]])
    extra_f = np.array([[n, n + 1, n + 2], [n + 3, n + 3, n], [n + 4, n + 4, n + 4]])
    return trimesh.Trimesh(
        np.vstack([box.vertices, extra_v]), np.vstack([box.faces, extra_f]), process=False, validate=False
    )


def _write_inputs(src: Path) -> dict[str, str]:
    """Good and bad inputs in a folder; returns bad file name -> a phrase its skip reason must contain."""
    good, bad = src / "good", src / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    _box().export(good / "box.obj")
    _box((1, 3, 1)).export(good / "tall.stl")
    _box((1, 1, 2)).export(good / "deep.ply")
    b = _box((0.5, 0.5, 0.5))
    (good / "modelnet_header.off").write_text(
        f"OFF{len(b.vertices)} {len(b.faces)} 0\n"
        + "".join(f"{x} {y} {z}\n" for x, y, z in b.vertices)
        + "".join(f"3 {i} {j} {k}\n" for i, j, k in b.faces)
    )
    (good / "partly_degenerate.obj").write_text(_obj_text(_partly_degenerate()))

    ico = trimesh.creation.icosphere(subdivisions=2)  # 320 faces > MAX_FACES
    ico.export(bad / "huge.off")
    lines = _obj_text(trimesh.creation.icosphere(subdivisions=1)).splitlines(keepends=True)
    v_lines = [i for i, line in enumerate(lines) if line.startswith("v ")]
    cut = v_lines[len(v_lines) // 2]
    (bad / "truncated.obj").write_text("".join(lines[:cut]) + lines[cut][:7])  # cut inside the vertices
    (bad / "bad_index.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99\n")
    off = (good / "modelnet_header.off").read_text()
    (bad / "truncated.off").write_text(off[: len(off) // 2])
    data = _box().export(file_type="ply")  # binary PLY
    (bad / "half.ply").write_bytes(data[: len(data) // 2])
    (bad / "empty.obj").write_text("# nothing but vertices\nv 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (bad / "nan.obj").write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    (bad / "all_degenerate.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\nf 1 1 2\n")
    (bad / "garbage.stl").write_bytes(b"\x00\x01 not an stl at all")

    # links: a directory loop and a symlinked file; neither may hang the listing or be read twice
    (good / "loop").symlink_to(src, target_is_directory=True)
    (bad / "again").symlink_to(bad, target_is_directory=True)
    (src / "linked_box.obj").symlink_to(good / "box.obj")
    return {
        "huge.off": "320 faces is more than the cap of 50",
        "truncated.obj": "a vertex line is not three numbers",
        "bad_index.obj": "face indices refer to vertices that do not exist",
        "truncated.off": "the header promises 8 vertices and 12 faces",
        "half.ply": "could not be read as PLY",
        "empty.obj": "the mesh is empty",
        "nan.obj": "NaN or infinite",
        "all_degenerate.obj": "zero surface area",
        "garbage.stl": "no triangle geometry",
    }


class _Alarm(Exception):
    pass


def _listing_with_deadline(src: Path, seconds: int = 20):
    def on_alarm(signum, frame):
        raise _Alarm(f"listing {src} took more than {seconds} s (symlink loop followed?)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return folder_items(src)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_bad_inputs_are_skipped_with_reasons_and_good_ones_kept(tmp_path):
    src = tmp_path / "src"
    expected_bad = _write_inputs(src)
    items = _listing_with_deadline(src)
    assert not any("loop" in it.id or "again" in it.id or "linked" in it.id for it in items)
    out = tmp_path / "ds"
    res = build_items(items, out, source=SOURCE, sampling=CFG, max_faces=MAX_FACES, workers=1)
    ds = ShapeDataset(out)
    assert sorted(m["id"] for m in ds.meta) == sorted(
        f"good/{n}" for n in ("box.obj", "tall.stl", "deep.ply", "modelnet_header.off", "partly_degenerate.obj")
    )
    report = json.loads((out / "build_report.json").read_text())
    assert report["built"] == res.built == 5
    reasons = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == set(expected_bad)
    for name, phrase in expected_bad.items():
        assert name in reasons[name] and phrase in reasons[name], (name, reasons[name])
    assert ds.info["skipped"] == len(expected_bad)
    assert np.isfinite(ds.points).all() and np.isfinite(ds.normals).all()


def test_folder_builder_with_symlink_loop_finishes(tmp_path):
    src = tmp_path / "src"
    (src / "chairs").mkdir(parents=True)
    _box().export(src / "chairs" / "a.obj")
    (src / "chairs" / "loop").symlink_to(src, target_is_directory=True)
    (src / "chairs" / "b.obj").write_text("v 0 0 0\n")
    res = build_folder(src, tmp_path / "ds", sampling=CFG, workers=1)
    assert res.built == 1 and [Path(s["source"]).name for s in res.skipped] == ["b.obj"]


def test_partly_degenerate_mesh_builds_without_points_on_zero_area_faces(tmp_path):
    mesh = _partly_degenerate()
    # the sampler itself: many draws, none on the far-away degenerate faces
    cloud = sample_surface(mesh, 20000, seed=1)
    assert np.abs(cloud.points).max() <= 1.0 + 1e-6
    np.testing.assert_allclose(np.linalg.norm(cloud.normals, axis=1), 1.0, atol=1e-5)
    # through a build: the normalised cloud has the box's proportions (a point at x=100 would swamp them)
    (tmp_path / "m.obj").write_text(_obj_text(mesh))
    res = build_items(
        [BuildItem(id="m", path=str(tmp_path / "m.obj"), cls="x")],
        tmp_path / "ds",
        source=SOURCE,
        sampling=SamplingConfig(num_points=128),
        workers=1,
    )
    pts = ShapeDataset(res.path).points[0]
    np.testing.assert_allclose(np.ptp(pts, axis=0) / np.ptp(pts, axis=0)[0], [1.0, 0.5, 0.25], atol=0.05)


def _items(src: Path, n: int) -> list[BuildItem]:
    src.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        _box((1 + 0.1 * i, 1, 1)).export(src / f"m{i}.stl")
        out.append(BuildItem(id=f"m{i}", path=str(src / f"m{i}.stl"), cls="box"))
    return out


def test_exception_mid_build_leaves_no_dataset_and_rerun_completes(tmp_path):
    items = _items(tmp_path / "src", 6)
    out = tmp_path / "ds"
    done = []

    def interrupt(n):
        done.append(n)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_items(items, out, source=SOURCE, sampling=CFG, workers=1, progress=interrupt)
    assert not out.exists()
    assert not (out.with_name("ds.partial") / "dataset.json").exists()
    res = build_items(items, out, source=SOURCE, sampling=CFG, workers=1)
    assert res.built == 6 and len(ShapeDataset(out)) == 6
    assert not out.with_name("ds.partial").exists()


def test_killed_build_leaves_only_partial_and_rerun_replaces_it(tmp_path):
    items = _items(tmp_path / "src", 6)
    out = tmp_path / "ds"
    script = textwrap.dedent(
        f"""
        import os, signal
        from shapelatent.data.build import BuildItem, SamplingConfig, build_items
        items = [BuildItem(id=f"m{{i}}", path={str(tmp_path / "src")!r} + f"/m{{i}}.stl", cls="box") for i in range(6)]
        done = []
        def kill_after_three(n):
            done.append(n)
            if len(done) == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up code gets to run
        build_items(items, {str(out)!r}, source={{"kind": "test"}}, sampling=SamplingConfig(num_points=64),
                    workers=1, progress=kill_after_three)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = out.with_name("ds.partial")
    assert not out.exists() and partial.is_dir()
    assert not (partial / "dataset.json").exists()
    res = build_items(items, out, source=SOURCE, sampling=CFG, workers=1)
    assert res.built == 6 and len(ShapeDataset(out)) == 6 and not partial.exists()


def test_existing_dataset_is_never_overwritten_without_force(tmp_path):
    items = _items(tmp_path / "src", 4)
    out = tmp_path / "ds"
    build_items(items, out, source=SOURCE, sampling=CFG, workers=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputExistsError, match="ds: already exists; pass --force"):
        build_items(items[:2], out, source=SOURCE, sampling=CFG, workers=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # with force, a rebuild that fails (nothing usable) still leaves the old dataset in place
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\n")
    with pytest.raises(DatasetFormatError, match="no shape could be built"):
        build_items(
            [BuildItem(id="x", path=str(broken), cls="x")], out, source=SOURCE, sampling=CFG, workers=1, force=True
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    res = build_items(items[:2], out, source=SOURCE, sampling=CFG, workers=1, force=True)
    assert res.built == 2 and len(ShapeDataset(out)) == 2


def test_parallel_build_keeps_good_items(tmp_path):
    items = _items(tmp_path / "src", 10)
    bad = tmp_path / "src" / "nan.obj"
    bad.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    items.insert(4, BuildItem(id="bad", path=str(bad), cls="box"))
    res = build_items(items, tmp_path / "ds", source=SOURCE, sampling=CFG, workers=2)
    assert res.built == 10 and [s["source"] for s in res.skipped] == [str(bad)]
    serial = build_items(items, tmp_path / "ds1", source=SOURCE, sampling=CFG, workers=1)
    np.testing.assert_array_equal(ShapeDataset(res.path).points, ShapeDataset(serial.path).points)
