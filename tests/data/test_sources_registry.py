"""The table of dataset sources and the shared build options."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapelatent.data.build import BuildItem, SamplingConfig, build_items
from shapelatent.data.sources import SOURCES, DataSource, SourceOption, get_source, split_list


def test_every_source_declares_itself():
    assert list(SOURCES) == ["procedural", "folder", "shapenet", "modelnet", "pointset", "sweethome3d"]
    for name in SOURCES:
        source = get_source(name)
        assert isinstance(source, DataSource) and source.name == name and source.help
        assert all(isinstance(o, SourceOption) for o in source.options)
        names = [o.name for o in source.options]
        assert len(names) == len(set(names)), name


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data source 'objs'; choose from procedural, folder, shapenet"):
        get_source("objs")


def test_split_list():
    assert split_list("a, b,,c ") == ["a", "b", "c"]
    assert split_list("") is None
    assert split_list(",") == []


def test_option_value_converts_all_but_none():
    opt = SourceOption("classes", str | None, "help", None, keyword="wanted", convert=split_list)
    assert opt.value("a,b") == ("wanted", ["a", "b"])
    assert opt.value(None) == ("wanted", None)


def test_build_items_refuses_an_unknown_option(tmp_path: Path):
    item = BuildItem(id="a", path=str(tmp_path / "a.obj"), cls="x")
    with pytest.raises(TypeError, match=r"unexpected build options \['max_face'\]"):
        build_items([item], tmp_path / "ds", source={"kind": "test"}, max_face=10)  # type: ignore[call-arg]


def test_on_start_comes_before_progress(tmp_path: Path):
    box = Path(__file__).parent.parent / "fixtures" / "meshes" / "deck_chair" / "model.obj"
    items = [BuildItem(id=f"s{i}", path=str(box), cls="chair") for i in range(3)]
    calls: list[tuple[str, int]] = []
    build_items(
        items,
        tmp_path / "ds",
        source={"kind": "test"},
        sampling=SamplingConfig(num_points=64),
        workers=1,
        on_start=lambda n: calls.append(("start", n)),
        progress=lambda n: calls.append(("done", n)),
    )
    assert calls == [("start", 3), ("done", 1), ("done", 1), ("done", 1)]
