"""`shapelatent view`: the interactive Open3D viewer on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import console, friendly

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``view`` command to a Typer app."""

    @app.command("view")
    @friendly
    def view(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(help="An interpolation folder (with manifest.json), or mesh / point-cloud files."),
        ] = None,
        store: Annotated[Path | None, typer.Option(help="A latent store: --query and neighbours, or --map.")] = None,
        query: Annotated[str | None, typer.Option(help="Store item id (or index) to show with its neighbours.")] = None,
        k: Annotated[int, typer.Option("-k", help="Neighbours to show with --store.")] = 8,
        map_: Annotated[bool, typer.Option("--map", help="With --store: the 3-D latent map (PCA) viewer.")] = False,
        model: Annotated[
            Path | None, typer.Option(help="With --map: run that decodes reconstructions (default: the store's).")
        ] = None,
        max_points: Annotated[int, typer.Option(help="With --map: show at most this many codes.")] = 5000,
        seed: Annotated[int, typer.Option(help="With --map: subsampling seed.")] = 0,
        screenshot_dir: Annotated[
            Path | None, typer.Option(help="Save a PNG of the window at start and after every key.")
        ] = None,
    ) -> None:
        """Open an interactive 3D window (needs a display; for pictures without one use `shapelatent render`).

        Interpolation keys: Right/N next step, Left/P previous, Space play/pause, M points/mesh/both, Q/Esc quit.
        With --store STORE --map: the 3-D latent map (its keys are printed when it opens).
        """
        from viewers import interactive

        paths = paths or []
        if not interactive.display_available():
            raise interactive.NoDisplayError(interactive.NO_DISPLAY_MESSAGE)
        if store is not None and map_:
            if query is not None or paths:
                raise ValueError("--map shows the whole store: give no --query and no files.")
            from viewers.map_view import MAP_KEYS_HELP, view_map

            console.print(f"latent map of {store}: {MAP_KEYS_HELP}", highlight=False)
            view_map(store, model, max_points=max_points, seed=seed, screenshot_dir=screenshot_dir)
        elif map_:
            raise ValueError("--map needs --store STORE, e.g. shapelatent view --store STORE --map")
        elif store is not None:
            if query is None or paths:
                raise ValueError("with --store give --query ID (and no files); e.g. --store STORE --query chair_01")
            console.print(f"neighbours of [bold]{query}[/] in {store}; Q quits", highlight=False)
            interactive.view_neighbors(store, query, k, screenshot_dir=screenshot_dir)
        elif len(paths) == 1 and paths[0].is_dir():
            console.print(
                f"interpolation {paths[0]}: Right/N next, Left/P previous, Space play, M points/mesh, Q quits",
                highlight=False,
            )
            interactive.view_interpolation(paths[0], screenshot_dir=screenshot_dir)
        elif paths:
            for p in paths:
                if p.is_dir():
                    raise ValueError(f"{p}: a folder can only be viewed alone (an interpolation folder).")
            interactive.view_files(paths, screenshot_dir=screenshot_dir)
        else:
            raise ValueError("nothing to view: give an interpolation folder, files, or --store STORE --query ID.")
