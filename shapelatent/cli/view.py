"""`shapelatent view`: the interactive Open3D viewer (Open3D's GUI toolkit; the legacy key window as a fallback)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from shapelatent.cli.common import console, emit, friendly
from shapelatent.native_output import FILAMENT_CHATTER, native_stdout_to_stderr

__all__ = ["register"]

logger = logging.getLogger(__name__)

LEGACY_NOTE = (
    "Open3D's GUI could not start here ({why}); showing the legacy key-driven window instead "
    "(no slider, panels or picking)."
)


def _run_gui(open_window: Any) -> None:
    """Open a GUI window (``open_window()`` builds it) and run the event loop until it closes."""
    from viewers.gui.base import run_app

    with native_stdout_to_stderr(logger, quiet=FILAMENT_CHATTER):
        window = open_window()
        run_app()
    for p in window.exports:
        emit(f"wrote {p}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``view`` command to a Typer app."""

    @app.command("view")
    @friendly
    def view(
        paths: Annotated[
            list[str] | None,
            typer.Argument(
                help="With --model: two or more store ids or mesh/point files to interpolate. Without: an "
                "interpolation folder (manifest.json), or mesh / point-cloud files side by side."
            ),
        ] = None,
        model: Annotated[
            Path | None,
            typer.Option(help="Trained run (or shipped name) that decodes any t; with --map: the reconstructions."),
        ] = None,
        store: Annotated[
            Path | None, typer.Option(help="A latent store: endpoints and neighbour classes; --query; --map.")
        ] = None,
        query: Annotated[str | None, typer.Option(help="Store item id (or index) to show with its neighbours.")] = None,
        k: Annotated[int, typer.Option("-k", help="Neighbours to show with --query.")] = 8,
        map_: Annotated[bool, typer.Option("--map", help="With --store: the 3-D latent map.")] = False,
        projection: Annotated[str, typer.Option(help="With --map: pca | tsne | umap.")] = "pca",
        max_points: Annotated[int, typer.Option(help="With --map: show at most this many codes.")] = 5000,
        seed: Annotated[int, typer.Option(help="With --map: subsampling and projection seed.")] = 0,
        t: Annotated[float, typer.Option("--t", help="Starting t of the interpolation slider, in [0, 1].")] = 0.0,
        steps: Annotated[int, typer.Option(help="Shapes per segment for Play and the GIF export.")] = 8,
        method: Annotated[str, typer.Option(help="Interpolation path: linear | slerp.")] = "linear",
        mesher: Annotated[
            str,
            typer.Option(
                help="auto (implicit with an occupancy head, else poisson) | implicit | poisson | "
                "ball_pivoting | alpha | none."
            ),
        ] = "auto",
        preview: Annotated[
            int,
            typer.Option(
                help="Implicit meshes: show a coarse MISE mesh at this resolution (e.g. 64) first, then the 128^3 one; "
                "0 (default) shows the 128^3 mesh only. Off by default: on software Vulkan (Mesa lavapipe) every "
                "extra mesh swap raises the odds of Filament's known hang."
            ),
        ] = 0,
        display: Annotated[str, typer.Option(help="What to show: 'mesh + points' | mesh | points.")] = "mesh + points",
        select: Annotated[
            list[str] | None, typer.Option(help="With --map: store ids to select at start (a second one: the path).")
        ] = None,
        screenshot: Annotated[
            Path | None,
            typer.Option(help="Non-interactive: open the window, set the state, save the whole window as PNG, exit."),
        ] = None,
        export_dir: Annotated[
            Path, typer.Option(help="Where the window's Screenshot / Save mesh / Save GIF buttons write.")
        ] = Path("shapelatent_view"),
        size: Annotated[str, typer.Option(help="Window size WxH in pixels.")] = "1280x800",
        legacy: Annotated[bool, typer.Option(help="Use the legacy key-driven window (Open3D Visualizer).")] = False,
        screenshot_dir: Annotated[
            Path | None, typer.Option(help="Legacy window: save a PNG at start and after every key.")
        ] = None,
    ) -> None:
        """Open the viewer window (needs a display; for pictures without one use `shapelatent render`).

        `view --model RUN A B [C...]`: a slider over t decodes any in-between shape (points at once, the mesh in the
        background), with play, steps, linear/slerp, mesher, neighbours' classes (--store) and endpoints from the
        store or from files. `view DIR`: the same for a folder written by `interpolate`. `view --store S --query ID`:
        the neighbours grid (click one to make it the query). `view --store S --map [--model RUN]`: the 3-D map
        (click a code; shift-click a second to interpolate). Every window exports a PNG, the current mesh and a GIF.
        """
        from viewers import interactive

        paths = paths or []
        if not interactive.display_available():
            raise interactive.NoDisplayError(interactive.NO_DISPLAY_MESSAGE)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"--t must be in [0, 1]; got {t}")
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--size must look like 1280x800; got {size!r}") from None
        win: dict[str, Any] = {"width": width, "height": height, "export_dir": export_dir, "screenshot": screenshot}
        if map_ and store is None:
            raise ValueError("--map needs --store STORE, e.g. shapelatent view --store STORE --map")
        if query is not None and store is None:
            raise ValueError("--query needs --store STORE")
        if map_ and (query is not None or paths):
            raise ValueError("--map shows the whole store: give no --query and no files.")
        if store is not None and query is not None and paths:
            raise ValueError("with --query give no files; e.g. --store STORE --query chair_01")
        if not legacy:
            try:
                from viewers.gui.base import app_instance

                with native_stdout_to_stderr(logger, quiet=FILAMENT_CHATTER):
                    app_instance()
            except Exception as exc:  # any renderer failure: say so, then the legacy window
                console.print(LEGACY_NOTE.format(why=exc), highlight=False)
                legacy = True
        if legacy:
            _legacy(paths, store, query, k, map_, model, max_points, seed, screenshot_dir)
            return
        if map_ and store is not None:
            _open_map(store, model, projection, max_points, seed, mesher, select or [], win)
        elif store is not None and query is not None:
            from shapelatent.latent.store import LatentStore
            from viewers.gui.neighbors import NeighborsWindow

            st = LatentStore.open(store)
            neighbors_query: str | int = query
            _run_gui(lambda: NeighborsWindow(st, neighbors_query, k, **win))
        elif model is not None or (len(paths) == 1 and Path(paths[0]).is_dir()):
            from viewers.gui.interp import InterpolationWindow
            from viewers.gui.session import session_from_folder, session_from_refs

            if len(paths) == 1 and Path(paths[0]).is_dir():
                try:
                    session = session_from_folder(
                        paths[0], model, method=method, mesher=mesher, preview_resolution=preview or None
                    )
                except (FileNotFoundError, ValueError) as exc:  # no model to decode with: the written steps only
                    console.print(f"{exc}\nshowing the written steps in the legacy window.", highlight=False)
                    _legacy(paths, None, None, k, False, None, max_points, seed, screenshot_dir)
                    return
            elif len(paths) >= 2:
                session = session_from_refs(
                    model,  # type: ignore[arg-type]
                    list(paths),
                    store,
                    method=method,
                    mesher=mesher,
                    preview_resolution=preview or None,
                )
            else:
                raise ValueError("give two or more store ids or files to interpolate (or one interpolation folder)")
            _run_gui(lambda: InterpolationWindow(session, t=t, steps=steps, display=display, **win))
        elif paths:
            interactive.view_files([Path(p) for p in paths], screenshot_dir=screenshot_dir)
        else:
            raise ValueError(
                "nothing to view: give --model RUN A B, an interpolation folder, files, --store S --query ID, "
                "or --store S --map."
            )


