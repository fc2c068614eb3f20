"""``data build <source>`` is generated from the source table: one module and one line make a new command."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shapelatent.cli.data_sources import source_command
from shapelatent.cli.main import app
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sources import SOURCES, DataSource, SourceOption, registry

runner = CliRunner()
FIXTURE = Path(__file__).parent.parent / "fixtures" / "meshes" / "deck_chair" / "model.obj"

# The example of the registry's docstring, as a module of its own.
OBJS_SOURCE = (
    "from pathlib import Path\n"
    "from shapelatent.data.build import BuildItem, BuildResult, build_items\n"
    "from shapelatent.data.sources import DataSource, SourceOption\n\n"
    + textwrap.dedent(str(registry.__doc__).split("::\n", 1)[1].split("\n\nThis module", 1)[0])
)


@pytest.fixture
def objs_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A source module outside the package, added to the table by one line."""
    (tmp_path / "objs_source_module.py").write_text(OBJS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(SOURCES, "objs", "objs_source_module")
    yield "objs"
    sys.modules.pop("objs_source_module", None)


def test_group_lists_every_source():
    res = runner.invoke(app, ["data", "build", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in SOURCES:
        assert f" {name} " in res.output


def test_a_new_source_is_one_module_and_one_line(objs_source: str, tmp_path: Path):
    src = tmp_path / "objs"
    src.mkdir()
    for i in range(4):
        (src / f"m{i}.obj").write_bytes(FIXTURE.read_bytes())
    helptext = runner.invoke(app, ["data", "build", "objs", "--help"], env={"COLUMNS": "200"}).output
    for flag in (
        "--label",
        "--out",
        "--seed",
        "--points",
        "--oversample",
        "--center",
        "--scale",
        "--workers",
        "--force",
    ):
        assert flag in helptext, flag
    out = tmp_path / "ds"
    args = ["data", "build", "objs", str(src), "-o", str(out), "--label", "chair", "--points", "64", "--workers", "1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "built 4 shapes" in res.stdout
    ds = ShapeDataset(out)
    assert len(ds) == 4 and ds.num_points == 64 and set(ds.classes()) == {"chair"}


def test_typo_suggests_a_source():
    res = runner.invoke(app, ["data", "build", "modelnt"])
    assert res.exit_code == 2 and "Did you mean 'modelnet'?" in res.output


def test_a_source_cannot_redeclare_a_shared_option():
    clash = DataSource("x", "help", build=print, options=(SourceOption("points", int, "help", 1),))
    with pytest.raises(ValueError, match=r"source 'x' redeclares the shared build options \['points'\]"):
        source_command(clash)
