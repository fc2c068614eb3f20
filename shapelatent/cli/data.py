"""``shapelatent data``: build and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import JsonOpt, emit, emit_result, friendly
from shapelatent.cli.data_sources import build_app

data_app = typer.Typer(no_args_is_help=True, help="Build and inspect datasets.")
data_app.add_typer(build_app, name="build")


@data_app.command("info")
@friendly
def data_info_cmd(path: Annotated[Path, typer.Argument(help="Dataset folder.")], as_json: JsonOpt = False) -> None:
    """Print a dataset's size, classes, splits and sampling parameters."""
    from collections import Counter

    from rich.table import Table

    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(path)
    info = ds.info
    splits = ("train", "val", "test")
    counts = Counter((m["class"], m["split"]) for m in ds.meta)
    per_class = {}
    for cls in sorted({c for c, _ in counts}):
        row = {s: counts[(cls, s)] for s in splits}
        per_class[cls] = {**row, "total": sum(row.values())}
    totals = {split: sum(v for (_, s), v in counts.items() if s == split) for split in splits}
    sampling = info.get("sampling", {})
    payload = {
        "path": path,
        "shapes": len(ds),
        "points": ds.num_points,
        "format_version": info["format_version"],
        "classes": per_class,
        "splits": totals,
        "sampling": {"method": sampling.get("method"), "normalization": sampling.get("normalization")},
        "split_seed": info.get("split", {}).get("seed"),
        "source": info.get("source", {}).get("kind"),
        "skipped": info.get("skipped", 0),
        "build_report": ds.root / "build_report.json",
    }

    def human() -> None:
        emit(f"[bold]{path}[/]: {len(ds)} shapes x {ds.num_points} points (format v{info['format_version']})")
        table = Table("class", "train", "val", "test", "total")
        for cls, row in per_class.items():
            table.add_row(cls, *(str(row[k]) for k in (*splits, "total")))
        table.add_row("[bold]all[/]", *(str(totals[s]) for s in splits), str(len(ds)))
        emit(table)
        emit(
            f"sampling: {payload['sampling']['method']}, normalisation {payload['sampling']['normalization']}, "
            f"split seed {payload['split_seed']}"
        )
        emit(f"source: {payload['source']}; skipped at build: {payload['skipped']} (see {payload['build_report']})")

    emit_result(payload, as_json, human)
