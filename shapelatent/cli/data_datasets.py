"""``shapelatent data build shapenet|modelnet|pointset``."""

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

SeedOpt = Annotated[int, typer.Option(help="Seed for sampling and the seeded split.")]
MaxFacesOpt = Annotated[int, typer.Option(help="Skip (and report) meshes with more faces than this.")]
MAX_FACES = 2_000_000  # = shapelatent.data.build.DEFAULT_MAX_FACES, not imported to keep the CLI start fast
FrontOpt = Annotated[
    str,
    typer.Option(
        help="Front axis of the source models: auto (as documented per release) | +z | -z | +x | -x. "
        "Models are turned about +Y so that it becomes +Z."
    ),
]


def _csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@build_app.command("shapenet")
@friendly
def build_shapenet_cmd(
    root: Annotated[Path, typer.Argument(help="ShapeNetCore folder: <root>/<synset>/<model_id>/models/...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    synsets: Annotated[
        str | None, typer.Option(help="Comma-separated synset ids or names, e.g. 03001627,04379243 or chair,table.")
    ] = None,
    split_csv: Annotated[
        Path | None, typer.Option(help="Official split CSV (id,synsetId,subSynsetId,modelId,split), e.g. all.csv.")
    ] = None,
    front: FrontOpt = "auto",
    max_faces: MaxFacesOpt = MAX_FACES,
    seed: SeedOpt = 0,
    points: PointsOpt = 2048,
    oversample: OversampleOpt = None,
    center: CenterOpt = "bbox",
    scale: ScaleOpt = "unit_sphere",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build a dataset from ShapeNetCore v2 (or v1); the data is yours to obtain under the ShapeNet terms."""
    from shapelatent.data.sources.shapenet import build_shapenet, shapenet_items

    chosen = _csv_list(synsets)
    total = len(shapenet_items(root, synsets=chosen, split_csv=split_csv, front=front).items)
    with bar("models", total) as pb:
        result = build_shapenet(
            root,
            out,
            synsets=chosen,
            split_csv=split_csv,
            front=front,
            sampling=sampling_config(points, oversample, center, scale, seed),
            seed=seed,
            max_faces=max_faces,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(result)


@build_app.command("modelnet")
@friendly
def build_modelnet_cmd(
    root: Annotated[Path, typer.Argument(help="ModelNet10/40 folder: <root>/<class>/{train,test}/<class>_NNNN.off")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    classes: Annotated[str | None, typer.Option(help="Comma-separated subset of class folders.")] = None,
    up: Annotated[str, typer.Option(help="Up axis of the models: z (ModelNet's) | y.")] = "z",
    val_fraction: Annotated[
        float, typer.Option(help="Fraction of each class's official train models moved to val (seeded).")
    ] = 0.0,
    max_faces: MaxFacesOpt = MAX_FACES,
    seed: SeedOpt = 0,
    points: PointsOpt = 2048,
    oversample: OversampleOpt = None,
    center: CenterOpt = "bbox",
    scale: ScaleOpt = "unit_sphere",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build a dataset from ModelNet10 or ModelNet40, keeping the official train/test split."""
    from shapelatent.data.sources.modelnet import build_modelnet, modelnet_items

    chosen = _csv_list(classes)
    total = len(modelnet_items(root, classes=chosen, up=up, val_fraction=val_fraction, seed=seed).items)
    with bar("models", total) as pb:
        result = build_modelnet(
            root,
            out,
            classes=chosen,
            up=up,
            val_fraction=val_fraction,
            sampling=sampling_config(points, oversample, center, scale, seed),
            seed=seed,
            max_faces=max_faces,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(result)


@build_app.command("pointset")
@friendly
def build_pointset_cmd(
    root: Annotated[Path, typer.Argument(help="Pre-sampled ShapeNet point clouds, one folder per synset.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    layout: Annotated[
        str,
        typer.Option(help="auto | latent_3d_points (<synset>/<id>.ply) | pc15k (<synset>/<split>/<id>.npy)."),
    ] = "auto",
    synsets: Annotated[str | None, typer.Option(help="Comma-separated synset ids or names.")] = None,
    front: FrontOpt = "auto",
    seed: SeedOpt = 0,
    points: PointsOpt = 2048,
    center: CenterOpt = "bbox",
    scale: ScaleOpt = "unit_sphere",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build a dataset from pre-sampled point clouds (latent_3d_points PLYs or PointFlow's PC15k), no re-sampling."""
    from shapelatent.data.sources.pointsets import build_pointset, pointset_items

    chosen = _csv_list(synsets)
    total = len(pointset_items(root, layout=layout, synsets=chosen, front=front).items)
    with bar("clouds", total) as pb:
        result = build_pointset(
            root,
            out,
            layout=layout,
            synsets=chosen,
            front=front,
            sampling=sampling_config(points, None, center, scale, seed),
            seed=seed,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(result)
