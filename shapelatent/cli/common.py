"""Pieces shared by the CLI modules: error handling, option types, sampling options, results and build reports.

Streams: a command prints its results with :func:`emit` (or :func:`emit_result`, which honours ``--json``) on
stdout; progress bars (:func:`bar`), logs and errors go to stderr through ``console``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from shapelatent.cli.progress import bar, console, results
from shapelatent.errors import ShapelatentError

__all__ = [
    "CenterOpt",
    "ForceOpt",
    "JsonOpt",
    "OversampleOpt",
    "PointsOpt",
    "ScaleOpt",
    "WorkersOpt",
    "bar",
    "build_payload",
    "console",
    "emit",
    "emit_result",
    "friendly",
    "jsonable",
    "report_build",
    "results",
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


def emit(*objects: Any, **kwargs: Any) -> None:
    """Print a result (a line, a table) on stdout; takes what ``rich.console.Console.print`` takes."""
    results.print(*objects, **kwargs)


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: paths become strings, tuples lists, numpy values Python numbers, NaN/inf null."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit_result(payload: Mapping[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    """Report a command's result: one JSON document of ``payload`` on stdout, or ``human()`` for people.

    Args:
        payload: the result, with the keys the README documents for the command (made safe by :func:`jsonable`).
        as_json: the command's ``--json`` flag.
        human: prints the human-readable form (with :func:`emit`); not called with ``--json``.
    """
    if as_json:
        typer.echo(json.dumps(jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False))
    else:
        human()


def build_payload(result) -> dict[str, Any]:
    """The JSON form of a dataset build: ``path``, ``built``, ``skipped`` (``{source, reason}``), ``build_report``."""
    return {
        "path": result.path,
        "built": result.built,
        "skipped": [{"source": s["source"], "reason": s["reason"]} for s in result.skipped],
        "build_report": result.path / "build_report.json",
    }


def report_build(result, as_json: bool = False) -> None:
    """Print what a dataset build wrote (``as_json``: :func:`build_payload` as one JSON document)."""

    def human() -> None:
        emit(f"built [bold]{result.built}[/] shapes into [bold]{result.path}[/]")
        if result.skipped:
            emit(f"[yellow]skipped {len(result.skipped)} inputs[/] (reasons in {result.path / 'build_report.json'}):")
            for s in result.skipped[:20]:
                emit(f"  {s['source']}: {s['reason']}", markup=False)

    emit_result(build_payload(result), as_json, human)


PointsOpt = Annotated[int, typer.Option("--points", "-p", help="Points sampled per shape (P).")]
OversampleOpt = Annotated[int | None, typer.Option(help="Sample this many, then thin to P by farthest-point sampling.")]
CenterOpt = Annotated[str, typer.Option(help="Centre: bbox | mean.")]
ScaleOpt = Annotated[str, typer.Option(help="Scale: unit_sphere | unit_diagonal.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace an existing output (only once the new one is complete).")
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print the result as one JSON document on stdout (keys in the README); progress stays on stderr."
    ),
]
