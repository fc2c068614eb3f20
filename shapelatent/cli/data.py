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


@data_app.command("split")
@friendly
def data_split_cmd(
    path: Annotated[Path, typer.Argument(help="Dataset folder (rewritten in place: metadata.csv and dataset.json).")],
    method: Annotated[
        str, typer.Option(help="random (one seeded permutation) | stratified (per class: every class in every split).")
    ] = "stratified",
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    fractions: Annotated[
        str | None,
        typer.Option(help="train,val,test fractions, e.g. 0.8,0.1,0.1 (default: those recorded in dataset.json)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a built dataset a new train/val/test split in place, without re-sampling (the arrays are untouched)."""
    from shapelatent.data.resplit import resplit_dataset

    parsed = None
    if fractions is not None:
        try:
            values = [float(v) for v in fractions.split(",")]
        except ValueError:
            values = []
        if len(values) != 3:
            raise ValueError(f"--fractions must be three numbers train,val,test such as 0.8,0.1,0.1; got {fractions!r}")
        parsed = dict(zip(("train", "val", "test"), values, strict=True))
    record = resplit_dataset(path, method, seed, parsed)
    payload = {"path": path, **{k: v for k, v in record.items() if k != "previous"}, "previous": record["previous"]}

    def human() -> None:
        counts = ", ".join(f"{k} {v}" for k, v in record["counts"].items())
        emit(f"re-split [bold]{path}[/] ({method}, seed {seed}): {counts}; `shapelatent data info {path}` per class")

    emit_result(payload, as_json, human)


@data_app.command("merge")
@friendly
def data_merge_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Two or more dataset folders with one sampling contract.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged dataset folder.")],
    weights: Annotated[
        str | None,
        typer.Option(help="Comma-separated sampling weights, one per dataset, used when training on the merge."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output (once the new one is complete).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Merge datasets into one (what `train --data A --data B` does for itself): arrays concatenated, each source's
    split kept, occupancy samples merged when every source has them."""
    from shapelatent.cli.common import bar
    from shapelatent.data.format import ShapeDataset
    from shapelatent.data.merge import merge_datasets, parse_weights

    w = parse_weights(weights)
    with bar("merging datasets", len(paths)) as pb:
        merge_datasets(paths, out, w, force=force, progress=lambda d, t: pb.update(0, completed=d))
    ds = ShapeDataset(out)
    payload = {
        "path": out,
        "num_shapes": len(ds),
        "split_counts": ds.info["split"]["counts"],
        "occupancy": ds.info["occupancy"],
        "ids": ds.info["ids"],
        "merged_from": ds.info["merged_from"],
    }

    def human() -> None:
        parts = ", ".join(f"{Path(e['path']).name} {e['num_shapes']}" for e in ds.info["merged_from"])
        emit(f"merged [bold]{len(ds)}[/] shapes ({parts}) into {out}; occupancy: {ds.info['occupancy']}")

    emit_result(payload, as_json, human)
