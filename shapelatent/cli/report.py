"""``shapelatent report RUN [--out FILE]``: a self-contained HTML page for a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import emit, friendly

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    @friendly
    def report(
        run: Annotated[Path, typer.Argument(help="A run folder from `shapelatent train` or `shapelatent demo`.")],
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="HTML file to write (default: RUN/report.html).")
        ] = None,
    ) -> None:
        """Write a self-contained HTML report of a run (images embedded; opens anywhere, no network)."""
        from viewers.report import write_report

        path = write_report(run, out)
        emit(f"wrote [bold]{path}[/] ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
