"""Pieces shared by the CLI modules: error handling, option types, sampling options, build reports."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

import typer

from shapelatent.cli.progress import bar, console
from shapelatent.errors import ShapelatentError

__all__ = [
    "CenterOpt",
    "ForceOpt",
    "OversampleOpt",
    "PointsOpt",
    "ScaleOpt",
    "WorkersOpt",
    "bar",
    "console",
    "friendly",
    "report_build",
    "sampling_config",
]


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors (bad input) into a one-line message and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ShapelatentError, FileNotFoundError, FileExistsError, ValueError) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def sampling_config(points: int, oversample: int | None, center: str, scale: str, seed: int):
    from shapelatent.data.build import SamplingConfig
    from shapelatent.data.normalize import Normalization

    return SamplingConfig(
        num_points=points, oversample=oversample, normalization=Normalization(center, scale), seed=seed
    )


def report_build(result) -> None:
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
