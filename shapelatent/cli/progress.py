"""Rich progress bars for the CLI (library code reports through callbacks, never prints)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

__all__ = ["bar", "console"]


@contextmanager
def bar(description: str, total: int | None) -> Iterator[Progress]:
    """A progress bar with one task (id 0); yields the Progress (``p.update(0, advance=1)``)."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        progress.add_task(description, total=total, info="")
        yield progress