def _open_map(
    store: Path,
    model: Path | None,
    projection: str,
    max_points: int,
    seed: int,
    mesher: str,
    select: list[str],
    win: dict[str, Any],
) -> None:
    from shapelatent.latent.store import LatentStore
    from viewers.gui.map import MapWindow
    from viewers.map_view import _resolve_model

    if projection not in ("pca", "tsne", "umap"):
        raise ValueError(f"--projection must be pca, tsne or umap; got {projection!r}")
    st = LatentStore.open(store)
    loaded, no_model = _resolve_model(st, model)
    if loaded is None:
        console.print(f"latent map without reconstructions: {' '.join(no_model)}", highlight=False)
    recorded = (st.info.get("model") or {}).get("path")
    model_path = str(model) if model is not None else str(recorded)
    rows = [st.index_of(s) for s in select]
    _run_gui(
        lambda: MapWindow(
            st,
            loaded,
            model_path=model_path,
            method=projection,
            max_points=max_points,
            seed=seed,
            mesher=mesher,
            select=rows,
            **win,
        )
    )


def _legacy(
    paths: list[str],
    store: Path | None,
    query: str | None,
    k: int,
    map_: bool,
    model: Path | None,
    max_points: int,
    seed: int,
    screenshot_dir: Path | None,
) -> None:
    """The legacy key-driven window (Open3D ``VisualizerWithKeyCallback``)."""
    from viewers import interactive

    if map_:
        from viewers.map_view import MAP_KEYS_HELP, view_map

        console.print(f"latent map of {store}: {MAP_KEYS_HELP}", highlight=False)
        view_map(store, model, max_points=max_points, seed=seed, screenshot_dir=screenshot_dir)
    elif store is not None and query is not None:
        console.print(f"neighbours of [bold]{query}[/] in {store}; Q quits", highlight=False)
        interactive.view_neighbors(store, query, k, screenshot_dir=screenshot_dir)
    elif len(paths) == 1 and Path(paths[0]).is_dir():
        console.print(
            f"interpolation {paths[0]}: Right/N next, Left/P previous, Space play, M points/mesh, Q quits",
            highlight=False,
        )
        interactive.view_interpolation(paths[0], screenshot_dir=screenshot_dir)
    elif paths:
        interactive.view_files([Path(p) for p in paths], screenshot_dir=screenshot_dir)
    else:
        raise ValueError("nothing to view: give an interpolation folder, files, or --store STORE --query ID.")
