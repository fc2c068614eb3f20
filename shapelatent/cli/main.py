"""The ``shapelatent`` command line: one app, subcommands by task."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from shapelatent import __version__
from shapelatent.cli.progress import bar, console
from shapelatent.errors import ShapelatentError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="shapelatent: learn a latent space of 3D shapes (point-cloud autoencoders).",
)
data_app = typer.Typer(no_args_is_help=True, help="Build and inspect datasets.")
build_app = typer.Typer(no_args_is_help=True, help="Build a dataset from a source.")
app.add_typer(data_app, name="data")
data_app.add_typer(build_app, name="build")


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors (bad input) into a one-line message and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ShapelatentError, FileNotFoundError, FileExistsError, ValueError) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shapelatent {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    """shapelatent command line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _sampling(points: int, oversample: int | None, center: str, scale: str, seed: int):
    from shapelatent.data.build import SamplingConfig
    from shapelatent.data.normalize import Normalization

    return SamplingConfig(
        num_points=points, oversample=oversample, normalization=Normalization(center, scale), seed=seed
    )


def _report_build(result) -> None:
    console.print(f"built [bold]{result.built}[/] shapes into [bold]{result.path}[/]")
    if result.skipped:
        console.print(
            f"[yellow]skipped {len(result.skipped)} inputs[/] (reasons in {result.path / 'build_report.json'}):"
        )
        for s in result.skipped[:20]:
            console.print(f"  {s['source']}: {s['reason']}", highlight=False)


PointsOpt = Annotated[int, typer.Option("--points", "-p", help="Points sampled per shape (P).")]
OversampleOpt = Annotated[int | None, typer.Option(help="Sample this many, then thin to P by farthest-point sampling.")]
CenterOpt = Annotated[str, typer.Option(help="Centre: bbox | mean.")]
ScaleOpt = Annotated[str, typer.Option(help="Scale: unit_sphere | unit_diagonal.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace an existing output (only once the new one is complete).")
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")]


@build_app.command("procedural")
@_friendly
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
            sampling=_sampling(points, oversample, center, scale, seed),
            seed=seed,
            families=fams,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    _report_build(result)


@build_app.command("folder")
@_friendly
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
            sampling=_sampling(points, oversample, center, scale, seed),
            class_map=mapping,
            seed=seed,
            license=license,
            creator=creator,
            force=force,
            workers=workers,
            progress=lambda n: pb.update(0, advance=n),
        )
    _report_build(result)


@data_app.command("info")
@_friendly
def data_info_cmd(path: Annotated[Path, typer.Argument(help="Dataset folder.")]) -> None:
    """Print a dataset's size, classes, splits and sampling parameters."""
    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(path)
    info = ds.info
    console.print(f"[bold]{path}[/]: {len(ds)} shapes x {ds.num_points} points (format v{info['format_version']})")
    console.print(f"classes: {info.get('classes')}")
    console.print(f"splits: {info.get('split', {}).get('counts')}")
    console.print(f"sampling: {info.get('sampling')}")
    console.print(f"skipped at build: {info.get('skipped', 0)}")


def _run_config(config: Path | None, overrides: dict[str, dict[str, Any]]):
    from shapelatent.train.config import RunConfig, load_config

    base = load_config(config) if config else RunConfig()
    return base.with_overrides(model=overrides["model"], train=overrides["train"])


def _train_with_progress(data: Path, out: Path, cfg, resume: bool, force: bool):
    from shapelatent.train.loop import train

    total = None if resume else cfg.train.epochs
    with bar("epochs", total) as pb:

        def on_step(s: dict[str, Any]) -> None:
            pb.update(0, info=f"epoch {s['epoch']} step {s['step']}/{s['steps']} loss {s['loss']:.5f}")

        def on_epoch(row: dict[str, Any]) -> None:
            val = row["val_chamfer"]
            pb.update(
                0,
                completed=row["epoch"],
                total=pb.tasks[0].total or cfg.train.epochs,
                info=f"train {row['train_chamfer']:.5f} val {val if val is None else f'{val:.5f}'} "
                f"({row['shapes_per_s']:.0f} shapes/s)",
            )

        return train(data, out, cfg, resume=resume, force=force, on_step=on_step, on_epoch=on_epoch)


