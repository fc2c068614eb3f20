"""``shapelatent data build sweethome3d``."""

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
    friendly,
    report_build,
    sampling_config,
)
from shapelatent.cli.data import build_app


@build_app.command("sweethome3d")
@friendly
def build_sweethome3d_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Sweet Home 3D furniture libraries (.sh3f), or folders holding them.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of: chair, stool, armchair_sofa, bench, table, bed, lamp, cabinet_shelf, "
            "plant, sanitary, appliance, other (default: all but other)."
        ),
    ] = None,
    include_other: Annotated[
        bool, typer.Option("--include-other", help="Also keep items of class 'other' (vehicles, people, objects).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for sampling and split.")] = 0,
    points: PointsOpt = 2048,
    oversample: OversampleOpt = None,
    center: CenterOpt = "bbox",
    scale: ScaleOpt = "unit_sphere",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build a dataset from Sweet Home 3D furniture libraries (.sh3f), one shape per catalogue item.

    Models are extracted safely (geometry only), rotated by their modelRotation and classed from their
    English names; ATTRIBUTION.md in the dataset lists every creator and licence.
    """
    from shapelatent.data.sources.sweethome3d import build_sweethome3d, find_archives, read_catalog, select_items

    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    catalogs = [read_catalog(a) for a in find_archives(paths)]
    total = len(select_items(catalogs, wanted, include_other)[0])
    with bar("models", total) as pb:
        result = build_sweethome3d(
            catalogs,
            out,
            classes=wanted,
            include_other=include_other,
            sampling=sampling_config(points, oversample, center, scale, seed),
            seed=seed,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(result)
