"""``shapelatent render``: headless contact sheets and GIFs of shapes, with Open3D's offscreen renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import emit, friendly

__all__ = ["register", "render_cmd"]


def render_cmd(
    inputs: Annotated[
        list[Path], typer.Argument(help="An interpolation output folder (with manifest.json), or mesh/point files.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Contact sheet PNG to write.")],
    gif: Annotated[Path | None, typer.Option("--gif", help="Also write an animated GIF, one frame per shape.")] = None,
    mode: Annotated[str, typer.Option(help="auto | points | mesh.")] = "auto",
    size: Annotated[int, typer.Option(help="Panel size in pixels (square).")] = 320,
    ncols: Annotated[int | None, typer.Option(help="Panels per row (default: one row, up to 6).")] = None,
    fps: Annotated[float, typer.Option(help="GIF frames per second.")] = 6.0,
    renderer: Annotated[
        str,
        typer.Option(
            help="auto | legacy | offscreen. auto: Open3D's OpenGL window where it can start (fast), else Filament's "
            "offscreen renderer (logged); a renderer named here is never replaced by the other."
        ),
    ] = "auto",
) -> None:
    """Render shapes with a fixed camera and lighting into a contact sheet (and optionally a GIF)."""
    from viewers.render import render_folder, render_images, save_gif, save_sheet

    if len(inputs) == 1 and inputs[0].is_dir():
        result = render_folder(
            inputs[0], out=out, gif=gif, size=(size, size), ncols=ncols, mode=mode, fps=fps, renderer=renderer
        )
        emit(f"rendered {result.mode} of [bold]{inputs[0]}[/] to [bold]{result.sheet}[/]")
        if result.gif is not None:
            emit(f"animation: [bold]{result.gif}[/]")
        return
    folders = [p for p in inputs if p.is_dir()]
    if folders:
        raise ValueError(f"{folders[0]}: give one interpolation folder on its own, or only files")
    images = render_images(inputs, size=(size, size), mode=mode, renderer=renderer)
    save_sheet(images, out, titles=[p.stem for p in inputs], ncols=ncols)
    emit(f"rendered {len(inputs)} shapes to [bold]{out}[/]")
    if gif is not None:
        save_gif(images, gif, fps=fps)
        emit(f"animation: [bold]{gif}[/]")


def register(app: typer.Typer) -> None:
    """Add ``render`` to the main app."""
    app.command("render")(friendly(render_cmd))