@app.command("train")
@_friendly
def train_cmd(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (from `shapelatent data build`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON config with [model] and [train] tables.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override train.batch_size (default 50).")] = None,
    lr: Annotated[float | None, typer.Option(help="Override train.lr (default 5e-4).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override train.seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda.")] = None,
    latent_dim: Annotated[int | None, typer.Option(help="Override model.latent_dim (Z, default 128).")] = None,
    normals: Annotated[bool | None, typer.Option("--normals/--no-normals", help="Also decode normals.")] = None,
    rotate: Annotated[
        bool | None, typer.Option("--rotate-aug/--no-rotate-aug", help="Random rotation about Y.")
    ] = None,
    scale_aug: Annotated[
        str | None, typer.Option(help="Random isotropic scale range 'low,high', e.g. 0.85,1.15.")
    ] = None,
    chamfer_backend: Annotated[str | None, typer.Option(help="Chamfer backend (auto, numba, torch, ...).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.safetensors.")] = False,
    force: ForceOpt = False,
) -> None:
    """Train the PointNet autoencoder with Chamfer loss; checkpoints, metrics and a loss curve go to OUT."""
    scale = None
    if scale_aug:
        try:
            lo, hi = (float(v) for v in scale_aug.split(","))
        except ValueError:
            raise ValueError(f"--scale-aug must be 'low,high' (two numbers); got {scale_aug!r}") from None
        scale = (lo, hi)
    cfg = _run_config(
        config,
        {
            "model": {"latent_dim": latent_dim, "predict_normals": normals},
            "train": {
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "device": device,
                "augment_rotate": rotate,
                "augment_scale": scale,
                "chamfer_backend": chamfer_backend,
            },
        },
    )
    result = _train_with_progress(data, out, cfg, resume, force)
    _print_run(result)


def _print_run(result) -> None:
    s = result.summary
    if "test_chamfer" in s:
        console.print(f"test Chamfer (mean over {s['test_shapes']} shapes): [bold]{s['test_chamfer']:.6f}[/]")
    console.print(f"run folder: [bold]{result.run_dir}[/]")
    for name in (
        "model.safetensors",
        "checkpoints/last.safetensors",
        "metrics.jsonl",
        "metrics.json",
        "loss_curve.png",
    ):
        if (result.run_dir / name).exists():
            console.print(f"  {result.run_dir / name}")


@app.command("demo")
@_friendly
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder (dataset + run).")] = Path("runs/demo"),
    count: Annotated[int, typer.Option(help="Procedural chairs to generate.")] = 600,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    points: Annotated[
        int,
        typer.Option(
            "--points",
            "-p",
            help="Points per shape (1024 keeps the demo within a few CPU minutes; the library default is 2048).",
        ),
    ] = 1024,
    seed: Annotated[int, typer.Option(help="Seed for everything.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Build procedural chairs, train the autoencoder on the CPU, and draw reconstructions: one command."""
    import time

    from shapelatent.cli.demo import reconstruction_figure
    from shapelatent.data.sources.procedural import build_procedural
    from shapelatent.train.config import RunConfig, TrainConfig

    t0 = time.perf_counter()
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to redo the demo there, or choose another --out.")
    data = out / "data"
    with bar("chairs", count) as pb:
        built = build_procedural(
            data,
            count,
            sampling=_sampling(points, None, "bbox", "unit_sphere", seed),
            seed=seed,
            force=force,
            progress=lambda n: pb.update(0, advance=n),
        )
    _report_build(built)
    cfg = RunConfig(train=TrainConfig(epochs=epochs, seed=seed, device="cpu"))
    result = _train_with_progress(data, out, cfg, resume=False, force=force)
    fig = reconstruction_figure(out, data, out / "reconstructions.png")
    _print_run(result)
    console.print(f"  {fig}")
    console.print(f"dataset: [bold]{data}[/]  ({built.built} chairs)")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    app()
