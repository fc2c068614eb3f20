"""``shapelatent data``: build and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import (
    CenterOpt,
    ForceOpt,
    OversampleOpt,
    PointsOpt,
    ScaleOpt,
    WorkersOpt,
    bar,
    console,
    friendly,
    report_build,
    sampling_config,
)

data_app = typer.Typer(no_args_is_help=True, help="Build and inspect datasets.")
build_app = typer.Typer(no_args_is_help=True, help="Build a dataset from a source.")
data_app.add_typer(build_app, name="build")


@build_app.command("procedural")
@friendly
def build_procedural_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    count: Annotated[int, typer.Option(help="Number of chairs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for chairs, sampling and split.")] = 0,
    families: Annotated[str | None, typer.Option(help="Comma-separated subset of chair families.")] = None,
    points: PointsOpt = 2048,
    oversample: OversampleOpt = None,
    center: CenterOpt = "bbox",
    scale: ScaleOpt = "unit_sphere",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
) -> None:
    """Generate procedural chairs (four_legged, stool, armchair, office, bench, sofa) as a dataset."""
    from shapelatent.data.sources.procedural import build_procedural

    fams = [f.strip() for f in families.split(",")] if families else None
    with bar("chairs", count) as pb:
        result = build_procedural(
            out,
            count,
            sampling=sampling_config(points, oversample, center, scale, seed),
            seed=seed,
            families=fams,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(result)


@build_app.command("folder")
@friendly
def build_folder_cmd(
    path: Annotated[Path, typer.Argument(help="Folder of meshes / point clouds; class = first sub-folder name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    class_map: Annotated[Path | None, typer.Option(help="CSV (file,class) or JSON {file: class} mapping.")] = None,
    license: Annotated[str, typer.Option(help="Licence recorded for every item.")] = "",
    creator: Annotated[str, typer.Option(help="Creator recorded for every item.")] = "",
    seed: Annotated[int, typer.Option(help="Seed for sampling and split.")] = 0,
    points: PointsOpt = 2048,
    oversample: OversampleOpt = None,
    center: CenterOpt = "bbox",
    scale: ScaleOpt = "unit_sphere",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build a dataset from every mesh (OBJ/OFF/PLY/STL/GLB/GLTF) and point file (PLY/XYZ/NPY) under PATH."""
    from shapelatent.data.sources.folder import build_folder, list_inputs, load_class_map

    mapping = load_class_map(class_map) if class_map else None
    total = len(list_inputs(path)) if path.is_dir() else None
    with bar("models", total) as pb:
        result = build_folder(
            path,
            out,
            sampling=sampling_config(points, oversample, center, scale, seed),
            class_map=mapping,
            seed=seed,
            license=license,
            creator=creator,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(result)


@data_app.command("info")
@friendly
def data_info_cmd(path: Annotated[Path, typer.Argument(help="Dataset folder.")]) -> None:
    """Print a dataset's size, classes, splits and sampling parameters."""
    from collections import Counter

    from rich.table import Table

    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(path)
    info = ds.info
    console.print(f"[bold]{path}[/]: {len(ds)} shapes x {ds.num_points} points (format v{info['format_version']})")
    counts = Counter((m["class"], m["split"]) for m in ds.meta)
    table = Table("class", "train", "val", "test", "total")
    for cls in sorted({c for c, _ in counts}):
        row = [counts[(cls, s)] for s in ("train", "val", "test")]
        table.add_row(cls, *(str(v) for v in row), str(sum(row)))
    totals = [sum(v for (_, s), v in counts.items() if s == split) for split in ("train", "val", "test")]
    table.add_row("[bold]all[/]", *(str(v) for v in totals), str(len(ds)))
    console.print(table)
    norm = info.get("sampling", {}).get("normalization")
    console.print(
        f"sampling: {info.get('sampling', {}).get('method')}, normalisation {norm}, split seed "
        f"{info.get('split', {}).get('seed')}"
    )
    console.print(
        f"source: {info.get('source', {}).get('kind')}; skipped at build: {info.get('skipped', 0)} "
        f"(see {ds.root / 'build_report.json'})"
    )
