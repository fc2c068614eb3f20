"""The options every ``data build <source>`` shares: ``--json``, and a new one being one row of ``SHARED``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from shapelatent.cli import data_sources
from shapelatent.cli.data_sources import SHARED, source_command
from shapelatent.cli.main import app
from shapelatent.data.build import BuildResult
from shapelatent.data.sources import DataSource, SourceOption

runner = CliRunner()  # click >= 8.2 keeps result.stdout and result.stderr apart


def test_build_json_is_one_document_on_stdout(tmp_path: Path):
    out = tmp_path / "chairs"
    args = ["data", "build", "procedural", "-o", str(out), "--count", "3", "--points", "64", "--workers", "1"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload == {"path": str(out), "built": 3, "skipped": [], "build_report": str(out / "build_report.json")}
    assert "{" not in res.stderr


def test_every_source_takes_json():
    for name in ("procedural", "folder", "shapenet", "modelnet", "pointset", "sweethome3d"):
        res = runner.invoke(app, ["data", "build", name, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "--json" in res.stdout, name


def test_a_shared_option_is_one_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seen: dict[str, Any] = {}

    def build(out: Path, *, size: int, seed: int, **options: Any) -> BuildResult:
        seen.update(options, size=size, seed=seed)
        return BuildResult(out, 0, [])

    row = ("max_faces", Annotated[int, typer.Option(help="Skip larger meshes.")], 100)
    monkeypatch.setattr(data_sources, "SHARED", (*SHARED, row))
    source = DataSource("toy", "A toy source.", build=build, options=(SourceOption("size", int, "Size.", 2),))
    toy = typer.Typer()
    toy.command("toy")(source_command(source))
    res = runner.invoke(toy, ["-o", str(tmp_path / "ds"), "--max-faces", "64", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert seen["max_faces"] == 64 and seen["size"] == 2 and seen["seed"] == 3
    assert {"sampling", "force", "workers", "on_start", "progress"} <= set(seen)
    assert "as_json" not in seen and "points" not in seen  # used by the command itself
